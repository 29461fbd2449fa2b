"""Multilevel training of Haber & Ruthotto 2017 ("hr17"), Sec. 5.3: prolongation N -> 2N at
fixed T by piecewise-linear interpolation in time (Meganet `prolongateWeights`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.multilevel import LevelRecord, prolongate_model, prolongate_weights, train_multilevel
from training.regularizers import TimeSmoothness, attach_time_smoothness, ode_blocks
from zoo.blocks import antisymmetric_block, leapfrog_block, resnet_block, verlet_block
from zoo.initializers import StepwiseGlorotUniform


def _init(seed):
    return keras.initializers.GlorotUniform(seed=seed)


def _dense_model(make, depth, T=1.0, width=3, name="block"):
    inputs = keras.Input((width,), name="features")
    y = make(depth, T, name=name)(inputs)
    outputs = keras.layers.Dense(2, kernel_initializer=_init(1), name="predictions")(y)
    return keras.Model(inputs, outputs)


def _smooth_weights(model, rng, scale=1.0):
    """Kernels and biases linear in t (the setting where prolongation is consistent)."""
    for block in ode_blocks(model):
        t = np.arange(block.depth) * block.h / block.T
        k0, k1 = scale * rng.normal(size=(2, *block.kernel.shape[1:]))
        block.kernel.assign((k0 + 0.5 * t.reshape(-1, *[1] * k0.ndim) * k1).astype("float32"))
        if block.bias is not None:
            block.bias.assign(np.broadcast_to(
                (0.1 + 0.2 * t).reshape(-1, *[1] * (len(block.bias.shape) - 1)), block.bias.shape
            ).astype("float32"))


def _non_block_weights(model):
    blocks = {id(v) for b in ode_blocks(model) for v in b.weights}
    return [keras.ops.convert_to_numpy(v) for v in model.weights if id(v) not in blocks]


# === prolongate_weights ===


@pytest.mark.parametrize("shape", [(5, 3, 2), (5,), (5, 4), (1, 2, 2)])
def test_hr17_sec5_3_prolongation_interpolates_linearly_and_holds_the_last_step(rng, shape):
    """`W'_{2j} = W_j`, `W'_{2j+1} = (W_j + W_{j+1})/2`, `W'_{2N-1} = W_{N-1}` (t' = i h/2)."""
    w = rng.normal(size=shape)
    n = shape[0]
    fine = prolongate_weights(w)
    assert fine.shape == (2 * n, *shape[1:]) and fine.dtype == w.dtype
    np.testing.assert_array_equal(fine[0::2], w)
    np.testing.assert_allclose(fine[1:-1:2], 0.5 * (w[:-1] + w[1:]), rtol=1e-15)
    np.testing.assert_array_equal(fine[-1], w[-1])


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_prolongation_equals_np_interp_with_clamping(rng, factor):
    """Meganet's `interp1` from `t = 0:h:(N-1)h` to `t' = 0:h/f:(fN-1)h/f`, clamped at the end."""
    n, h = 6, 0.7
    w = rng.normal(size=(n, 2, 3))
    t, t_fine = np.arange(n) * h, np.arange(factor * n) * h / factor
    expected = np.stack(
        [np.interp(t_fine, t, w[:, a, b]) for a in range(2) for b in range(3)], axis=-1
    ).reshape(factor * n, 2, 3)
    np.testing.assert_allclose(prolongate_weights(w, factor), expected, rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError, match="Received: factor=0"):
        prolongate_weights(w, 0)


# === prolongate_model ===


def test_hr17_sec5_3_prolongate_model_doubles_depth_at_fixed_T(rng):
    """Every block goes to depth 2N with the same T (so h halves), stepwise weights are
    prolongated, every other weight (head included) is copied, and the input model is
    untouched."""
    inputs = keras.Input((3,), name="features")
    y = keras.layers.Dense(4, name="lift")(inputs)
    y = resnet_block(4, 2.0, name="euler")(y)
    y = verlet_block(3, 5.0, name="verlet")(y)
    outputs = keras.layers.Dense(2, name="predictions")(y)
    model = keras.Model(inputs, outputs, name="two_blocks")
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]

    fine = prolongate_model(model)
    assert fine is not model and fine.name == "two_blocks"
    for old, new in zip(ode_blocks(model), ode_blocks(fine)):
        assert (new.name, new.depth, new.T) == (old.name, 2 * old.depth, old.T)
        assert new.h == pytest.approx(old.h / 2, rel=1e-15)
        for name, w in old.raw_weights().items():
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(new.raw_weights()[name]),
                prolongate_weights(keras.ops.convert_to_numpy(w)),
            )
    for a, b in zip(_non_block_weights(model), _non_block_weights(fine)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    assert [b.depth for b in ode_blocks(prolongate_model(fine, factor=3))] == [24, 18]


@pytest.mark.parametrize("make", [resnet_block, antisymmetric_block, verlet_block])
def test_hr17_sec5_3_prolongated_network_computes_nearly_the_same_function(rng, make):
    """With weights smooth in t, outputs right after prolongation differ from the coarse ones by
    O(h): measured max |f_N - f_2N| = 0.053-0.061 at N = 4, T = 1 (logits up to 1.3-2.1), and
    the difference halves with each further level (first-order steps). Asserted: < 0.1 * |f|_max *
    (h / 0.25), and the next level's difference < 0.65 of this one. (H&R 2017, Sec. 6.4: MNIST
    98.41% right after prolongation vs 98.47% after training.) The head is copied exactly."""
    model = _dense_model(make, depth=4)
    _smooth_weights(model, rng)
    x = rng.normal(size=(64, 3)).astype("float32")
    levels = [model, prolongate_model(model)]
    levels.append(prolongate_model(levels[-1]))
    outs = [m.predict(x, verbose=0) for m in levels]
    d1, d2 = np.abs(outs[0] - outs[1]).max(), np.abs(outs[1] - outs[2]).max()
    assert d1 < 0.1 * np.abs(outs[0]).max() * (ode_blocks(model)[0].h / 0.25)
    assert d2 < 0.65 * d1
    for m in levels[1:]:
        head, fine_head = model.get_layer("predictions"), m.get_layer("predictions")
        for a, b in zip(head.get_weights(), fine_head.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_printed_leapfrog_start_is_not_depth_consistent(rng):
    """`Y_{-1} = 0` (Eq. 4.16 as printed) makes `Y_1 = 2 Y_0 + ...`: the output grows with N,
    so prolongation does not preserve the function (documented caveat)."""
    model = _dense_model(leapfrog_block, depth=4)
    _smooth_weights(model, rng)
    x = rng.normal(size=(32, 3)).astype("float32")
    out, out_fine = model.predict(x, verbose=0), prolongate_model(model).predict(x, verbose=0)
    assert np.abs(out - out_fine).max() > 0.5 * np.abs(out).max()


def test_prolongate_model_with_image_layers_and_nested_head(rng):
    """Rescaling + Conv2D opening, a conv antisymmetric block, and a nested Sequential head
    (Flatten + Dense): all non-block weights copied; outputs close (measured max difference
    0.036 of the logits' max at N = 4 -> 8) and converging at first order (0.5x per level)."""
    head = keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, kernel_initializer=_init(2), name="predictions"),
        ],
        name="head",
    )
    inputs = keras.Input((6, 6, 1), name="image")
    y = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer=_init(3), name="opening")(y)
    y = antisymmetric_block(4, 1.0, operator="conv", name="unit")(y)
    model = keras.Model(inputs, head(y))
    _smooth_weights(model, rng, scale=1.0 / 6.0)  # ~ 1/sqrt(fan_in) of a 3x3x4 kernel
    fine = prolongate_model(model)
    assert ode_blocks(fine)[0].depth == 8
    for a, b in zip(_non_block_weights(model), _non_block_weights(fine)):
        np.testing.assert_array_equal(a, b)
    x = rng.uniform(0, 255, size=(8, 6, 6, 1)).astype("float32")
    outs = [m.predict(x, verbose=0) for m in (model, fine, prolongate_model(fine))]
    d1, d2 = np.abs(outs[0] - outs[1]).max(), np.abs(outs[1] - outs[2]).max()
    assert d1 < 0.1 * np.abs(outs[0]).max() and d2 < 0.65 * d1


