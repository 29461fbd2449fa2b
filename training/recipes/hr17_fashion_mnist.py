"""Haber & Ruthotto 2017, Sec. 6.4 (Table 1) on Fashion-MNIST, the offline stand-in for MNIST.

    python -m training.recipes.hr17_fashion_mnist --network antisymmetric [--quick]
        [--strategy {default,mirrored,multi_worker}] [--scale-batch] [--fresh]

The paper's MNIST network: width 6, 3x3 convolutions, T = 6, levels N = 4, 8, 16 with
piecewise-linear prolongation, time smoothness alpha = 0.005, Laplacian smoothness 0.01 on the
head's class-weight images, best-validation weights; 50,000 train / 10,000 validation images.
We also report the official 10,000-image test set. The paper trains with Gauss-Newton block
coordinate descent; this recipe uses Adam. Convolutions run without XLA on CPU (DESIGN.md §3).
Rerunning an interrupted command with the same `--out` resumes it (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import os
import time

import keras

import zoo
from training.callbacks import TqdmEpochs
from training.data.fashion_mnist import load_fashion_mnist
from training.data.pipeline import make_pipeline
from training.multilevel import train_multilevel
from training.recipes.common import (
    Reliability,
    add_reliability_arguments,
    guard_callbacks,
    level_callbacks,
    prepare_out_dir,
    seed_everything,
    start_fresh,
    write_json,
)
from training.regularizers import LaplacianSmoothness, TimeSmoothness

__all__ = ["run"]

T, WIDTH, ALPHA_TIME, ALPHA_HEAD = 6.0, 6, 5e-3, 1e-2


def run(network, out_dir, levels=(4, 8, 16), epochs=(2, 1, 1), batch_size=128, lr=2e-3, seed=0,
        subsample=None, schedule="cosine", strategy="default", scale_batch=False, fresh=False):
    reliability = Reliability(strategy, scale_batch)  # first: before TensorFlow runs any op
    batch_size, lr = reliability.batch(batch_size, lr)
    seed_everything(seed)
    data = load_fashion_mnist(seed=seed)
    x_tr, y_tr, x_va, y_va = data.x_train, data.y_train, data.x_val, data.y_val
    x_te, y_te = data.x_test, data.y_test
    if subsample:
        x_tr, y_tr = x_tr[:subsample], y_tr[:subsample]
        x_va, y_va, x_te, y_te = x_va[: subsample // 4], y_va[: subsample // 4], x_te[: subsample // 4], y_te[: subsample // 4]
    out_dir = prepare_out_dir(reliability.out(os.path.join(out_dir, network)))
    backup_dir = os.path.join(out_dir, "backup")
    if fresh:
        start_fresh(backup_dir, os.path.join(out_dir, "training.csv"), os.path.join(out_dir, "tensorboard"))

    def build(depth):
        return zoo.create(
            f"hr17_{network}_conv", depth=depth, T=T, width=WIDTH,
            kernel_regularizer=TimeSmoothness(ALPHA_TIME, T=T), bias_regularizer=TimeSmoothness(ALPHA_TIME, T=T),
            head_regularizer=LaplacianSmoothness(ALPHA_HEAD, image_shape=(28, 28, WIDTH)),
        )

    train_ds = make_pipeline(x_tr, y_tr, batch_size, training=True, seed=seed)
    val_ds = make_pipeline(x_va, y_va, 500, training=False, seed=seed)
    test_ds = make_pipeline(x_te, y_te, 500, training=False, seed=seed)
    start = time.perf_counter()
    levels_done = []
    steps_per_epoch = -(-len(x_tr) // batch_size)
    epoch_iter = iter(epochs)

    def optimizer():
        # A constant step left the finer levels short of the coarse one's fit (Verlet errors rose
        # with depth): each level restarts from the prolongated weights and anneals to 1% of lr on
        # a cosine, the within-level convergence the paper's Gauss-Newton solver provides.
        if schedule == "constant":
            return keras.optimizers.Adam(lr)
        return keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(lr, next(epoch_iter) * steps_per_epoch, alpha=0.01))

    model, records = train_multilevel(
        build, levels, train_ds, val_ds, list(epochs),
        compile_kwargs=dict(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        ),
        jit_compile=False, evaluate_train=True,
        callbacks=level_callbacks(out_dir, "training") + [TqdmEpochs(f"fashion_mnist/{network}")] + guard_callbacks(),
        backup_dir=backup_dir, strategy=reliability.strategy if reliability.distributed else None,
        fingerprint=dict(recipe="hr17_fashion_mnist", network=network, batch_size=batch_size, lr=lr, seed=seed,
                         subsample=subsample, schedule=schedule),
        stability_inputs=x_va[:2],
    )
    test = model.evaluate(test_ds, verbose=0, return_dict=True)
    for rec in records:
        levels_done.append(rec.as_dict() | {"history": None})
    summary = {
        "network": network, "dataset": "fashion_mnist", "T": T, "width": WIDTH,
        "alpha_time": ALPHA_TIME, "alpha_head": ALPHA_HEAD, "optimizer": f"Adam(lr={lr})" if schedule == "constant" else f"Adam(cosine decay from lr={lr} to 1% per level)",
        "schedule": "constant" if schedule == "constant" else "cosine per level",
        "batch_size": batch_size, "epochs_per_level": list(epochs), "seed": seed,
        "n_train": int(len(x_tr)), "n_val": int(len(x_va)), "n_test": int(len(x_te)),
        "levels": levels_done, "test_accuracy_final": float(test["accuracy"]),
        "seconds": time.perf_counter() - start, "params": int(model.count_params()),
        **reliability.summary(batch_size),
    }
    summary["model"] = {"architecture": f"hr17_{network}_conv",
                        "config": dict(depth=int(levels[-1]), T=T, width=WIDTH)}
    model.save_weights(os.path.join(out_dir, "final.weights.h5"))
    write_json(summary, os.path.join(out_dir, "results.json"))
    start_fresh(backup_dir)  # finished: the next run of this command starts over
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=["resnet", "antisymmetric", "verlet"], required=True)
    parser.add_argument("--out", default="runs/hr17_fashion_mnist")
    parser.add_argument("--epochs", type=int, nargs=3, default=(2, 1, 1), metavar=("E4", "E8", "E16"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="Adam step per level: cosine decay to 1%% (default) or constant")
    parser.add_argument("--quick", action="store_true", help="levels 2/4, 1 epoch, 512 images")
    add_reliability_arguments(parser)
    args = parser.parse_args(argv)
    reliability = dict(strategy=args.strategy, scale_batch=args.scale_batch, fresh=args.fresh)
    if args.quick:
        summary = run(args.network, args.out, levels=(2, 4), epochs=(1, 1), subsample=512, seed=args.seed,
                      schedule=args.schedule, **reliability)
    else:
        summary = run(args.network, args.out, epochs=tuple(args.epochs), seed=args.seed, schedule=args.schedule,
                      **reliability)
    for rec in summary["levels"]:
        print(f"N={rec['depth']:3d}  train acc {rec['train_accuracy']:.4f}  val acc {rec['val_accuracy']:.4f}  "
              f"after prolongation {rec['val_accuracy_after_prolongation']}")
    print(f"test accuracy (final level, best-validation weights): {summary['test_accuracy_final']:.4f}")


if __name__ == "__main__":
    main()
