"""Keras callbacks: per-step gradient norms of a block, Lemma 1 over training, backward
sensitivities `||dY_N/dY_l||` over training (Galimberti et al. 2021, Fig. 2), a tqdm bar, and
`ResumableBackup`, the `BackupAndRestore` every recipe uses (atomic, data order, best weights)."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tqdm.auto import tqdm

from zoo.diagnostics import (
    SENSITIVITY_AGGREGATES,
    lemma1_amplification,
    sensitivity_function,
    state_gradient_norms,
)

__all__ = [
    "ReconstructionMonitor",
    "ResumableBackup",
    "StepGradientNorms",
    "Lemma1Monitor",
    "BackwardSensitivity",
    "EpochTimer",
    "TqdmEpochs",
    "block_io",
    "KERAS_ITERATORS_PER_EPOCH",
    "load_weights_npz",
    "replay_iterations",
    "save_weights_npz",
]


def block_io(model, block_name="block"):
    """`(pre, block, post)`: model input -> block input, the block, block output -> logits."""
    block = model.get_layer(block_name)
    pre = keras.Model(model.input, block.input)
    post = keras.Model(block.output, model.output)
    return pre, block, post


class StepGradientNorms(keras.callbacks.Callback):
    """Record `||dL/dY_j||`, j = 0..N, of one block on a fixed batch at the end of epochs.

    `self.norms` is a list of `(epoch, array (N + 1,))`; the newest is also logged as
    `grad_ratio` = `||dL/dY_0|| / ||dL/dY_N||` (H&R 2017 predict neither vanishing nor
    exploding gradients for antisymmetric and Verlet networks).
    """

    def __init__(self, x, y, loss, block_name="block", every=1):
        super().__init__()
        self.x, self.y, self.loss_fn = x, y, loss
        self.block_name, self.every = block_name, every
        self.norms = []

    def measure(self):
        pre, block, post = block_io(self.model, self.block_name)
        features = pre.predict(self.x, verbose=0)
        y = tf.convert_to_tensor(self.y)
        norms = state_gradient_norms(block, features, lambda out: self.loss_fn(y, post(out)))
        return norms

    def on_train_begin(self, logs=None):
        if not self.norms:
            self.norms.append((-1, self.measure()))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            norms = self.measure()
            self.norms.append((epoch, norms))
            if logs is not None:
                logs["grad_ratio"] = float(norms[0] / max(norms[-1], 1e-30))


class Lemma1Monitor(keras.callbacks.Callback):
    """`max_j max_i |1 + h lambda_i(J_j)|` of a forward-Euler block on a fixed batch, per epoch."""

    def __init__(self, x, block_name="block"):
        super().__init__()
        self.x, self.block_name = x, block_name
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        pre, block, _ = block_io(self.model, self.block_name)
        amp = lemma1_amplification(block, pre.predict(self.x, verbose=0))
        self.values.append(amp)
        if logs is not None:
            logs["lemma1_max"] = float(np.max(amp))


class BackwardSensitivity(keras.callbacks.Callback):
    """Record `||dY_N/dY_l||_2` of one block for chosen `l` on a fixed batch during training.

    (Galimberti et al. 2021, Eq. 14 and Fig. 2.) `x` is a fixed batch of *model* inputs; the
    layers before the block map it to the block input at every measurement. The quantity is
    `zoo.diagnostics.backward_sensitivity`: per-example spectral norms of the Jacobian of the
    block's final state with respect to its state at step `l`, reduced over the batch by each
    of `aggregates` (`"mean"`, `"min"`, `"max"`, `"median"`, or `"mean_jacobian"`, the norm of
    the batch-mean Jacobian that the authors' code plots).

    Measured before training (iteration 0), then every `every` optimiser steps (or at the end
    of every epoch if `every` is None); steps are read from the optimiser, so with
    `steps_per_execution > 1` a record is taken at the first batch end after each multiple of
    `every` (use `steps_per_execution=1` for a per-step record). `self.iterations` (R,) holds the
    optimiser step of each record and `self.values` the records `(R, len(aggregates), len(layers))`. At the end of each
    epoch the newest value of the first aggregate is logged per layer as `sensitivity_l{l}`
    (so it lands in `History` and CSV logs), and if `path` is given the records are saved as
    `path` (`.npy`, that 3-D array) with the iterations beside it (`*_iterations.npy`).

    Args:
        x: array. A fixed batch of model inputs.
        layers: ints in `0..N`. The `l` of `dY_N/dY_l` (e.g. `range(1, 64, 10)`).
        block_name: name of the `ODEBlock` in the model. Defaults to `"block"`.
        every: int or None. Record every `every` optimiser steps; None: once per epoch.
        aggregates: tuple of aggregate names. Defaults to `("mean", "min", "max",
            "mean_jacobian")`.
        path: str or None. `.npy` file for the records.
        method: `"auto"`, `"exact"` or `"power"` (see `zoo.diagnostics.sensitivity_function`).
    """

    def __init__(self, x, layers, block_name="block", every=None,
                 aggregates=("mean", "min", "max", "mean_jacobian"), path=None, method="auto"):
        super().__init__()
        bad = [a for a in aggregates if a is None or a not in SENSITIVITY_AGGREGATES]
        if bad or not aggregates:
            raise ValueError(
                f"`aggregates` must be names in {SENSITIVITY_AGGREGATES[:-1]}; Received: {aggregates!r}"
            )
        if every is not None and (isinstance(every, bool) or int(every) < 1):
            raise ValueError(f"`every` must be None or an int >= 1; Received: every={every!r}")
        self.x = np.asarray(x)
        self.layers = tuple(int(l) for l in layers)
        self.block_name, self.every, self.path, self.method = block_name, every, path, method
        self.aggregates = tuple(aggregates)
        self.iterations, self.values = [], []
        self._fn = None

    def measure(self):
        """The aggregates now: `(len(aggregates), len(layers))`."""
        if self._fn is None:
            pre, block, _ = block_io(self.model, self.block_name)
            self._fn = sensitivity_function(block, self.layers, pre, self.method)
        per_example, mean_jacobian = (t.numpy() for t in self._fn(self.x))
        reduce = {"mean": np.mean, "min": np.min, "max": np.max, "median": np.median}
        return np.stack([
            mean_jacobian if a == "mean_jacobian" else reduce[a](per_example, axis=-1)
            for a in self.aggregates
        ])

    def _step(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def _record(self):
        self.iterations.append(self._step())
        self.values.append(self.measure())
        if self.every is not None:
            self.save()  # every record on disk, so a resumed run can continue the file

    def on_train_begin(self, logs=None):
        step = self._step()
        if not self.values and step > 0 and self.path is not None:
            self._load_until(step)  # a fit resumed by a backup callback listed before this one
        if not self.values:
            self._record()

    def _load_until(self, step):
        import os

        stem = self.path[: -len(".npy")] if self.path.endswith(".npy") else self.path
        if not (os.path.exists(self.path) and os.path.exists(f"{stem}_iterations.npy")):
            return
        values, iterations = np.load(self.path), np.load(f"{stem}_iterations.npy")
        n = min(len(values), len(iterations))  # the two files are replaced one after the other
        keep = iterations[:n] <= step
        self.values = list(values[:n][keep])
        self.iterations = [int(i) for i in iterations[:n][keep]]

    def on_train_batch_end(self, batch, logs=None):
        if self.every is not None and self._step() // int(self.every) > self.iterations[-1] // int(self.every):
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        if self.every is None and self.iterations[-1] != self._step():
            self._record()
        if logs is not None:
            for l, value in zip(self.layers, self.values[-1][0]):
                logs[f"sensitivity_l{l}"] = float(value)
        self.save()

    def on_train_end(self, logs=None):
        self.save()

    def save(self):
        if self.path is None or not self.values:
            return
        import os

        stem = self.path[: -len(".npy")] if self.path.endswith(".npy") else self.path
        for path, array in ((self.path, np.stack(self.values)),
                            (f"{stem}_iterations.npy", np.asarray(self.iterations))):
            with open(f"{path}.tmp", "wb") as f:  # atomic: a killed run leaves whole files
                np.save(f, array)
            os.replace(f"{path}.tmp", path)


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall time as `epoch_seconds` to the logs (list it before `CSVLogger`)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class TqdmEpochs(keras.callbacks.Callback):
    """One progress bar per `fit`, advancing by epochs, with the latest metrics."""

    def __init__(self, desc=""):
        super().__init__()
        self.desc = desc

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.params.get("epochs"), desc=self.desc, leave=False, mininterval=1.0)
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:  # a resumed fit starts at its restored epoch
            self._started = True
            self.bar.update(epoch)

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: f"{v:.4f}" for k, v in (logs or {}).items() if "accuracy" in k or k == "loss"}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


class ReconstructionMonitor(keras.callbacks.Callback):
    """Logs `reconstruction_error/<block>` of every `reversible=True` block after each epoch.

    The value is the relative error of the input state that the last backward pass rebuilt
    (`ODEBlock.reconstruction_error`). Above `warn_above` the gradients of that block are no
    longer those of the network (float32 drifts with large `h` and many steps; see
    docs/performance.md): the callback warns once per block, and the fix is a smaller `h`
    (larger `N` at the same `T`), float64, or `reversible=False`.
    """

    def __init__(self, warn_above=1e-3):
        super().__init__()
        self.warn_above = float(warn_above)
        self._warned = set()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for layer in self.model.layers:
            if getattr(layer, "reversible", False) and hasattr(layer, "reconstruction_error"):
                error = float(ops.convert_to_numpy(layer.reconstruction_error))
                logs[f"reconstruction_error/{layer.name}"] = error
                if error > self.warn_above and layer.name not in self._warned:
                    self._warned.add(layer.name)
                    import warnings

                    warnings.warn(f"Block {layer.name!r}: reversible reconstruction error {error:.2e} exceeds "
                                  f"{self.warn_above:.0e}; its gradients drift (reduce h or use float64)")


# === Resumable training ===


def _atomic_write_json(obj, path):
    """Write `obj` as JSON to `path` atomically and durably (fsynced before the rename)."""
    from training import atomic_files

    atomic_files.write_json(path, obj, indent=1, durable=True)


def save_weights_npz(model, path):
    """`model.get_weights()` to `path` (`.npz`), atomically: what `EarlyStopping` keeps in memory."""
    import os

    tmp = f"{path}.tmp.npz"
    with open(tmp, "wb") as f:
        np.savez(f, *model.get_weights())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_weights_npz(model, path):
    """Set `model`'s weights from a file written by `save_weights_npz` (no pickle)."""
    with np.load(path, allow_pickle=False) as f:
        model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])


