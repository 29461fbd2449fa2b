"""What every recipe shares: seeding, output directory, logs, results, plots, and the
reliability options (resume, `--fresh`, `--strategy`, numerical guards)."""

from __future__ import annotations

import os

import keras

from training import atomic_files

__all__ = [
    "seed_everything", "prepare_out_dir", "level_callbacks", "write_json", "save_figure",
    "guard_callbacks", "check_before_fit", "add_reliability_arguments", "start_fresh", "Reliability",
]


def seed_everything(seed):
    keras.utils.set_random_seed(seed)


def prepare_out_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


def level_callbacks(out_dir, tag):
    """CSV and TensorBoard logs of one training level."""
    return [
        keras.callbacks.CSVLogger(os.path.join(out_dir, f"{tag}.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard", tag), write_graph=False),
    ]


def write_json(obj, path):
    """Write atomically (temp file + rename), so an interrupted run leaves no half-written file."""
    atomic_files.write_json(path, obj)


def save_figure(fig, path):
    import matplotlib.pyplot as plt

    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)


# === Reliability: resume, --fresh, --strategy, numerical guards (issue 13) ===


def guard_callbacks():
    """Numerical guards for every `fit`: stop at the first NaN/Inf loss (`TerminateOnNaN`)."""
    return [keras.callbacks.TerminateOnNaN()]


def check_before_fit(model, inputs):
    """Warn (`zoo.diagnostics.StabilityWarning`) if a block's `h` violates its integrator's condition."""
    from zoo.diagnostics import check_stability

    return check_stability(model, inputs)


def add_reliability_arguments(parser):
    """`--fresh`, `--strategy`, `--scale-batch` (see README, "Resuming and distributed training")."""
    from training.distribute import add_strategy_arguments

    parser.add_argument("--fresh", action="store_true",
                        help="discard the backup of an interrupted run in --out and start over "
                             "(default: rerunning the same command resumes it)")
    add_strategy_arguments(parser)
    return parser


def start_fresh(*paths):
    """Remove backups and logs of an earlier run (files or directories; missing ones are fine)."""
    import shutil

    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


class Reliability:
    """A recipe's strategy, batch / learning-rate rule and output directory, from its options.

    `Reliability(strategy, scale_batch)` creates the `tf.distribute` strategy first (before any
    other TensorFlow call, as `MultiWorkerMirroredStrategy` requires); `batch(b, lr)` applies
    `training.distribute.batch_and_learning_rate`; `out(path)` is the worker's output directory;
    `scope()` the strategy scope for building and compiling; `jit(preferred)` the `jit_compile`
    argument (no forced XLA under a strategy); `prepare(model, train_ds)` after `compile`
    (`training.distribute.prepare_model`); `summary()` what goes into results.json when the run
    is distributed.
    """

    def __init__(self, strategy="default", scale_batch=False):
        from training import distribute

        self._d = distribute
        self.strategy = strategy if not isinstance(strategy, str) else distribute.make_strategy(strategy)
        self.name = distribute.strategy_name(self.strategy)
        self.scale_batch = bool(scale_batch)

    @property
    def replicas(self):
        return self._d.num_replicas(self.strategy)

    def batch(self, batch_size, learning_rate=None):
        return self._d.batch_and_learning_rate(batch_size, learning_rate, self.strategy, self.scale_batch)

    def out(self, path):
        return self._d.worker_out_dir(path, self.strategy)

    def scope(self):
        return self._d.scope(self.strategy)

    def jit(self, preferred):
        return self._d.jit_compile_for(self.strategy, preferred)

    def prepare(self, model, train_data):
        """After `compile`: the same batches as on one device, Keras 3 multi-worker fix."""
        return self._d.prepare_model(model, train_data)

    @property
    def distributed(self):
        return self.name != "default"

    def summary(self, global_batch=None):
        if not self.distributed:
            return {}
        return {"strategy": self.name, "replicas": self.replicas, "scale_batch": self.scale_batch,
                **({"global_batch_size": global_batch} if global_batch else {})}
