"""The classification head shared by every family: an affine map named `predictions`."""

from __future__ import annotations

import keras

from zoo.layers import DENSE_CHUNK, ChunkedDense

__all__ = ["classifier_head"]


def classifier_head(features, num_classes, flatten=False, name="predictions", kernel_regularizer=None):
    """Affine classifier on the final state (Haber & Ruthotto 2017, Eqs. 2.2-2.3).

    Returns logits: one per example for two classes (logistic regression), `num_classes`
    otherwise (softmax). With `flatten`, it acts on all output values (no pooling), as the
    paper's MNIST network does. Heads on more than `DENSE_CHUNK` features are `ChunkedDense`,
    so their logits do not depend on the batch size beyond float32 round-off.
    """
    if int(num_classes) < 2:
        raise ValueError(f"`num_classes` must be >= 2; Received: num_classes={num_classes!r}")
    if flatten:
        features = keras.layers.Flatten(name="flatten")(features)
    units = 1 if num_classes == 2 else num_classes
    if features.shape[-1] is not None and features.shape[-1] > DENSE_CHUNK:
        return ChunkedDense(units, name=name, kernel_regularizer=kernel_regularizer)(features)
    return keras.layers.Dense(units, name=name, kernel_regularizer=kernel_regularizer)(features)
