"""Linear operators `K` with their exact adjoints, and parametrisations of their weights.

Convention (DESIGN.md section 4): rows are examples. A dense state is `(batch, n)` and the
operator acts as `Y @ K` with `K` of shape `(n_in, n_out)`; this is the column form `K^T y`
of the papers, so a paper's `K` appears here transposed (eigenvalues are unchanged). An image
state is `(batch, H, W, C)` and the operator is a 3x3 cross-correlation (stride 1, zero "same"
padding) with kernel `(3, 3, c_in, c_out)`.

All kernel functions accept a leading stack axis, e.g. the `(N, ...)` per-step weights of a
block, so the effective kernels of all `N` steps are formed in one vectorised op before the
depth scan (and can be folded to constants for export).

Parametrisations map raw trainable variables to the kernel the operator applies:

- `Free`: `K = W`.
- `Antisymmetric(gamma)`: `K = (W - W^T - gamma I) / 2` (Haber & Ruthotto 2017, Eq. 4.12),
  where `W^T` is the operator adjoint (for convolutions: kernel flipped in space, channel axes
  swapped) and `I` the identity operator. Then `K + K^T = -gamma I` exactly.
- `NegativeSemidefinite`: the operator `-C^T C` (H&R 2017, Eq. 4.14). It is applied as two
  operator calls, because for a zero-padded convolution `C^T C` is not a single 3x3 (or even
  exact 5x5) convolution at the image border; its effective kernel is therefore the factor `C`.
"""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
from keras import ops

__all__ = [
    "Operator",
    "DenseOperator",
    "Conv2DOperator",
    "Parametrization",
    "Free",
    "Antisymmetric",
    "NegativeSemidefinite",
    "SkewSymmetric",
    "get_operator",
    "get_parametrization",
    "DEFAULT_GAMMA",
]

# Haber & Ruthotto never state gamma. Meganet's getDenseAntiSym uses a shift of 1e-4 on the
# (unhalved) matrix; we default to a slightly larger 0.01 so that forward Euler satisfies
# Lemma 1 (|1 + h(i w - gamma/2)| <= 1) for h*|w| up to ~0.1.
DEFAULT_GAMMA = 0.01


def _register(cls):
    return keras.saving.register_keras_serializable(package="stable_zoo")(cls)


