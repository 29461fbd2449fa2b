"""What every exporter shares: the serving contract, input specs, and atomic output paths."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import keras

__all__ = ["OUTPUT_NAMES", "input_name", "input_shape", "serving_outputs", "atomic_output"]

OUTPUT_NAMES = ("logits", "probabilities")


def input_name(model):
    """The model's named input (`image` or `features`, DESIGN.md section 4)."""
    if len(model.inputs) != 1:
        raise ValueError(f"Export needs a model with one input; {model.name!r} has {len(model.inputs)}")
    return model.inputs[0].name


def input_shape(model):
    """Per-example input shape (no batch axis); every axis must be known."""
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"Export needs a fixed per-example input shape; {model.name!r} has {shape}")
    return shape


def serving_outputs(model, x):
    """`{"logits", "probabilities"}`: softmax over classes, or the logistic for one logit."""
    logits = model(x, training=False)
    activation = keras.ops.sigmoid if logits.shape[-1] == 1 else keras.ops.softmax
    return {"logits": logits, "probabilities": activation(logits)}


@contextlib.contextmanager
def atomic_output(path, overwrite=False, is_dir=False):
    """Yield a temporary path next to `path`; move it into place only if the body succeeds.

    A failed export (unsupported op, full disk) leaves neither a partial file nor a partial
    directory at `path`. Refuses an existing `path` unless `overwrite`.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=parent)
    tmp = os.path.join(tmp_dir, os.path.basename(path))
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise RuntimeError(f"the exporter wrote nothing to {tmp}")
        if os.path.exists(path):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
