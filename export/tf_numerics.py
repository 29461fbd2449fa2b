"""TensorFlow's float32 rounding, rebuilt from basic ops, so that exported graphs round as Keras does.

Deep networks amplify round-off: the 64-step 2-D ResNets turn the few-ulp difference between
TensorFlow's `tanh` and ONNX Runtime's (or LiteRT's) into 3e-5 to 4e-5 on the logits, above the
1e-5 parity bar, although every runtime is within a few ulps of the true `tanh`. Two graph-level
fixes remove that difference instead of loosening the bar:

- `tensorflow_tanh`: TensorFlow's CPU `tanh` is Eigen's `ptanh_float`, a [9/8] rational on a
  clamped input, and the TensorFlow wheel is built without FMA (its start-up log lists FMA among
  the instructions it was not compiled for), so each multiply-add rounds twice. Written with
  Minimum/Maximum/Mul/Add/Div, which every runtime rounds the IEEE way, it gives TensorFlow's bits
  (tested bit for bit against `tf.math.tanh`; a TensorFlow built with FMA would fail that test).
  Coefficients and clamp: `Eigen/src/Core/arch/Default/GenericPacketMathFunctions.h`, shipped
  in the wheel under `tensorflow/include`.
- `unfused_bias_add`: the LiteRT converter folds `matmul + bias` into FULLY_CONNECTED's bias, and
  XNNPack starts each dot product's accumulator from the bias, which rounds differently from
  TensorFlow's add after the matmul. Adding the bias to a zero tensor shaped like the product
  (exact: `0 + b == b`) keeps a separate ADD the converter does not fuse.
"""

from __future__ import annotations

__all__ = ["tensorflow_tanh", "unfused_bias_add", "TANH_CLAMP"]

# Eigen's non-FMA clamp: the smallest float argument at which the rational evaluates to exactly 1.
TANH_CLAMP = 7.90738964080810547
# Numerator `x + x^3 P(x^2)` and denominator `Q(x^2)`, highest degree first (Eigen's order).
_TANH_NUMERATOR = (1.394553628e-8, 2.102733560e-5, 3.520756727e-3, 1.340216100e-1)
_TANH_DENOMINATOR = (8.015776984e-7, 3.326951409e-4, 2.597254514e-2, 4.673548340e-1, 1.0)


def _horner(coefficients, x2):
    """Eigen's `ppolevl`: `(c0 x2 + c1) x2 + ...`, every step a separate multiply and add."""
    value = coefficients[0] * x2 + coefficients[1]
    for c in coefficients[2:]:
        value = value * x2 + c
    return value


def tensorflow_tanh(x):
    """`tanh(x)` rounded exactly as TensorFlow's float32 CPU kernel rounds it (finite and inf input)."""
    from keras import ops

    x = ops.clip(x, -TANH_CLAMP, TANH_CLAMP)
    x2 = x * x
    numerator = (x2 * x) * _horner(_TANH_NUMERATOR, x2) + x
    return numerator / _horner(_TANH_DENOMINATOR, x2)


def unfused_bias_add(x, bias):
    """`x + bias`, with the bias broadcast through an ADD the LiteRT converter keeps separate."""
    from keras import ops

    return x + (ops.zeros_like(x) + bias)
