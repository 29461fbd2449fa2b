"""Depth scaling: compile time and time per training step (issue acceptance figures).

1. Dense antisymmetric net, N = 1024, width 2, batch 256, Adam, XLA on and off.
2. The H&R MNIST conv net (width 6, N = 16, 28x28, batch 128), SGD, XLA on and off.

Prints a table and writes benchmarks/results/depth_scaling.{md,png}. Timings are medians over
repeated `model.fit` epochs of several steps, on whatever machine runs this.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results")


def _time_fit(model, x, y, batch, jit, optimizer, loss, steps=20, repeats=5):
    model.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).cache()
    start = time.perf_counter()
    model.fit(ds.take(1), epochs=1, verbose=0)  # trace + compile + one step
    compile_s = time.perf_counter() - start
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(ds.take(steps), epochs=1, verbose=0)
        per_step.append((time.perf_counter() - start) / steps * 1000)
    return compile_s, statistics.median(per_step)


def main():
    rng = np.random.default_rng(0)
    rows = []
    x = rng.standard_normal((256 * 20, 2)).astype("float32")
    y = (rng.random((256 * 20, 1)) > 0.5).astype("float32")
    for jit in (True, False):
        model = zoo.create("hr17_antisymmetric", depth=1024, T=20.0, width=2)
        c, s = _time_fit(model, x, y, 256, jit, keras.optimizers.Adam(1e-3),
                         keras.losses.BinaryCrossentropy(from_logits=True), steps=20 if jit else 5)
        rows.append(("dense antisymmetric N=1024 w=2 b=256 (Adam)", jit, c, s))
    images = rng.uniform(0, 255, (128 * 10, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, 128 * 10).astype("int32")
    for jit in (False, True):
        model = zoo.create("hr17_antisymmetric_conv", depth=16)
        c, s = _time_fit(model, images, labels, 128, jit, keras.optimizers.SGD(0.01),
                         keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps=10, repeats=3)
        rows.append(("conv antisymmetric N=16 w=6 b=128 (SGD)", jit, c, s))

    lines = ["| configuration | XLA | compile + first step (s) | step (ms) |", "|---|---|---|---|"]
    lines += [f"| {name} | {'on' if jit else 'off'} | {c:.2f} | {s:.1f} |" for name, jit, c, s in rows]
    table = "\n".join(lines)
    print(table)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "depth_scaling.md.tmp"), "w") as f:
        f.write(f"Measured on {os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}\n\n{table}\n")
    os.replace(os.path.join(OUT, "depth_scaling.md.tmp"), os.path.join(OUT, "depth_scaling.md"))


if __name__ == "__main__":
    main()
