"""Registry-driven checks: every registered architecture builds, runs, and counts right."""

import numpy as np
import pytest

import zoo
from zoo.registry import register_model

ALL_MODELS = zoo.list_models()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_forward(name):
    model = zoo.create(name, depth=4)
    shape = model.input_shape[1:]
    x = np.random.default_rng(0).uniform(0, 255 if len(shape) == 3 else 1, (3, *shape)).astype("float32")
    logits = model.predict(x, verbose=0)
    assert logits.shape == (3, model.output_shape[-1]) and np.all(np.isfinite(logits))


def test_hr17_sec6_4_mnist_network_weight_count():
    """Width 6, 3x3 convs: 324 kernel weights + 1 scalar bias per layer; head 4,704 x 10 + 10."""
    for depth in (4, 8, 16):
        model = zoo.create("hr17_antisymmetric_conv", depth=depth)
        block = model.get_layer("block")
        assert block.count_params() == depth * (6 * 6 * 9 + 1)
        assert model.get_layer("predictions").count_params() == 4704 * 10 + 10
        assert model.count_params() == depth * 325 + 47050 + 6 * 9 + 6


def test_hr17_2d_network_widths_and_heads():
    model = zoo.create("hr17_resnet", depth=8, width=8, num_classes=5, lifting="duplicate")
    assert model.get_layer("block").kernel.shape == (8, 8, 8)
    assert model.output_shape == (None, 5)
    assert zoo.create("hr17_verlet", width=2).output_shape == (None, 1)  # logistic head


def test_unknown_model_names_the_problem():
    with pytest.raises(ValueError, match="Unknown model 'hr17_resnett'.*hr17_resnet"):
        zoo.create("hr17_resnett")


def test_duplicate_registration_fails():
    def hr17_resnet(**overrides):
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_model(hr17_resnet)
