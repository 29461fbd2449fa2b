"""`ZooModel`: the functional model every zoo builder returns."""

from __future__ import annotations

import keras

from zoo.jit_policy import choose_jit_compile

__all__ = ["ZooModel", "check_image_shape"]


def check_image_shape(image_shape):
    """`(height, width, channels)` of positive ints, channels last; a clear error otherwise."""
    try:
        shape = tuple(int(d) for d in image_shape)
        valid = len(shape) == 3 and all(d >= 1 for d in shape) and shape == tuple(image_shape)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "`image_shape` must be (height, width, channels) with positive ints, channels last; "
            f"Received: image_shape={image_shape!r}"
        )
    return shape


@keras.saving.register_keras_serializable(package="stable_zoo")
class ZooModel(keras.Model):
    """A functional `keras.Model` whose default `jit_compile` follows `zoo.jit_policy`.

    Build it like `keras.Model(inputs, outputs, name=...)`. The only change is in `compile`:
    `jit_compile="auto"` (the default) becomes the zoo's measured choice (XLA for dense blocks on
    CPU, not for convolutions) instead of Keras' "never on CPU", so `model.fit` takes the fast
    path without the user knowing about XLA. An explicit `True`/`False` is passed through.
    """

    def compile(self, *args, jit_compile="auto", **kwargs):
        if jit_compile == "auto" and not kwargs.get("run_eagerly", False):
            jit_compile = choose_jit_compile(self)
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        # Keras skips (with a warning) re-compiling a loaded model whose `compile` is overridden;
        # ours takes the same arguments, so restore the saved compile state as Keras would.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)
