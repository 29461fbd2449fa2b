"""Registry-driven checks: every registered architecture builds, runs, and counts right."""

import keras
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


def test_chunked_dense_is_dense_summed_in_chunks_and_round_trips():
    from zoo.layers import ChunkedDense, chunk_layout

    keras.utils.set_random_seed(0)
    assert chunk_layout(4704, 512) == (12, 392)  # a divisor: no padding
    assert chunk_layout(1031, 512) == (3, 344)  # 1,031 is prime: 1 zero appended
    x = np.random.default_rng(0).standard_normal((4, 1031)).astype("float32")
    dense = keras.layers.Dense(7, activation="softmax")
    expected = np.asarray(dense(x))
    chunked = ChunkedDense.from_config({**dense.get_config(), "chunk": 512})
    chunked.build(x.shape)
    chunked.set_weights(dense.get_weights())
    np.testing.assert_allclose(chunked(x), expected, rtol=1e-6, atol=1e-7)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(chunked))
    clone.set_weights(chunked.get_weights())
    assert clone.chunk == 512
    np.testing.assert_allclose(clone(x), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="`chunk` must be >= 1"):
        ChunkedDense(3, chunk=0)


def test_wide_heads_give_the_same_logits_at_every_batch_size():
    """TensorFlow sums a batch-1 matmul in one running sum: 1e-5 on a 4,704-input head."""
    from zoo.layers import ChunkedDense

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (32, 4704)).astype("float32")  # non-negative, like the flattened state
    kernel = (0.05 * rng.standard_normal((4704, 10))).astype("float32")
    exact = x.astype("float64") @ kernel.astype("float64")
    head = ChunkedDense(10, use_bias=False)
    head.build(x.shape)
    head.set_weights([kernel])
    one_by_one = np.concatenate([np.asarray(head(x[i:i + 1])) for i in range(len(x))])
    np.testing.assert_allclose(one_by_one, np.asarray(head(x)), rtol=0, atol=1e-6)
    assert np.max(np.abs(one_by_one - exact)) < 5e-6
    model = zoo.create("hr17_resnet_conv", depth=2)  # the H&R MNIST network's head is one
    assert isinstance(model.get_layer("predictions"), ChunkedDense)
    assert type(zoo.create("rh18_parabolic_fashion_mnist").get_layer("predictions")) is keras.layers.Dense
