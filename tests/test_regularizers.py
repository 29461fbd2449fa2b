"""Regularisers of Haber & Ruthotto 2017 ("hr17"), Sec. 5: Eq. 5.23 (time smoothness), Eqs.
5.24-5.25 (Laplacian on classifier images), weight decay, and attaching them to blocks."""

import keras
import numpy as np
import pytest

from training.multilevel import prolongate_weights
from training.regularizers import (
    LaplacianSmoothness,
    TimeSmoothness,
    WeightDecay,
    attach_time_smoothness,
    block_time_smoothness,
    ode_blocks,
    time_smoothness,
)
from zoo.blocks import antisymmetric_block, resnet_block, verlet_block


def _hand_time_smoothness(w, h):
    total = 0.0
    for j in range(1, w.shape[0]):
        total += np.sum((w[j] - w[j - 1]) ** 2)
    return total / (2.0 * h)


def _numpy_laplacian(image, boundary):
    """5-point Laplacian of an `(H, W, C)` image, channel by channel."""
    mode = "edge" if boundary == "neumann" else "constant"
    p = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode=mode)
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * p[1:-1, 1:-1]


def _tiny_model(depth=4, T=1.0, width=3, make=resnet_block, bias="scalar"):
    inputs = keras.Input((width,), name="features")
    y = make(depth, T, bias=bias, name="block")(inputs)
    outputs = keras.layers.Dense(2, name="predictions")(y)
    return keras.Model(inputs, outputs)


# === Eq. 5.23: time smoothness ===


@pytest.mark.parametrize("shape", [(5, 3, 3), (5,), (5, 4), (5, 3, 3, 2, 2)])
def test_hr17_eq5_23_time_smoothness_zero_for_constant_weights(rng, shape):
    """Kernels (dense, conv) and scalar / vector biases constant in time give R = 0 exactly."""
    w = np.broadcast_to(rng.normal(size=shape[1:]), shape).astype("float64")
    assert float(time_smoothness(w, 0.25)) == 0.0
    assert float(TimeSmoothness(1e-3, h=0.25)(w)) == 0.0
    assert float(TimeSmoothness(1e-3, T=1.0)(w)) == 0.0


