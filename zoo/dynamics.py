"""Right-hand sides `F(theta_j, Y)` of the ODEs; they know nothing of `h`, `j` or `N`.

A single-stream dynamics is `dY/dt = F(theta, Y)` (or `d2Y/dt2 = F` for the leapfrog
integrator). A two-stream dynamics is a pair `dY/dt = F_y(theta, Z)`, `dZ/dt = F_z(theta, Y)`
for staggered integrators (Verlet).

Each dynamics owns its operator and parametrisation, declares the per-step weights it needs
(`weight_shapes`), and turns the raw stacked `(N, ...)` weights into effective ones in one
vectorised call (`prepare`) before the depth loop.

Rows are examples (see `zoo.operators`): the papers' column form `sigma(K y + b)` is written
`sigma(Y K + b)` here.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.operators import _AxisMember, _register, get_operator, get_parametrization

__all__ = ["Dynamics", "SingleLayer", "HamiltonianTwoStream", "BIAS_MODES"]

BIAS_MODES = ("scalar", "vector", "none")


class Dynamics(_AxisMember):
    """Common parts: operator, parametrisation, activation and bias mode."""

    num_streams = 1

    def __init__(self, operator="dense", parametrization="free", activation="tanh", bias="scalar"):
        self.operator = get_operator(operator)
        self.parametrization = get_parametrization(parametrization)
        if bias not in BIAS_MODES:
            raise ValueError(f"`bias` must be one of {BIAS_MODES}; Received: bias={bias!r}")
        self.bias = bias
        self.activation = activation
        self._sigma = keras.activations.get(activation)

    def get_config(self):
        return {
            "operator": keras.saving.serialize_keras_object(self.operator),
            "parametrization": keras.saving.serialize_keras_object(self.parametrization),
            "activation": self.activation,
            "bias": self.bias,
        }

    # === Shapes ===
    def output_channels(self, channels, momentum_channels=None):
        """Channels of `K Y` for a state with `channels` channels."""
        return channels

    def weight_shapes(self, channels, momentum_channels=None):
        out = self.output_channels(channels, momentum_channels)
        if self.parametrization.requires_square and out != channels:
            raise ValueError(
                f"{type(self.parametrization).__name__} needs a square operator; Received: "
                f"channels={channels}, momentum_channels={momentum_channels}"
            )
        if self.bias == "vector" and out != channels:
            raise ValueError(
                "A vector bias is shared by both half steps and needs equal widths; Received: "
                f"channels={channels}, momentum_channels={momentum_channels}"
            )
        shapes = {"kernel": self.operator.kernel_shape(channels, out)}
        if self.bias == "scalar":
            shapes["bias"] = ()
        elif self.bias == "vector":
            shapes["bias"] = (out,)
        return shapes

    # === Maps ===
    def prepare(self, weights):
        """Raw per-step weights (any leading stack axes) -> effective weights `theta`."""
        theta = dict(weights)
        theta["kernel"] = self.parametrization.effective_kernel(self.operator, weights["kernel"])
        return theta

    def _add_bias(self, x, theta):
        if self.bias == "none":
            return x
        return x + theta["bias"]

    def _linear(self, theta, y):
        return self.parametrization.apply(self.operator, theta["kernel"], y)

    def _linear_adjoint(self, theta, z):
        return self.parametrization.adjoint(self.operator, theta["kernel"], z)


@_register
class SingleLayer(Dynamics):
    """`F(theta, Y) = sigma(Y K + b)` (Haber & Ruthotto 2017, Eqs. 2.1, 4.12, 4.16).

    With `Free` this is the forward-Euler ResNet layer, with `Antisymmetric` the antisymmetric
    ResNet layer, and as the acceleration of the leapfrog integrator with
    `NegativeSemidefinite` the second-order Hamiltonian network.
    """

    def __call__(self, theta, y):
        return self._sigma(self._add_bias(self._linear(theta, y), theta))


@_register
class HamiltonianTwoStream(Dynamics):
    """`dY/dt = sigma(Z K^T + b)`, `dZ/dt = -sigma(Y K + b)` (H&R 2017, Eq. 4.15).

    The block operator `[[0, K], [-K^T, 0]]` is antisymmetric for any, also non-square, `K`:
    `Y` has `n` channels, `Z` has `m` (`momentum_channels`, default `n`), `K` is `n x m`.
    The same bias is used in both half steps, as the paper prints it.
    """

    num_streams = 2

    def output_channels(self, channels, momentum_channels=None):
        return channels if momentum_channels is None else momentum_channels

    def initial_momentum(self, y0, momentum_channels):
        """`Z(0) = 0` with `momentum_channels` channels (H&R 2017, Sec. 4.2)."""
        shape = ops.shape(y0)[:-1] + (momentum_channels,)
        return ops.zeros(shape, dtype=y0.dtype)

    def momentum_rate(self, theta, y):
        return -self._sigma(self._add_bias(self._linear(theta, y), theta))

    def position_rate(self, theta, z):
        return self._sigma(self._add_bias(self._linear_adjoint(theta, z), theta))
