"""Dense layer steps on a feature-major state `(width, batch)`, for training steps.

A width-8 state stored `(batch, width)` gives every per-step matmul rows of 8 floats, half a
vector register; XLA's dots on such shapes were the largest part of a dense training step.
Stored `(width, batch)`, the same step (`Y^T + h sigma(K^T Y^T + b)` for a forward-Euler layer)
has rows of `batch` floats: 15-26% off the width-8 antisymmetric step at N = 256 and 1,024 in
paired runs. The block transposes each stream once on entry and once on exit.

Only training steps use it: the function is the same, but the float32 sums inside each matmul
run in another order, and inference, which the exports are checked against bit for bit, keeps
the layout of every other path.
"""

from __future__ import annotations

__all__ = ["feature_major_step"]


def feature_major_step(integrator, dynamics, h):
    """`step(carry, theta_j)` on the transposed state (`(Y^T,)` or `(Y^T, Z^T)`), or None.

    Supported: a dense operator applied as a plain matmul (free or antisymmetric kernel) with a
    scalar, vector or no bias, in a forward-Euler `SingleLayer` or a Verlet
    `HamiltonianTwoStream` (H&R 2017, Eq. 4.15); anything else gets None (the usual layout).
    """
    import keras

    from zoo.dynamics import HamiltonianTwoStream, SingleLayer
    from zoo.integrators import ForwardEuler, Verlet
    from zoo.operators import DenseOperator, Parametrization

    parametrization = type(dynamics.parametrization)
    if not (keras.backend.backend() == "tensorflow" and type(dynamics.operator) is DenseOperator
            and parametrization.apply is Parametrization.apply
            and parametrization.adjoint is Parametrization.adjoint
            and dynamics.bias in ("scalar", "vector", "none")):
        return None
    import tensorflow as tf

    def sigma(z_t, theta):
        """`sigma(Z + b)^T` from `Z^T`."""
        if dynamics.bias != "none":
            z_t = z_t + (theta["bias"][:, None] if dynamics.bias == "vector" else theta["bias"])
        return dynamics.activation_fn(z_t)

    if type(integrator) is ForwardEuler and type(dynamics) is SingleLayer:
        def euler_step(carry, theta):
            (y_t,) = carry
            return (y_t + h * sigma(tf.matmul(theta["kernel"], y_t, transpose_a=True), theta),)  # (Y K)^T

        return euler_step
    if type(integrator) is Verlet and type(dynamics) is HamiltonianTwoStream:
        def momentum(theta, y_t):  # (-sigma(Y K + b))^T
            return -sigma(tf.matmul(theta["kernel"], y_t, transpose_a=True), theta)

        def position(theta, z_t):  # sigma(Z K^T + b)^T
            return sigma(tf.matmul(theta["kernel"], z_t), theta)

        def verlet_step(carry, theta):
            y_t, z_t = carry
            if integrator.first == "y":
                y_t = y_t + h * position(theta, z_t)
                return (y_t, z_t + h * momentum(theta, y_t))
            z_t = z_t + h * momentum(theta, y_t)
            return (y_t + h * position(theta, z_t), z_t)

        return verlet_step
    return None
