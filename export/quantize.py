"""Smaller ONNX models: static int8 (QDQ, calibrated on real training images) and float16.

    from export.quantize import quantize_onnx_int8, convert_onnx_fp16
    quantize_onnx_int8("model.onnx", "model_int8.onnx", calibration_images)
    convert_onnx_fp16("model.onnx", "model_fp16.onnx")

Both through the maintained tools: `onnxruntime.quantization` (pre-processing with shape
inference, then `quantize_static` in the QDQ format with per-channel int8 weights, which ONNX
Runtime's docs recommend for CNNs) and `onnxconverter_common.float16` (inputs and outputs kept
float32). LiteRT int8 is `export.litert.export_litert(..., representative=images)`.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from export.common import atomic_output

__all__ = ["quantize_onnx_int8", "convert_onnx_fp16", "calibration_sample", "NUM_CALIBRATION"]

NUM_CALIBRATION = 200


def calibration_sample(inputs, count=NUM_CALIBRATION, seed=0):
    """A seeded random subset of `count` training inputs for int8 calibration, as float32.

    Random, not the first rows: a split stored class by class (the 2-D swiss roll is) gives
    first rows of one class only, and ranges calibrated on them clip the other class's
    activations (the swiss-roll int8 models fell to 49.9%, one class for every point).
    """
    inputs = np.asarray(inputs, dtype="float32")
    index = np.random.default_rng(seed).permutation(len(inputs))[:count]
    return inputs[np.sort(index)]


# Only the weight-carrying ops: int8 TV normalisation (mean, variance, reciprocal square root)
# cost 2.6 points of accuracy on the Hamiltonian PDE CNN, and these ops hold no weights.
QUANTIZED_OP_TYPES = ("Conv", "MatMul", "Gemm")


def quantize_onnx_int8(fp32_path, path, calibration, batch_size=50, per_channel=True, overwrite=False,
                       op_types=QUANTIZED_OP_TYPES):
    """Static int8 QDQ quantisation of `fp32_path` into `path`; returns `path`.

    Args:
        calibration: array of real inputs `(n, ...)` as the model takes them (raw pixels),
            e.g. a few hundred training images; activation ranges are calibrated on them (MinMax).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    calibration = np.asarray(calibration, dtype="float32")
    if calibration.ndim < 2 or len(calibration) == 0:
        raise ValueError(f"`calibration` must be a non-empty batch of inputs; got shape {calibration.shape}")
    import onnx

    fp32 = onnx.load(fp32_path)
    input_name = fp32.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(np.array_split(calibration, max(1, len(calibration) // batch_size)))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory() as tmp, atomic_output(path, overwrite=overwrite) as out:
        prepared = os.path.join(tmp, "prepared.onnx")
        # ONNX Runtime's optimiser in the pre-processing inlines model-local functions: it would
        # spell out every `TensorflowTanh` call again (`export.tf_numerics`), 4x the file. Graphs
        # that have them are dense (tiny matmuls, nothing for the optimiser to fuse).
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True, skip_optimization=bool(fp32.functions))
        quantize_static(
            prepared, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types) if op_types else None,
        )
        from export.onnx import drop_default_attributes, shorten_names

        quantized = onnx.load(out)
        shorten_names(quantized)
        drop_default_attributes(quantized)  # pre-processing spells the defaults out again
        # Pre-processing annotates every tensor's shape (value_info). ONNX Runtime and the full
        # check infer shapes themselves, so the annotations only cost bytes: 7 KiB (7% of the
        # file) for the H&R Verlet conv net, more than its int8 weights save on small models.
        del quantized.graph.value_info[:]
        onnx.save(quantized, out)
        onnx.checker.check_model(out, full_check=True)
    return path


def convert_onnx_fp16(fp32_path, path, overwrite=False):
    """float16 weights and activations, float32 input and output; returns `path`."""
    import onnx
    from onnxconverter_common import float16

    from export.tf_numerics import native_tanh_calls

    model = onnx.load(fp32_path)
    if any(node.op_type == "Loop" for node in model.graph.node):
        raise ValueError(
            f"{fp32_path} has an ONNX Loop (a block deeper than the unroll limit): onnxconverter-common's "
            "float16 conversion breaks the loop body's types; export float32 or int8 instead"
        )
    native_tanh_calls(model)  # float16 has no use for TensorFlow's float32 rounding
    model = float16.convert_float_to_float16(model, keep_io_types=True)
    # The converter leaves stale float32 value_info next to float16 tensors, which the full check
    # rejects (onnxconverter-common#256); the runtime re-infers these shapes anyway.
    del model.graph.value_info[:]
    with atomic_output(path, overwrite=overwrite) as out:
        onnx.save(model, out)
        onnx.checker.check_model(out, full_check=True)
    return path
