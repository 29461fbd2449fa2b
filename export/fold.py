"""The inference graph exporters convert: every block's weights folded into constants, steps unrolled.

A trained `ODEBlock` computes its effective per-step weights (antisymmetric `(W - W^T - gamma I)/2`,
time-invariant broadcasts, ...) from its raw variables on every call, then loops over the steps
with a scan. Converted as is, ONNX gets those parametrisations as run-time Transpose/Sub ops and
the scan as a `Loop` whose body slices the weights per step (DESIGN.md section 3: a `Loop` ran
2x slower than an unrolled graph in ONNX Runtime). `fold_model` clones a model with every
`ODEBlock` replaced by a `FoldedODEBlock` that holds the effective weights as they are now and
runs the steps as a Python loop: once the converter freezes the weights, every per-step slice and
every kernel transform (the adjoint convolution's flipped kernel) is an op on constants, which
the converter's constant folding removes. The parity tests prove the folded model computes what
the original does.

Folded blocks also round as TensorFlow does where another runtime would not (`export.tf_numerics`):
in dense blocks `tanh` is TensorFlow's own rational in basic ops, and for LiteRT the bias stays
a separate add. Deep narrow networks amplify the few-ulp differences these remove.
"""

from __future__ import annotations

import keras

from export import tf_numerics
from zoo.blocks import ODEBlock
from zoo.layers import DENSE_CHUNK, ChunkedDense
from zoo.operators import DenseOperator, Parametrization

__all__ = ["FoldedODEBlock", "fold_model", "chunked_copy", "DENSE_CHUNK"]


@keras.saving.register_keras_serializable(package="stable_zoo")
class FoldedODEBlock(ODEBlock):
    """An `ODEBlock` for inference: fixed effective weights, steps unrolled, no parametrisation.

    Args:
        effective_shapes: dict name -> shape of the effective per-step weights `(N, ...)`.
        unroll: run the steps as a Python loop (one op chain per step) instead of a counted loop.
        tensorflow_tanh: in a dense block, compute `tanh` as `export.tf_numerics.tensorflow_tanh`,
            which other runtimes round exactly as TensorFlow does.
        separate_dense_bias: add a dense operator's bias through `unfused_bias_add`, so the
            LiteRT converter does not fuse it into FULLY_CONNECTED.
        **kwargs: the `ODEBlock` arguments (integrator, dynamics, depth, T, ...).

    Build it with `FoldedODEBlock.from_block(block)`; the weights are non-trainable.
    """

    def __init__(self, effective_shapes, unroll=True, tensorflow_tanh=True, separate_dense_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.effective_shapes = {k: tuple(int(d) for d in v) for k, v in effective_shapes.items()}
        self.unroll = bool(unroll)
        self.tensorflow_tanh = bool(tensorflow_tanh)
        self.separate_dense_bias = bool(separate_dense_bias)
        # Dense blocks only: a deep narrow network amplifies round-off most, and the few-hundred-
        # element activations make the longer op chain free. The H&R conv net's ONNX latency
        # doubled with it (0.37 -> 0.72 ms at batch 1) for the same 3.8e-6 parity.
        if isinstance(self.dynamics.operator, DenseOperator):
            if self.tensorflow_tanh and self.dynamics.activation == "tanh":
                self.dynamics.use_numerics(activation=tf_numerics.tensorflow_tanh)
            if self.separate_dense_bias:
                self.dynamics.use_numerics(bias_add=tf_numerics.unfused_bias_add)
        self._pending_values = None

    @classmethod
    def from_block(cls, block, unroll=True, **numerics):
        """Fold a built `block`; `unroll=False` keeps the steps in a loop (an ONNX `Loop`).

        `numerics`: `tensorflow_tanh`, `separate_dense_bias` (see the class).
        """
        if not block.built:
            raise ValueError(f"Block {block.name!r} is not built: call the model once before folding it")
        theta = {k: keras.ops.convert_to_numpy(v) for k, v in block.effective_weights().items()}
        if theta.get("bias") is not None and theta["bias"].ndim == 1:
            # One scalar bias per step: keep a channel axis of 1 (same broadcast), because
            # tf2onnx's transpose optimiser fails on 0-d constants added after a convolution.
            theta["bias"] = theta["bias"][:, None]
        parametrization = block.dynamics.parametrization
        if not unroll and type(parametrization).adjoint is Parametrization.adjoint:
            # In a loop the converter cannot fold per-step weight transforms: store `K^T` too.
            theta["kernel_adjoint"] = keras.ops.convert_to_numpy(
                block.operator.adjoint_kernel(theta["kernel"]))
        config = block.get_config()
        folded = cls(effective_shapes={k: v.shape for k, v in theta.items()}, unroll=unroll, **numerics, **config)
        folded._pending_values = theta
        return folded

    def build(self, input_shape):
        self.operator.validate_state_shape(input_shape, name="inputs")
        self._n, self._m = self._stream_widths(input_shape[-1])
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={-1: input_shape[-1]})
        self._theta = {
            name: self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False)
            for name, shape in self.effective_shapes.items()
        }
        if self._pending_values is not None:
            for name, value in self._pending_values.items():
                self._theta[name].assign(value)
            self._pending_values = None

    def effective_weights(self):
        return dict(self._theta)

    def propagate(self, state, return_states=False, reverse=False, feature_major=False):
        # `feature_major` is a training-step layout (`zoo.feature_major`); a folded block infers.
        if return_states or reverse:
            raise NotImplementedError("A folded block runs inference forward only")
        h = self.h
        state = tuple(state)
        if not self.unroll:
            # A counted loop indexing the stacked weights (ONNX Loop + Gather, LiteRT WHILE +
            # GATHER); a scan would carry a list of states, which LiteRT's builtins cannot lower.
            theta = self.effective_weights()

            def body(j, carry):
                theta_j = {name: keras.ops.take(w, j, axis=0) for name, w in theta.items()}
                return tuple(self.integrator.step(self.dynamics, theta_j, carry, h))

            return keras.ops.fori_loop(0, self.depth, body, state)
        for j in range(self.depth):  # unrolled on purpose: the exported graph has one op chain per step
            theta_j = {name: w[j] for name, w in self._theta.items()}
            state = self.integrator.step(self.dynamics, theta_j, state, h)
        return state

    def get_config(self):
        config = super().get_config()
        config["effective_shapes"] = {k: list(v) for k, v in self.effective_shapes.items()}
        config["unroll"] = self.unroll
        config["tensorflow_tanh"] = self.tensorflow_tanh
        config["separate_dense_bias"] = self.separate_dense_bias
        return config


