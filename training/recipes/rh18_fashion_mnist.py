"""Ruthotto & Haber 2018, Sec. 5 training recipe, on Fashion-MNIST (the offline image set).

    python -m training.recipes.rh18_fashion_mnist --unit parabolic --epochs 20 [--quick]
        [--strategy {default,mirrored,multi_worker}] [--scale-batch] [--fresh]

As the paper: SGD with momentum 0.9, batch 125, learning rate 0.1 multiplied by 0.2 at 60% and
80% of the epochs (the paper's 60/20/20 of 100 epochs, scaled to the budget), Eq. 13 regulariser
(smoothed TV in time + weight decay on the PDE kernels, alpha1 = alpha2 = 2e-4 as for CIFAR),
box constraint +-1 on the PDE kernels, random flip and pad-2/crop augmentation, an 80/20
train/validation split of the official training set, and the best-validation weights evaluated on
the official test set. Deviations: the Eq. 13 terms act on the PDE kernels only (not on the
TV-norm scales, biases, opening, connectors or head); raw pixels are rescaled to [0, 1] instead
of per-image standardisation. Convolutions run without XLA on CPU (DESIGN.md section 3).
Rerunning an interrupted command with the same `--out` resumes it at its last finished epoch
(`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np

import zoo
from training.callbacks import EpochTimer, ResumableBackup, TqdmEpochs
from training.data.fashion_mnist import load_fashion_mnist
from training.data.pipeline import make_pipeline, random_flip_and_shift
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
from training.regularizers import TimeTotalVariation
from zoo.constraints import BoxConstraint

__all__ = ["run", "learning_rate_schedule"]

ALPHA_TV, ALPHA_DECAY, BATCH, T = 2e-4, 2e-4, 125, 3.0


def learning_rate_schedule(epochs, steps_per_epoch, initial=0.1, factor=0.2):
    """Piecewise constant: `initial`, then x`factor` at 60% and 80% of the epochs (R&H 2018, Sec. 5)."""
    boundaries = [int(round(f * epochs)) * steps_per_epoch for f in (0.6, 0.8)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, [initial, initial * factor, initial * factor**2]
    )


def run(unit, out_dir, epochs=20, seed=0, subsample=None, strategy="default", scale_batch=False, fresh=False):
    reliability = Reliability(strategy, scale_batch)  # first: before TensorFlow runs any op
    batch, initial_lr = reliability.batch(BATCH, 0.1)
    seed_everything(seed)
    data = load_fashion_mnist(seed=seed, validation_size=12_000)  # 48,000 / 12,000 = 80 / 20
    x_tr, y_tr, x_va, y_va, x_te, y_te = (data.x_train, data.y_train, data.x_val, data.y_val,
                                          data.x_test, data.y_test)
    if subsample:
        x_tr, y_tr = x_tr[:subsample], y_tr[:subsample]
        x_va, y_va, x_te, y_te = (a[: subsample // 4] for a in (x_va, y_va, x_te, y_te))
    out_dir = prepare_out_dir(reliability.out(os.path.join(out_dir, unit)))
    backup_dir = os.path.join(out_dir, "backup")
    if fresh:
        start_fresh(backup_dir)
    with reliability.scope():
        model = zoo.create(
            f"rh18_{unit}_fashion_mnist",
            kernel_constraint=BoxConstraint(1.0),
            kernel_regularizer=TimeTotalVariation(ALPHA_TV, T=T, decay=ALPHA_DECAY),
        )
    train_ds = make_pipeline(x_tr, y_tr, batch, training=True, seed=seed,
                             augment=random_flip_and_shift(pad=2, flip=True))
    val_ds = make_pipeline(x_va, y_va, 500, training=False, seed=seed)
    test_ds = make_pipeline(x_te, y_te, 500, training=False, seed=seed)
    steps = int(np.ceil(len(x_tr) / batch))
    with reliability.scope():
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate_schedule(epochs, steps, initial=initial_lr), momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            # `loss` includes the Eq. 13 regulariser; `cross_entropy` is the data term alone.
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                     keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="cross_entropy")],
            jit_compile=False,
        )
    best = os.path.join(out_dir, "best.weights.h5")
    if not os.path.isdir(os.path.join(out_dir, "backup")):  # a fresh run: drop a finished run's logs
        for stale in (best, os.path.join(out_dir, "training.csv")):
            if os.path.exists(stale):
                os.remove(stale)
    reliability.prepare(model, train_ds)
    check_before_fit(model, x_va[:2])
    start = time.perf_counter()
    model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, verbose=0, shuffle=False,  # tf.data shuffles
        callbacks=[
            # Resumes an interrupted run at its last finished epoch (rerun the same command),
            # with the same shuffle and augmentation order (a BackupAndRestore; listed first).
            ResumableBackup(backup_dir, data=train_ds, fingerprint=dict(
                recipe="rh18_fashion_mnist", unit=unit, epochs=epochs, seed=seed, subsample=subsample,
                batch=batch, lr=initial_lr)),
            keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", mode="max",
                                            save_best_only=True, save_weights_only=True,
                                            initial_value_threshold=_best_so_far(out_dir)),
            EpochTimer(), *level_callbacks(out_dir, "training"), TqdmEpochs(f"rh18 {unit}"), *guard_callbacks(),
        ],
    )
    seconds = time.perf_counter() - start
    # The CSV log holds every epoch, also those finished before a resume.
    history = _read_history(os.path.join(out_dir, "training.csv"))
    model.load_weights(best)
    test = model.evaluate(test_ds, verbose=0, return_dict=True)
    summary = {
        "unit": unit, "dataset": "fashion_mnist", "epochs": epochs, "batch_size": batch,
        "alpha_tv": ALPHA_TV, "alpha_decay": ALPHA_DECAY, "seed": seed,
        "n_train": int(len(x_tr)), "n_val": int(len(x_va)), "n_test": int(len(x_te)),
        "trainable_weights": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "best_epoch": int(np.argmax(history["val_accuracy"])),
        "best_val_accuracy": float(np.max(history["val_accuracy"])),
        "test_accuracy": float(test["accuracy"]), "test_loss": float(test["cross_entropy"]),
        "test_loss_with_regularizer": float(test["loss"]),
        "seconds_this_run": seconds,
        "seconds_per_epoch": float(np.mean(history["epoch_seconds"])) if "epoch_seconds" in history
        else seconds / epochs,
        **reliability.summary(batch),
    }
    summary["model"] = {"architecture": f"rh18_{unit}_fashion_mnist", "config": {}}
    write_json(summary, os.path.join(out_dir, "results.json"))
    plot_curves(history, os.path.join(out_dir, "curves.png"), f"R&H 2018 {unit}, Fashion-MNIST")
    return summary


def _read_history(csv_path):
    import csv

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}


def _best_so_far(out_dir):
    path = os.path.join(out_dir, "training.csv")
    if not os.path.exists(path):
        return None
    return max(_read_history(path)["val_accuracy"], default=None)


def plot_curves(history, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch"), ax.set_title(key), ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", choices=["parabolic", "hamiltonian", "second_order"], required=True)
    parser.add_argument("--out", default="runs/rh18_fashion_mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 500 images")
    add_reliability_arguments(parser)
    args = parser.parse_args(argv)
    reliability = dict(strategy=args.strategy, scale_batch=args.scale_batch, fresh=args.fresh)
    if args.quick:
        summary = run(args.unit, args.out, epochs=2, subsample=500, seed=args.seed, **reliability)
    else:
        summary = run(args.unit, args.out, epochs=args.epochs, seed=args.seed, **reliability)
    print(f"{args.unit}: best val {summary['best_val_accuracy']:.4f} (epoch {summary['best_epoch'] + 1}), "
          f"test {summary['test_accuracy']:.4f}, {summary['seconds_per_epoch']:.0f} s/epoch")


if __name__ == "__main__":
    main()
