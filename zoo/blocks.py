"""Keras layers: `N` steps of integrator x dynamics on `[0, T]`, `h = T / N`.

`ODEBlock` is the one block class; the Haber & Ruthotto 2017 networks are named compositions
(`resnet_block`, `antisymmetric_block`, `leapfrog_block`, `verlet_block`), each in a dense
(`operator="dense"`) and a 3x3-convolution (`operator="conv"`) form, and so are the three
Ruthotto & Haber 2018 PDE units (`parabolic_cnn_block`, `hamiltonian_cnn_block`,
`second_order_cnn_block`: symmetric layers with TV normalisation, 3 steps of `h = 1`), and the
five networks of Galimberti, Xu & Ferrari Trecate 2021 (`h1_block`, `h2_block`, `ms1_block`,
`ms2_block`, `ms3_block`) with the plain baseline of their Fig. 2 (`fcnn_block`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from zoo.depth_loop import fold_steps, fold_steps_reversible
from zoo.feature_major import feature_major_step
from zoo.dynamics import (
    HamiltonianTwoStream,
    HDNNLayer,
    SingleLayer,
    SymmetricLayer,
    SymmetricTwoStream,
)
from zoo.initializers import StepwiseGlorotUniform
from zoo.integrators import FeedForward, ForwardEuler, Leapfrog, Verlet, get_integrator
from zoo.normalization import DEFAULT_TV_EPSILON
from zoo.operators import DEFAULT_GAMMA, Antisymmetric, NegativeSemidefinite, SkewSymmetric

__all__ = [
    "ODEBlock",
    "resnet_block",
    "antisymmetric_block",
    "leapfrog_block",
    "verlet_block",
    "parabolic_cnn_block",
    "hamiltonian_cnn_block",
    "second_order_cnn_block",
    "h1_block",
    "h2_block",
    "ms1_block",
    "ms2_block",
    "ms3_block",
    "fcnn_block",
]


def _check_depth_and_time(depth, T):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"`depth` (N) must be an integer >= 1; Received: depth={depth!r}")
    if not 0 < float(T) < float("inf"):  # also refuses NaN
        raise ValueError(f"`T` (final time) must be finite and > 0; Received: T={T!r}")


@keras.saving.register_keras_serializable(package="stable_zoo")
class ODEBlock(keras.layers.Layer):
    """`N` steps of an integrator on a dynamics, with per-step weights stacked `(N, ...)`.

    For example forward Euler on `SingleLayer` is `Y_{j+1} = Y_j + h sigma(Y_j K_j + b_j)`
    (Haber & Ruthotto 2017, Eq. 2.1); the depth loop is a scan over the stacked weights, never
    a Python loop over `N` layers, so compile time does not grow with `N`.

    Args:
        integrator: `Integrator` or name (`"forward_euler"`, `"leapfrog"`, `"verlet"`).
        dynamics: `Dynamics`. The right-hand side; owns the operator and parametrisation.
        depth: int >= 1. Number of steps `N`.
        T: float > 0. Final time; the step is `h = T / N`.
        momentum_channels: int or None. Width `m` of the second stream of a two-stream
            integrator (Verlet); defaults to the state width.
        carry_momentum: bool. Two-stream only. If True the block's input and output are the
            concatenation `[Y, Z]` along channels (so blocks can be chained and the block is
            a bijection); if False (default, as in the paper) `Z` starts at 0 and only `Y_N`
            is returned.
        kernel_initializer: initialiser for the stacked raw kernels. Defaults to
            `StepwiseGlorotUniform(constant_in_time=True)`: one Glorot draw shared by all steps,
            a time-invariant ODE at initialisation (as the authors' Meganet examples start),
            so the time-smoothness penalty starts at 0 and prolongation starts exact.
        bias_initializer: initialiser for the stacked biases. Defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer: regularisers of the stacked `(N, ...)` weights,
            e.g. `training.regularizers.TimeSmoothness` (H&R 2017, Eq. 5.23). Default None.
        kernel_constraint: constraint projected onto the stacked raw kernels after every
            optimiser step, e.g. `zoo.constraints.BoxConstraint(1.0)` (R&H 2018, Sec. 4).
            Default None.
        reversible: bool. Memory-free training (issue 11): the forward pass keeps no states
            inside the block and the gradient rebuilds them backwards with the integrator's
            exact inverse (`zoo.depth_loop.fold_steps_reversible`), so activation memory does
            not grow with `N`. Needs a reversible integrator (Verlet, leapfrog); ValueError
            otherwise. The relative error of the rebuilt input state in the last backward
            pass is kept in the non-trainable weight `reconstruction_error` (log it with
            `training.callbacks.ReconstructionMonitor`). Defaults to False.
        time_invariant: bool. If True, one set of weights `theta` is shared by all `N` steps
            (an autonomous ODE `dY/dt = F(theta, Y)`; Galimberti et al. 2021, Sec. 4.3:
            `K(t) = K`, `b(t) = b`). The variables then have a leading axis of length 1,
            `(1, ...)`, broadcast to the `N` steps in `effective_weights`, so the parameter
            count does not grow with `N` and a time-smoothness penalty is 0. Defaults to False.

    Weights other than `kernel` and `bias` that the dynamics declares (e.g. the TV-norm
    `norm_scale` and `norm_bias` of `SymmetricLayer`) are stacked `(N, ...)` as well, use the
    dynamics' default initialisers, and are attributes of the block under their names.

    Input shape: `(batch, n)` for a dense operator, `(batch, H, W, n)` for a convolution.
    Output shape: same as the input.
    """

    def __init__(
        self,
        integrator,
        dynamics,
        depth,
        T,
        momentum_channels=None,
        carry_momentum=False,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        time_invariant=False,
        reversible=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_depth_and_time(depth, T)
        if not isinstance(time_invariant, bool):
            raise ValueError(f"`time_invariant` must be a bool; Received: time_invariant={time_invariant!r}")
        # === Config ===
        self.integrator = get_integrator(integrator)
        if isinstance(dynamics, dict):
            dynamics = keras.saving.deserialize_keras_object(dynamics)
        self.dynamics = dynamics
        if self.integrator.num_streams != self.dynamics.num_streams:
            raise ValueError(
                f"`integrator` {type(self.integrator).__name__} steps {self.integrator.num_streams} "
                f"stream(s) but `dynamics` {type(self.dynamics).__name__} provides "
                f"{self.dynamics.num_streams}"
            )
        if carry_momentum and self.integrator.num_streams != 2:
            raise ValueError("`carry_momentum=True` needs a two-stream integrator (Verlet)")
        if momentum_channels is not None and (
            self.integrator.num_streams != 2 or int(momentum_channels) < 1
        ):
            raise ValueError(
                "`momentum_channels` must be a positive int and needs a two-stream integrator; "
                f"Received: momentum_channels={momentum_channels!r}"
            )
        self.depth = depth
        self.T = float(T)
        self.momentum_channels = momentum_channels
        self.carry_momentum = bool(carry_momentum)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else StepwiseGlorotUniform(constant_in_time=True)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.time_invariant = time_invariant
        if not isinstance(reversible, bool):
            raise ValueError(f"`reversible` must be a bool; Received: reversible={reversible!r}")
        if reversible and not self.integrator.reversible:
            raise ValueError(
                f"`reversible=True` needs an integrator with an exact inverse (Verlet, leapfrog); "
                f"{type(self.integrator).__name__} has none, so its states cannot be rebuilt backwards"
            )
        self.reversible = reversible
        self._extra_weight_names = ()

    @property
    def h(self):
        return self.T / self.depth

    @property
    def operator(self):
        return self.dynamics.operator

    @property
    def weight_steps(self):
        """Length of the weights' leading axis: `N`, or 1 if `time_invariant`."""
        return 1 if self.time_invariant else self.depth

    # === Layers ===
    def _stream_widths(self, channels):
        """`(n, m)` from the input's channel count."""
        if not self.carry_momentum:
            return channels, self.momentum_channels
        m = self.momentum_channels
        if m is None:
            if channels % 2:
                raise ValueError(
                    "With `carry_momentum=True` and no `momentum_channels`, the input's channels "
                    f"are split in two equal halves [Y, Z] and must be even; Received: "
                    f"inputs with {channels} channels"
                )
            return channels // 2, channels // 2
        if channels <= m:
            raise ValueError(
                f"Input channels ({channels}) must exceed `momentum_channels` ({m}) to hold [Y, Z]"
            )
        return channels - m, m

    def build(self, input_shape):
        self.operator.validate_state_shape(input_shape, name="inputs")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel axis of `inputs` must be known; Received: {input_shape}")
        self._n, self._m = self._stream_widths(channels)
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={-1: channels})
        shapes = self.dynamics.weight_shapes(self._n, self._m)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.weight_steps, *shapes["kernel"]),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if "bias" in shapes:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.weight_steps, *shapes["bias"]),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )
        if self.reversible:
            self.reconstruction_error = self.add_weight(
                name="reconstruction_error", shape=(), initializer="zeros", trainable=False,
                dtype="float32",
            )
        initializers = self.dynamics.weight_initializers()
        self._extra_weight_names = tuple(n for n in shapes if n not in ("kernel", "bias"))
        for name in self._extra_weight_names:
            weight = self.add_weight(
                name=name, shape=(self.weight_steps, *shapes[name]), initializer=initializers[name]
            )
            setattr(self, name, weight)

    # === Forward ===
    def raw_weights(self):
        weights = {"kernel": self.kernel}
        if self.bias is not None:
            weights["bias"] = self.bias
        for name in self._extra_weight_names:
            weights[name] = getattr(self, name)
        return weights

    def effective_weights(self):
        """Per-step weights the steps apply (antisymmetric / shifted kernels), `(N, ...)`.

        For a `time_invariant` block the one set of weights is broadcast to all `N` steps.
        """
        raw = {name: ops.convert_to_tensor(w) for name, w in self.raw_weights().items()}
        theta = self.dynamics.prepare(raw)
        if self.time_invariant:
            theta = {
                name: ops.broadcast_to(w, (self.depth, *w.shape[1:])) for name, w in theta.items()
            }
        return theta

    def initial_state(self, inputs):
        if self.carry_momentum:
            y0, z0 = inputs[..., : self._n], inputs[..., self._n :]
            return (y0, z0)
        return self.integrator.init(self.dynamics, inputs, self._m)

    def final_output(self, state):
        if self.carry_momentum:
            return ops.concatenate(state, axis=-1)
        return self.integrator.readout(state)

    def propagate(self, state, return_states=False, reverse=False, feature_major=False):
        """Run the `N` steps from a full integrator state (inverse steps if `reverse`).

        Returns the final state, and with `return_states` also every intermediate state
        stacked along a new leading axis (`N` entries, the states after each step).
        """
        theta = self.effective_weights()
        h = self.h
        stepper = self.integrator.inverse_step if reverse else self.integrator.step

        def step(carry, theta_j):
            return stepper(self.dynamics, theta_j, carry, h)

        if self.reversible and not (return_states or reverse):
            def inverse(carry, theta_j):
                return self.integrator.inverse_step(self.dynamics, theta_j, carry, h)

            return fold_steps_reversible(step, inverse, tuple(state), theta,
                                         on_reconstruction=self.reconstruction_error.assign)
        if feature_major and not (return_states or reverse) and all(len(s.shape) == 2 for s in state):
            transposed = feature_major_step(self.integrator, self.dynamics, h)
            if transposed is not None:
                final = fold_steps(transposed, tuple(ops.transpose(s) for s in state), theta)
                return tuple(ops.transpose(s) for s in final)
        return fold_steps(step, tuple(state), theta, return_states=return_states, reverse=reverse)

    def call(self, inputs, training=None):
        # Training steps of dense Euler and Verlet layers run feature-major (`zoo.feature_major`).
        return self.final_output(self.propagate(self.initial_state(inputs), feature_major=bool(training)))

    def inverse(self, outputs):
        """Exact inverse of `call` for a reversible block with `carry_momentum=True`."""
        if not (self.integrator.reversible and self.carry_momentum):
            raise ValueError("`inverse` needs a reversible integrator and `carry_momentum=True`")
        state = (outputs[..., : self._n], outputs[..., self._n :])
        return ops.concatenate(self.propagate(state, reverse=True), axis=-1)

    def trajectory(self, inputs):
        """States `Y_0 .. Y_N` stacked on a leading axis `(N + 1, batch, ...)` (readout stream)."""
        state0 = self.initial_state(inputs)
        _, states = self.propagate(state0, return_states=True)
        y0 = self.integrator.readout(state0)
        ys = self.integrator.readout(states)
        return ops.concatenate([y0[None], ys], axis=0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "integrator": keras.saving.serialize_keras_object(self.integrator),
                "dynamics": keras.saving.serialize_keras_object(self.dynamics),
                "depth": self.depth,
                "T": self.T,
                "momentum_channels": self.momentum_channels,
                "carry_momentum": self.carry_momentum,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            }
        )
        if self.time_invariant:  # absent from older configs: False
            config["time_invariant"] = True
        if self.reversible:
            config["reversible"] = True
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("integrator", "dynamics"):
            if isinstance(config[key], dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


# === Haber & Ruthotto 2017 compositions ===


def resnet_block(depth, T, operator="dense", activation="tanh", bias="scalar", **kwargs):
    """Forward-Euler ResNet: `Y_{j+1} = Y_j + h sigma(Y_j K_j + b_j)` (H&R 2017, Eq. 2.1)."""
    dynamics = SingleLayer(operator, "free", activation, bias)
    return ODEBlock(ForwardEuler(), dynamics, depth, T, **kwargs)


def antisymmetric_block(
    depth, T, gamma=DEFAULT_GAMMA, operator="dense", activation="tanh", bias="scalar", **kwargs
):
    """Antisymmetric ResNet: `Y + h sigma(Y (K - K^T - gamma I)/2 + b)` (H&R 2017, Eq. 4.12).

    `gamma` is required by the method (the paper states no value); the default is
    `DEFAULT_GAMMA` = 0.01.
    """
    dynamics = SingleLayer(operator, Antisymmetric(gamma), activation, bias)
    return ODEBlock(ForwardEuler(), dynamics, depth, T, **kwargs)


def leapfrog_block(
    depth,
    T,
    operator="dense",
    parametrization=None,
    start="printed",
    activation="tanh",
    bias="scalar",
    **kwargs,
):
    """Hamiltonian leapfrog: `Y_{j+1} = 2 Y_j - Y_{j-1} + h^2 sigma(Y_j K_j + b_j)`, `K = -C^T C`.

    (H&R 2017, Eqs. 4.14, 4.16.) `start="printed"` takes `Y_{-1} = 0` as Eq. 4.16 is printed;
    `start="textbook"` takes `Y_{-1} = Y_0`.
    """
    parametrization = parametrization if parametrization is not None else NegativeSemidefinite()
    dynamics = SingleLayer(operator, parametrization, activation, bias)
    return ODEBlock(Leapfrog(start), dynamics, depth, T, **kwargs)


def verlet_block(
    depth, T, operator="dense", momentum_channels=None, activation="tanh", bias="scalar", **kwargs
):
    """Hamiltonian Verlet (H&R 2017, Eq. 4.17) with `Z_{-1/2} = 0`; `K` may be non-square."""
    dynamics = HamiltonianTwoStream(operator, "free", activation, bias)
    return ODEBlock(Verlet(), dynamics, depth, T, momentum_channels=momentum_channels, **kwargs)


# === Ruthotto & Haber 2018 PDE units (symmetric layers, TV normalisation, ReLU) ===


def parabolic_cnn_block(
    depth=3, T=3.0, activation="relu", normalization="tv", epsilon=DEFAULT_TV_EPSILON,
    operator="conv", **kwargs,
):
    """Parabolic unit: `Y_{j+1} = Y_j - h K_j^T sigma(N_tv(K_j Y_j))` (R&H 2018, Sec. 3.1).

    Forward Euler on `SymmetricLayer` (Eqs. 7-9); 3 steps of `h = 1` by default (Sec. 5).
    """
    dynamics = SymmetricLayer(operator, activation, normalization, epsilon)
    return ODEBlock(ForwardEuler(), dynamics, depth, T, **kwargs)


def hamiltonian_cnn_block(
    depth=3, T=3.0, activation="relu", normalization="tv", epsilon=DEFAULT_TV_EPSILON,
    operator="conv", **kwargs,
):
    """Hamiltonian unit: Verlet on the two channel halves (R&H 2018, Eq. 10 as printed).

    `SymmetricTwoStream` with `carry_momentum=True` by default: the input's channels are split
    into halves `[Y, Z]`, each step applies two independent half-width symmetric layers, and
    the output is `[Y_N, Z_N]`; the unit is exactly invertible (`ODEBlock.inverse`). The
    default kernel initialiser is Glorot per half-width kernel (the `(2, 3, 3, n, n)` per-step
    stack would otherwise count the pair axis in the fans).
    """
    kwargs.setdefault("carry_momentum", True)
    kwargs.setdefault(
        "kernel_initializer", StepwiseGlorotUniform(scale=math.sqrt(2.0), constant_in_time=True)
    )
    dynamics = SymmetricTwoStream(operator, activation, normalization, epsilon)
    return ODEBlock(Verlet(), dynamics, depth, T, **kwargs)


def second_order_cnn_block(
    depth=3, T=3.0, activation="relu", normalization="tv", epsilon=DEFAULT_TV_EPSILON,
    operator="conv", **kwargs,
):
    """Second-order unit: `Y_{j+1} = 2 Y_j - Y_{j-1} + h^2 F_sym(theta_j, Y_j)`, `Y_{-1} = Y_0`.

    (R&H 2018, Eq. 11 and its leapfrog discretisation.) `Leapfrog(start="textbook")` on
    `SymmetricLayer`; every call starts again from `Y_{-1} = Y_0`, so the state is reset at
    each unit. The first step is `Y_1 = Y_0 + h^2 F_sym(theta_0, Y_0)`.
    """
    dynamics = SymmetricLayer(operator, activation, normalization, epsilon)
    return ODEBlock(Leapfrog("textbook"), dynamics, depth, T, **kwargs)


# === Galimberti, Xu & Ferrari Trecate 2021 (Hamiltonian DNNs, Sec. 2.3 and 3.2) ===
# All five act on the full state `[y; z]` of width nf (the MS1/MS3 halves are carried through,
# `carry_momentum=True`), use tanh and vector biases; `h = T / N`.


def h1_block(depth, T, operator="dense", **kwargs):
    """H1-DNN (Eq. 11, J = J1): `Y_{j+1} = Y_j + h tanh(Y_j K_j + b_j) K_j^T J1^T`.

    Forward Euler on `HDNNLayer("J1")`; `nf^2 + nf` weights per step; needs an even width.
    """
    return ODEBlock(ForwardEuler(), HDNNLayer("J1", operator), depth, T, **kwargs)


def h2_block(depth, T, operator="dense", **kwargs):
    """H2-DNN (Eq. 11, J = J2, ones above the diagonal): forward Euler on `HDNNLayer("J2")`.

    This paper's H2 (forward Euler) is the authors' later code's `H1_J2`, not its symplectic H2.
    """
    return ODEBlock(ForwardEuler(), HDNNLayer("J2", operator), depth, T, **kwargs)


def ms1_block(depth, T, operator="dense", **kwargs):
    """MS1-DNN (H&R 2017's Verlet network with two bias vectors), z first, on `[y; z]`.

    `z_{j+1} = z_j - h tanh(y_j K_j + b_{j,1})`, `y_{j+1} = y_j + h tanh(z_{j+1} K_j^T + b_{j,2})`
    (column form: `K_{j,0}' y_j`, `K_{j,0} z_{j+1}`). The input `[y_0, z_0]` is split into two
    channel halves and the output is `[y_N, z_N]`; `nf^2/4 + nf` weights per step.
    """
    kwargs.setdefault("carry_momentum", True)
    return verlet_block(depth, T, operator=operator, bias="per_stream", **kwargs)


def ms2_block(depth, T, operator="dense", **kwargs):
    """MS2-DNN: `Y_{j+1} = Y_j + h tanh(Y_j K_j + b_j)` with skew-symmetric `K_j`, no `gamma`.

    H&R 2017's antisymmetric ResNet as Galimberti et al. print it: `gamma = 0` and a vector bias;
    `K_j` is stored as its free entries (`SkewSymmetric`), `(nf^2 + nf) / 2` weights per step.
    """
    dynamics = SingleLayer(operator, SkewSymmetric(), "tanh", "vector")
    return ODEBlock(ForwardEuler(), dynamics, depth, T, **kwargs)


def ms3_block(depth, T, operator="dense", **kwargs):
    """MS3-DNN (Chang et al. 2018), y first, on `[y; z]`:

    `y_{j+1} = y_j + h K_{j,1}' tanh(K_{j,1} z_j + b_{j,1})`,
    `z_{j+1} = z_j - h K_{j,2}' tanh(K_{j,2} y_{j+1} + b_{j,2})` (column form as printed).
    `Verlet(first="y")` on `SymmetricTwoStream` without normalisation, with vector biases;
    `nf^2/2 + nf` weights per step.
    """
    kwargs.setdefault("carry_momentum", True)
    dynamics = SymmetricTwoStream(operator, "tanh", normalization=None, bias="vector")
    return ODEBlock(Verlet(first="y"), dynamics, depth, T, **kwargs)


def fcnn_block(depth, operator="dense", activation="tanh", **kwargs):
    """Plain fully connected chain `Y_{j+1} = tanh(Y_j K_j + b_j)` (no skip; Fig. 2 baseline).

    `FeedForward` on `SingleLayer` with vector biases. `T` is irrelevant (no `h`); it is set to
    `depth` so that `h = 1`.
    """
    kwargs.setdefault("T", float(depth))
    dynamics = SingleLayer(operator, "free", activation, "vector")
    return ODEBlock(FeedForward(), dynamics, depth, **kwargs)
