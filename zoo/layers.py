"""Small non-ODE layers the macro-architectures share: feature lifting, the wide affine head."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["ChunkedDense", "DENSE_CHUNK", "FeatureLifting", "LIFTING_MODES"]

LIFTING_MODES = ("pad", "duplicate")
DENSE_CHUNK = 512


@keras.saving.register_keras_serializable(package="stable_zoo")
class FeatureLifting(keras.layers.Layer):
    """Raise the feature width `n -> width` without weights.

    `"pad"` appends zeros (Meganet's swiss-roll scripts); `"duplicate"` repeats the features
    cyclically (Haber & Ruthotto 2017, Sec. 6.3: "by duplicating the features").

    Args:
        width: int. Output width, >= the input width.
        mode: `"pad"` or `"duplicate"`. Defaults to `"pad"`.
    """

    def __init__(self, width, mode="pad", **kwargs):
        super().__init__(**kwargs)
        if mode not in LIFTING_MODES:
            raise ValueError(f"`mode` must be one of {LIFTING_MODES}; Received: mode={mode!r}")
        if int(width) < 1:
            raise ValueError(f"`width` must be >= 1; Received: width={width!r}")
        self.width = int(width)
        self.mode = mode

    def build(self, input_shape):
        n = input_shape[-1]
        if n is None or n > self.width:
            raise ValueError(
                f"`width` ({self.width}) must be >= the input width; Received: input_shape={input_shape}"
            )
        self._in = n

    def call(self, inputs):
        extra = self.width - self._in
        if extra == 0:
            return inputs
        if self.mode == "pad":
            pad = [[0, 0]] * (len(inputs.shape) - 1) + [[0, extra]]
            return ops.pad(inputs, pad)
        index = [i % self._in for i in range(self.width)]
        return ops.take(inputs, index, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.width)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "mode": self.mode}


def chunk_layout(inputs, chunk):
    """`(pieces, length)`: the fewest equal chunks of at most `chunk` inputs, `pieces * length >= inputs`.

    A divisor of `inputs` is preferred (no zero padding) when one gives at most twice the fewest pieces.
    """
    fewest = -(-inputs // chunk)
    for pieces in range(fewest, 2 * fewest + 1):
        if inputs % pieces == 0:
            return pieces, inputs // pieces
    return fewest, -(-inputs // fewest)


@keras.saving.register_keras_serializable(package="stable_zoo")
class ChunkedDense(keras.layers.Dense):
    """`Dense` whose dot products are summed in chunks of at most `chunk` inputs.

    Same weights and the same function as `Dense`; only the summation order differs. Why: at
    batch 1 TensorFlow's matmul (a matrix-vector product), like XNNPack's fully connected layer,
    sums each dot product in one float32 running sum. On the Haber-Ruthotto MNIST heads (4,704
    inputs) that put Keras' batch-1 logits 2e-5 from the exact ones and from its own batch-32
    logits (3.7e-6 from exact). Summing chunks of a few hundred inputs and then the chunks makes
    the round-off independent of the batch size and of the runtime an export runs on.

    The inputs are split into `pieces` equal chunks (zero-padded when no divisor fits, which adds
    exact zeros): `(batch, pieces * length) -> (pieces, batch, length)`, one batched matmul with
    the kernel as `(pieces, length, units)`, then a sum over the pieces.

    Args:
        units: as `Dense`.
        chunk: int. Longest chunk summed in one running sum. Defaults to `DENSE_CHUNK` (512).
        **kwargs: the other `Dense` arguments.
    """

    def __init__(self, units, chunk=DENSE_CHUNK, **kwargs):
        super().__init__(units, **kwargs)
        if int(chunk) < 1:
            raise ValueError(f"`chunk` must be >= 1; Received: chunk={chunk!r}")
        self.chunk = int(chunk)

    def build(self, input_shape):
        super().build(input_shape)
        self._layout = chunk_layout(int(input_shape[-1]), self.chunk)

    def call(self, inputs, training=None):
        inputs_width = int(inputs.shape[-1])
        pieces, length = self._layout
        kernel, x = self.kernel, ops.reshape(inputs, (-1, inputs_width))
        extra = pieces * length - inputs_width
        if extra:
            x = ops.pad(x, [[0, 0], [0, extra]])
            kernel = ops.pad(kernel, [[0, extra], [0, 0]])
        x = ops.transpose(ops.reshape(x, (-1, pieces, length)), (1, 0, 2))
        partial = ops.matmul(x, ops.reshape(kernel, (pieces, length, self.units)))
        outputs = ops.reshape(ops.sum(partial, axis=0), (*ops.shape(inputs)[:-1], self.units))
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def quantize(self, mode, **kwargs):
        # Keras' quantized Dense replaces `call`'s matmul by its own; export-time quantisation
        # (export.quantize) is the supported path.
        raise NotImplementedError("ChunkedDense does not support Keras quantization; "
                                  "quantize the exported model (export.quantize) instead")

    def get_config(self):
        return {**super().get_config(), "chunk": self.chunk}