UNROLL_MAX_STEPS = 64


def chunked_copy(layer, chunk=DENSE_CHUNK):
    """A frozen `ChunkedDense` with the weights of the built `Dense` `layer`."""
    chunked = ChunkedDense.from_config({**layer.get_config(), "chunk": chunk, "trainable": False})
    chunked.build((None, int(layer.kernel.shape[0])))
    chunked.set_weights(layer.get_weights())
    return chunked


def fold_model(model, unroll_max_steps=UNROLL_MAX_STEPS, dense_chunk=None, tensorflow_tanh=True,
               separate_dense_bias=False):
    """A clone of `model` whose `ODEBlock`s are `FoldedODEBlock`s; other layers are shared.

    Blocks of at most `unroll_max_steps` steps are unrolled; deeper ones keep a loop (tf2onnx
    took 226 s to convert an unrolled N = 1,024 dense block, and the graph has 10k nodes).
    With `dense_chunk`, every plain `Dense` with more inputs becomes a `ChunkedDense`: XNNPack,
    LiteRT's default CPU delegate, sums a fully connected layer's dot product in one float32
    running sum (see `zoo.layers.ChunkedDense`). The zoo's own wide heads already are.
    `tensorflow_tanh` and `separate_dense_bias` are passed to every `FoldedODEBlock`.
    Raises ValueError for a model that has not been built (no weights to fold).
    """
    if not model.built:
        raise ValueError("The model is not built: call it on data (or build it) before folding")

    def clone(layer):
        if isinstance(layer, ODEBlock):
            return FoldedODEBlock.from_block(layer, unroll=layer.depth <= unroll_max_steps,
                                             tensorflow_tanh=tensorflow_tanh,
                                             separate_dense_bias=separate_dense_bias)
        if (dense_chunk and type(layer) is keras.layers.Dense
                and int(layer.kernel.shape[0]) > dense_chunk):
            return chunked_copy(layer, dense_chunk)
        return layer

    folded = keras.models.clone_model(model, clone_function=clone)
    folded.name = model.name
    return folded
