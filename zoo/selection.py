"""Liu & Markowich selection dynamics: residual networks as an integro-differential equation in width.

The forward PDE (Liu & Markowich 2020, Eq. 2.8) on the neuron-label set `Y = (0, |Y|)`::

    d_t f(y, t) = sigma( a(y, t) - int_Y b(y, z, t) f(z, t) dz ),    f(y, 0) = f_I(y)

is discretised with `M` cells `Y_j` of volume `w_j` (the quadrature weights; uniform
`w_j = |Y| / M` unless `cell_weights` is given) and forward Euler in depth, `tau = T / N`
(the "fully discrete scheme" of the notes, Sec. 4; Eqs. 2.1, 2.6-2.7)::

    (B_k f)_i  = sum_j b_k(y_i, y_j) w_j f_j                   (cell quadrature)
    f_{k+1}    = f_k + tau * sigma( a_k - B_k f_k ),  k = 0..N-1   (Z1)

Rows are examples: the state is `(batch, M)` and the layer computes
`f_{k+1} = f_k + tau sigma(a_k - f_k @ (b_k * w)^T)`. The paper keeps the sign `a - B f`:
relative to a `Dense` layer `x @ W + bias` acting on the cell values, `W = -B^T`
(column form `B = -W'`) and `bias = a`. A width-`M` Dense ResNet with matrices `B_k` is exactly
Z1 with kernel values `b_ij = B^{ij} / w_j` (Eq. 2.4b; test E2).

Kernel parametrisations (`kernel=`, Z4 of the notes). The raw variables are kernel *values*
(functions on `Y x Y`, `O(1)` as assumption (A_3) requires), not operator entries:

| `kernel`                    | kernel function `b`                    | operator `B` on `L^2_w(Y)`          |
|-----------------------------|----------------------------------------|-------------------------------------|
| `"free"`                    | `b = K`                                | any                                 |
| `"psd"`                     | `b = G diag(w) G^T` (`int g g dz`)     | `B = G G^*`: self-adjoint, `>= 0`   |
| `"positive_symmetric_part"` | `b = G diag(w) G^T + (K - K^T)`        | `B_s >= 0` (Thm 3.2, Prop. 3.5)     |
| `"antisymmetric"`           | `b = K - K^T`                          | `B^* = -B`: conserves `int Sigma(u)`|

`B^*` is the adjoint in the quadrature inner product `(f, g)_w = sum_i w_i f_i g_i`,
`(B^* g)_j = sum_i b_ij w_i g_i`. The `diag(w)` inside the Gram form makes `"psd"` the
quadrature of `int_Y g(y, s) g(z, s) ds`, so the kernel, and hence the network, is unchanged by
width prolongation (`prolongate_width`).

Members:

- `SelectionBlock` (Z1): per-step kernel values `b_k` `(N, M, M)` and biases `a_k` `(N, M)`.
- `ParabolicSelectionBlock` (Z5, Sec. 3.5 / [54]): `f_{k+1} = f_k + tau B_k^* sigma(a_k - B_k f_k)`,
  non-expansive in `||.||_w` when `tau Lip(sigma) ||B_k||^2 <= 2`.
- `ContinuousSelectionBlock` (Z2): `a_theta(y, t)` and `b_theta(y, z, t)` are smooth functions
  (a cosine basis in `y, z`, piecewise linear in `t`) sampled on a uniform grid of any width.
- Width-independent lifting and readout (Eq. 2.9): `CellLifting` + `QuadratureReadout` for Z1,
  `FunctionLifting` + `BasisReadout` for Z2.
- `prolongate_width(model, factor)`: Z1 at `M -> factor M` cells, exactly the same network (E2).
- `at_width(model, width)`: a Z2 model sampled on another grid, same `theta`.

Reference: H. Liu, P. Markowich, "Selection dynamics for deep neural networks", J. Differential
Equations 269(12), 11540-11574 (2020), arXiv:1905.09076.
"""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
from keras import ops

