"""The zoo's default `jit_compile` (zoo.jit_policy): XLA for dense blocks on CPU, not for convs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.jit_policy import ENV_VAR, choose_jit_compile, uses_convolution
from zoo.models.base import ZooModel
from zoo.pretrained import replace_head


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.mark.parametrize("name, conv", [
    ("hr17_antisymmetric", False), ("hr17_verlet", False), ("galimberti_h1", False),
    ("hr17_antisymmetric_conv", True), ("rh18_parabolic_fashion_mnist", True),
])
def test_default_compile_follows_the_measured_choice(name, conv):
    model = zoo.create(name)
    assert isinstance(model, ZooModel)
    assert uses_convolution(model) is conv
    model.compile(optimizer="sgd", loss="mse")
    assert model.jit_compile is (not conv)  # Keras' own "auto" would give False for both on CPU


def test_explicit_choice_and_environment_override(monkeypatch):
    model = zoo.create("hr17_antisymmetric", depth=4)
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    assert model.jit_compile is False
    monkeypatch.setenv(ENV_VAR, "off")
    model.compile(optimizer="sgd", loss="mse")
    assert model.jit_compile is False
    monkeypatch.setenv(ENV_VAR, "sometimes")
    with pytest.raises(ValueError, match=ENV_VAR):
        model.compile(optimizer="sgd", loss="mse")


def test_gpu_and_distribution_defer_to_keras_rules():
    model = zoo.create("hr17_antisymmetric", depth=4)
    assert choose_jit_compile(model, device_type="GPU") == "auto"
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert choose_jit_compile(model) is False


def test_saved_model_keeps_class_and_compile_state(tmp_path):
    model = zoo.create("hr17_antisymmetric", depth=4)
    model.compile(optimizer="adam", loss="mse")
    x, y = np.random.rand(8, 2).astype("float32"), np.random.rand(8, 1).astype("float32")
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, ZooModel) and loaded.compiled and loaded.jit_compile is True
    np.testing.assert_array_equal(loaded(x), model(x))


def test_new_head_keeps_the_policy():
    model = replace_head(zoo.create("hr17_antisymmetric", depth=4), 5)
    assert isinstance(model, ZooModel)
