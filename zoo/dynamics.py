"""Right-hand sides `F(theta_j, Y)` of the ODEs; they know nothing of `h`, `j` or `N`.

A single-stream dynamics is `dY/dt = F(theta, Y)` (or `d2Y/dt2 = F` for the leapfrog
integrator). A two-stream dynamics is a pair `dY/dt = F_y(theta, Z)`, `dZ/dt = F_z(theta, Y)`
for staggered integrators (Verlet).

Each dynamics owns its operator and parametrisation, declares the per-step weights it needs
(`weight_shapes`: always a `"kernel"`, optionally a `"bias"`, and further named weights such as
the TV-norm `"norm_scale"`/`"norm_bias"` with their initialisers in `weight_initializers`), and
turns the raw stacked `(N, ...)` weights into effective ones in one vectorised call (`prepare`)
before the depth loop.

Members: `SingleLayer` and `HamiltonianTwoStream` (Haber & Ruthotto 2017); `SymmetricLayer`
`-K^T sigma(N_tv(K Y))` and its two-stream pair `SymmetricTwoStream` (Ruthotto & Haber 2018).

Rows are examples (see `zoo.operators`): the papers' column form `sigma(K y + b)` is written
`sigma(Y K + b)` here.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.normalization import DEFAULT_TV_EPSILON, tv_norm
from zoo.operators import _AxisMember, _register, get_operator, get_parametrization

__all__ = [
    "Dynamics",
    "SingleLayer",
    "HamiltonianTwoStream",
    "SymmetricLayer",
    "SymmetricTwoStream",
    "BIAS_MODES",
    "NORMALIZATIONS",
]

BIAS_MODES = ("scalar", "vector", "none")
NORMALIZATIONS = ("tv", None)


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

    def weight_initializers(self):
        """Default initialisers of the weights other than `"kernel"` and `"bias"`."""
        return {}

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


class _Symmetric(Dynamics):
    """Shared parts of the R&H 2018 symmetric layers: operator, activation, normalisation."""

    def __init__(
        self, operator="conv", activation="relu", normalization="tv", epsilon=DEFAULT_TV_EPSILON
    ):
        super().__init__(operator, "free", activation, "none")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}; "
                f"Received: normalization={normalization!r}"
            )
        epsilon = float(epsilon)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0; Received: epsilon={epsilon!r}")
        self.normalization = normalization
        self.epsilon = epsilon

    def get_config(self):
        return {
            "operator": keras.saving.serialize_keras_object(self.operator),
            "activation": self.activation,
            "normalization": self.normalization,
            "epsilon": self.epsilon,
        }

    def _shapes(self, channels, pair=()):
        shapes = {"kernel": (*pair, *self.operator.kernel_shape(channels, channels))}
        if self.normalization == "tv":
            shapes["norm_scale"] = (*pair, channels)
            shapes["norm_bias"] = (*pair, channels)
        return shapes

    def weight_initializers(self):
        if self.normalization == "tv":
            return {"norm_scale": "ones", "norm_bias": "zeros"}  # scale 1, bias 0 (ref-code)
        return {}

    def symmetric(self, kernel, y, scale=None, bias=None):
        """`F_sym = -K^T sigma(N(K Y))` with one kernel for `K` and its exact adjoint `K^T`."""
        z = self.operator.apply(kernel, y)
        if self.normalization == "tv":
            z = tv_norm(z, scale, bias, self.epsilon)
        return -self.operator.adjoint(kernel, self._sigma(z))


@_register
class SymmetricLayer(_Symmetric):
    """`F(theta, Y) = -K^T sigma(N_tv(K Y))` (Ruthotto & Haber 2018, Eqs. 7 and 9).

    `K` is one 3x3 convolution `c -> c` (kernel `(3, 3, c, c)`); `K^T` is its exact adjoint
    (the same kernel flipped in space with its channel axes swapped, `Conv2DOperator.adjoint`),
    so the layer has no second kernel. `N_tv` divides every pixel's channel vector by its
    length, then applies a per-channel scale and bias; that bias, inside `sigma`, is the only
    bias. Per step: `9 c^2 + 2 c` weights. With `normalization=None` and a non-decreasing
    `sigma` the Jacobian `-K^T diag(sigma'(K Y)) K` is symmetric negative semi-definite, so
    forward Euler on it is the parabolic CNN (Sec. 3.1) and leapfrog the second-order CNN
    (Eq. 11). Written in this project's convention: `K Y` is `operator.apply(K, Y)`.

    Args:
        operator: `Operator` or name. Defaults to `"conv"` (3x3); `"dense"` also works.
        activation: activation name. Defaults to `"relu"` (the paper's experiments).
        normalization: `"tv"` (Eq. 9, with per-step scale and bias, the default) or None
            (identity, as the stability theorems assume; no normalisation weights).
        epsilon: float > 0. TV-norm smoothing. Defaults to `1e-3` (the paper's value).
    """

    def weight_shapes(self, channels, momentum_channels=None):
        return self._shapes(channels)

    def __call__(self, theta, y):
        return self.symmetric(theta["kernel"], y, theta.get("norm_scale"), theta.get("norm_bias"))


@_register
class SymmetricTwoStream(_Symmetric):
    """Two independent symmetric layers, skew-coupled: the Hamiltonian CNN (R&H 2018, Eq. 10).

    With the `Verlet` integrator on the state `[Y, Z]` (two channel halves, `carry_momentum`),
    one step is Eq. 10 as printed::

        Z_{j+1} = Z_j + h F_sym(theta^(1)_j, Y_j)       = Z_j - h K1_j^T sigma(N_tv(K1_j Y_j))
        Y_{j+1} = Y_j - h F_sym(theta^(2)_j, Z_{j+1})   = Y_j + h K2_j^T sigma(N_tv(K2_j Z_{j+1}))

    Here `Y` is the first channel half and `Z` the second, as in the authors' Meganet code
    (`DoubleHamiltonianNN`, which updates the second half first). The paper writes the same
    scheme with the names swapped: its `Y` (updated first, with `theta^(1)`) is our second half
    `Z`, its `Z` our first half. `momentum_rate` is `F_sym(theta^(1), .)` and `position_rate`
    is `-F_sym(theta^(2), .)`. Both halves have `n` channels; the two kernels are stacked in
    one `(2, 3, 3, n, n)` per-step weight (index 0: `theta^(1)`, 1: `theta^(2)`), and so are
    the TV-norm scales and biases `(2, n)`: `9 n^2 * 2 + 4 n` weights per step (`n = w / 2`:
    `9 w^2 / 2 + 2 w`).

    Args: as `SymmetricLayer`.
    """

    num_streams = 2

    def output_channels(self, channels, momentum_channels=None):
        return channels

    def weight_shapes(self, channels, momentum_channels=None):
        if momentum_channels is not None and momentum_channels != channels:
            raise ValueError(
                "SymmetricTwoStream needs two streams of equal width; Received: "
                f"channels={channels}, momentum_channels={momentum_channels}"
            )
        return self._shapes(channels, pair=(2,))

    def initial_momentum(self, y0, momentum_channels):
        shape = ops.shape(y0)[:-1] + (momentum_channels,)
        return ops.zeros(shape, dtype=y0.dtype)

    def _layer(self, theta, index, y):
        scale, bias = theta.get("norm_scale"), theta.get("norm_bias")
        return self.symmetric(
            theta["kernel"][index],
            y,
            None if scale is None else scale[index],
            None if bias is None else bias[index],
        )

    def momentum_rate(self, theta, y):
        return self._layer(theta, 0, y)

    def position_rate(self, theta, z):
        return -self._layer(theta, 1, z)
