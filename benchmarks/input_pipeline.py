"""Is `model.fit` on Fashion-MNIST input-bound? tf.data throughput against the model's step.

    python benchmarks/input_pipeline.py [--steps 40] [--repeats 3] [--quick]

For each Fashion-MNIST image model, in one process and with the zoo's default compile settings:

1. **tf.data**: images per second of the recipe's training pipeline (cache, shuffle, batch,
   flip + pad/crop augmentation on batches, prefetch), iterated alone after one warm pass.
2. **bare step**: the compiled training step (`model.train_on_batch`) on one batch already in
   memory: no input pipeline at all.
3. **model.fit**: one epoch of `--steps` steps from that pipeline (`steps_per_epoch`), timed
   from `on_train_batch_begin` of the first step to the end of the epoch, so tracing is
   excluded (a first, untimed epoch compiles).

Bare and fit measurements alternate `--repeats` times, so load from other processes hits both
alike. `model.fit` is within 10% of the bare step when (fit per step) / (bare step) <= 1.10.
Writes benchmarks/results/input_pipeline.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from training.atomic_files import write_text  # noqa: E402
from training.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from training.data.pipeline import make_pipeline, random_flip_and_shift  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results")
# (zoo name, batch, optimizer): the recipes' settings for these networks.
MODELS = (
    ("hr17_antisymmetric_conv", 128, lambda: keras.optimizers.Adam(1e-3)),
    ("rh18_parabolic_fashion_mnist", 125, lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
)


class _FitTimer(keras.callbacks.Callback):
    """Wall time from the first batch's start to the epoch's end (excludes fit's set-up)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def _pipeline(data, batch, seed=0):
    return make_pipeline(data.x_train, data.y_train, batch, training=True, seed=seed,
                         augment=random_flip_and_shift(pad=2, flip=True))


def tfdata_images_per_second(data, batch, max_batches=None):
    """Images per second of the training pipeline alone (second pass: the cache is warm)."""
    ds = _pipeline(data, batch)
    if max_batches:
        ds = ds.take(max_batches)
    for _ in ds:  # fills the cache
        pass
    start, images = time.perf_counter(), 0
    for x, _ in ds:
        images += int(x.shape[0])
    return images / (time.perf_counter() - start)


def bare_step_seconds(model, x, y, steps):
    """Median seconds of the compiled training step on an in-memory batch."""
    model.train_on_batch(x, y)  # trace and compile
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_step_seconds(model, ds, steps):
    """Seconds per step of one `model.fit` epoch of `steps` steps from `ds`."""
    timer = _FitTimer()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return timer.seconds / steps


def measure(name, batch, make_optimizer, data, steps, repeats):
    model = zoo.create(name)
    model.compile(optimizer=make_optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # default jit_compile: the zoo's policy
    ds = _pipeline(data, batch).repeat()
    x = tf.constant(data.x_train[:batch], tf.float32)
    y = tf.constant(data.y_train[:batch], tf.int32)
    fit_step_seconds(model, ds, 2)  # builds the train function and fills the first cache pass
    bare, fit = [], []
    for _ in range(repeats):
        bare.append(bare_step_seconds(model, x, y, steps))
        fit.append(fit_step_seconds(model, ds, steps))
    load = os.getloadavg()[0]
    bare_s, fit_s = statistics.median(bare), statistics.median(fit)
    return {
        "model": name, "batch": batch, "jit_compile": bool(model.jit_compile), "steps": steps,
        "repeats": repeats, "bare_step_ms": 1e3 * bare_s, "fit_step_ms": 1e3 * fit_s,
        "bare_step_ms_all": [1e3 * b for b in bare], "fit_step_ms_all": [1e3 * f for f in fit],
        "fit_over_bare": fit_s / bare_s, "model_images_per_second": batch / bare_s,
        "tfdata_images_per_second": tfdata_images_per_second(data, batch),
        "load_average_1min": load,
    }


def write_outputs(results, out=OUT):
    os.makedirs(out, exist_ok=True)
    rows = ["| model | batch | jit_compile | tf.data images/s | model images/s (bare step) | bare step ms "
            "| `model.fit` step ms | fit / bare | holds (<= 1.10) | load |",
            "|---|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        rows.append(
            f"| `{r['model']}` | {r['batch']} | {r['jit_compile']} | {r['tfdata_images_per_second']:,.0f} "
            f"| {r['model_images_per_second']:,.0f} | {r['bare_step_ms']:.1f} | {r['fit_step_ms']:.1f} "
            f"| {r['fit_over_bare']:.3f} | {'yes' if r['fit_over_bare'] <= 1.10 else '**no**'} "
            f"| {r['load_average_1min']:.1f} |")
    headroom = min(r["tfdata_images_per_second"] / r["model_images_per_second"] for r in results)
    worst = max(r["fit_over_bare"] for r in results)
    text = "\n".join(rows + [
        "",
        f"Medians over {results[0]['repeats']} alternating repeats of {results[0]['steps']} steps. "
        f"The pipeline alone delivers at least {headroom:.1f}x the images per second the models "
        f"consume; `model.fit` takes at most {worst:.3f}x the bare step "
        f"({'within' if worst <= 1.10 else 'outside'} the 10% bound).",
    ])
    write_text(os.path.join(out, "input_pipeline.md"), text + "\n")
    write_text(os.path.join(out, "input_pipeline.json"), json.dumps(results, indent=2) + "\n")
    _plot(results, os.path.join(out, "input_pipeline.png"))


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["model"] for r in results]
    pos = np.arange(len(names))
    for offset, key, label in ((-0.27, "tfdata_images_per_second", "tf.data pipeline"),
                               (0.0, "model_images_per_second", "bare training step"),
                               (0.27, "fit_step_ms", "model.fit")):
        values = [r[key] if key != "fit_step_ms" else r["batch"] / (r[key] / 1e3) for r in results]
        ax.bar(pos + offset, values, 0.27, label=label)
    ax.set_xticks(pos, names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("images per second")
    ax.set_title("Fashion-MNIST training: input pipeline vs model step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 steps, 1 repeat (smoke test)")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    steps, repeats = (3, 1) if args.quick else (args.steps, args.repeats)
    data = load_fashion_mnist()
    results = [measure(name, batch, opt, data, steps, repeats) for name, batch, opt in MODELS]
    write_outputs(results, args.out)
    with open(os.path.join(args.out, "input_pipeline.md")) as f:
        print(f.read())
    return results


if __name__ == "__main__":
    main()
