"""Keras layers: `N` steps of integrator x dynamics on `[0, T]`, `h = T / N`.

`ODEBlock` is the one block class; the Haber & Ruthotto 2017 networks are named compositions
(`resnet_block`, `antisymmetric_block`, `leapfrog_block`, `verlet_block`), each in a dense
(`operator="dense"`) and a 3x3-convolution (`operator="conv"`) form, and so are the three
Ruthotto & Haber 2018 PDE units (`parabolic_cnn_block`, `hamiltonian_cnn_block`,
`second_order_cnn_block`: symmetric layers with TV normalisation, 3 steps of `h = 1`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from zoo.depth_loop import fold_steps
from zoo.dynamics import HamiltonianTwoStream, SingleLayer, SymmetricLayer, SymmetricTwoStream
from zoo.initializers import StepwiseGlorotUniform
from zoo.integrators import ForwardEuler, Leapfrog, Verlet, get_integrator
from zoo.normalization import DEFAULT_TV_EPSILON
from zoo.operators import DEFAULT_GAMMA, Antisymmetric, NegativeSemidefinite

__all__ = [
    "ODEBlock",
    "resnet_block",
    "antisymmetric_block",
    "leapfrog_block",
    "verlet_block",
    "parabolic_cnn_block",
    "hamiltonian_cnn_block",
    "second_order_cnn_block",
]


def _check_depth_and_time(depth, T):
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"`depth` (N) must be an integer >= 1; Received: depth={depth!r}")
    if not float(T) > 0:
        raise ValueError(f"`T` (final time) must be > 0; Received: T={T!r}")


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
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_depth_and_time(depth, T)
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
        self._extra_weight_names = ()

    @property
    def h(self):
        return self.T / self.depth

    @property
    def operator(self):
        return self.dynamics.operator

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
            shape=(self.depth, *shapes["kernel"]),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if "bias" in shapes:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.depth, *shapes["bias"]),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )
        initializers = self.dynamics.weight_initializers()
        self._extra_weight_names = tuple(n for n in shapes if n not in ("kernel", "bias"))
        for name in self._extra_weight_names:
            weight = self.add_weight(
                name=name, shape=(self.depth, *shapes[name]), initializer=initializers[name]
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
        """Per-step weights the steps apply (antisymmetric / shifted kernels), `(N, ...)`."""
        raw = {name: ops.convert_to_tensor(w) for name, w in self.raw_weights().items()}
        return self.dynamics.prepare(raw)

    def initial_state(self, inputs):
        if self.carry_momentum:
            y0, z0 = inputs[..., : self._n], inputs[..., self._n :]
            return (y0, z0)
        return self.integrator.init(self.dynamics, inputs, self._m)

    def final_output(self, state):
        if self.carry_momentum:
            return ops.concatenate(state, axis=-1)
        return self.integrator.readout(state)

    def propagate(self, state, return_states=False, reverse=False):
        """Run the `N` steps from a full integrator state (inverse steps if `reverse`).

        Returns the final state, and with `return_states` also every intermediate state
        stacked along a new leading axis (`N` entries, the states after each step).
        """
        theta = self.effective_weights()
        h = self.h
        stepper = self.integrator.inverse_step if reverse else self.integrator.step

        def step(carry, theta_j):
            return stepper(self.dynamics, theta_j, carry, h)

        return fold_steps(step, tuple(state), theta, return_states=return_states, reverse=reverse)

    def call(self, inputs):
        return self.final_output(self.propagate(self.initial_state(inputs)))

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