# Iterators `keras.Model.fit` (Keras 3.15, TensorFlow backend) creates of a `tf.data.Dataset` per
# finished epoch: one when the epoch starts and one, unused, right after its last batch
# (`keras.src.trainers.epoch_iterator.EpochIterator._enumerate_iterator`); `evaluate` does the
# same for its one pass. (Under a tf.distribute strategy Keras first peeks at one batch through
# one more iterator; `training.distribute.prepare_model` removes that peek.) Measured, and
# checked by tests/test_resume.py (bitwise equal weights after a restart fail if this changes).
KERAS_ITERATORS_PER_EPOCH = 2


def replay_iterations(data, count):
    """Create and discard `count` iterators of `data` (a `tf.data.Dataset`).

    A seeded `shuffle(..., reshuffle_each_iteration=True)` (and `Dataset.random(...,
    rerandomize_each_iteration=True)`) draws new seeds each time an iterator is *created*, so
    epoch `k` of a run sees the `k`-th order. A restarted process starts again at the first
    order; creating (not consuming) the `k` iterators the interrupted run had created brings the
    pipeline to the same order without changing the pipeline itself. Each creation starts the
    pipeline's prefetching, which stops when the iterator is dropped: seconds, not an epoch.
    """
    if data is None or count <= 0:
        return
    for _ in range(int(count)):
        iterator = iter(data)
        del iterator


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that resumes to the *same* result as an uninterrupted run.

    Keras' callback restores the weights, the optimiser state and the epoch. This subclass adds
    what a bitwise-identical resume also needs, and makes every save atomic:

    - **Atomic commits.** A state is `state-<epoch>.weights.h5` (model + optimiser variables, via
      `model.save_weights`) plus `training_metadata.json`, which names that file and is replaced
      atomically (`os.replace`) only after the file is complete; older files are deleted after
      the commit. A SIGKILL at any moment leaves the previous or the new state, never a mix.
      (Keras' own callback rewrites `latest.weights.h5` in place and the JSON after it.)
    - **Data order.** `data` (the training `tf.data.Dataset`) is replayed to the interrupted
      run's shuffle order: `replay_offset + KERAS_ITERATORS_PER_EPOCH * epoch` iterators are
      created and dropped before the resumed epoch (see `replay_iterations`). `replay_offset`
      counts iterators the uninterrupted run had created before this `fit` and this process
      has not (e.g. levels of multilevel training that are skipped on resume).
    - **Best-weights selection** (optional, `monitor`): exactly `keras.callbacks.EarlyStopping(
      monitor, mode, patience, restore_best_weights=True)` (best kept, restored at the end of
      `fit`, `best_epoch`, early stop after `patience` epochs without improvement), but the best
      weights are a file (`best-<epoch>.npz` of `model.get_weights()`) and the selection state
      is part of the commit, so it survives a restart.
    - **Full history.** `self.history` holds the logs of *every* epoch of the run, also those
      before a restart (Keras' `History` only has the epochs of the current process), and
      `self.epoch_seconds` their wall times.
    - **Fingerprint.** A JSON-able description of the run (`fingerprint`): a backup written by
      another configuration raises a `ValueError` instead of being restored into this one.

    Commit point: the state after epoch `e` is written when epoch `e + 1` begins (or when
    training ends); no training happens in between, and by then every callback has added its
    entries to epoch `e`'s logs. Put this callback **first** in the list: it restores before
    the others see `on_train_begin`, and it sees the complete logs. A kill during epoch `e + 1`
    therefore resumes at the start of epoch `e + 1`, like Keras' `save_freq="epoch"`.

    Args:
        backup_dir: directory of this run's backup (one per `fit`; not shared).
        data: the training `tf.data.Dataset` passed to `fit` (for the data-order replay), or
            None (arrays, or a pipeline without per-iteration randomness).
        replay_offset: int. Extra iterators to replay (see above). Defaults to 0.
        monitor, mode, patience: best-weights selection as `EarlyStopping`; `monitor=None`
            (default) selects nothing and leaves the final weights.
        fingerprint: JSON-able dict or None.
        delete_checkpoint: remove `backup_dir` at the end of a completed `fit`. Defaults to True.
    """

    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, data=None, replay_offset=0, monitor=None, mode="max", patience=None,
                 fingerprint=None, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=delete_checkpoint)
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'; Received: mode={mode!r}")
        self.data = data
        self.replay_offset = int(replay_offset)
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.fingerprint = fingerprint
        self.restored_epoch = 0
        self._reset_run_state()

    def _reset_run_state(self):
        self.history, self.epoch_seconds = {}, []
        self.best, self.best_epoch, self.wait, self.best_file = None, 0, 0, None
        self._best_due = None  # epoch whose weights become the best file at the next commit
        self._pending = None  # (epoch, logs dict) finished but not yet committed

    # --- paths ---
    def _path(self, name):
        import os

        return os.path.join(self.backup_dir, name)

    @property
    def metadata_path(self):
        return self._path(self.METADATA)

    def read_metadata(self):
        """The committed metadata dict, or None if there is no backup."""
        import json
        import os

        if not os.path.exists(self.metadata_path):
            return None
        with open(self.metadata_path) as f:
            return json.load(f)

    # --- restore ---
    def on_train_begin(self, logs=None):
        import os

        if not self.model.built:
            raise ValueError("ResumableBackup needs a built model before `fit`")
        self._reset_run_state()
        meta = self.read_metadata()
        epoch = 0
        if meta is not None:
            if self.fingerprint is not None and meta.get("fingerprint") != _jsonable(self.fingerprint):
                raise ValueError(
                    f"The backup in {self.backup_dir!r} was written by another configuration "
                    f"({meta.get('fingerprint')}), not this one ({_jsonable(self.fingerprint)}); "
                    "start over with --fresh (or delete the directory), or use another output directory"
                )
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(self._path(meta["weights"]))
            epoch = int(meta["epoch"])
            self.history = {k: list(v) for k, v in meta.get("history", {}).items()}
            self.epoch_seconds = list(meta.get("epoch_seconds", []))
            selection = meta.get("selection") or {}
            self.best = selection.get("best")
            self.best_epoch = int(selection.get("best_epoch", 0))
            self.wait = int(selection.get("wait", 0))
            self.best_file = selection.get("weights")
            if self.best_file and not os.path.exists(self._path(self.best_file)):
                raise ValueError(f"Backup {self.backup_dir!r} names a missing best-weights file {self.best_file!r}")
        elif os.path.isdir(self.backup_dir):
            self._remove_unreferenced(keep=())  # leftovers of a run killed before its first commit
        self.restored_epoch = epoch
        self.model._initial_epoch = epoch  # what Keras' BackupAndRestore sets: `fit` starts here
        replay_iterations(self.data, self.replay_offset + KERAS_ITERATORS_PER_EPOCH * epoch)

    # --- per epoch ---
    def on_epoch_begin(self, epoch, logs=None):
        self._commit()
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        pass  # epoch-level saves only

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        logs = {} if logs is None else logs
        if self.monitor is not None:
            self._select(epoch, logs)
        # The dict is shared with the callbacks after this one: read it at the commit.
        self._pending = (epoch, logs)

    def _select(self, epoch, logs):
        value = logs.get(self.monitor)
        if value is None:  # as EarlyStopping: no value, no decision
            return
        value = float(value)
        first = self.best_file is None
        self.wait += 1
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if first or better:
            self._best_due = epoch  # saved at the commit (same weights: no step in between)
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return
        patience = self.params.get("epochs") if self.patience is None else self.patience
        if self.wait >= patience and epoch > 0:
            self.model.stop_training = True

    def _commit(self):
        import os

        if self._pending is None:
            return
        epoch, logs = self._pending
        self._pending = None
        for key, value in logs.items():
            try:
                self.history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                pass
        os.makedirs(self.backup_dir, exist_ok=True)
        due = self._best_due
        if due is not None:
            self.best_file = f"best-{due}.npz"
            save_weights_npz(self.model, self._path(self.best_file))
            self._best_due = None
        weights = f"state-{epoch + 1}.weights.h5"
        tmp = f"state-{epoch + 1}.tmp.weights.h5"
        self.model.save_weights(self._path(tmp), overwrite=True)
        os.replace(self._path(tmp), self._path(weights))
        meta = {
            "epoch": epoch + 1, "weights": weights, "fingerprint": _jsonable(self.fingerprint),
            "history": self.history, "epoch_seconds": self.epoch_seconds,
        }
        if self.monitor is not None:
            meta["selection"] = {"monitor": self.monitor, "mode": self.mode, "best": self.best,
                                 "best_epoch": self.best_epoch, "wait": self.wait, "weights": self.best_file}
        _atomic_write_json(meta, self.metadata_path)
        self._remove_unreferenced(keep=(self.METADATA, weights, self.best_file))

    def _remove_unreferenced(self, keep):
        import os

        for name in os.listdir(self.backup_dir):
            if name not in keep and (name.startswith(("state-", "best-")) or name.endswith(".tmp")):
                os.remove(self._path(name))

    def on_train_end(self, logs=None):
        import shutil

        self._commit()
        if self.monitor is not None and self.best_file is not None:
            load_weights_npz(self.model, self._path(self.best_file))
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def _jsonable(obj):
    import json

    return None if obj is None else json.loads(json.dumps(obj, default=str))