@pytest.mark.parametrize("shape", [(7, 3, 3), (7,), (7, 4), (1, 2, 2)])
def test_hr17_eq5_23_time_smoothness_matches_hand_formula(rng, shape):
    """`alpha/(2h) sum_{j=1}^{N-1} ||W_j - W_{j-1}||_F^2` in float64, rtol 1e-12."""
    w = rng.normal(size=shape)
    h, alpha = 20.0 / shape[0], 5e-3
    expected = _hand_time_smoothness(w, h)
    got = time_smoothness(w, h)
    assert keras.backend.standardize_dtype(got.dtype) == "float64"
    np.testing.assert_allclose(float(got), expected, rtol=1e-12)
    np.testing.assert_allclose(float(TimeSmoothness(alpha, h=h)(w)), alpha * expected, rtol=1e-12)
    # The T form reads N from the leading axis: h = T / N.
    by_T = float(TimeSmoothness(alpha, T=20.0)(w))
    np.testing.assert_allclose(by_T, alpha * expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hr17_eq5_23_time_smoothness_unchanged_by_prolongation_of_linear_weights(rng, dtype):
    """Weights linear in t, `W_j = A + s t_j`: R at (N, h) equals R at (2N, h/2), rtol 1e-6.

    (Paper notes: "[derived] ... piecewise-linear prolongation from N to 2N layers leaves R
    unchanged".) Kernel and scalar bias; T = 20 as in the 2-D experiments.
    """
    n, T = 8, 20.0
    h = T / n
    t = (np.arange(n) * h)
    kernel = rng.normal(size=(1, 3, 3)) + rng.normal(size=(1, 3, 3)) * t[:, None, None]
    bias = 0.3 - 0.05 * t
    for w in (kernel.astype(dtype), bias.astype(dtype)):
        fine = prolongate_weights(w)
        coarse_r, fine_r = float(time_smoothness(w, h)), float(time_smoothness(fine, h / 2))
        assert coarse_r > 0
        np.testing.assert_allclose(fine_r, coarse_r, rtol=1e-6)
        reg = TimeSmoothness(1.0, T=T)
        np.testing.assert_allclose(float(reg(fine)), float(reg(w)), rtol=1e-6)


def test_hr17_eq5_23_time_smoothness_unchanged_by_prolongation_of_any_weights(rng):
    """With the held last value the identity is exact for any weights (float64, rtol 1e-12)."""
    w = rng.normal(size=(6, 2, 2))
    for factor in (2, 3):
        fine = prolongate_weights(w, factor)
        np.testing.assert_allclose(
            float(time_smoothness(fine, 1.0 / factor)), float(time_smoothness(w, 1.0)), rtol=1e-12
        )


def test_time_smoothness_config_and_validation():
    for reg in (TimeSmoothness(1e-3, h=0.5), TimeSmoothness(5e-3, T=20.0)):
        restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
        assert type(restored) is TimeSmoothness and restored.get_config() == reg.get_config()
    with pytest.raises(ValueError, match="exactly one"):
        TimeSmoothness(1e-3)
    with pytest.raises(ValueError, match="exactly one"):
        TimeSmoothness(1e-3, h=1.0, T=1.0)
    with pytest.raises(ValueError, match="Received: alpha=-1.0"):
        TimeSmoothness(-1.0, h=1.0)


# === Eqs. 5.24-5.25: Laplacian on the classifier's images ===


def test_hr17_eq5_25_laplacian_zero_for_constant_class_images(rng):
    """Neumann boundary: `L w_k = 0` for every class image that is constant (per channel)."""
    H, W, C, classes = 6, 5, 2, 4
    images = np.broadcast_to(rng.normal(size=(1, 1, C, classes)), (H, W, C, classes))
    kernel = images.reshape(H * W * C, classes)
    assert float(LaplacianSmoothness(0.01, (H, W, C))(kernel)) == pytest.approx(0.0, abs=1e-12)
    # A zero boundary penalises constants at the border (documented difference).
    assert float(LaplacianSmoothness(0.01, (H, W, C), boundary="zero")(kernel)) > 0


@pytest.mark.parametrize("boundary", ["neumann", "zero"])
def test_hr17_eq5_25_laplacian_matches_numpy_reference_on_noise(rng, boundary):
    """`alpha/2 sum_k ||L w_k||^2` equals a NumPy 5-point reference (float64, rtol 1e-12)."""
    H, W, C, classes, alpha = 7, 6, 3, 5, 0.01
    kernel = rng.normal(size=(H * W * C, classes))
    images = kernel.reshape(H, W, C, classes)
    expected = 0.5 * alpha * sum(
        np.sum(_numpy_laplacian(images[..., k], boundary) ** 2) for k in range(classes)
    )
    got = float(LaplacianSmoothness(alpha, (H, W, C), boundary=boundary)(kernel))
    assert got > 0
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_laplacian_reads_dense_columns_in_flatten_order(rng):
    """A class column is the `Flatten` (channels last) of its image, so a Dense head on
    `Flatten()(image)` is regularised on the image itself."""
    H, W, C = 5, 4, 2
    image = rng.normal(size=(H, W, C)).astype("float32")
    column = keras.ops.convert_to_numpy(keras.layers.Flatten()(image[None]))[0]
    reg = LaplacianSmoothness(1.0, (H, W, C))
    lap = keras.ops.convert_to_numpy(reg.laplacian(column[:, None]))[0]
    np.testing.assert_allclose(lap, _numpy_laplacian(image, "neumann"), atol=1e-5)


def test_laplacian_shape_check_and_config():
    reg = LaplacianSmoothness(0.01, (4, 4))
    assert reg.image_shape == (4, 4, 1)
    with pytest.raises(ValueError, match=r"Received: shape=\(15, 3\)"):
        reg(np.zeros((15, 3), "float32"))
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert type(restored) is LaplacianSmoothness and restored.image_shape == (4, 4, 1)


# === Sec. 5.1: weight decay ===


def test_hr17_sec5_1_weight_decay_is_half_alpha_squared_norm(rng):
    w = rng.normal(size=(4, 3))
    np.testing.assert_allclose(float(WeightDecay(0.1)(w)), 0.05 * np.sum(w**2), rtol=1e-12)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(WeightDecay(0.1)))
    assert type(restored) is WeightDecay and restored.get_config() == {"alpha": 0.1}


# === Attaching Eq. 5.23 to blocks ===


