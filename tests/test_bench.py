"""export.bench: the memory child stays free of TensorFlow, and the report renders from bench.json."""

import json
import os

import numpy as np

from export import bench


def _tiny_onnx(path):
    """A 4-feature -> 3-logit affine ONNX model, built without TensorFlow."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 3), "float32"), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnx_memory_child_is_fresh_and_tensorflow_free(tmp_path):
    path = str(tmp_path / "tiny.onnx")
    _tiny_onnx(path)
    result = bench.peak_rss(path, "onnx")
    assert 0 < result["peak_rss_kib"] < 400 * 1024  # its own peak, not one inherited from the parent
    assert result["imported_tensorflow"] is False and result["imported_keras"] is False


def test_report_renders_table_and_figures(tmp_path):
    def row(artefact, size, ms, accuracy, rss_mb):
        return {"artefact": artefact, "kind": "x", "path": artefact, "bytes": size, "accuracy": accuracy,
                "latency_ms": {"1": {"p50": ms, "p99": 2 * ms}, "32": {"p50": 10 * ms, "p99": 20 * ms}},
                "max_abs_logit_diff": {"1": 2e-5 if artefact == "onnx_fp32" else 1e-6, "32": 3e-6},
                "memory": {"peak_rss_kib": rss_mb * 1024}}

    record = {"name": "rh18_parabolic_fashion_mnist", "date": "2026-01-01T00:00:00", "dataset": "fashion_mnist",
              "split": "test", "num_examples": 500, "card_accuracy": 0.91, "errors": {"litert_int8": "boom"},
              "settings": {"limit": 500}, "keras_float32_error": {"1": 1.5e-5, "32": 2e-6},
              "machine": {"cpu": "Test CPU", "cores": 2, "load_average_start": 1.0, "load_average_end": 3.0,
                          "versions": {"onnxruntime": "1.0"}},
              "rows": [row("keras", 600_000, 9.0, 0.91, 700), row("saved_model", 900_000, 6.0, 0.91, 600),
                       row("onnx_fp32", 500_000, 1.5, 0.91, 60), row("onnx_int8", 150_000, 1.0, 0.895, 50)]}
    os.makedirs(tmp_path / "bench" / record["name"])
    (tmp_path / "bench" / record["name"] / "bench.json").write_text(json.dumps(record))
    doc = bench.write_report(str(tmp_path / "bench"), str(tmp_path / "docs"))
    text = open(doc).read()
    assert "python -m export.bench --report" in text and "Test CPU, 2 cores" in text
    assert "| onnx_int8 | 150.0 | 30% | 1.00 / 2.00 | 10.00 / 20.00 | 50 | 89.50% |" in text
    assert "6.0x faster (holds)" in text  # (a) Keras 9 ms vs ONNX 1.5 ms
    assert "-1.50 points (**does not hold**)" in text  # (b) accuracy drop beyond 1 point
    assert "60 MB vs 600 MB (10%) (holds)" in text  # (c)
    assert "`litert_int8` failed: boom" in text
    # (d) per batch size, the worst artefact; a miss names Keras' own float32 error at that batch
    assert ("2.0e-05 / 3.0e-06 (batch 1 / 32) (**does not hold**); Keras float32 itself is 1.5e-05 "
            "from the float64 result at batch 1") in text
    assert "| 50 | 89.50% | 1.0e-06 / 3.0e-06 |" in text
    for figure in ("deployment_latency.png", "deployment_size.png"):
        assert os.path.getsize(tmp_path / "docs" / "figures" / figure) > 1000
