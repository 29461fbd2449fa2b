"""Multilevel (cascadic) training: depth `N -> 2N` at fixed `T` (Haber & Ruthotto 2017, Sec. 5.3).

Train with few steps, "prolongate the estimated weights of the forward propagation to a network
with twice as many layers", and continue from there; repeat up to the finest level. `T` is
fixed, so `h = T / N` halves at every level. The paper states the prolongation only for MNIST,
as piecewise-linear interpolation; the authors' code (Meganet `prolongateWeights`) interpolates
from `t_j = j h` (`j = 0..N-1`) to `t'_i = i h / 2` (`i = 0..2N-1`), as `prolongate_weights` does.

The paper selects, at every level, the parameters with the lowest validation error;
`train_multilevel` does the same with `keras.callbacks.EarlyStopping(restore_best_weights=True)`.
The paper's optimiser (block coordinate descent with Newton-PCG / Gauss-Newton-PCG) is not
reproduced: any Keras optimiser is used instead, so expect numeric deviations.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras
import numpy as np
from keras.src.models.functional import Functional  # no public name; clone_model uses it

from training.regularizers import TimeSmoothness, ode_blocks
from zoo.blocks import ODEBlock

__all__ = ["prolongate_weights", "prolongate_model", "LevelRecord", "train_multilevel"]


def prolongate_weights(w, factor=2):
    """Piecewise-linear interpolation in time of stacked `(N, ...)` weights onto `factor N` steps.

    Step `j` of the coarse block applies its weights at `t_j = j h`; step `i` of the fine block
    at `t'_i = i h / factor` (`i = 0 .. factor N - 1`, same `T`). Values are interpolated
    linearly between coarse steps and held at `W_{N-1}` beyond `t_{N-1} = (N-1) h` (as
    `np.interp` clamps). For `factor = 2`: `W'_{2j} = W_j`, `W'_{2j+1} = (W_j + W_{j+1}) / 2`,
    and `W'_{2N-1} = W_{N-1}`.

    Why the hold: it keeps the time-smoothness term (Eq. 5.23) exactly unchanged. Each coarse
    difference `d_j = W_{j+1} - W_j` becomes `factor` fine differences `d_j / factor`, and the
    held tail adds only zero differences, so with `h' = h / factor`

        R' = 1/(2h') sum_j factor ||d_j / factor||^2 = factor/(2h) * (1/factor) sum_j ||d_j||^2 = R.

    E.g. weights linear in time, `W_j = A + s j h` (factor 2): the coarse grid has `N - 1`
    differences `s h`, the fine one `2N - 2` nonzero differences `s h / 2`, and
    `1/(2h) (N-1) s^2 h^2 == 1/h (2N-2) s^2 h^2 / 4`. (Extrapolating linearly instead of
    holding would add one more difference and change `R`.) The identity holds for any weights,
    not only linear ones.

    Args:
        w: array of shape `(N, ...)`.
        factor: int >= 1. Depth multiplier. Defaults to `2`.

    Returns:
        A numpy array of shape `(factor N, ...)` with `w`'s dtype.
    """
    w = np.asarray(w)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"`factor` must be an integer >= 1; Received: factor={factor!r}")
    if w.ndim < 1 or w.shape[0] < 1:
        raise ValueError(f"`w` must have a leading depth axis N >= 1; Received: shape={w.shape}")
    n = w.shape[0]
    s = np.arange(factor * n) / factor  # fine times in units of the coarse h
    lower = np.minimum(np.floor(s).astype(int), n - 1)
    upper = np.minimum(lower + 1, n - 1)
    frac = (s - lower).reshape((-1,) + (1,) * (w.ndim - 1))
    fine = (1.0 - frac) * w[lower] + frac * w[upper]  # upper == lower on the held tail
    return fine.astype(w.dtype, copy=False)


# === Models ===


def _rescaled_regularizer(regularizer, factor):
    """A `TimeSmoothness` with a fixed `h` must follow `h -> h / factor`; others are unchanged."""
    if isinstance(regularizer, TimeSmoothness) and regularizer.h is not None:
        return TimeSmoothness(regularizer.alpha, h=regularizer.h / factor)
    return regularizer


def _deepened_block(layer, factor):
    config = layer.get_config()
    config["depth"] = layer.depth * factor
    for key in ("kernel_regularizer", "bias_regularizer"):
        if config.get(key) is not None:
            regularizer = keras.regularizers.get(config[key])
            config[key] = keras.regularizers.serialize(_rescaled_regularizer(regularizer, factor))
    return layer.__class__.from_config(config)


def _clone_function(factor):
    def clone(layer):
        if isinstance(layer, ODEBlock):
            return _deepened_block(layer, factor)
        inner = [b.name for b in ode_blocks(layer)]
        if inner:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) contains ODEBlocks {inner} "
                "that cloning cannot reach; build the model functionally from the blocks, or "
                "give the composite layer a depth in its config"
            )
        return layer.__class__.from_config(layer.get_config())

    return clone


def _pair_layers(old, new):
    """`(old_layer, new_layer)` for every weight-carrying layer, recursing into nested models."""
    for old_layer in old.layers:
        if not old_layer.weights:
            continue
        new_layer = new.get_layer(old_layer.name)
        # What `clone_model(recursive=True)` recurses into; layer names survive from_config.
        if isinstance(old_layer, (Functional, keras.Sequential)):
            yield from _pair_layers(old_layer, new_layer)
        else:
            yield old_layer, new_layer


def _copy_weights(old_layer, new_layer, factor):
    stepwise = set()
    if isinstance(old_layer, ODEBlock):
        stepwise = {id(v) for v in old_layer.raw_weights().values()}
    if len(old_layer.weights) != len(new_layer.weights):
        raise ValueError(f"Layer {old_layer.name!r} changed its number of weights when cloned")
    for old_var, new_var in zip(old_layer.weights, new_layer.weights):
        value = keras.ops.convert_to_numpy(old_var)
        if id(old_var) in stepwise:
            value = prolongate_weights(value, factor)
        new_var.assign(value)
        # Regularisers set on variables (not in the layer config) are lost by cloning.
        if getattr(old_var, "regularizer", None) is not None and new_var.regularizer is None:
            new_var.regularizer = _rescaled_regularizer(old_var.regularizer, factor)


def prolongate_model(model, factor=2):
    """A new model with every `ODEBlock` at depth `factor N` (same `T`, `h / factor`).

    Stepwise block weights are interpolated by `prolongate_weights`; every other weight (lifting
    or opening layers, connectors, normalisation statistics, the classifier head) is copied.
    With weights smooth in time the new network computes nearly the same function: for forward
    Euler the outputs differ by `O(h)`; right after prolongation the validation accuracy
    should be close to the coarse network's (H&R 2017, Sec. 6.4, MNIST at N = 16: 98.41% from
    prolongated weights before training, 98.47% after). Independent random initial weights
    are not smooth in time, so prolongating an untrained model changes its outputs by O(1).
    The printed leapfrog start (`Y_{-1} = 0`) is not consistent in `h` and does not have this
    property.

    Built by `keras.models.clone_model(model, clone_function=..., recursive=True)` with the
    blocks' `depth` overridden in their configs, so it works for Functional and Sequential
    models, also nested, made of `zoo` blocks and any other Keras layers. Variable-level
    regularisers are carried over (in the block config, or set on variables only); a
    `TimeSmoothness` with a fixed `h` is rescaled to the new `h`, one given by `T` needs
    nothing. The new model is not compiled: compile it (with a fresh optimiser) to train it.

    Args:
        model: a built Functional or Sequential `keras.Model` with `ODEBlock`s.
        factor: int >= 1. Depth multiplier. Defaults to `2`.

    Returns:
        The new `keras.Model`; `model` is not modified.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"`factor` must be an integer >= 1; Received: factor={factor!r}")
    if not ode_blocks(model):
        raise ValueError(f"`model` contains no ODEBlock; Received: {model.name!r}")
    # clone_model compiles the copy from the compile config when `model` is compiled, which
    # fails for unregistered losses/metrics and would share nothing useful (fresh optimiser):
    # return an uncompiled model instead.
    was_compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        new = keras.models.clone_model(
            model, clone_function=_clone_function(factor), recursive=True
        )
    finally:
        model.compiled = was_compiled
    for old_layer, new_layer in _pair_layers(model, new):
        _copy_weights(old_layer, new_layer, factor)
    return new


