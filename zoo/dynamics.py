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
`-K^T sigma(N_tv(K Y))` and its two-stream pair `SymmetricTwoStream` (Ruthotto & Haber 2018);
`HDNNLayer` `J K^T tanh(K y + b)` (Galimberti, Xu & Ferrari Trecate 2021). The MS1-MS3 networks
of Galimberti et al. are existing members with per-stream or vector biases (see `zoo.blocks`).

Rows are examples (see `zoo.operators`): the papers' column form `sigma(K y + b)` is written
`sigma(Y K + b)` here.

A parametrisation whose raw variable differs in shape from the kernel (`zoo.operators.SkewSymmetric`,
the MS2-DNN's skew kernel stored as its `(n^2 - n) / 2` free entries) says so through
`raw_shape(operator, kernel_shape)`, which `Dynamics` asks for when it exists.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from zoo.normalization import DEFAULT_TV_EPSILON, tv_norm
from zoo.operators import _AxisMember, _register, get_operator, get_parametrization

__all__ = [
    "Dynamics",
    "SingleLayer",
    "HamiltonianTwoStream",
    "SymmetricLayer",
    "SymmetricTwoStream",
    "HDNNLayer",
    "interconnection_matrix",
    "BIAS_MODES",
    "NORMALIZATIONS",
    "INTERCONNECTIONS",
]

# "per_stream": two-stream dynamics only, one bias vector per half step (Galimberti's MS1).
BIAS_MODES = ("scalar", "vector", "none", "per_stream")
NORMALIZATIONS = ("tv", None)
INTERCONNECTIONS = ("J1", "J2")


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
        self._bias_add = None

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

    def raw_kernel_shape(self, channels, out):
        """Shape of one step's raw kernel: the operator's, unless the parametrisation packs it."""
        shape = self.operator.kernel_shape(channels, out)
        packed = getattr(self.parametrization, "raw_shape", None)
        return shape if packed is None else packed(self.operator, shape)

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
        if self.bias == "per_stream" and self.num_streams != 2:
            raise ValueError(
                f"`bias='per_stream'` needs a two-stream dynamics; {type(self).__name__} has "
                f"{self.num_streams} stream; Received: bias={self.bias!r}"
            )
        shapes = {"kernel": self.raw_kernel_shape(channels, out)}
        if self.bias == "scalar":
            shapes["bias"] = ()
        elif self.bias == "vector":
            shapes["bias"] = (out,)
        elif self.bias == "per_stream":
            shapes["bias"] = (out + channels,)  # [momentum half step (m), position half step (n)]
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

    def _add_bias(self, x, theta, stream="momentum"):
        if self.bias == "none":
            return x
        bias = theta["bias"]
        if self.bias == "per_stream":
            # `(m + n,)`: the first m entries for the momentum half step (width m), the last n
            # for the position half step (width n).
            width = x.shape[-1]
            bias = bias[..., :width] if stream == "momentum" else bias[..., bias.shape[-1] - width :]
        return x + bias if self._bias_add is None else self._bias_add(x, bias)

    def activation_fn(self, x):
        """`sigma(x)`."""
        return self._sigma(x)

    def use_numerics(self, activation=None, bias_add=None):
        """Compute `sigma` and `x + b` through other ops; the exporters' hook (`export.fold`).

        `activation(x)` and `bias_add(x, bias)` must compute the same function: they change how
        a runtime rounds, not what the layer means (`export.tf_numerics`). Not serialised.
        """
        if activation is not None:
            self._sigma = activation
        if bias_add is not None:
            self._bias_add = bias_add

    def _linear(self, theta, y):
        return self.parametrization.apply(self.operator, theta["kernel"], y)

    def _linear_adjoint(self, theta, z):
        if "kernel_adjoint" in theta:  # precomputed `K^T` of an exported (folded) block
            return self.operator.apply(theta["kernel_adjoint"], z)
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
    The same bias is used in both half steps, as the paper prints it (`bias="scalar"` or
    `"vector"`). With `bias="per_stream"` each half step has its own bias vector, stored as one
    `(m + n,)` weight `[b_z, b_y]`: the MS1-DNN of Galimberti et al. (2021, Sec. 2.3),
    `z_{j+1} = z_j - h tanh(y_j K_j + b_{j,1})`, `y_{j+1} = y_j + h tanh(z_{j+1} K_j^T + b_{j,2})`
    (their column form `K_{j,0}' y_j` is our `y_j K_j`), with `nf^2/4 + nf` weights per step
    for `n = m = nf/2`.
    """

    num_streams = 2

    def output_channels(self, channels, momentum_channels=None):
        return channels if momentum_channels is None else momentum_channels

    def initial_momentum(self, y0, momentum_channels):
        """`Z(0) = 0` with `momentum_channels` channels (H&R 2017, Sec. 4.2)."""
        shape = ops.shape(y0)[:-1] + (momentum_channels,)
        return ops.zeros(shape, dtype=y0.dtype)

    def momentum_rate(self, theta, y):
        return -self._sigma(self._add_bias(self._linear(theta, y), theta, "momentum"))

    def position_rate(self, theta, z):
        return self._sigma(self._add_bias(self._linear_adjoint(theta, z), theta, "position"))


class _Symmetric(Dynamics):
    """Shared parts of the R&H 2018 symmetric layers: operator, activation, normalisation."""

    def __init__(
        self, operator="conv", activation="relu", normalization="tv", epsilon=DEFAULT_TV_EPSILON,
        bias="none",
    ):
        if bias not in ("none", "vector"):
            raise ValueError(f"`bias` must be 'none' or 'vector'; Received: bias={bias!r}")
        super().__init__(operator, "free", activation, bias)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}; "
                f"Received: normalization={normalization!r}"
            )
        if bias == "vector" and normalization is not None:
            raise ValueError(
                "The TV normalisation has its own bias; `bias='vector'` needs normalization=None; "
                f"Received: bias={bias!r}, normalization={normalization!r}"
            )
        epsilon = float(epsilon)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0; Received: epsilon={epsilon!r}")
        self.normalization = normalization
        self.epsilon = epsilon

    def get_config(self):
        config = {
            "operator": keras.saving.serialize_keras_object(self.operator),
            "activation": self.activation,
            "normalization": self.normalization,
            "epsilon": self.epsilon,
        }
        if self.bias != "none":  # absent from older configs: "none"
            config["bias"] = self.bias
        return config

    def _shapes(self, channels, pair=()):
        shapes = {"kernel": (*pair, *self.operator.kernel_shape(channels, channels))}
        if self.normalization == "tv":
            shapes["norm_scale"] = (*pair, channels)
            shapes["norm_bias"] = (*pair, channels)
        if self.bias == "vector":
            shapes["bias"] = (*pair, channels)
        return shapes

    def weight_initializers(self):
        if self.normalization == "tv":
            return {"norm_scale": "ones", "norm_bias": "zeros"}  # scale 1, bias 0 (ref-code)
        return {}

    def symmetric(self, kernel, y, scale=None, bias=None, offset=None):
        """`F_sym = -K^T sigma(N(K Y) + c)` with one kernel for `K` and its exact adjoint `K^T`.

        `scale`, `bias` are the TV-norm weights; `offset` is the plain bias `c` (no TV norm).
        """
        z = self.operator.apply(kernel, y)
        if self.normalization == "tv":
            z = tv_norm(z, scale, bias, self.epsilon)
        if offset is not None:
            z = z + offset
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
        bias: `"none"` (default, the paper) or `"vector"`: a per-channel bias inside `sigma`,
            `-K^T sigma(K Y + b)`; only with `normalization=None`.
    """

    def weight_shapes(self, channels, momentum_channels=None):
        return self._shapes(channels)

    def __call__(self, theta, y):
        return self.symmetric(
            theta["kernel"], y, theta.get("norm_scale"), theta.get("norm_bias"), theta.get("bias")
        )


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

    With `normalization=None`, `bias="vector"`, `activation="tanh"` and `Verlet(first="y")`
    this is the MS3-DNN of Galimberti et al. (2021, Sec. 2.3; Chang et al. 2018), whose column
    form `y_{j+1} = y_j + h K_{j,1}' tanh(K_{j,1} z_j + b_{j,1})`,
    `z_{j+1} = z_j - h K_{j,2}' tanh(K_{j,2} y_{j+1} + b_{j,2})` is, in rows,
    `Y += h tanh(Z W1 + b1) W1^T`, `Z -= h tanh(Y W2 + b2) W2^T` with `W1 = K_{j,1}'` stored at
    index 1 and `W2 = K_{j,2}'` at index 0 (biases `(2, n)` alike): `nf^2/2 + nf` weights.

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
        scale, bias, offset = theta.get("norm_scale"), theta.get("norm_bias"), theta.get("bias")
        return self.symmetric(
            theta["kernel"][index],
            y,
            None if scale is None else scale[index],
            None if bias is None else bias[index],
            None if offset is None else offset[index],
        )

    def momentum_rate(self, theta, y):
        return self._layer(theta, 0, y)

    def position_rate(self, theta, z):
        return -self._layer(theta, 1, z)


# === Galimberti, Xu & Ferrari Trecate 2021: Hamiltonian DNNs ===


def interconnection_matrix(name, channels, dtype="float64"):
    """The skew-symmetric interconnection `J` (Galimberti et al. 2021, Eq. 11) as a numpy array.

    `"J1"`: `[[0, I], [-I, 0]]` with `I` of size `channels / 2` (needs `channels` even).
    `"J2"`: `J_ik = +1` for `k > i`, `-1` for `k < i`, `0` on the diagonal (any `channels`).
    """
    if name not in INTERCONNECTIONS:
        raise ValueError(f"`J` must be one of {INTERCONNECTIONS}; Received: J={name!r}")
    n = int(channels)
    if name == "J1":
        if n % 2:
            raise ValueError(
                f"J1 = [[0, I], [-I, 0]] needs an even number of channels; Received: channels={n}"
            )
        half = n // 2
        eye, zero = np.eye(half), np.zeros((half, half))
        return np.block([[zero, eye], [-eye, zero]]).astype(dtype)
    return (np.triu(np.ones((n, n)), 1) - np.tril(np.ones((n, n)), -1)).astype(dtype)


@_register
class HDNNLayer(Dynamics):
    """`F(theta, Y) = tanh(Y K + b) K^T J^T`: the H-DNN of Galimberti et al. (2021, Eqs. 8-11).

    The paper's column form is `ydot = J K' tanh(K y + b)`, the gradient flow of the
    time-varying Hamiltonian `H(y, t) = sum_i log cosh((K(t) y + b(t))_i)` (Eq. 8) under a
    skew-symmetric interconnection `J = -J'` (Eq. 7): `dH/dy = K' tanh(K y + b)` (Eq. 9). With
    rows as examples the kernel stored here is the paper's `K'` (the operator computes `Y K`,
    which is the paper's `K y`), and `J` acts on the channel axis from the right as `J^T`.
    Forward Euler on it is Eq. 11, `Y_{j+1} = Y_j + h tanh(Y_j K_j + b_j) K_j^T J^T`: the
    H1-DNN with `J = J1 = [[0, I], [-I, 0]]` and the H2-DNN with `J = J2` (ones above the
    diagonal, minus ones below), `nf^2 + nf` weights per step (square `K`, vector `b`).

    The Jacobian in the paper's layout (Eq. 16) is `K' D K J'` with `D = diag(tanh'(K y + b))`;
    its eigenvalues are purely imaginary (Lemma 3), so a forward-Euler step has Jacobian
    eigenvalues `1 + i h w` and `||dY_N/dY_j||_2 >= 1` for any weights (notes, 2.7(2)).

    With a convolution operator `K` is a 3x3 (or `kernel_size`) convolution and `K^T` its exact
    adjoint; `Conv2DOperator(kernel_size=1)` gives the per-pixel block of the authors' MNIST code.
    `J` always mixes channels pixel by pixel.

    Args:
        J: `"J1"` (default; needs an even width) or `"J2"`.
        operator: `Operator` or name. Defaults to `"dense"`.
        parametrization: of `K`. Defaults to `"free"` (the paper).
        activation: defaults to `"tanh"`; only `tanh` makes `F` the Hamiltonian vector field of
            the log-cosh energy (`hamiltonian`).
        bias: `"vector"` (default, the paper), `"scalar"` or `"none"`.
    """

    def __init__(self, J="J1", operator="dense", parametrization="free", activation="tanh",
                 bias="vector"):
        if J not in INTERCONNECTIONS:
            raise ValueError(f"`J` must be one of {INTERCONNECTIONS}; Received: J={J!r}")
        if bias == "per_stream":
            raise ValueError("HDNNLayer has one stream; Received: bias='per_stream'")
        super().__init__(operator, parametrization, activation, bias)
        self.J = J

    def get_config(self):
        return {"J": self.J, **super().get_config()}

    def weight_shapes(self, channels, momentum_channels=None):
        interconnection_matrix(self.J, channels)  # validates the width for J1
        return super().weight_shapes(channels, momentum_channels)

    def interconnect(self, v):
        """`v J^T` on the channel axis (the paper's `J v`)."""
        j = interconnection_matrix(self.J, v.shape[-1], dtype="float64")
        return ops.matmul(v, ops.convert_to_tensor(j.T, dtype=v.dtype))

    def hamiltonian_gradient(self, theta, y):
        """`dH/dY = tanh(Y K + b) K^T` (the paper's `K' tanh(K y + b)`, Eq. 9)."""
        return self._linear_adjoint(theta, self._sigma(self._add_bias(self._linear(theta, y), theta)))

    def hamiltonian(self, theta, y):
        """`H = sum log cosh(Y K + b)` per example (Eq. 8), summed over all but the batch axis."""
        a = self._add_bias(self._linear(theta, y), theta)
        a = ops.abs(a)
        log_cosh = a + ops.log1p(ops.exp(-2.0 * a)) - math.log(2.0)
        return ops.sum(ops.reshape(log_cosh, (ops.shape(log_cosh)[0], -1)), axis=-1)

    def __call__(self, theta, y):
        return self.interconnect(self.hamiltonian_gradient(theta, y))
