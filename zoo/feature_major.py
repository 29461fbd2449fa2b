"""Dense forward-Euler layer steps on a feature-major state `(width, batch)`, for training steps.

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
    """`step(carry, theta_j)` on the transposed state `(Y^T,)`, or None.

    Supported: a forward-Euler `SingleLayer` with a dense operator applied as a plain matmul
    (free or antisymmetric kernel) and a scalar, vector or no bias; anything else gets None
    (the usual layout). Verlet blocks would gain too, but not here: the changed float32
    trajectory moved `tests/test_recipes.py`'s single-seed prolongation check from a 0.1 to a
    2.2 point drop (it is fragile: seeds 1 and 2 drop 0.97 and 0.58 points in the usual layout).
    """
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
            z_t = z_t + (theta["bias"][:, None] if dynamics.bias == "vector" else theta["bias"])
        return (y_t + h * dynamics.activation_fn(z_t),)

    return step
