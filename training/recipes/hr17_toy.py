"""Haber & Ruthotto 2017, Sec. 6.1-6.3: ellipses, swiss roll, peaks with multilevel training.

    python -m training.recipes.hr17_toy --dataset swiss_roll --network verlet [--quick]
        [--strategy {default,mirrored,multi_worker}] [--scale-batch] [--fresh]

An interrupted run resumes when the same command is run again with the same `--out` (finished
levels are skipped, the interrupted level continues at its last finished epoch; `--fresh`
starts over); see README, "Resuming and distributed training".

Settings from the paper (notes Sec. 3.3-3.5): tanh; T = 20 (ellipses, swiss roll) or 5 (peaks);
widths 2 / 4 (pad) / 8 (duplicate) / 2 for Verlet; time smoothness alpha 1e-3 / 5e-3 / 5e-6;
levels N = 4, 8, ..., 1024; best-validation weights per level. The paper trains with block
coordinate descent (Newton-PCG / Gauss-Newton-PCG); this recipe uses Adam, so numbers differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import keras
import numpy as np

import zoo
from training.callbacks import StepGradientNorms, TqdmEpochs
from training.data.pipeline import make_pipeline
from training.data.toy2d import load_toy
from training.multilevel import train_multilevel
from training.recipes.common import (
    Reliability,
    add_reliability_arguments,
    guard_callbacks,
    level_callbacks,
    prepare_out_dir,
    save_figure,
    seed_everything,
    start_fresh,
    write_json,
)
from training.regularizers import TimeSmoothness

__all__ = ["TOY_SETTINGS", "run"]


@dataclasses.dataclass(frozen=True)
class ToySetting:
    T: float
    alpha: float
    widths: dict  # network -> (width, lifting)
    batch_size: int = 32


TOY_SETTINGS = {
    "ellipses": ToySetting(20.0, 1e-3, {"resnet": (2, "pad"), "antisymmetric": (2, "pad"), "verlet": (2, "pad")}),
    "swiss_roll": ToySetting(20.0, 5e-3, {"resnet": (4, "pad"), "antisymmetric": (4, "pad"), "verlet": (2, "pad")}),
    "peaks": ToySetting(5.0, 5e-6, {"resnet": (8, "duplicate"), "antisymmetric": (8, "duplicate"), "verlet": (2, "pad")},
                        batch_size=128),  # 4,000 points: 4x the others, same steps per epoch
}
FULL_LEVELS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Epochs per level: long at the cheap coarse levels, which carry most of the fitting; the fine
# levels start from the prolongated solution and refine it.
DEFAULT_EPOCHS = (300, 300, 300, 300, 200, 100, 50, 30, 20)


def _targets(y, num_classes):
    return y.astype("float32")[:, None] if num_classes == 2 else y.astype("int32")


def _loss_and_metric(num_classes):
    if num_classes == 2:
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"))
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"))


def run(dataset, network, out_dir, levels=FULL_LEVELS, epochs=60, batch_size=None, lr=1e-2, seed=0,
        subsample=None, level_lr_factor=0.5, momentum_channels=None, strategy="default", scale_batch=False,
        fresh=False):
    """Train one network on one toy set over `levels`; write logs, figures, results.json.

    Resumable: the multilevel backup lives in `<out>/<dataset>/<network>/backup` until the run
    has written its results; `fresh=True` discards it first. `strategy`, `scale_batch`: see
    `training.distribute` (the batch is the global batch; default: same results as one device).
    """
    reliability = Reliability(strategy, scale_batch)  # first: before TensorFlow runs any op
    seed_everything(seed)
    setting = TOY_SETTINGS[dataset]
    batch_size, lr = reliability.batch(batch_size or setting.batch_size, lr)
    data = load_toy(dataset, seed=seed)
    x_tr, y_tr, x_va, y_va = data.x_train, data.y_train, data.x_val, data.y_val
    if subsample:  # a seeded random subset: the sets are stored class by class
        pick = np.random.default_rng(seed)
        tr, va = pick.permutation(len(x_tr))[:subsample], pick.permutation(len(x_va))[:subsample]
        x_tr, y_tr, x_va, y_va = x_tr[tr], y_tr[tr], x_va[va], y_va[va]
    k = data.num_classes
    y_tr, y_va = _targets(y_tr, k), _targets(y_va, k)
    width, lifting = setting.widths[network]
    # Verlet's z may be wider than y (K is n x m; notes 1.4): capacity without widening y.
    block_args = {"momentum_channels": momentum_channels} if momentum_channels else {}
    out_dir = prepare_out_dir(reliability.out(os.path.join(out_dir, dataset, network)))
    backup_dir = os.path.join(out_dir, "backup")
    if fresh:
        start_fresh(backup_dir, os.path.join(out_dir, "training.csv"), os.path.join(out_dir, "tensorboard"))
    loss, metric = _loss_and_metric(k)

    def build(depth):
        return zoo.create(
            f"hr17_{network}", depth=depth, T=setting.T, width=width, num_classes=k, lifting=lifting,
            kernel_regularizer=TimeSmoothness(setting.alpha, T=setting.T),
            bias_regularizer=TimeSmoothness(setting.alpha, T=setting.T), **block_args,
        )

    train_ds = make_pipeline(x_tr, y_tr, batch_size, training=True, seed=seed)
    val_ds = make_pipeline(x_va, y_va, 1024, training=False, seed=seed)
    start = time.perf_counter()
    level_counter = iter(range(len(levels)))

    epochs_list = list(np.broadcast_to(np.atleast_1d(epochs), (len(levels),)))
    steps_per_epoch = int(np.ceil(len(x_tr) / batch_size))

    def optimizer():
        # A finer level starts from prolongated weights: shrink the step per level (floor lr/8)
        # and clip the gradient norm, so Adam refines the warm start instead of leaving it
        # (with a constant 1e-2 the ellipses ResNet collapsed to one class at N = 32). Within a
        # level the step decays to 1% on a cosine: the paper's Newton-type solver converges
        # each level, and a constant Adam step left the 2-D sets under-fitted (train < val).
        level = next(level_counter)
        schedule = keras.optimizers.schedules.CosineDecay(
            lr * max(level_lr_factor**level, 0.125), int(epochs_list[level]) * steps_per_epoch, alpha=0.01
        )
        return keras.optimizers.Adam(schedule, clipnorm=1.0)

    fingerprint = dict(recipe="hr17_toy", dataset=dataset, network=network, batch_size=batch_size, lr=lr,
                       seed=seed, subsample=subsample, level_lr_factor=level_lr_factor,
                       momentum_channels=momentum_channels)
    model, records = train_multilevel(
        build, levels, train_ds, val_ds, epochs,
        compile_kwargs=dict(optimizer=optimizer, loss=loss, metrics=[metric]),
        jit_compile=reliability.jit(True),  # dense deep-narrow blocks: XLA (DESIGN.md section 3)
        callbacks=level_callbacks(out_dir, "training") + [TqdmEpochs(f"{dataset}/{network}")] + guard_callbacks(),
        backup_dir=backup_dir, fingerprint=fingerprint,
        strategy=reliability.strategy if reliability.distributed else None,
        stability_inputs=x_va[:64],
    )
    elapsed = time.perf_counter() - start

    grads = StepGradientNorms(x_va[:512], y_va[:512], loss)
    grads.set_model(model)
    norms = grads.measure()
    np.save(os.path.join(out_dir, "grad_norms_final.npy"), norms)
    summary = {
        "dataset": dataset, "network": network, "T": setting.T, "alpha": setting.alpha, "width": width,
        "momentum_channels": momentum_channels,
        "optimizer": f"Adam(cosine decay from lr={lr} * max({level_lr_factor}**level, 1/8) to 1% per level, clipnorm=1)", "batch_size": batch_size, "epochs_per_level": list(np.atleast_1d(epochs).tolist()), "seed": seed,
        "n_train": int(len(x_tr)), "n_val": int(len(x_va)), "seconds": elapsed,
        "levels": [r.as_dict() | {"history": None} for r in records],
        "grad_ratio_final": float(norms[0] / norms[-1]),
        **reliability.summary(batch_size),
    }
    # What a pretrained entry needs to rebuild the final model (training-only terms dropped).
    summary["model"] = {"architecture": f"hr17_{network}", "config": dict(
        depth=int(levels[-1]), T=setting.T, width=width, num_classes=k, lifting=lifting, **block_args)}
    model.save_weights(os.path.join(out_dir, "final.weights.h5"))
    write_json(summary, os.path.join(out_dir, "results.json"))
    plot_decision(model, data, x_tr, y_tr, os.path.join(out_dir, "decision.png"), f"{dataset}, {network}")
    start_fresh(backup_dir)  # finished: the next run of this command starts over
    return summary


def plot_decision(model, data, x, y, path, title):
    """Figures 4-6: labelled input, propagated features, prediction map with data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = model.get_layer("block")
    labels = y.ravel().astype(int)
    x0, x1, y0, y1 = data.domain
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype("float32")
    logits = model.predict(grid, verbose=0, batch_size=4096)
    pred = (logits[:, 0] > 0).astype(int) if logits.shape[1] == 1 else logits.argmax(1)
    feats = keras.Model(model.input, block.output).predict(x, verbose=0)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    axes[0].scatter(x[:, 0], x[:, 1], c=labels, s=4, cmap="tab10")
    axes[0].set_title("input")
    axes[1].scatter(feats[:, 0], feats[:, 1], c=labels, s=4, cmap="tab10")
    axes[1].set_title(f"propagated features Y_N (first 2 of {feats.shape[1]})")
    axes[2].contourf(gx, gy, pred.reshape(gx.shape), alpha=0.35, cmap="tab10")
    axes[2].scatter(x[:, 0], x[:, 1], c=labels, s=3, cmap="tab10")
    axes[2].set_title("prediction map")
    fig.suptitle(f"{title}, N = {block.depth}")
    save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(TOY_SETTINGS), required=True)
    parser.add_argument("--network", choices=["resnet", "antisymmetric", "verlet"], required=True)
    parser.add_argument("--out", default="runs/hr17_toy")
    parser.add_argument("--epochs", type=int, nargs="+", default=list(DEFAULT_EPOCHS),
                        help="epochs per level: one value for all levels, or one per level")
    parser.add_argument("--min-depth", type=int, default=4,
                        help="first level; at T = 20 the coarse levels (h = 5 at N = 4) do not resolve the ODE, "
                             "so prolongating them loses accuracy, and starting at N = 32 avoids that")
    parser.add_argument("--max-depth", type=int, default=1024)
    parser.add_argument("--level-lr-factor", type=float, default=0.5,
                        help="learning rate multiplier per level (floor 1/8)")
    parser.add_argument("--momentum-channels", type=int, default=None,
                        help="Verlet only: width m of z (K is n x m); default m = n")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 levels, 3 epochs, 256 points")
    add_reliability_arguments(parser)
    args = parser.parse_args(argv)
    reliability = dict(strategy=args.strategy, scale_batch=args.scale_batch, fresh=args.fresh)
    if args.quick:
        summary = run(args.dataset, args.network, args.out, levels=(4, 8), epochs=3, subsample=256, seed=args.seed,
                      momentum_channels=args.momentum_channels, **reliability)
    else:
        levels = tuple(n for n in FULL_LEVELS if args.min_depth <= n <= args.max_depth)
        if not levels:
            parser.error(f"no level between --min-depth {args.min_depth} and --max-depth {args.max_depth}")
        if len(args.epochs) == 1:
            epochs = args.epochs * len(levels)
        elif len(args.epochs) == len(FULL_LEVELS):  # one per N = 4 ... 1024: keep those of the run's levels
            epochs = [e for n, e in zip(FULL_LEVELS, args.epochs) if n in levels]
        else:
            epochs = args.epochs
        if len(epochs) != len(levels):
            parser.error(f"--epochs gives {len(epochs)} values for {len(levels)} levels {levels}")
        summary = run(args.dataset, args.network, args.out, levels=levels, epochs=epochs, seed=args.seed,
                      level_lr_factor=args.level_lr_factor, momentum_channels=args.momentum_channels,
                      **reliability)
    for rec in summary["levels"]:
        print(f"N={rec['depth']:5d}  best val acc {rec['val_accuracy']:.4f}  "
              f"after prolongation {rec['val_accuracy_after_prolongation']}")


if __name__ == "__main__":
    main()