def test_prolongate_model_keeps_time_smoothness_penalty(rng):
    """Variable regularisers survive prolongation, and Eq. 5.23 has the same value at 2N."""
    model = _dense_model(resnet_block, depth=4)
    _smooth_weights(model, rng)
    attach_time_smoothness(model, 0.1)
    fine = prolongate_model(model)
    block = ode_blocks(fine)[0]
    assert isinstance(block.kernel.regularizer, TimeSmoothness)
    assert block.kernel.regularizer.T == 1.0
    np.testing.assert_allclose(
        sum(float(v) for v in fine.losses), sum(float(v) for v in model.losses), rtol=1e-5
    )
    # A fixed-h TimeSmoothness follows h -> h/2 (on the variable, and in the config if the
    # block has `kernel_regularizer`).
    coarse = ode_blocks(model)[0]
    coarse.kernel.regularizer = TimeSmoothness(0.1, h=0.25)
    if hasattr(coarse, "kernel_regularizer"):
        coarse.kernel_regularizer = coarse.kernel.regularizer
    assert ode_blocks(prolongate_model(model))[0].kernel.regularizer.h == 0.125


def test_prolongate_model_returns_an_uncompiled_model():
    """Keras' clone_model would recompile from the compile config (and fail on an unregistered
    loss); the prolongated model is uncompiled and the coarse one keeps its compile state."""
    model = _dense_model(resnet_block, depth=2)
    model.compile(optimizer="sgd", loss=lambda y, p: keras.ops.mean(keras.ops.square(y - p)))
    fine = prolongate_model(model)
    assert not fine.compiled and model.compiled


