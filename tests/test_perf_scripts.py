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


def test_pointwise_xla_variant_computes_the_same_training_step():
    """The benchmark's fused variant (TV norm and ReLU under XLA) is the same network: same
    logits and gradients as the shipped model, to float32 round-off; a model without TV layers
    is refused."""
    import pytest
    import tensorflow as tf

    import zoo

    bench = _script("pointwise_xla")
    shipped = zoo.create(bench.MODEL)
    fused = bench.fuse_pointwise(zoo.create(bench.MODEL))
    fused.set_weights(shipped.get_weights())
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32"))

    def logits_and_gradients(model):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_sum(logits ** 2)
        return [logits] + tape.gradient(loss, model.trainable_weights)

    for a, b in zip(logits_and_gradients(shipped), logits_and_gradients(fused)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(a))))
    with pytest.raises(ValueError, match="no TV-normalised"):
        bench.fuse_pointwise(zoo.create("hr17_antisymmetric_conv"))


def test_speedup_spread_repeats_traces_and_judges_from_the_samples(tmp_path):
    """Both dense networks are compared and traced (tiny sizes); the verdict counts the samples
    under 5x, so it turns when one run or trace cycle falls short."""
    import pytest

    bench = _script("speedup_spread")
    record = bench.run(width=2, depth=16, runs=1, trace_seconds=0.5, mode="quick", neighbour_rounds=1)
    assert [r["series"] for r in record["repeats"]] == ["antisymmetric w=2", "verlet w=2"]
    assert [(r["series"], r["neighbour"]) for r in record["neighbours"]] == [
        (series, kind) for series in ("antisymmetric w=2", "verlet w=2") for kind in ("none", "cpu", "memory")]
    for row in record["neighbours"]:
        assert row["speedup"] == pytest.approx(row["torch_ms"] / row["zoo_ms"]) and row["torch_1_ms"] > 0
    for row in record["repeats"]:
        assert row["speedup"] == pytest.approx(row["torch_ms"] / row["zoo_ms"])
    for trace in record["traces"]:
        assert trace["cycles"] and all(c["zoo_steps"] >= 3 and c["torch_1_steps"] >= 3 for c in trace["cycles"])
        for cycle in trace["cycles"]:
            assert cycle["speedup"] == pytest.approx(cycle["torch_ms"] / cycle["zoo_ms"])
    for row in record["repeats"]:
        row["speedup"] = 6.0
    for cycle in (c for t in record["traces"] for c in t["cycles"]):
        cycle["speedup"] = 5.5
    assert "At least 5x in all 2 runs" in bench.verdict(record)
    record["traces"][1]["cycles"][0]["speedup"] = 4.9
    assert "under 5x in 0 of 2 runs and 1 of" in bench.verdict(record)
    text = bench.render(record)
    assert "| antisymmetric w=2 N=16 | 1 | 6.00 (6.00-6.00) | 0 |" in text and "lowest x4.90" in text
    assert "| verlet w=2 N=16 train b=256 | memory |" in text
    bench.plot(record, str(tmp_path / "spread.png"))
    assert (tmp_path / "spread.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        bench.main(["--runs", "0"])
