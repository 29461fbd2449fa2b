"""LiteRT (TFLite) flatbuffers, builtin ops only, converted from the folded inference graph.

    from export.litert import export_litert
    export_litert(model, "model.tflite")                               # float32
    export_litert(model, "model_int8.tflite", representative=images)   # int8 weights and activations

Converted from a SavedModel of the folded model (`export.fold`, with wide dense layers split
into chunks summed separately, see `zoo.layers.ChunkedDense`): TFLiteConverter.from_keras_model
does not work with Keras 3 (keras-team/keras#18430), and Keras' own LiteRT export allows Flex
(SELECT_TF_OPS) ops, which need the Flex delegate on the device. Here only `TFLITE_BUILTINS`
(plus their int8 versions) are allowed, so an unsupported op fails the export instead of
shipping a model the device cannot run. Run the result with `ai_edge_litert` (`export.runtime`).
"""

from __future__ import annotations

import tempfile

import numpy as np

from export.common import atomic_output
from export.fold import DENSE_CHUNK, fold_model

__all__ = ["export_litert", "drop_tensor_names"]


def export_litert(model, path, representative=None, overwrite=False, num_calibration=200):
    """Write a LiteRT flatbuffer of `model` to `path`; returns `path`.

    Args:
        representative: None for float32; or an array of real inputs `(n, ...)` (raw pixels)
            for full-integer int8 quantisation of weights and activations (the input and output
            stay float32, so callers feed the same data). The first `num_calibration` are used.
    """
    import tensorflow as tf

    from export.saved_model import export_saved_model

    with tempfile.TemporaryDirectory() as tmp:
        # Chunked heads: XNNPack's fully connected kernel sums long dot products sequentially;
        # separate dense biases: it would start each dot product from a fused one. Both rounding
        # fixes are for float32: int8 quantises every op, and a tanh spelled out in 24 int8 ops
        # would lose what the single int8 TANH keeps.
        float32 = representative is None
        folded = fold_model(model, dense_chunk=DENSE_CHUNK, tensorflow_tanh=float32, separate_dense_bias=float32)
        saved = export_saved_model(folded, tmp, "folded", 1)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if representative is not None:
            samples = np.asarray(representative, dtype="float32")[:num_calibration]
            if samples.ndim < 2 or len(samples) == 0:
                raise ValueError(f"`representative` must be a non-empty batch of inputs; got shape {samples.shape}")

            def dataset():
                for sample in samples:
                    yield [sample[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        flatbuffer = drop_tensor_names(converter.convert())
    with atomic_output(path, overwrite=overwrite) as tmp_path:
        with open(tmp_path, "wb") as f:
            f.write(flatbuffer)
    return path


def drop_tensor_names(flatbuffer):
    """The flatbuffer without the names of tensors no signature refers to; returns bytes.

    The converter names every tensor after its TensorFlow scope (50-100 bytes each): 80% of the
    file of a 64-step dense net, whose `tanh` is spelled out in 24 ops a step. The runtime needs
    only the signature's input and output tensors by name. TensorFlow's own
    `flatbuffer_utils.strip_strings` drops the signatures too, which the predictor calls.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for index, subgraph in enumerate(model.subgraphs):
        named = {m.tensorIndex for sig in model.signatureDefs or () if sig.subgraphIndex == index
                 for m in list(sig.inputs or ()) + list(sig.outputs or ())}
        named |= set(subgraph.inputs) | set(subgraph.outputs)
        for tensor_index, tensor in enumerate(subgraph.tensors):
            if tensor_index not in named:
                tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