class _AxisMember:
    """Small serialisable value object (one member of one axis of DESIGN.md section 1)."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Operator(_AxisMember):
    """A linear map acting on the last axis (dense) or on images (conv), with its adjoint."""

    state_rank: int  # rank of the state tensor including the batch axis

    def kernel_shape(self, in_channels, out_channels):
        raise NotImplementedError

    def apply(self, kernel, x):
        raise NotImplementedError

    def adjoint(self, kernel, z):
        raise NotImplementedError

    def adjoint_kernel(self, kernel):
        """Kernel `K^T` such that `apply(adjoint_kernel(K), z) == adjoint(K, z)`."""
        raise NotImplementedError

    def identity_kernel(self, channels, dtype="float32"):
        raise NotImplementedError

    def validate_state_shape(self, shape, channels=None, name="inputs"):
        shape = tuple(shape)
        if len(shape) != self.state_rank:
            raise ValueError(
                f"{type(self).__name__} expects `{name}` of rank {self.state_rank} "
                f"({self._layout}); Received: {name}.shape={shape}"
            )
        if channels is not None and shape[-1] is not None and shape[-1] != channels:
            raise ValueError(
                f"Expected `{name}` with {channels} channels (last axis); "
                f"Received: {name}.shape={shape}"
            )


@_register
class DenseOperator(Operator):
    """Dense matrix `x -> x @ K` on `(batch, n_in)` with `K` of shape `(n_in, n_out)`."""

    state_rank = 2
    _layout = "batch, features"

    def kernel_shape(self, in_channels, out_channels):
        return (in_channels, out_channels)

    def apply(self, kernel, x):
        return ops.matmul(x, kernel)

    def adjoint(self, kernel, z):
        return ops.matmul(z, ops.swapaxes(kernel, -1, -2))

    def adjoint_kernel(self, kernel):
        return ops.swapaxes(kernel, -1, -2)

    def identity_kernel(self, channels, dtype="float32"):
        return ops.eye(channels, dtype=dtype)


@_register
class Conv2DOperator(Operator):
    """3x3 convolution (cross-correlation, stride 1, zero "same" padding), channels last.

    The adjoint of a stride-1 "same" cross-correlation with an odd kernel is the same kind of
    cross-correlation with the kernel flipped in both spatial axes and its channel axes swapped
    (the transposed convolution, written as a plain convolution so it exports as one Conv op).
    """

    state_rank = 4
    _layout = "batch, height, width, channels"

    def __init__(self, kernel_size=3):
        if kernel_size not in (1, 3, 5, 7):
            raise ValueError(
                f"`kernel_size` must be an odd size in (1, 3, 5, 7); Received: kernel_size={kernel_size}"
            )
        self.kernel_size = kernel_size

    def get_config(self):
        return {"kernel_size": self.kernel_size}

    def kernel_shape(self, in_channels, out_channels):
        return (self.kernel_size, self.kernel_size, in_channels, out_channels)

    def apply(self, kernel, x):
        return ops.conv(x, kernel, strides=1, padding="same", data_format="channels_last")

    def adjoint(self, kernel, z):
        return self.apply(self.adjoint_kernel(kernel), z)

    def adjoint_kernel(self, kernel):
        flipped = ops.flip(ops.flip(kernel, axis=-4), axis=-3)
        return ops.swapaxes(flipped, -1, -2)

    def identity_kernel(self, channels, dtype="float32"):
        k = self.kernel_size
        centre = ops.reshape(
            ops.one_hot(k * k // 2, k * k, dtype=dtype), (k, k, 1, 1)
        )
        return centre * ops.reshape(ops.eye(channels, dtype=dtype), (1, 1, channels, channels))


class Parametrization(_AxisMember):
    """Maps raw variables to the effective kernel and applies the resulting operator."""

    requires_square = False

    def effective_kernel(self, operator, raw):
        return raw

    def apply(self, operator, kernel, x):
        return operator.apply(kernel, x)

    def adjoint(self, operator, kernel, z):
        return operator.adjoint(kernel, z)


@_register
class Free(Parametrization):
    """Unconstrained kernel `K = W`."""


@_register
class Antisymmetric(Parametrization):
    """`K = (W - W^T - gamma I) / 2`, so `K + K^T = -gamma I` (H&R 2017, Eq. 4.12).

    Args:
        gamma: float >= 0. Diffusion shift that makes forward Euler stable (Lemma 1).
            The paper gives no value; defaults to `DEFAULT_GAMMA` (0.01).
    """

    requires_square = True

    def __init__(self, gamma=DEFAULT_GAMMA):
        gamma = float(gamma)
        if gamma < 0:
            raise ValueError(f"`gamma` must be >= 0; Received: gamma={gamma}")
        self.gamma = gamma

    def get_config(self):
        return {"gamma": self.gamma}

    def effective_kernel(self, operator, raw):
        skew = raw - operator.adjoint_kernel(raw)
        if self.gamma == 0.0:
            return 0.5 * skew
        eye = operator.identity_kernel(raw.shape[-1], dtype=raw.dtype)
        return 0.5 * (skew - self.gamma * eye)


@_register
class NegativeSemidefinite(Parametrization):
    """The operator `-C^T C` (H&R 2017, Eq. 4.14); symmetric with eigenvalues <= 0.

    The effective kernel is the factor `C`; `apply` and `adjoint` (equal) run `-C^T (C x)`.
    """

    requires_square = True

    def apply(self, operator, kernel, x):
        return -operator.adjoint(kernel, operator.apply(kernel, x))

    def adjoint(self, operator, kernel, z):
        return self.apply(operator, kernel, z)


_OPERATORS = {"dense": DenseOperator, "conv": Conv2DOperator, "conv3x3": Conv2DOperator}
_PARAMETRIZATIONS = {
    "free": Free,
    "antisymmetric": Antisymmetric,
    "negative_semidefinite": NegativeSemidefinite,
}


def _resolve(value, table, base, what):
    if isinstance(value, base):
        return value
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    if isinstance(value, str) and value in table:
        return table[value]()
    raise ValueError(f"Unknown {what} {value!r}; expected one of {sorted(table)} or a {base.__name__}")


def get_operator(value):
    """`"dense"`, `"conv"` (3x3), an `Operator`, or its serialised config."""
    return _resolve(value, _OPERATORS, Operator, "operator")


def get_parametrization(value):
    """`"free"`, `"antisymmetric"`, `"negative_semidefinite"`, a `Parametrization` or config."""
    return _resolve(value, _PARAMETRIZATIONS, Parametrization, "parametrization")


@_register
class SkewSymmetric(Parametrization):
    """`K = -K^T` stored as its free entries only: `n (n - 1) / 2` weights for a dense `n x n`.

    The MS2-DNN of Galimberti et al. (2021, Sec. 2.3) has skew-symmetric `K_j` and counts
    `(nf^2 + nf) / 2` weights per layer (Table 1), i.e. the free skew entries plus the bias:
    `Antisymmetric(gamma=0)`, `(W - W^T) / 2`, spends `n^2` raw weights on the same matrices.
    The raw variable is a vector `theta` of the free entries: for every pair of kernel entries
    that the operator adjoint swaps (`i < sigma(i)`), `K[i] = theta_k` and `K[sigma(i)] =
    -theta_k`; entries the adjoint maps to themselves (the diagonal; for a convolution the
    centre tap's channel diagonal) are 0. Works for any operator whose adjoint kernel is a
    permutation of the entries (dense: transpose; convolution: spatial flip and channel swap),
    so `K + K^T = 0` holds exactly. No `gamma` shift (MS2 has none).
    """

    requires_square = True

    def _layout(self, operator, kernel_shape):
        """`(take, sign)`: flat kernel entry m is `sign[m] * [theta, 0][take[m]]`."""
        size = math.prod(kernel_shape)
        index = np.arange(size, dtype="int64").reshape(kernel_shape)
        # The adjoint's entry permutation, read off by applying it to the entry numbers. It is a
        # constant: compute it eagerly even when called while tracing a graph.
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.init_scope():
                partner = np.asarray(operator.adjoint_kernel(tf.constant(index)))
        else:
            partner = ops.convert_to_numpy(operator.adjoint_kernel(ops.convert_to_tensor(index)))
        partner = partner.reshape(-1)
        free = np.flatnonzero(np.arange(size) < partner)
        take = np.full(size, len(free), dtype="int64")  # the appended zero
        sign = np.zeros(size)
        take[free], sign[free] = np.arange(len(free)), 1.0
        take[partner[free]], sign[partner[free]] = np.arange(len(free)), -1.0
        return take, sign

    def raw_shape(self, operator, kernel_shape):
        take, _ = self._layout(operator, kernel_shape)
        return (int(take.max()),)

    def _kernel_shape(self, operator, num_free):
        for channels in itertools.count(1):
            shape = operator.kernel_shape(channels, channels)
            if self.raw_shape(operator, shape)[0] >= num_free:
                if self.raw_shape(operator, shape)[0] != num_free:
                    raise ValueError(
                        f"{num_free} free entries fit no square {type(operator).__name__} kernel"
                    )
                return shape

    def effective_kernel(self, operator, raw):
        raw = ops.convert_to_tensor(raw)
        shape = self._kernel_shape(operator, raw.shape[-1])
        take, sign = self._layout(operator, shape)
        padded = ops.concatenate([raw, ops.zeros_like(raw[..., :1])], axis=-1)
        flat = ops.take(padded, take, axis=-1) * ops.convert_to_tensor(sign, dtype=raw.dtype)
        return ops.reshape(flat, (*raw.shape[:-1], *shape))
