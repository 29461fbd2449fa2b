"""Float32 drift of reversible backpropagation: relative error of the rebuilt input state.

    python benchmarks/reversible_drift.py   # writes benchmarks/results/reversible_drift.md

Dense Verlet and leapfrog blocks, width 8, batch 64, kernels drawn N(0, 1) per step (so
`||K||` is about 5), step `h` and depth `N` varied; one backward pass each, and
`block.reconstruction_error` read afterwards. The inverse steps amplify round-off like the
forward ones amplify perturbations, so the error grows with `h ||K||` and `N`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from zoo.blocks import leapfrog_block, verlet_block  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results", "reversible_drift.md")


def main():
    x = tf.constant(np.random.default_rng(0).standard_normal((64, 8)).astype("float32"))
    lines = ["| block | N | h | relative error of the rebuilt input (float32) |", "|---|---|---|---|"]
    for name, build in (("verlet", verlet_block), ("leapfrog", leapfrog_block)):
        for depth in (16, 256, 1024):
            for h in (0.1, 1.0, 4.0):
                block = build(depth, h * depth, reversible=True,
                              kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    total = tf.reduce_sum(block(x))
                tape.gradient(total, x)
                lines.append(f"| {name} | {depth} | {h:g} | {float(block.reconstruction_error):.1e} |")
    text = "\n".join(lines) + (
        "\n\nWhen the error is large the rebuilt states, and so the gradients, are wrong. The option "
        "keeps training but records the error in `block.reconstruction_error`, and "
        "`training.callbacks.ReconstructionMonitor` logs it per epoch and warns above 1e-3. Then "
        "use a smaller `h` (a larger `N` at the same `T`), float64, or `reversible=False`.\n")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
