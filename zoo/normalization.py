"""TV normalisation (Ruthotto & Haber 2018, Eq. 9): per example, per pixel, no running statistics.

For one example with `c` channels at every pixel (rows are examples, channels last)::

    N_tv(Y)[..., k] = scale_k * Y[..., k] / sqrt( sum_c Y[..., c]^2 + eps ) + bias_k

i.e. every pixel's channel vector is divided by its (eps-smoothed) Euclidean length, then a
trainable per-channel scale and bias are applied "as for the batch norm layer". The paper's
matrix form is `diag(1 ./ (A^T sqrt(A (y.^2) + eps))) y` with `A` summing over channels.
`eps = 1e-3` in the paper's experiments (the authors' later Meganet code defaults to 1e-4).

Nothing is shared between examples, so the output does not depend on the batch and training
and inference behave the same. `tv_norm` is the pure function the PDE dynamics apply inside the
depth loop on per-step `(C,)` slices of stacked `(N, C)` scale and bias; `TVNormalization` is the
same map as a stand-alone Keras layer with its own `(C,)` weights.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["tv_norm", "TVNormalization", "DEFAULT_TV_EPSILON"]

DEFAULT_TV_EPSILON = 1e-3  # R&H 2018, Sec. 5 ("eps = 10^-3")


def tv_norm(x, scale=None, bias=None, epsilon=DEFAULT_TV_EPSILON):
    """`scale * x / sqrt(sum_c x_c^2 + epsilon) + bias` over the last (channel) axis (Eq. 9).

    Args:
        x: tensor `(batch, ..., C)`.
        scale, bias: `(C,)` tensors or None (no scale / no bias).
        epsilon: float > 0. Smoothing inside the square root. Defaults to `1e-3`.
    """
    y = x * ops.rsqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + epsilon)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


def _check_epsilon(epsilon):
    epsilon = float(epsilon)
    if not epsilon > 0:
        raise ValueError(f"`epsilon` must be > 0; Received: epsilon={epsilon!r}")
    return epsilon


@keras.saving.register_keras_serializable(package="stable_zoo")
class TVNormalization(keras.layers.Layer):
    """TV normalisation `gamma * Y / sqrt(sum_c Y_c^2 + eps) + beta` (R&H 2018, Eq. 9).

    Per example and per pixel over the channel axis; no batch statistics, no moving averages.

    Args:
        epsilon: float > 0. Defaults to `1e-3` (the paper's value).
        center: bool. Add the per-channel bias `beta` (initialised to 0). Defaults to `True`.
        scale: bool. Multiply by the per-channel scale `gamma` (initialised to 1). Defaults to
            `True`.

    Input shape: `(batch, ..., C)`. Output shape: same as the input.
    """

    def __init__(self, epsilon=DEFAULT_TV_EPSILON, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_epsilon(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel axis must be known; Received: input_shape={input_shape}")
        self.gamma = None
        self.beta = None
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        return tv_norm(inputs, self.gamma, self.beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
