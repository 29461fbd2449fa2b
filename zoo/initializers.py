"""Initialisers for per-step weights stacked along a leading depth axis `(N, ...)`.

Keras' own fan-in/fan-out rules read a `(N, n, m)` tensor as a convolution kernel with a
receptive field of `N`, which shrinks the scale by `sqrt(N)`: deep blocks would start almost
as the identity for the wrong reason. These compute the fans of one step's kernel.
"""

from __future__ import annotations

import math

import keras

__all__ = ["StepwiseGlorotUniform"]


def _step_fans(step_shape):
    if len(step_shape) == 1:
        return step_shape[0], step_shape[0]
    receptive = math.prod(step_shape[:-2]) if len(step_shape) > 2 else 1
    return step_shape[-2] * receptive, step_shape[-1] * receptive


@keras.saving.register_keras_serializable(package="stable_zoo")
class StepwiseGlorotUniform(keras.initializers.Initializer):
    """Glorot-uniform per step: `U(-l, l)`, `l = scale * sqrt(6 / (fan_in + fan_out))`.

    Args:
        scale: float. Multiplies the Glorot limit. Defaults to `1.0`.
        constant_in_time: bool. Draw one kernel and use it at every step, so the network
            starts as a time-invariant ODE whose time-smoothness penalty (H&R 2017, Eq. 5.23)
            is 0; independent draws make that penalty grow like `N^2 / T`. Defaults to `False`.
        seed: int or None. Defaults to `None`.
    """

    def __init__(self, scale=1.0, constant_in_time=False, seed=None):
        self.scale = float(scale)
        self.constant_in_time = bool(constant_in_time)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed) if seed is not None else None

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _step_fans(tuple(shape[1:]))
        limit = self.scale * math.sqrt(6.0 / (fan_in + fan_out))
        seed = self._generator if self._generator is not None else None
        if self.constant_in_time:
            one = keras.random.uniform((1, *shape[1:]), -limit, limit, dtype=dtype, seed=seed)
            return keras.ops.repeat(one, shape[0], axis=0)
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=seed)

    def get_config(self):
        return {"scale": self.scale, "constant_in_time": self.constant_in_time, "seed": self.seed}
