"""Keras callbacks: per-step gradient norms of a block, Lemma 1 over training, backward
sensitivities `||dY_N/dY_l||` over training (Galimberti et al. 2021, Fig. 2), a tqdm bar."""

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
    "StepGradientNorms",
    "Lemma1Monitor",
    "BackwardSensitivity",
    "EpochTimer",
    "TqdmEpochs",
    "block_io",
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

    def on_train_begin(self, logs=None):
        if not self.values:
            self._record()

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
        np.save(self.path, np.stack(self.values))
        stem = self.path[: -len(".npy")] if self.path.endswith(".npy") else self.path
        np.save(f"{stem}_iterations.npy", np.asarray(self.iterations))


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