from zoo.blocks import _check_depth_and_time
from zoo.depth_loop import fold_steps
from zoo.initializers import StepwiseGlorotUniform

__all__ = [
    "KERNELS",
    "LIFTING_METHODS",
    "BasisReadout",
    "CellLifting",
    "ContinuousSelectionBlock",
    "FunctionLifting",
    "ParabolicSelectionBlock",
    "QuadratureReadout",
    "SelectionBlock",
    "at_width",
    "cosine_basis",
    "kernel_values",
    "prolongate_width",
]

KERNELS = ("free", "psd", "positive_symmetric_part", "antisymmetric")
LIFTING_METHODS = ("basis", "interpolate")


def _register(cls):
    return keras.saving.register_keras_serializable(package="stable_zoo")(cls)


def _check_kernel(kernel):
    if kernel not in KERNELS:
        raise ValueError(f"`kernel` must be one of {KERNELS}; Received: kernel={kernel!r}")


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1; Received: {name}={value!r}")
    return int(value)


def _check_factor(factor):
    return _check_positive_int(factor, "factor")


def kernel_values(kernel, raw, skew=None, weights=None):
    """Kernel values `b` from raw variables (any leading axes), per `KERNELS`.

    `weights` are the inner quadrature weights of the Gram form `G diag(w) G^T` (None: an
    orthonormal coefficient basis, `G G^T`).
    """
    _check_kernel(kernel)
    if kernel == "free":
        return raw
    if kernel == "antisymmetric":
        return raw - ops.swapaxes(raw, -1, -2)
    weighted = raw if weights is None else raw * weights
    gram = ops.matmul(weighted, ops.swapaxes(raw, -1, -2))
    if kernel == "psd":
        return gram
    return gram + skew - ops.swapaxes(skew, -1, -2)


def cosine_basis(modes, width):
    """`phi_p(y_i)`, `(modes, width)`: `1, sqrt(2) cos(p pi y)` at cell centres `y_i = (i + 1/2) / M`.

    Orthonormal in `L^2(0, 1)`, and exactly orthonormal under the midpoint rule for
    `modes <= width` (DCT-II), so `phi diag(w) phi^T = I` on every admissible grid.
    """
    y = (np.arange(width) + 0.5) / width
    p = np.arange(modes)[:, None]
    return np.where(p == 0, 1.0, np.sqrt(2.0) * np.cos(np.pi * p * y))


def _hat_weights(times, nodes):
    """`(len(times), len(nodes))` piecewise-linear interpolation weights (constant for 1 node)."""
    if len(nodes) == 1:
        return np.ones((len(times), 1))
    eye = np.eye(len(nodes))
    return np.stack([np.interp(times, nodes, eye[j]) for j in range(len(nodes))], axis=1)


def _repeat_axes(value, axes, factor):
    for axis in axes:
        value = np.repeat(value, factor, axis=axis)
    return value


class _WidthRefinable:
    """Layers on the `M` cells that `prolongate_width` knows how to refine (piecewise constant)."""

    _width_axes: ClassVar[dict] = {}  # weight name -> axes of length M

    def refined_config(self, factor):
        config = self.get_config()
        if config.get("cell_weights") is not None:
            w = np.asarray(config["cell_weights"], dtype="float64")
            config["cell_weights"] = (np.repeat(w, factor) / factor).tolist()
        return config

    def refined_weights(self, factor):
        return [
            _repeat_axes(ops.convert_to_numpy(v), self._width_axes.get(v.name, ()), factor)
            for v in self.weights
        ]


