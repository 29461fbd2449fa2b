"""TensorFlow's rounding in exported graphs (`export.tf_numerics`), bit for bit (issue 10)."""

import numpy as np
import pytest

import onnx

from export.tf_numerics import (
    ONNX_TANH,
    TANH_CLAMP,
    collapse_tanh_scopes,
    native_tanh_calls,
    tensorflow_tanh,
    unfused_bias_add,
)

pytestmark = pytest.mark.export


def _tanh_inputs():
    """Every region of the rational: tiny, the bulk, near and past the clamp, and the limits."""
    rng = np.random.default_rng(0)
    return np.concatenate([
        np.linspace(-10, 10, 400_001, dtype="float32"),
        rng.normal(0, 2, 200_000).astype("float32"),
        rng.normal(0, 1e-4, 10_000).astype("float32"),
        np.nextafter(np.float32(TANH_CLAMP), np.float32([0, 20])),
        np.float32([0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38, np.inf, -np.inf]),
    ]).astype("float32")


def ort_run(proto, x):
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString()).run(None, {proto.graph.input[0].name: x})[0]


def _tf_function(fn):
    import tensorflow as tf

    spec = tf.TensorSpec((None,), tf.float32, name="x")
    return tf.function(fn, input_signature=[spec], autograph=False), spec


def test_tensorflow_tanh_is_tensorflows_tanh_bit_for_bit():
    import tensorflow as tf

    x = _tanh_inputs()
    expected = tf.math.tanh(x).numpy()
    np.testing.assert_array_equal(np.asarray(tensorflow_tanh(tf.constant(x))), expected)
    # The test can fail: ONNX Runtime's own Tanh rounds differently on many inputs.
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Tanh", ["x"], ["y"])], "tanh",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    native = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                  .SerializeToString()).run(None, {"x": x})[0]
    assert np.mean(native != expected) > 0.01


def test_onnx_runtime_and_litert_round_the_exported_tanh_as_tensorflow_does():
    """The point of the module: the runtimes keep every multiply and add separately rounded."""
    import tensorflow as tf
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    x = _tanh_inputs()
    expected = tf.math.tanh(x).numpy()
    fn, spec = _tf_function(lambda v: tf.identity(tensorflow_tanh(v), name="y"))

    patch_tf2onnx()
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=[spec], opset=17)
    assert "Tanh" not in {n.op_type for n in proto.graph.node}
    spelled_out = ort_run(proto, x)
    np.testing.assert_array_equal(spelled_out, expected)
    # Collapsed into one call of the model-local function, as `export_onnx` writes it.
    assert collapse_tanh_scopes(proto) == 1
    assert [n.op_type for n in proto.graph.node if n.op_type != "Identity"] == [ONNX_TANH]
    assert not proto.graph.initializer  # the coefficients live in the function only
    onnx.checker.check_model(proto, full_check=True)
    np.testing.assert_array_equal(ort_run(proto, x), expected)
    # float16 conversion gets the standard op back.
    native_tanh_calls(proto)
    assert [n.op_type for n in proto.graph.node if n.op_type != "Identity"] == ["Tanh"] and not proto.functions

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.resize_tensor_input(0, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), expected)


def _fully_connected_biases(add):
    """LiteRT FULLY_CONNECTED ops of `x W + b` written with `add`: their bias inputs (-1: none)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(4, 4)).astype("float32"))
    bias = tf.constant(rng.normal(size=(4,)).astype("float32"))
    spec = tf.TensorSpec((None, 4), tf.float32, name="x")
    fn = tf.function(lambda v: add(tf.matmul(v, kernel), bias), input_signature=[spec], autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    ops = Interpreter(model_content=converter.convert())._get_ops_details()
    return [op["inputs"][2] if len(op["inputs"]) > 2 else -1 for op in ops if op["op_name"] == "FULLY_CONNECTED"]


def test_unfused_bias_add_keeps_the_bias_out_of_litert_fully_connected():
    import tensorflow as tf

    assert all(b >= 0 for b in _fully_connected_biases(tf.add))  # what the converter does otherwise
    assert _fully_connected_biases(unfused_bias_add) == [-1]
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    b = np.float32([1.5, -2.0, 0.25])
    np.testing.assert_array_equal(np.asarray(unfused_bias_add(tf.constant(x), b)), x + b)
