"""Liu & Markowich 2020, width continuum: train a Z2 network at width M, evaluate it at 2M and 4M.

    python -m training.recipes.lm_width [--dataset double_moons] [--width 16] [--quick] [--out DIR]
        [--strategy {default,mirrored,multi_worker}] [--scale-batch] [--fresh]

The paper has no experiments (notes Sec. 5); this recipe checks the zoo's reading of Theorem 2.2
and Z2: a `lm_selection_continuous` network (kernel `b_theta(y, z, t)` in a cosine basis, learned
smooth lifting, quadrature readout, Eqs. 2.8-2.9) is trained on one grid of `M` cells, then the
same `theta` is sampled on `M/2`, `2M`, `4M` and `8M` cells (`zoo.selection.at_width`) and
evaluated on the validation split. Acceptance: validation accuracy at `2M` within 1 point of
the accuracy at `M`. Adam with a cosine-decayed step and the paper's Tikhonov term (Eq. 4.6,
`l2 = 1e-3`), compiled with XLA (dense loops, DESIGN.md section 3). Writes `results.json`
(accuracy, cross-entropy without the regulariser, and the max logit distance from the finest
grid per width), `accuracy_vs_width.png` and the training CSV / TensorBoard logs into `--out`.
The paper gives no `T`, `N`, widths or data; every setting here is ours. Rerunning an interrupted
command with the same `--out` resumes it at its last finished epoch (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np

import zoo
from training.callbacks import ResumableBackup, TqdmEpochs
from training.data.pipeline import make_pipeline
from training.data.toy2d import TOY_NAMES, load_toy
from training.recipes.common import (
    Reliability,
    add_reliability_arguments,
    check_before_fit,
    guard_callbacks,
    level_callbacks,
    prepare_out_dir,
    save_figure,
    seed_everything,
    start_fresh,
    write_json,
)
from zoo.selection import at_width

__all__ = ["FULL", "QUICK", "main", "run"]

FULL = dict(depth=16, T=4.0, modes=8, time_nodes=4, kernel="free", l2=1e-3, epochs=30, batch_size=64,
            lr=1e-2, width_factors=(0.5, 1, 2, 4, 8), execution="xla")
# Few steps: compiling (XLA or a graph) would cost more than it saves, so --quick runs eagerly.
QUICK = dict(FULL, depth=4, epochs=2, subsample=256, width_factors=(1, 2, 4), execution="eager")


def _compile(model, num_classes, optimizer, execution, reliability=None):
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metric = keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    # A handful of steps (--quick) runs fastest eagerly: no tracing, no XLA compile.
    jit_compile = execution == "xla" if reliability is None else reliability.jit(execution == "xla")
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric], jit_compile=jit_compile,
                  run_eagerly=execution == "eager")
    return model


def _evaluate(model, x, y, num_classes):
    """Logits, accuracy and mean cross-entropy of one eager forward pass (no tracing per width)."""
    logits = keras.ops.convert_to_numpy(model(x)).astype("float64")
    if num_classes == 2:
        z, t = logits[:, 0], y[:, 0]
        loss = np.mean(np.logaddexp(0.0, z) - t * z)
        accuracy = np.mean((z > 0) == (t > 0.5))
    else:
        shifted = logits - logits.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        loss = -np.mean(log_p[np.arange(len(y)), y])
        accuracy = np.mean(logits.argmax(1) == y)
    return logits, float(accuracy), float(loss)


def _targets(y, num_classes):
    return y.astype("float32")[:, None] if num_classes == 2 else y.astype("int32")


def run(out_dir, dataset="double_moons", width=16, depth=16, T=4.0, modes=8, time_nodes=4,
        kernel="free", l2=1e-3, epochs=30, batch_size=64, lr=1e-2, seed=0, subsample=None,
        width_factors=(0.5, 1, 2, 4, 8), execution="xla", strategy="default", scale_batch=False, fresh=False):
    """Train at `width`, evaluate at every `factor * width`; write results.json and the figure.

    `l2` is the Tikhonov regulariser of L&M Eq. 4.6 (Remark 4.2) on the basis coefficients:
    with the orthonormal cosine basis, `sum ||C(s_l)||_F^2 = sum ||b(., ., s_l)||^2_{L^2(Y x Y)}`
    and `sum ||alpha(s_l)||^2 = sum ||a(., s_l)||^2_{L^2(Y)}` over the time nodes. It bounds the
    kernel (assumption (A_3)); without it the logits grow until tanh(u(y)) is steep in `y`
    and the trained network starts to use the quadrature error of its own grid (measured with
    `l2 = 0`, double moons, 30 epochs: 98.75% validation accuracy at M = 16, 95.95% at 2M).

    Resumable (`<out>/backup` until the run finishes; `fresh=True` discards it); `strategy`,
    `scale_batch`: `training.distribute` (the batch is the global batch).
    """
    reliability = Reliability(strategy, scale_batch)  # first: before TensorFlow runs any op
    batch_size, lr = reliability.batch(batch_size, lr)
    seed_everything(seed)
    data = load_toy(dataset, seed=seed)
    x_tr, y_tr, x_va, y_va = data.x_train, data.y_train, data.x_val, data.y_val
    if subsample:  # a seeded random subset (the sets are stored class by class)
        pick = np.random.default_rng(seed)
        tr, va = pick.permutation(len(x_tr))[:subsample], pick.permutation(len(x_va))[:subsample]
        x_tr, y_tr, x_va, y_va = x_tr[tr], y_tr[tr], x_va[va], y_va[va]
    k = data.num_classes
    y_tr, y_va = _targets(y_tr, k), _targets(y_va, k)
    out_dir = prepare_out_dir(reliability.out(out_dir))
    backup_dir = os.path.join(out_dir, "backup")
    if fresh:
        start_fresh(backup_dir, os.path.join(out_dir, "training.csv"), os.path.join(out_dir, "tensorboard"))

    arch = dict(depth=depth, T=T, width=width, modes=modes, time_nodes=time_nodes, kernel=kernel,
                num_classes=k)
    reg = keras.regularizers.L2(l2) if l2 else None
    steps = epochs * int(np.ceil(len(x_tr) / batch_size))
    with reliability.scope():
        model = zoo.create("lm_selection_continuous", kernel_regularizer=reg, bias_regularizer=reg, **arch)
        schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05)
        _compile(model, k, keras.optimizers.Adam(schedule, clipnorm=1.0), execution, reliability)
    train_ds = make_pipeline(x_tr, y_tr, batch_size, training=True, seed=seed)
    val_ds = make_pipeline(x_va, y_va, 1024, training=False, seed=seed)
    reliability.prepare(model, train_ds)
    check_before_fit(model, x_va[:64])  # no ODEBlock in the selection network: nothing to check
    backup = ResumableBackup(backup_dir, data=train_ds, fingerprint=dict(
        recipe="lm_width", dataset=dataset, seed=seed, subsample=subsample, epochs=epochs, batch_size=batch_size,
        lr=lr, l2=l2, **arch))
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, shuffle=False,  # tf.data shuffles
              callbacks=[backup, *level_callbacks(out_dir, "training"), TqdmEpochs(f"lm_width M={width}"),
                         *guard_callbacks()])
    train_seconds = time.perf_counter() - start

    widths = [int(f * width) for f in width_factors if f * width >= modes]
    results, logits = {}, {}
    for m in widths:
        logits[m], accuracy, loss = _evaluate(at_width(model, m), x_va, y_va, k)
        results[m] = {"val_accuracy": accuracy, "val_loss": loss}
    finest = logits[widths[-1]]
    for m in widths:  # how far each grid is from the finest one, in logits
        results[m]["max_abs_logit_diff_vs_finest"] = float(np.max(np.abs(logits[m] - finest)))
    results_scale = float(np.max(np.abs(finest)))
    acc = {m: r["val_accuracy"] for m, r in results.items()}
    summary = {
        "paper": "Liu & Markowich 2020 (Z2 continuous kernel, Thm 2.2 width limit)",
        "dataset": dataset, "architecture": "lm_selection_continuous", **arch, "l2": l2,
        "optimizer": f"Adam(CosineDecay({lr}, alpha=0.05), clipnorm=1)", "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "n_train": len(x_tr), "n_val": len(x_va),
        "trainable_weights": int(model.count_params()), "train_seconds": train_seconds,
        "trained_width": width, "widths": widths,
        "by_width": {str(m): r for m, r in results.items()}, "max_abs_logit_finest": results_scale,
        "accuracy_drop_2M_points": 100.0 * (acc[width] - acc[2 * width]),
        "accepted": bool(abs(acc[2 * width] - acc[width]) <= 0.01),
        **reliability.summary(batch_size),
    }
    write_json(summary, os.path.join(out_dir, "results.json"))
    plot_accuracy(results, width, dataset, os.path.join(out_dir, "accuracy_vs_width.png"))
    return summary


def plot_accuracy(results, width, dataset, path):
    """Validation accuracy and the logits' distance from the finest grid, against `M`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted(results)
    acc = [100 * results[m]["val_accuracy"] for m in widths]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.plot(widths, acc, "o-")
    ax.axvline(width, color="grey", ls="--", lw=1, label=f"trained at M = {width}")
    ax.axhspan(acc[widths.index(width)] - 1, acc[widths.index(width)] + 1, color="grey", alpha=0.15,
               label="±1 point")
    ax.set_ylim(min(acc) - 2, min(100.5, max(acc) + 2))
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(loc="lower right")
    coarse = widths[:-1]
    ax2.semilogy(coarse, [max(results[m]["max_abs_logit_diff_vs_finest"], 1e-8) for m in coarse], "s-")
    ax2.axvline(width, color="grey", ls="--", lw=1)
    ax2.set_ylabel(f"max |logit(M) - logit({widths[-1]})|")
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xticks(widths, [str(m) for m in widths])
        a.set_xlabel("cells M (grid the trained theta is sampled on)")
    fig.suptitle(f"Z2 selection dynamics (Liu & Markowich), {dataset}: one theta, many widths")
    save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=TOY_NAMES, default="double_moons")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--kernel", default="free")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/lm_width")
    parser.add_argument("--quick", action="store_true", help="N = 4, 2 epochs, 256 points, M..4M")
    add_reliability_arguments(parser)
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL, kernel=args.kernel)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    summary = run(args.out, dataset=args.dataset, width=args.width, seed=args.seed, strategy=args.strategy,
                  scale_batch=args.scale_batch, fresh=args.fresh, **settings)
    for m, r in summary["by_width"].items():
        print(f"M={int(m):4d}  val acc {r['val_accuracy']:.4f}")
    print(f"trained {summary['train_seconds']:.1f} s; accepted (|acc(2M) - acc(M)| <= 1 point): "
          f"{summary['accepted']}")


if __name__ == "__main__":
    main()