class _CellGrid:
    """Quadrature weights of `M` cells: `cell_weights`, or uniform `volume / M`."""

    def _init_grid(self, cell_weights, volume):
        volume = float(volume)
        if not volume > 0:
            raise ValueError(f"`volume` (|Y|) must be > 0; Received: volume={volume!r}")
        if cell_weights is not None:
            cell_weights = [float(v) for v in np.ravel(cell_weights)]
            if not cell_weights or min(cell_weights) <= 0:
                raise ValueError(
                    f"`cell_weights` must be positive cell volumes; Received: cell_weights={cell_weights!r}"
                )
        self.cell_weights = cell_weights
        self.volume = volume

    def _grid_weights(self, width):
        if self.cell_weights is None:
            return np.full(width, self.volume / width)
        if len(self.cell_weights) != width:
            raise ValueError(
                f"`cell_weights` has {len(self.cell_weights)} entries but the input has {width} "
                "cells (last axis)"
            )
        return np.asarray(self.cell_weights)


class _SelectionBase(keras.layers.Layer):
    """Depth loop shared by the Z1, Z5 and Z2 blocks; subclasses give `a`, `b` and `w` on the grid."""

    _parabolic = False

    def __init__(self, depth, T, kernel="free", activation="tanh", **kwargs):
        super().__init__(**kwargs)
        _check_depth_and_time(depth, T)
        _check_kernel(kernel)
        # === Config ===
        self.depth = depth
        self.T = float(T)
        self.kernel = kernel
        self.activation = activation
        self._sigma = keras.activations.get(activation)

    @property
    def tau(self):
        return self.T / self.depth

    h = tau  # the name `ODEBlock` uses

    def _check_input(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects `inputs` of shape (batch, M) with M known; "
                f"Received: inputs.shape={tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(ndim=2, axes={-1: input_shape[-1]})
        return int(input_shape[-1])

    # === Forward ===
    @property
    def quadrature(self):
        """Cell weights `w` (numpy, `(M,)`)."""
        return self._w

    def effective_weights(self):
        """`{"a": (N, M), "b": (N, M, M)}`: bias and kernel function values on the grid."""
        raise NotImplementedError

    def _step_weights(self):
        theta = self.effective_weights()
        w = ops.convert_to_tensor(self._w, dtype=self.compute_dtype)
        b = theta["b"]
        # Row form of (B f)_i = sum_j b_ij w_j f_j: f @ (b * w)^T.
        weights = {"a": theta["a"], "kernel": ops.swapaxes(b * w, -1, -2)}
        if self._parabolic:  # (B^* g)_j = sum_i b_ij w_i g_i: g @ (w[:, None] * b)
            weights["adjoint"] = b * w[:, None]
        return weights

    def _step(self, state, theta):
        (f,) = state
        rate = self._sigma(theta["a"] - ops.matmul(f, theta["kernel"]))
        if self._parabolic:
            rate = ops.matmul(rate, theta["adjoint"])
        return (f + self.tau * rate,)

    def call(self, inputs):
        (f,) = fold_steps(self._step, (inputs,), self._step_weights())
        return f

    def trajectory(self, inputs):
        """States `f_0 .. f_N` stacked on a leading axis, `(N + 1, batch, M)`."""
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        _, (states,) = fold_steps(self._step, (inputs,), self._step_weights(), return_states=True)
        return ops.concatenate([inputs[None], states], axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def _add_stacked(self, name, shape, initializer, regularizer):
        return self.add_weight(name=name, shape=shape, initializer=initializer, regularizer=regularizer)

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "T": self.T,
            "kernel": self.kernel,
            "activation": self.activation,
        }


@_register
class SelectionBlock(_WidthRefinable, _CellGrid, _SelectionBase):
    """Z1: `N` forward-Euler steps of the selection dynamics on `M` cells (L&M 2020, Eqs. 2.6-2.8).

    `f_{k+1} = f_k + tau sigma(a_k - B_k f_k)`, `(B_k f)_i = sum_j b_k(y_i, y_j) w_j f_j`,
    `tau = T / N`; in rows-are-examples form `f + tau sigma(a_k - f @ (b_k * w)^T)`, so a Dense
    kernel `W` corresponds to `B = -W'` (see the module docstring).

    Args:
        depth: int >= 1. Number of steps `N`.
        T: float > 0. Final time (depth of the continuum network); `tau = T / N`.
        kernel: one of `KERNELS`. Parametrisation of the kernel values `b_k`. Defaults to `"free"`.
        activation: activation name. Defaults to `"tanh"`.
        cell_weights: sequence of `M` positive floats (cell volumes `|Y_j|`) or None: uniform
            `volume / M`. Defaults to None.
        volume: float > 0. `|Y|` for uniform cells. Defaults to `1.0` (`Y = (0, 1)`).
        kernel_initializer: for the raw `(N, M, M)` variables (`K`, `G`, and `skew`). Defaults
            to `RandomUniform(-1, 1)`: `O(1)` kernel values at every width, assumption (A_3).
        bias_initializer: for `a` `(N, M)`. Defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer: regularisers of the stacked weights (e.g. the
            Tikhonov term of Eq. 4.6). Default None.

    Weights: `kernel` `(N, M, M)` (`K` for `"free"`/`"antisymmetric"`, `G` for the Gram forms),
    `skew` `(N, M, M)` (`"positive_symmetric_part"` only), `bias` `(N, M)` (`a`).

    Input shape: `(batch, M)`, the cell values of `f_I`. Output shape: same, `f_N`.
    """

    _width_axes: ClassVar[dict] = {"kernel": (1, 2), "skew": (1, 2), "bias": (1,)}

    def __init__(
        self,
        depth,
        T,
        kernel="free",
        activation="tanh",
        cell_weights=None,
        volume=1.0,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(depth, T, kernel, activation, **kwargs)
        self._init_grid(cell_weights, volume)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else keras.initializers.RandomUniform(-1.0, 1.0)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        m = self._check_input(input_shape)
        self._w = self._grid_weights(m)
        n = self.depth
        self.kernel_raw = self._add_stacked(
            "kernel", (n, m, m), self.kernel_initializer, self.kernel_regularizer
        )
        self.skew = None
        if self.kernel == "positive_symmetric_part":
            self.skew = self._add_stacked(
                "skew", (n, m, m), self.kernel_initializer, self.kernel_regularizer
            )
        self.bias = self._add_stacked("bias", (n, m), self.bias_initializer, self.bias_regularizer)

    def effective_weights(self):
        w = ops.convert_to_tensor(self._w, dtype=self.compute_dtype)
        skew = None if self.skew is None else ops.convert_to_tensor(self.skew)
        b = kernel_values(self.kernel, ops.convert_to_tensor(self.kernel_raw), skew, w)
        return {"a": ops.convert_to_tensor(self.bias), "b": b}

    def prolongated(self, factor=2):
        """A new built block on `factor M` cells computing the same network (piecewise constant).

        Every cell is split into `factor` cells of volume `w_j / factor`; `a`, `K`, `G` are
        copied onto the sub-cells. The kernel values `b` are then copied too, so every operator
        entry is divided by `factor` and `B' P = P B` for the piecewise-constant injection `P`:
        the refined block maps `P f_I` to `P f_N` (Eqs. 2.4-2.5).
        """
        factor = _check_factor(factor)
        if not self.built:
            raise ValueError("Build the block (call it once) before prolongating it")
        new = type(self).from_config(self.refined_config(factor))
        new.build((None, factor * len(self._w)))
        new.set_weights(self.refined_weights(factor))
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "cell_weights": self.cell_weights,
            "volume": self.volume,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


@_register
class ParabolicSelectionBlock(SelectionBlock):
    """Z5: `f_{k+1} = f_k + tau B_k^* sigma(a_k - B_k f_k)` (L&M 2020, Sec. 3.5, from [54]).

    `B^*` is the adjoint in `(f, g)_w`, `(B^* g)_j = sum_i b_ij w_i g_i`. For non-decreasing
    `sigma` the flow is contractive in `L^2(Y)` (the paper prints "sigma' <= 0"; the condition
    is `sigma' >= 0`), and forward Euler is non-expansive in `||.||_w` when
    `tau Lip(sigma) ||B_k||^2 <= 2` (E13). With `B = -K` it is the parabolic layer
    `-K^T sigma(K Y + b)` of Ruthotto & Haber. Args, weights and shapes as `SelectionBlock`.
    """

    _parabolic = True


@_register
class ContinuousSelectionBlock(_SelectionBase):
    """Z2: selection dynamics with smooth `a_theta(y, t)`, `b_theta(y, z, t)` sampled on any grid.

    On `Y = (0, 1)` with a cosine basis `phi_p` (`cosine_basis`, `P = modes`) and `n_t = time_nodes`
    equispaced times `s_l` on `[0, T]`::

        a_theta(y, t)    = sum_p alpha_p(t) phi_p(y)
        b_theta(y, z, t) = sum_{p,q} phi_p(y) C_pq(t) phi_q(z)

    with `alpha(t)`, `C(t)` piecewise linear in `t` between the nodes (as `a^tau(t)`, `B^tau(t)` of
    L&M Sec. 2.1; one node: autonomous), and `C` = `K`, `G G^T`, `G G^T + (K - K^T)` or `K - K^T`
    per `kernel`. The step is Z1 on the uniform midpoint grid `y_i = (i + 1/2) / M`, `w_i = 1/M`,
    at the times `t_k = k tau`, with `b_k(i, j) = b_theta(y_i, y_j, t_k)`. `M` is taken from the
    input shape, so the same `theta` runs at any width `M >= modes` (`with_width`).

    Why a basis rather than an MLP in `(y, z, t)`: the Z4 constraints hold exactly for the
    function, not only on one grid (`G G^T >= 0` gives `int int b f f >= 0` for every `f`;
    `K - K^T` an antisymmetric kernel), the kernel is smooth by construction with its
    resolution stated by one number, and sampling is three matmuls that XLA and exporters handle.
    The kernel has rank `<= modes` (the finite-rank setting of L&M Theorem 3.4): `B f` sees only
    the `modes` quadrature coefficients `(f, phi_p)_w`, and all `y`-dependence is smooth with
    vanishing odd derivatives at `y = 0, 1`, so the midpoint rule converges fast in `M` (E3) and
    the network is nearly width-independent once `M` is a few times `modes`.

    Args:
        depth: int >= 1. Number of steps `N`.
        T: float > 0. Final time; `tau = T / N`.
        modes: int >= 1. Number of cosine modes `P` in `y` (and `z`). Defaults to `8`.
        time_nodes: int >= 1. Interpolation nodes in `t`. Defaults to `4`.
        kernel: one of `KERNELS`, applied to the `(P, P)` coefficient matrices. Defaults to `"free"`.
        activation: activation name. Defaults to `"tanh"`.
        kernel_initializer: for the raw `(n_t, P, P)` coefficients. Defaults to
            `StepwiseGlorotUniform(constant_in_time=True)` (`||C|| = O(1)`, autonomous at init).
        bias_initializer: for `alpha` `(n_t, P)`. Defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer: Default None.

    Input shape: `(batch, M)` with `M >= modes`. Output shape: same.
    """

    def __init__(
        self,
        depth,
        T,
        modes=8,
        time_nodes=4,
        kernel="free",
        activation="tanh",
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(depth, T, kernel, activation, **kwargs)
        self.modes = _check_positive_int(modes, "modes")
        self.time_nodes = _check_positive_int(time_nodes, "time_nodes")
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else StepwiseGlorotUniform(constant_in_time=True)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        m = self._check_input(input_shape)
        if m < self.modes:
            raise ValueError(
                f"The grid must resolve the basis: width M >= modes ({self.modes}); "
                f"Received: inputs with M={m} cells"
            )
        self._w = np.full(m, 1.0 / m)
        self._phi = cosine_basis(self.modes, m)
        nodes = np.linspace(0.0, self.T, self.time_nodes)
        self._interp = _hat_weights(np.arange(self.depth) * self.tau, nodes)
        shape = (self.time_nodes, self.modes, self.modes)
        self.kernel_raw = self._add_stacked(
            "kernel", shape, self.kernel_initializer, self.kernel_regularizer
        )
        self.skew = None
        if self.kernel == "positive_symmetric_part":
            self.skew = self._add_stacked(
                "skew", shape, self.kernel_initializer, self.kernel_regularizer
            )
        self.bias = self._add_stacked(
            "bias", (self.time_nodes, self.modes), self.bias_initializer, self.bias_regularizer
        )

    def coefficients(self):
        """`{"alpha": (N, P), "C": (N, P, P)}`: the basis coefficients at the step times `t_k`."""
        skew = None if self.skew is None else ops.convert_to_tensor(self.skew)
        c_nodes = kernel_values(self.kernel, ops.convert_to_tensor(self.kernel_raw), skew)
        interp = ops.convert_to_tensor(self._interp, dtype=self.compute_dtype)
        p = self.modes
        c = ops.matmul(interp, ops.reshape(c_nodes, (self.time_nodes, p * p)))
        alpha = ops.matmul(interp, ops.convert_to_tensor(self.bias))
        return {"alpha": alpha, "C": ops.reshape(c, (self.depth, p, p))}

    def effective_weights(self):
        coeffs = self.coefficients()
        phi = ops.convert_to_tensor(self._phi, dtype=self.compute_dtype)
        b = ops.matmul(ops.matmul(ops.transpose(phi), coeffs["C"]), phi)
        return {"a": ops.matmul(coeffs["alpha"], phi), "b": b}

    def with_width(self, width):
        """A new block with the same `theta` (copied), built on `width` cells."""
        if not self.built:
            raise ValueError("Build the block (call it once) before resampling it")
        new = type(self).from_config(self.get_config())
        new.build((None, int(width)))
        new.set_weights(self.get_weights())
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "modes": self.modes,
            "time_nodes": self.time_nodes,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


# === Lifting and readout ===


@_register
class CellLifting(_WidthRefinable, keras.layers.Layer):
    """Z1 input lifting: `f_I(y_j) = (x L + l)_j`, one learned value per cell (a Dense `d -> M`).

    The paper leaves the lifting open (notes Sec. 6.1). Prolongation copies each cell's column
    onto its sub-cells, so the lifted function is unchanged.

    Args:
        width: int >= 1. Number of cells `M`.
        kernel_initializer: Defaults to `RandomUniform(-1, 1)` (`O(1)` values at every width).
        bias_initializer: Defaults to `"zeros"`.

    Input shape: `(batch, d)`. Output shape: `(batch, M)`.
    """

    _width_axes: ClassVar[dict] = {"kernel": (1,), "bias": (0,)}

    def __init__(self, width, kernel_initializer=None, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.width = _check_positive_int(width, "width")
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else keras.initializers.RandomUniform(-1.0, 1.0)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        d = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(d, self.width), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.width,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.width)

    def refined_config(self, factor):
        return {**self.get_config(), "width": self.width * factor}

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@_register
class QuadratureReadout(_WidthRefinable, _CellGrid, keras.layers.Layer):
    """Z1 readout (L&M Eq. 2.9 by cell quadrature): `O_c = sum_j W_c(y_j) w_j f_j + mu_c`.

    `W` is piecewise constant, one value per cell and output; the paper's output function
    `O_T(y)` becomes `units` numbers (the notes' Sec. 7: the map of classes to `Y` is open).

    Args:
        units: int >= 1. Number of outputs (logits).
        cell_weights, volume: as `SelectionBlock`; use the block's.
        kernel_initializer: Defaults to `RandomUniform(-1, 1)`.

    Input shape: `(batch, M)`. Output shape: `(batch, units)`.
    """

    _width_axes: ClassVar[dict] = {"kernel": (0,)}

    def __init__(self, units, cell_weights=None, volume=1.0, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_positive_int(units, "units")
        self._init_grid(cell_weights, volume)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else keras.initializers.RandomUniform(-1.0, 1.0)
        )

    def build(self, input_shape):
        m = input_shape[-1]
        self._w = self._grid_weights(m)
        self.kernel = self.add_weight(
            name="kernel", shape=(m, self.units), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        w = ops.convert_to_tensor(self._w, dtype=self.compute_dtype)
        return ops.matmul(inputs * w, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell_weights": self.cell_weights,
            "volume": self.volume,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@_register
class FunctionLifting(keras.layers.Layer):
    """Z2 input lifting `x in R^d -> f_I(y)` on `Y = (0, 1)`, sampled at `width` cell centres.

    - `"basis"` (default): learned, `f_I(y) = sum_p (x L + l)_p phi_p(y)` with the cosine basis
      of `ContinuousSelectionBlock` (`L` is `(d, modes)`).
    - `"interpolate"`: no weights; the piecewise-linear interpolant of `x_1..x_d` placed at
      `y = 0, 1/(d-1), ..., 1` (for `d = 2` the line `x_1 + (x_2 - x_1) y`).

    Either way `f_I` is a function on `Y` independent of the grid, so `width` can change
    after training (`at_width`).

    Args:
        width: int >= 1. Number of cells `M`.
        modes: int >= 1. Basis size for `"basis"`. Defaults to `8`.
        method: one of `LIFTING_METHODS`. Defaults to `"basis"`.

    Input shape: `(batch, d)`. Output shape: `(batch, M)`.
    """

    def __init__(self, width, modes=8, method="basis", **kwargs):
        super().__init__(**kwargs)
        if method not in LIFTING_METHODS:
            raise ValueError(f"`method` must be one of {LIFTING_METHODS}; Received: method={method!r}")
        self.width = _check_positive_int(width, "width")
        self.modes = _check_positive_int(modes, "modes")
        self.method = method

    def build(self, input_shape):
        d = int(input_shape[-1])
        y = (np.arange(self.width) + 0.5) / self.width
        if self.method == "basis":
            self._map = cosine_basis(self.modes, self.width)
            self.kernel = self.add_weight(
                name="kernel", shape=(d, self.modes), initializer="glorot_uniform"
            )
            self.bias = self.add_weight(name="bias", shape=(self.modes,), initializer="zeros")
        else:
            nodes = np.linspace(0.0, 1.0, d) if d > 1 else np.zeros(1)
            self._map = _hat_weights(y, nodes).T  # (d, M)

    def call(self, inputs):
        grid = ops.convert_to_tensor(self._map, dtype=self.compute_dtype)
        if self.method == "basis":
            return ops.matmul(ops.matmul(inputs, self.kernel) + self.bias, grid)
        return ops.matmul(inputs, grid)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.width)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "modes": self.modes, "method": self.method}


@_register
class BasisReadout(keras.layers.Layer):
    """Z2 readout (L&M Eq. 2.9): `O_c = sum_j W_c(y_j) w_j f(y_j) + mu_c`, `W_c = sum_p Omega_pc phi_p`.

    A midpoint quadrature of `int_Y W_c(y) f(y, T) dy` with a smooth `W` on a uniform grid of
    any width (`w_j = 1/M`, `M >= modes`).

    Args:
        units: int >= 1. Number of outputs (logits).
        modes: int >= 1. Cosine modes of `W`. Defaults to `8`.

    Input shape: `(batch, M)`. Output shape: `(batch, units)`.
    """

    def __init__(self, units, modes=8, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_positive_int(units, "units")
        self.modes = _check_positive_int(modes, "modes")

    def build(self, input_shape):
        m = int(input_shape[-1])
        # (f * w) @ phi^T: the quadrature coefficients (f, phi_p)_w.
        self._project = cosine_basis(self.modes, m).T / m
        self.kernel = self.add_weight(
            name="kernel", shape=(self.modes, self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        project = ops.convert_to_tensor(self._project, dtype=self.compute_dtype)
        return ops.matmul(ops.matmul(inputs, project), self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "modes": self.modes}


# === Width changes of whole models ===


def _clone(model, clone_function):
    # As training.multilevel.prolongate_model: clone_model would also compile the copy.
    was_compiled = getattr(model, "compiled", False)
    model.compiled = False
    try:
        return keras.models.clone_model(model, clone_function=clone_function)
    finally:
        model.compiled = was_compiled


def prolongate_width(model, factor=2):
    """Z1 network on `factor M` cells computing the same function (exact embedding, Eqs. 2.4-2.5).

    Width analogue of depth prolongation (`training.multilevel.prolongate_model`): every cell
    is split into `factor` equal sub-cells; the lifting's columns, `a`, the raw kernels and the
    readout's `W` are copied onto the sub-cells (piecewise-constant refinement) and the
    quadrature weights are divided by `factor`, so each operator entry `b_ij w_j` is divided by
    `factor` and the integral operator is unchanged. The outputs agree up to round-off
    (summation order); every other layer is copied. Layers whose width cannot be refined
    (e.g. `ContinuousSelectionBlock`, which has `at_width`) are rejected.

    Args:
        model: a built Functional `keras.Model` of `CellLifting` / `SelectionBlock` /
            `QuadratureReadout` layers (e.g. `zoo.create("lm_selection")`), or a built
            `SelectionBlock` (then `SelectionBlock.prolongated`).
        factor: int >= 1. Width multiplier. Defaults to `2`.

    Returns:
        A new, uncompiled model (or block); `model` is not modified.
    """
    factor = _check_factor(factor)
    if isinstance(model, SelectionBlock):
        return model.prolongated(factor)
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model or a SelectionBlock; Received: {model!r}")
    for layer in model.layers:
        if isinstance(layer, (ContinuousSelectionBlock, FunctionLifting, BasisReadout)):
            raise ValueError(
                f"Layer {layer.name!r} is a continuous (Z2) layer: resample it with `at_width`"
            )

    def clone(layer):
        if isinstance(layer, _WidthRefinable):
            return layer.__class__.from_config(layer.refined_config(factor))
        return layer.__class__.from_config(layer.get_config())

    new = _clone(model, clone)
    for old_layer in model.layers:
        if not old_layer.weights:
            continue
        new_layer = new.get_layer(old_layer.name)
        if isinstance(old_layer, _WidthRefinable):
            new_layer.set_weights(old_layer.refined_weights(factor))
        else:
            new_layer.set_weights(old_layer.get_weights())
    return new


def at_width(model, width):
    """The same Z2 network (`FunctionLifting` -> `ContinuousSelectionBlock` -> `BasisReadout`)
    sampled on `width` cells: `theta` is width-independent and copied unchanged.

    Returns a new, uncompiled model; `model` is not modified.
    """
    width = _check_positive_int(width, "width")
    liftings = [layer for layer in model.layers if isinstance(layer, FunctionLifting)]
    if not liftings:
        raise ValueError(f"`model` has no FunctionLifting to resample; Received: {model.name!r}")
    for layer in model.layers:
        if isinstance(layer, (SelectionBlock, CellLifting, QuadratureReadout)):
            raise ValueError(f"Layer {layer.name!r} is a discrete (Z1) layer: use `prolongate_width`")

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, FunctionLifting):
            config["width"] = width
        return layer.__class__.from_config(config)

    new = _clone(model, clone)
    new.set_weights(model.get_weights())
    return new