def test_prolongate_model_rejects_blocks_hidden_in_composite_layers():
    @keras.saving.register_keras_serializable(package="stable_zoo_tests")
    class Wrapper(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = resnet_block(2, 1.0)

        def call(self, x):
            return self.inner(x)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Wrapper(name="wrapper")(inputs))
    with pytest.raises(ValueError, match="'wrapper'.*contains ODEBlocks"):
        prolongate_model(model)


# === train_multilevel ===


def _blobs(rng, n):
    x = rng.normal(size=(n, 2)).astype("float32")
    y = (x[:, 0] * x[:, 1] > 0).astype("int32")  # XOR quadrants: needs the nonlinear block
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(64)


def test_hr17_sec5_3_train_multilevel_two_levels_keeps_best_validation_weights(rng):
    """Levels N = 2, 4 at T = 1: one record per level, the prolongated depth, the validation
    accuracy of the prolongated weights before training, and the returned model carries the
    best-validation epoch's weights (its val accuracy equals the recorded best)."""
    train, val = _blobs(rng, 512), _blobs(rng, 256)

    def build(depth):
        inputs = keras.Input((2,), name="features")
        y = keras.layers.Dense(4, kernel_initializer=_init(4), name="lift")(inputs)
        y = resnet_block(
            depth, 1.0, kernel_initializer=StepwiseGlorotUniform(seed=5), name="euler"
        )(y)
        outputs = keras.layers.Dense(2, kernel_initializer=_init(6), name="predictions")(y)
        model = keras.Model(inputs, outputs)
        return attach_time_smoothness(model, 1e-3)

    model, records = train_multilevel(
        build,
        levels=(2, 4),
        train_data=train,
        val_data=val,
        epochs_per_level=3,
        compile_kwargs=dict(
            optimizer=keras.optimizers.Adam(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        ),
        jit_compile=True,
    )
    assert [r.depth for r in records] == [2, 4]
    assert [r.block_depths for r in records] == [{"euler": 2}, {"euler": 4}]
    assert all(isinstance(r, LevelRecord) for r in records)
    assert records[0].val_accuracy_after_prolongation is None
    assert 0.0 <= records[1].val_accuracy_after_prolongation <= 1.0
    for r in records:
        assert len(r.epoch_times) == 3 and all(t > 0 for t in r.epoch_times)
        assert r.val_accuracy == max(r.history["val_accuracy"]) == r.best_monitor
        assert r.train_accuracy == r.history["accuracy"][r.best_epoch]
    assert isinstance(ode_blocks(model)[0].kernel.regularizer, TimeSmoothness)
    logs = model.evaluate(val, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(records[-1].val_accuracy, abs=1e-6)


def test_train_multilevel_validates_levels():
    with pytest.raises(ValueError, match="integer multiple"):
        train_multilevel(lambda d: None, (4, 6), None, None, 1, compile_kwargs={})