@pytest.mark.parametrize("make", [resnet_block, antisymmetric_block, verlet_block])
def test_attach_time_smoothness_adds_alpha_R_to_the_fit_loss(rng, make):
    """`evaluate` loss grows by exactly `alpha (R(K) + R(b))` (Eq. 2.4 with Eq. 5.23)."""
    model = _tiny_model(make=make)
    block = ode_blocks(model)[0]
    block.kernel.assign(rng.normal(size=block.kernel.shape).astype("float32"))
    block.bias.assign(rng.normal(size=block.bias.shape).astype("float32"))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.integers(0, 2, size=16)
    plain = model.evaluate(x, y, verbose=0)
    alpha = 0.5
    assert attach_time_smoothness(model, alpha) is model  # also resets the compiled functions
    penalised = model.evaluate(x, y, verbose=0)
    expected = alpha * sum(block_time_smoothness(block).values())
    np.testing.assert_allclose(penalised - plain, expected, rtol=1e-4)
    attach_time_smoothness(model, 0.0)
    assert model.losses == []


def test_attach_time_smoothness_trains_under_xla(rng):
    """`fit` with `jit_compile=True` (as for dense blocks) lowers the penalised objective and
    the Eq. 5.23 term itself when alpha dominates (alpha = 1; SGD step < h / (2 alpha))."""
    model = attach_time_smoothness(_tiny_model(depth=8), 1.0)
    block = ode_blocks(model)[0]
    block.kernel.assign(rng.normal(size=block.kernel.shape).astype("float32"))
    before = sum(block_time_smoothness(block).values())
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.integers(0, 2, size=32)
    history = model.fit(x, y, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert sum(block_time_smoothness(block).values()) < before


def test_attach_time_smoothness_bias_optional_and_needs_blocks():
    model = _tiny_model()
    attach_time_smoothness(model, 1e-3, bias=False)
    block = ode_blocks(model)[0]
    assert isinstance(block.kernel.regularizer, TimeSmoothness) and block.bias.regularizer is None
    assert block.kernel.regularizer.T == block.T
    assert block.kernel_regularizer is block.kernel.regularizer
    dense_only = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no ODEBlock"):
        attach_time_smoothness(dense_only, 1e-3)


def test_attach_time_smoothness_survives_save_and_load(rng, tmp_path):
    """The penalty is in the block config: a saved and reloaded model has the same `losses`."""
    model = _tiny_model()
    block = ode_blocks(model)[0]
    block.kernel.assign(rng.normal(size=block.kernel.shape).astype("float32"))
    attach_time_smoothness(model, 0.1)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.losses) == 2
    np.testing.assert_allclose(
        [float(v) for v in loaded.losses], [float(v) for v in model.losses], rtol=1e-6
    )


def test_time_smoothness_at_construction_follows_the_block_depth(rng):
    """`ODEBlock(kernel_regularizer=TimeSmoothness(alpha, T=T))`: the same config gives
    `alpha R` with `h = T / N` at every depth (what `zoo.create(depth=...)` relies on)."""
    for depth in (2, 5):
        inputs = keras.Input((3,))
        block = resnet_block(
            depth, 4.0, kernel_regularizer=TimeSmoothness(0.1, T=4.0),
            bias_regularizer=TimeSmoothness(0.1, T=4.0), name="block",
        )
        model = keras.Model(inputs, block(inputs))
        block.kernel.assign(rng.normal(size=block.kernel.shape).astype("float32"))
        block.bias.assign(rng.normal(size=block.bias.shape).astype("float32"))
        expected = 0.1 * sum(block_time_smoothness(block).values())
        np.testing.assert_allclose(sum(float(v) for v in model.losses), expected, rtol=1e-5)


def test_rh18_eq13_time_total_variation_matches_hand_formula(rng):
    """alpha * sum_j h sum sqrt(((W_{j+1} - W_j)/h)^2 + tau) + alpha2/2 * h * sum_j ||W_j||^2."""
    from training.regularizers import TimeTotalVariation

    w = rng.standard_normal((4, 3, 3, 2, 2))
    h = 6.0 / 4
    expected = 0.1 * h * np.sum(np.sqrt(((w[1:] - w[:-1]) / h) ** 2 + 1e-3)) + 0.05 * h * np.sum(w**2)
    got = float(TimeTotalVariation(0.1, T=6.0, tau=1e-3, decay=0.1)(w))
    assert got == pytest.approx(expected, rel=1e-12)
    constant = np.broadcast_to(w[:1], w.shape)
    assert float(TimeTotalVariation(1.0, T=6.0)(constant)) == pytest.approx(h * 3 * w[0].size * np.sqrt(1e-3))
    with pytest.raises(ValueError, match="tau"):
        TimeTotalVariation(0.1, T=1.0, tau=0.0)
