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


class _FeatureMajorRates:
    """The rates of a dense `SingleLayer` / `HamiltonianTwoStream` on transposed states.

    Each rate takes and returns `(width, batch)` tensors, so the integrator's own `step` runs the
    scheme unchanged on them: `F(Y)^T = sigma(K^T Y^T + b)` (`__call__`), the momentum rate
    `-sigma(Y K + b)^T` and the position rate `sigma(Z K^T + b)^T`.
    """

    def __init__(self, dynamics):
        import tensorflow as tf

        self._matmul = tf.matmul
        self._dynamics = dynamics

    def _sigma(self, z_t, theta):  # sigma(Z + b)^T from Z^T
        bias = self._dynamics.bias
        if bias != "none":
            z_t = z_t + (theta["bias"][:, None] if bias == "vector" else theta["bias"])
        return self._dynamics.activation_fn(z_t)

    def __call__(self, theta, y_t):  # sigma(Y K + b)^T
        return self._sigma(self._matmul(theta["kernel"], y_t, transpose_a=True), theta)

    def momentum_rate(self, theta, y_t):
        return -self(theta, y_t)

    def position_rate(self, theta, z_t):  # sigma(Z K^T + b)^T
        return self._sigma(self._matmul(theta["kernel"], z_t), theta)


def feature_major_step(integrator, dynamics, h):
    """`step(carry, theta_j)` on the transposed state (`(Y^T,)` or `(Y^T, Z^T)`), or None.

    Supported: a dense operator applied as a plain matmul (free or antisymmetric kernel) with a
    scalar, vector or no bias, in a forward-Euler `SingleLayer` or a Verlet
    `HamiltonianTwoStream` (H&R 2017, Eq. 4.15); anything else gets None (the usual layout).
    The integrator's `step` runs on the transposed rates (`_FeatureMajorRates`).
    """
    import keras

    from zoo.dynamics import HamiltonianTwoStream, SingleLayer
    from zoo.integrators import ForwardEuler, Verlet
    from zoo.operators import DenseOperator, Parametrization

    parametrization = type(dynamics.parametrization)
    supported = {(ForwardEuler, SingleLayer), (Verlet, HamiltonianTwoStream)}
    if not (keras.backend.backend() == "tensorflow" and (type(integrator), type(dynamics)) in supported
            and type(dynamics.operator) is DenseOperator
            and parametrization.apply is Parametrization.apply
            and parametrization.adjoint is Parametrization.adjoint
            and dynamics.bias in ("scalar", "vector", "none")):
        return None
    rates = _FeatureMajorRates(dynamics)

    def step(carry, theta):
        return tuple(integrator.step(rates, theta, carry, h))

    return step
