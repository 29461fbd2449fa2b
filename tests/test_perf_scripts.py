"""The performance scripts run end to end on tiny inputs and derive their verdicts from data."""

import importlib.util
import os
import types

import keras
import numpy as np

BENCH_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_input_pipeline_measures_and_reports(tmp_path):
    bench = _script("input_pipeline")
    rng = np.random.default_rng(0)
    data = types.SimpleNamespace(x_train=rng.integers(0, 256, (64, 28, 28, 1)).astype("uint8"),
                                 y_train=rng.integers(0, 10, 64).astype("int32"))
    result = bench.measure("hr17_antisymmetric_conv", 16, lambda: keras.optimizers.SGD(0.01), data,
                           steps=2, repeats=1)
    assert result["jit_compile"] is False  # a conv model on CPU: the zoo's policy
    assert result["bare_step_ms"] > 0 and result["fit_step_ms"] > 0 and result["tfdata_images_per_second"] > 0
    slow = dict(result, model="slow_fit", fit_over_bare=1.5)
    bench.write_outputs([result, slow], str(tmp_path))
    text = (tmp_path / "input_pipeline.md").read_text()
    assert "outside the 10% bound" in text and "**no**" in text  # the verdict follows the numbers
    assert (tmp_path / "input_pipeline.png").stat().st_size > 0
