"""Dense forward-Euler layer steps on a feature-major state `(width, batch)`, for training steps.

A width-8 state stored `(batch, width)` gives every per-step matmul rows of 8 floats, half a
vector register; XLA's dots on such shapes were the largest part of a dense training step.
Stored `(width, batch)` the same step `Y^T + h sigma(K^T Y^T + b)` has rows of `batch` floats.
The block transposes its state once on entry and once on exit. Only the training step uses it:
the function is the same, but the float32 sums inside the matmul run in another order, and
inference (and the exports, which are checked against it) keeps the layout of every other path.
"""

from __future__ import annotations

__all__ = ["feature_major_step"]


def feature_major_step(integrator, dynamics, h):
    """`step(carry, theta_j)` on `(Y^T,)` for a dense forward-Euler single layer with a plain
    matmul kernel (free or antisymmetric) and a scalar, vector or no bias; None otherwise."""
    import keras

    from zoo.dynamics import SingleLayer
    from zoo.integrators import ForwardEuler
    from zoo.operators import DenseOperator, Parametrization

    if not (keras.backend.backend() == "tensorflow" and type(integrator) is ForwardEuler
            and type(dynamics) is SingleLayer and type(dynamics.operator) is DenseOperator
            and type(dynamics.parametrization).apply is Parametrization.apply
            and dynamics.bias in ("scalar", "vector", "none")):
        return None
    import tensorflow as tf

    def step(carry, theta):
        (y_t,) = carry
        z_t = tf.matmul(theta["kernel"], y_t, transpose_a=True)  # (Y K)^T
        if dynamics.bias != "none":
            bias = theta["bias"]
            z_t = z_t + (bias[:, None] if dynamics.bias == "vector" else bias)
        return (y_t + h * dynamics.activation_fn(z_t),)

    return step
