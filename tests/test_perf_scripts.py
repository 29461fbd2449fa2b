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