# === Training ===


@dataclasses.dataclass(frozen=True)
class LevelRecord:
    """What happened at one level of `train_multilevel`.

    Attributes:
        level: int. 0 for the coarsest level.
        depth: int. The level's nominal depth (an entry of `levels`).
        block_depths: dict. `{block name: N}` of every `ODEBlock`.
        best_epoch: int. 0-based epoch of the restored (best-validation) weights.
        best_monitor: float. Best value of `monitor` (e.g. `val_accuracy`).
        val_accuracy: float or None. Validation accuracy at `best_epoch`.
        val_accuracy_after_prolongation: float or None. Of the prolongated weights, before any
            training at this level (None at level 0).
        train_accuracy: float or None. Training accuracy of the restored weights (a fresh
            evaluation if `evaluate_train`, else the running average logged at `best_epoch`).
        epoch_times: list of float. Wall-clock seconds per epoch.
        history: dict. The level's `History.history`.
    """

    level: int
    depth: int
    block_depths: dict
    best_epoch: int
    best_monitor: float
    val_accuracy: float | None
    val_accuracy_after_prolongation: float | None
    train_accuracy: float | None
    epoch_times: list
    history: dict

    def as_dict(self):
        return dataclasses.asdict(self)


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _fresh_optimizer(optimizer):
    """One optimiser per level: its slots belong to one model's variables."""
    if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer()
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer.__class__.from_config(optimizer.get_config())
    return keras.optimizers.get(optimizer)


