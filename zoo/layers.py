"""Small non-ODE layers the macro-architectures share: feature lifting."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["FeatureLifting", "LIFTING_MODES"]

LIFTING_MODES = ("pad", "duplicate")


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
