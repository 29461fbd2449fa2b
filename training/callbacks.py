"""Keras callbacks: per-step gradient norms of a block, Lemma 1 over training, a tqdm bar."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from zoo.diagnostics import lemma1_amplification, state_gradient_norms

__all__ = ["StepGradientNorms", "Lemma1Monitor", "EpochTimer", "TqdmEpochs", "block_io"]


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