def _split(data):
    return (data[0], data[1]) if isinstance(data, tuple) and len(data) == 2 else (data, None)


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - other backends
        return False
    return isinstance(data, tf.data.Dataset)


def _accuracy_key(logs, prefix=""):
    for key in (f"{prefix}accuracy", f"{prefix}sparse_categorical_accuracy",
                f"{prefix}categorical_accuracy", f"{prefix}binary_accuracy"):
        if key in logs:
            return key
    return None


def _per_level(value, num_levels, name):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_levels
    if len(values) != num_levels:
        raise ValueError(f"`{name}` needs one entry per level ({num_levels}); Received: {value}")
    return values


def _check_levels(levels):
    levels = [int(n) for n in levels]
    if not levels or min(levels) < 1:
        raise ValueError(f"`levels` must be depths >= 1; Received: levels={levels}")
    for coarse, fine in zip(levels, levels[1:]):
        if fine % coarse or fine <= coarse:
            raise ValueError(
                f"Each level's depth must be an integer multiple > 1 of the previous one; "
                f"Received: levels={levels}"
            )
    return levels


def train_multilevel(
    build_model,
    levels,
    train_data,
    val_data,
    epochs_per_level,
    *,
    compile_kwargs,
    jit_compile="auto",
    callbacks=None,
    fit_kwargs=None,
    monitor="val_accuracy",
    mode="max",
    patience=None,
    evaluate_train=False,
    verbose=0,
    backup_dir=None,
    fingerprint=None,
    strategy=None,
    stability_inputs=None,
):
    """Cascadic training over depths `levels` at fixed `T` (Haber & Ruthotto 2017, Sec. 5.3).

    Level 0 is `build_model(levels[0])`; each later level is `prolongate_model` of the previous
    level's best model by `levels[l] // levels[l-1]`. At every level the model is compiled
    afresh (new optimiser), validated once before training (the accuracy "from prolongated
    weights"), trained for `epochs_per_level` epochs, and left with the weights of its best
    validation epoch, which is the paper's model selection ("the parameters that achieve the
    lowest validation error").

    Model selection is `keras.callbacks.EarlyStopping(monitor, mode, restore_best_weights=True,
    patience=...)`: it is Keras' own best-epoch tracker, keeps the best weights in memory
    (`get_weights`, no checkpoint files to manage for these small models), restores them at the
    end of `fit` even when training was not stopped early, and reports `best_epoch`; with the
    default `patience` (all epochs of the level) it never stops early. `ModelCheckpoint` would
    write a file every improvement and need a reload. With `backup_dir` the same selection is
    made by `training.callbacks.ResumableBackup`, which keeps the best weights in a file instead.

    **Resuming** (`backup_dir`): every level backs up to `backup_dir/level_<l>/` with
    `ResumableBackup` (a `keras.callbacks.BackupAndRestore`: weights, optimiser state, epoch,
    selection state and full history, committed atomically at every epoch), and a finished level
    is recorded in `backup_dir/levels.json` (written atomically: temp file + `os.replace`) with
    its best weights (`level_<l>.best.npz`) and its `LevelRecord`. Calling `train_multilevel`
    again with the same arguments skips the finished levels (their best weights are loaded and
    prolongated, their records read back), resumes the interrupted level at its last finished
    epoch, and continues. A `tf.data` training set is replayed to the order the uninterrupted
    run would see (`training.callbacks.replay_iterations`), so with deterministic ops the
    result is bitwise that of an uninterrupted run (tests/test_resume.py). A marker written by
    other `levels`, epochs or `fingerprint` raises a `ValueError` (start over: delete the
    directory).

    Regularisers are part of the model: put `TimeSmoothness` on the coarse model (e.g.
    `training.regularizers.attach_time_smoothness` inside `build_model`); prolongation keeps it.

    Args:
        build_model: callable `depth -> keras.Model` (uncompiled or compiled; it is recompiled).
        levels: sequence of int. Depths, each an integer multiple of the previous, e.g.
            `(4, 8, 16)`. The depth is whatever `build_model` does with it; prolongation
            multiplies every `ODEBlock`'s depth by the ratio.
        train_data: what `fit` takes as `x` (a `tf.data.Dataset` of `(x, y)`, a `PyDataset`),
            or a tuple `(x, y)` of arrays.
        val_data: `validation_data` for `fit` (dataset or `(x, y)`).
        epochs_per_level: int or one int per level.
        compile_kwargs: dict for `model.compile` (`optimizer`, `loss`, `metrics`, ...). The
            `optimizer` may be a name, an instance (cloned from its config per level) or a
            zero-argument factory, called once per level in level order (also for levels
            restored from a backup, so a factory may count levels). Include an accuracy metric
            to get accuracies in the records.
        jit_compile: passed to `compile` (`True` for dense deep-narrow blocks, `False` for
            convolutions on CPU; DESIGN.md section 3). Defaults to `"auto"`.
        callbacks: list of extra callbacks, reused at every level.
        fit_kwargs: dict of extra `fit` arguments (e.g. `steps_per_epoch`, `batch_size` for
            arrays).
        monitor: str. Quantity for model selection. Defaults to `"val_accuracy"`.
        mode: `"max"` or `"min"` for `monitor`. Defaults to `"max"`.
        patience: int or None. Early-stopping patience; None never stops early.
        evaluate_train: bool. Re-evaluate the training accuracy of the restored weights (one
            extra pass over `train_data` per level). Defaults to `False`.
        verbose: int. Passed to `fit` and `evaluate`.
        backup_dir: str or None. Makes the run resumable (see above). Defaults to None.
        fingerprint: JSON-able dict or None. Describes the run; a backup written by a different
            fingerprint is refused.
        strategy: a `tf.distribute.Strategy` or None. Every level's model is built (or
            prolongated) and compiled inside `strategy.scope()` (`training.distribute`), and
            `jit_compile=True` becomes `"auto"` (the zoo's policy: no XLA under a strategy).
        stability_inputs: a batch of model inputs or None. If given,
            `zoo.diagnostics.check_stability` runs on every level's model before it trains and
            warns when a block's step size violates its integrator's stability condition.

    Returns:
        `(model, records)`: the finest level's model with its best-validation weights, and one
        `LevelRecord` per level.
    """
    import contextlib
    import os
    import shutil

    from training.callbacks import (
        KERAS_ITERATORS_PER_EPOCH,
        ResumableBackup,
        load_weights_npz,
        save_weights_npz,
    )

    levels = _check_levels(levels)
    epochs = _per_level(epochs_per_level, len(levels), "epochs_per_level")
    compile_kwargs = dict(compile_kwargs)
    optimizer = compile_kwargs.pop("optimizer", "adam")
    fit_kwargs = dict(fit_kwargs or {})
    x_train, y_train = _split(train_data)
    if _is_tf_dataset(x_train):  # fit ignores (and warns about) shuffle for a tf.data.Dataset
        fit_kwargs.setdefault("shuffle", False)
    x_val, y_val = _split(val_data)
    val_kwargs = {k: v for k, v in fit_kwargs.items() if k == "batch_size"}
    marker = _read_marker(backup_dir, levels, epochs, fingerprint) if backup_dir else None
    if strategy is not None:  # XLA cannot place mirrored variables: no forced XLA under a strategy
        from training.distribute import jit_compile_for

        jit_compile = jit_compile_for(strategy, jit_compile)

    def scope():
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    records, model = [], None
    skipped = 0  # iterators of `x_train` the uninterrupted run created in levels skipped here
    for level, (depth, num_epochs) in enumerate(zip(levels, epochs)):
        finished = marker["finished"][level] if marker and level < len(marker["finished"]) else None
        with scope():
            if level == 0:
                model = build_model(depth)
            else:
                model = prolongate_model(model, factor=depth // levels[level - 1])
            level_optimizer = _fresh_optimizer(optimizer)
            if finished is not None:  # done before a restart: its best weights and record
                load_weights_npz(model, os.path.join(backup_dir, finished["weights"]))
                records.append(LevelRecord(**finished["record"]))
                skipped += int(finished["train_iterations"])
                continue
            model.compile(optimizer=level_optimizer, jit_compile=jit_compile, **compile_kwargs)
        if strategy is not None:  # same batches as on one device (no Keras peek), Keras 3 fixes
            from training.distribute import prepare_model

            prepare_model(model, x_train if _is_tf_dataset(x_train) else None)

        val_after = None
        if level > 0:
            logs = model.evaluate(x_val, y_val, verbose=verbose, return_dict=True, **val_kwargs)
            key = _accuracy_key(logs)
            val_after = float(logs[key]) if key else None
        if stability_inputs is not None:
            from zoo.diagnostics import check_stability

            check_stability(model, stability_inputs)

        patience_epochs = num_epochs if patience is None else patience
        if backup_dir is None:
            selector = keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=patience_epochs, restore_best_weights=True
            )
            timer = _EpochTimer()
            level_callbacks = [selector, timer, *(callbacks or [])]
        else:
            selector = ResumableBackup(
                os.path.join(backup_dir, f"level_{level}"),
                data=x_train if _is_tf_dataset(x_train) else None, replay_offset=skipped,
                monitor=monitor, mode=mode, patience=patience_epochs, delete_checkpoint=False,
                fingerprint={"level": level, "depth": depth, "epochs": num_epochs},
            )
            level_callbacks = [selector, *(callbacks or [])]  # first: restores before the others
        history = model.fit(
            x_train,
            y_train,
            validation_data=val_data,
            epochs=num_epochs,
            callbacks=level_callbacks,
            verbose=verbose,
            **fit_kwargs,
        ).history
        if backup_dir is None:
            best_epoch, best, epoch_times = selector.best_epoch, selector.best, list(timer.times)
        else:  # the whole level's history, also the epochs before a restart
            history, epoch_times = selector.history, list(selector.epoch_seconds)
            best_epoch, best = selector.best_epoch, selector.best
        record = _record(level, depth, model, best_epoch, best, epoch_times, history, val_after,
                         evaluate_train, x_train, y_train, verbose, val_kwargs)
        records.append(record)
        if backup_dir is not None:
            # Iterators of `x_train` this level created in an uninterrupted run (see
            # `training.callbacks.KERAS_ITERATORS_PER_EPOCH`): two per epoch, and the training
            # evaluation is one more pass (no peek under a strategy: `prepare_model`).
            passes = len(epoch_times) + int(evaluate_train)
            iterations = KERAS_ITERATORS_PER_EPOCH * passes
            weights = f"level_{level}.best.npz"
            save_weights_npz(model, os.path.join(backup_dir, weights))
            marker["finished"].append({"level": level, "depth": depth, "weights": weights,
                                       "train_iterations": iterations, "record": record.as_dict()})
            _atomic_write_json(marker, os.path.join(backup_dir, MARKER))
            shutil.rmtree(os.path.join(backup_dir, f"level_{level}"), ignore_errors=True)
            skipped = 0  # this process is now in step with the uninterrupted run
    return model, records


