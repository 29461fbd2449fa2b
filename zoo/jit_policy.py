"""Whether a zoo model trains with XLA (`jit_compile`) by default, from measurements.

Keras resolves `compile(jit_compile="auto")` to *no* XLA on every CPU-only TensorFlow machine.
For the zoo's dense deep-narrow blocks that is the slow path: one Adam step of a width-2,
N = 1024 antisymmetric net takes 7.3 ms with XLA and 168 ms without, while for 3x3
convolutions on CPU XLA is 14x *slower* than TensorFlow's oneDNN kernels (DESIGN.md section 3;
`benchmarks/depth_scaling.py` and `benchmarks/vs_pytorch.py` re-measure both). So the zoo
decides per model and device:

| device | model has convolutions | choice |
|---|---|---|
| CPU | no (dense blocks) | XLA |
| CPU | yes | no XLA |
| GPU | any | Keras' own `"auto"` (XLA when every layer supports it; not measured here) |
| any, under a `tf.distribute` strategy | any | no XLA (Keras' rule) |

Override it per call with `model.compile(..., jit_compile=True/False)`, or for a whole process
with the environment variable `STABLE_ZOO_JIT=on|off|auto`.
"""

from __future__ import annotations

import os

import keras

__all__ = ["ENV_VAR", "choose_jit_compile", "uses_convolution"]

ENV_VAR = "STABLE_ZOO_JIT"
_CHOICES = {"on": True, "off": False, "auto": "auto"}
_KERAS_CONVS = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv2DTranspose,
    keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
)


def _layers(layer):
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from _layers(child)


def uses_convolution(model):
    """True if a Keras conv layer or an ODE block with a convolution operator is in `model`."""
    from zoo.operators import Conv2DOperator

    for layer in _layers(model):
        if isinstance(layer, _KERAS_CONVS):
            return True
        dynamics = getattr(layer, "dynamics", None)
        if isinstance(getattr(dynamics, "operator", None), Conv2DOperator):
            return True
    return False


def _env_choice():
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value not in _CHOICES:
        raise ValueError(f"{ENV_VAR} must be one of {sorted(_CHOICES)}; Received: {value!r}")
    return _CHOICES[value]


def choose_jit_compile(model, device_type=None):
    """`True`, `False` or `"auto"` (leave it to Keras) for `model` on `device_type`.

    `device_type` is `"CPU"` or `"GPU"`; by default GPU if TensorFlow sees one.
    """
    forced = _env_choice()
    if forced != "auto":
        return forced
    if keras.backend.backend() != "tensorflow":
        return "auto"
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return False
    if device_type is None:
        device_type = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    if device_type.upper() != "CPU":
        return "auto"
    return not uses_convolution(model)