MARKER = "levels.json"


def _atomic_write_json(obj, path):
    from training.callbacks import _atomic_write_json as write

    write(obj, path)


def _read_marker(backup_dir, levels, epochs, fingerprint):
    """The finished-levels marker of `backup_dir` (created if missing), checked against the run."""
    import json
    import os

    from training.callbacks import _jsonable

    os.makedirs(backup_dir, exist_ok=True)
    expected = {"levels": list(levels), "epochs": [int(e) for e in epochs],
                "fingerprint": _jsonable(fingerprint)}
    path = os.path.join(backup_dir, MARKER)
    if not os.path.exists(path):
        return {**expected, "finished": []}
    with open(path) as f:
        marker = json.load(f)
    found = {key: marker.get(key) for key in expected}
    if found != expected:
        raise ValueError(
            f"The multilevel backup in {backup_dir!r} belongs to another run ({found}), not this one "
            f"({expected}); start over with --fresh (or delete the directory), or use another output directory"
        )
    return marker


def _record(level, depth, model, best_epoch, best_monitor, epoch_times, history, val_after,
            evaluate_train, x_train, y_train, verbose, val_kwargs):
    best = best_epoch
    val_key, train_key = _accuracy_key(history, "val_"), _accuracy_key(history)
    train_accuracy = float(history[train_key][best]) if train_key else None
    if evaluate_train:
        logs = model.evaluate(x_train, y_train, verbose=verbose, return_dict=True, **val_kwargs)
        key = _accuracy_key(logs)
        train_accuracy = float(logs[key]) if key else None
    best_monitor = best_monitor if best_monitor is not None else math.nan
    return LevelRecord(
        level=level,
        depth=depth,
        block_depths={b.name: b.depth for b in ode_blocks(model)},
        best_epoch=int(best),
        best_monitor=float(best_monitor),
        val_accuracy=float(history[val_key][best]) if val_key else None,
        val_accuracy_after_prolongation=val_after,
        train_accuracy=train_accuracy,
        epoch_times=list(epoch_times),
        history={k: [float(v) for v in vs] for k, vs in history.items()},
    )
