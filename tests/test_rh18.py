"""Ruthotto & Haber 2018 (PDE-motivated CNNs): Table 1 architectures and the notes' checks.

Paper notes: `/work/shared/papers/ruthotto-haber-2018-pde-cnns.md`, Sec. 5 items 1-7.
Mathematical properties run in float64 (tolerances ~1e-12) and, where stated, float32 (~1e-5).
"""

import functools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from block_harness import run_block_test
from zoo.blocks import hamiltonian_cnn_block, parabolic_cnn_block, second_order_cnn_block
from zoo.constraints import BoxConstraint
from zoo.dynamics import SymmetricLayer, SymmetricTwoStream
from zoo.normalization import TVNormalization, tv_norm

UNITS = ("parabolic", "hamiltonian", "second_order")
TABLE1 = {  # R&H 2018, Table 1: trainable weights
    ("parabolic", "stl10"): 618_554,
    ("hamiltonian", "stl10"): 324_794,
    ("second_order", "stl10"): 618_554,
    ("parabolic", "cifar10"): 502_570,
    ("hamiltonian", "cifar10"): 264_106,
    ("second_order", "cifar10"): 502_570,
    ("parabolic", "cifar100"): 652_484,
    ("hamiltonian", "cifar100"): 362_180,
    ("second_order", "cifar100"): 652_484,
}
EPS = 1e-3
TOL = {"float64": 1e-12, "float32": 1e-5}


@functools.lru_cache(maxsize=None)
def _model(name):
    return zoo.create(name)


def _trainable(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def _randomize(block, rng, shape, kernel_scale=0.3):
    """Build `block` on `(None, *shape)` and give every per-step weight random values."""
    block.build((None, *shape))
    block.kernel.assign(kernel_scale * rng.standard_normal(block.kernel.shape))
    if hasattr(block, "norm_scale"):
        block.norm_scale.assign(rng.uniform(0.5, 1.5, block.norm_scale.shape))
        block.norm_bias.assign(0.3 * rng.standard_normal(block.norm_bias.shape))
    return block


# --- independent reference (tf.nn, not zoo.operators) -------------------------------------------


def _ref_f_sym(kernel, y, scale=None, bias=None, normalization="tv"):
    """`-K^T relu(N_tv(K Y))` with `tf.nn.conv2d` and `tf.nn.conv2d_transpose` (Eqs. 7, 9)."""
    z = tf.nn.conv2d(y, kernel, strides=1, padding="SAME")
    if normalization == "tv":
        z = z / tf.sqrt(tf.reduce_sum(z * z, axis=-1, keepdims=True) + EPS) * scale + bias
    return -tf.nn.conv2d_transpose(tf.nn.relu(z), kernel, tf.shape(y), strides=1, padding="SAME")


# --- Table 1: weight counts and shapes ----------------------------------------------------------


@pytest.mark.parametrize("unit,dataset", sorted(TABLE1))
def test_rh18_table1_weight_counts(unit, dataset):
    """Trainable weights equal Table 1 exactly; the units decompose as 3 (9 w^2 + 2 w), the
    Hamiltonian as 3 (9 w^2 / 2 + 2 w); convolutions have no bias; BN moving statistics are
    non-trainable; a connector follows every unit, the last one included."""
    model = _model(f"rh18_{unit}_{dataset}")
    assert _trainable(model) == TABLE1[unit, dataset]
    widths = zoo.models.ruthotto_haber.RH18_CONFIGS[dataset]["widths"]
    for k, w in enumerate(widths, start=1):
        per_step = 9 * w * w // 2 + 2 * w if unit == "hamiltonian" else 9 * w * w + 2 * w
        assert _trainable(model.get_layer(f"unit{k}")) == 3 * per_step
        assert model.get_layer(f"connector{k}_conv").bias is None
        bn = model.get_layer(f"connector{k}_bn")
        assert _trainable(bn) == 2 * bn.gamma.shape[0] and len(bn.non_trainable_weights) == 2
    assert model.get_layer("opening_conv").bias is None


@pytest.mark.parametrize("unit,expected", [
    ("parabolic", 153_626), ("hamiltonian", 81_050), ("second_order", 153_626)
])
def test_rh18_table1_fashion_mnist_weight_counts(unit, expected):
    """Our Fashion-MNIST configuration (28x28x1, widths 16/32/64, final 64; DESIGN.md Sec. 3)."""
    model = _model(f"rh18_{unit}_fashion_mnist")
    assert _trainable(model) == expected
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)


SHAPES = {  # notes Sec. 5 item 2: unit inputs (H, W, C); final connector width
    "stl10": ([(96, 16), (48, 32), (24, 64), (12, 128)], 128),
    "cifar10": ([(32, 32), (16, 64), (8, 112)], 112),
    "cifar100": ([(32, 32), (16, 64), (8, 128)], 256),
    "fashion_mnist": ([(28, 16), (14, 32), (7, 64)], 64),
}


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("dataset", sorted(SHAPES))
def test_rh18_table1_feature_map_shapes(dataset, unit):
    """STL-10 units at 96/48/24/12 px with 16/32/64/128 channels; CIFAR at 32/16/8 px with
    32/64/112 (CIFAR-10) or 32/64/128 then 256 (CIFAR-100); the head sees one vector."""
    model = _model(f"rh18_{unit}_{dataset}")
    units, final = SHAPES[dataset]
    for k, (size, channels) in enumerate(units, start=1):
        block = model.get_layer(f"unit{k}")
        assert tuple(block.input.shape) == (None, size, size, channels)
        assert tuple(block.output.shape) == (None, size, size, channels)
        if unit == "hamiltonian":
            assert (block._n, block._m) == (channels // 2, channels // 2)
            assert block.kernel.shape == (3, 2, 3, 3, channels // 2, channels // 2)
    last = model.get_layer(f"connector{len(units)}_relu")
    assert tuple(last.output.shape) == (None, units[-1][0], units[-1][0], final)
    assert tuple(model.get_layer("predictions").input.shape) == (None, final)


def test_rh18_all_configurations_registered():
    names = set(zoo.list_models())
    for unit in UNITS:
        for dataset in ("stl10", "cifar10", "cifar100", "fashion_mnist"):
            assert f"rh18_{unit}_{dataset}" in names


# --- Eq. 7: the symmetric layer -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rh18_eq7_shared_kernel_exact_adjoint(rng, dtype):
    """<K x, y> = <x, K^T y> with the block's own kernel (relative 1e-12 / 1e-5)."""
    block = _randomize(parabolic_cnn_block(dtype=dtype), rng, (7, 6, 5))
    op = block.dynamics.operator
    for j in range(3):
        kernel = block.kernel[j]
        x = tf.constant(rng.standard_normal((2, 7, 6, 5)), dtype)
        y = tf.constant(rng.standard_normal((2, 7, 6, 5)), dtype)
        kx, kty = op.apply(kernel, x).numpy(), op.adjoint(kernel, y).numpy()
        lhs = np.sum(kx.astype(np.float64) * y.numpy())
        rhs = np.sum(x.numpy().astype(np.float64) * kty)
        assert abs(lhs - rhs) <= TOL[dtype] * np.linalg.norm(kx) * np.linalg.norm(y)


def test_rh18_eq7_symmetric_layer_is_minus_conv_transpose(rng):
    """F(theta, Y) = -conv2d_transpose(relu(N_tv(conv2d(Y, K))), K), one kernel, TV-norm on."""
    block = _randomize(parabolic_cnn_block(dtype="float64"), rng, (6, 5, 4))
    y = tf.constant(rng.standard_normal((3, 6, 5, 4)))
    theta = block.effective_weights()
    for j in range(3):
        theta_j = {k: v[j] for k, v in theta.items()}
        expected = _ref_f_sym(block.kernel[j], y, block.norm_scale[j], block.norm_bias[j])
        np.testing.assert_allclose(block.dynamics(theta_j, y), expected, rtol=1e-12, atol=1e-12)


def test_rh18_eq7_jacobian_symmetric_negative_semidefinite(rng):
    """N = identity, ReLU: the autodiff Jacobian -K^T diag(relu'(K Y)) K is symmetric with all
    eigenvalues <= 0 (to 1e-12 of its norm), and not trivially zero."""
    dynamics = SymmetricLayer(normalization=None)
    kernel = tf.constant(rng.standard_normal((3, 3, 2, 3)))  # c_in = 2 -> c_out = 3
    dynamics_weights = {"kernel": kernel}
    y = tf.constant(rng.standard_normal((1, 5, 5, 2)))
    with tf.GradientTape() as tape:
        tape.watch(y)
        f = dynamics(dynamics_weights, y)
    jac = tape.jacobian(f, y).numpy().reshape(50, 50)
    scale = np.linalg.norm(jac, 2)
    assert scale > 1.0
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-12 * scale)
    eig = np.linalg.eigvalsh(0.5 * (jac + jac.T))
    assert eig.max() <= 1e-12 * scale and eig.min() < -0.1 * scale


def test_symmetric_layer_validates_arguments():
    with pytest.raises(ValueError, match="normalization"):
        SymmetricLayer(normalization="batch")
    with pytest.raises(ValueError, match="epsilon"):
        SymmetricLayer(epsilon=0.0)
    with pytest.raises(ValueError, match="equal width"):
        SymmetricTwoStream().weight_shapes(4, 2)
    with pytest.raises(ValueError, match="halves"):
        zoo.create("rh18_hamiltonian_cifar10", widths=(32, 63, 112))


# --- Eq. 9: TV normalisation --------------------------------------------------------------------


def test_rh18_eq9_tv_norm_pixel_length(rng):
    """Before the affine step every pixel's channel vector has length sqrt(s / (s + eps)),
    s = sum_c y_c^2; the layer starts at scale 1, bias 0, so it is exactly that map."""
    x = rng.standard_normal((3, 4, 5, 6)) * rng.uniform(0.01, 10, (3, 4, 5, 1))
    s = np.sum(x**2, axis=-1)
    out = tv_norm(tf.constant(x)).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.sqrt(s / (s + EPS)), rtol=1e-13)
    np.testing.assert_allclose(out, x / np.sqrt(s + EPS)[..., None], rtol=1e-13)
    layer = TVNormalization(dtype="float64")
    np.testing.assert_allclose(layer(x), out, rtol=1e-13)
    np.testing.assert_array_equal(layer.gamma.numpy(), 1.0)
    np.testing.assert_array_equal(layer.beta.numpy(), 0.0)


def test_rh18_eq9_tv_norm_independent_of_batch(rng):
    """Outputs for one example are the same alone, in a batch, and with other batch-mates."""
    x = rng.standard_normal((6, 5, 5, 4)).astype("float32")
    other = 100.0 * rng.standard_normal((3, 5, 5, 4)).astype("float32")
    layer = TVNormalization()
    layer.build(x.shape)
    layer.gamma.assign(rng.uniform(0.5, 2.0, 4))
    layer.beta.assign(rng.standard_normal(4))
    full = layer(x).numpy()
    ulps = dict(rtol=4 * np.finfo("float32").eps, atol=4 * np.finfo("float32").eps)  # vectorised sums
    np.testing.assert_allclose(layer(x[2:3]).numpy(), full[2:3], **ulps)
    np.testing.assert_allclose(layer(np.concatenate([other, x[2:3]]))[3:], full[2:3], **ulps)
    assert not np.allclose(layer(2.0 * x[2:3]), layer(x[2:3]) * 2.0, rtol=1e-3)  # not linear
    # The same inside a whole parabolic unit (float64; convolutions may reorder sums).
    block = _randomize(parabolic_cnn_block(dtype="float64"), rng, (5, 5, 4))
    x64 = x.astype("float64")
    full = block(x64).numpy()
    np.testing.assert_allclose(block(x64[2:3]), full[2:3], rtol=1e-13, atol=1e-13)
    mixed = block(np.concatenate([other.astype("float64"), x64[2:3]])).numpy()
    np.testing.assert_allclose(mixed[3:], full[2:3], rtol=1e-13, atol=1e-13)


# --- Eq. 10: Hamiltonian unit -------------------------------------------------------------------


def test_rh18_eq10_hamiltonian_verlet_as_printed(rng):
    """Paper: Y_{j+1} = Y_j + h F_sym(theta1, Z_j), Z_{j+1} = Z_j - h F_sym(theta2, Y_{j+1}),
    with the paper's Y (updated first) = our second channel half, its Z = our first half."""
    block = _randomize(hamiltonian_cnn_block(T=1.5, dtype="float64"), rng, (5, 6, 6))
    x = tf.constant(rng.standard_normal((3, 5, 6, 6)))
    k, s, b = block.kernel, block.norm_scale, block.norm_bias
    paper_z, paper_y = x[..., :3], x[..., 3:]
    h = 0.5
    for j in range(3):
        paper_y = paper_y + h * _ref_f_sym(k[j, 0], paper_z, s[j, 0], b[j, 0])
        paper_z = paper_z - h * _ref_f_sym(k[j, 1], paper_y, s[j, 1], b[j, 1])
    expected = tf.concat([paper_z, paper_y], axis=-1)
    np.testing.assert_allclose(block(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rh18_eq10_hamiltonian_unit_runs_backwards(rng, dtype):
    """Z_j = Z_{j+1} + h F_sym(theta2, Y_{j+1}), Y_j = Y_{j+1} - h F_sym(theta1, Z_j) recover the
    input from the output alone (TV-norm and ReLU on): relative error 1e-12 / 1e-5."""
    block = _randomize(hamiltonian_cnn_block(dtype=dtype), rng, (6, 6, 8), kernel_scale=0.5)
    x = rng.standard_normal((4, 6, 6, 8)).astype(dtype)
    y = block(x)
    assert np.linalg.norm(y - x) > 0.5 * np.linalg.norm(x)  # the unit moves the state
    back = block.inverse(y).numpy()
    assert np.linalg.norm(back - x) <= TOL[dtype] * np.linalg.norm(x)


# --- Eq. 11: second-order unit (leapfrog) -------------------------------------------------------


@pytest.mark.parametrize("T", [3.0, 1.5])
def test_rh18_eq11_leapfrog_first_step(rng, T):
    """Y_{-1} = Y_0 gives Y_1 = Y_0 + h^2 F_sym(theta_0, Y_0) (h = T / 3)."""
    block = _randomize(second_order_cnn_block(T=T, dtype="float64"), rng, (5, 5, 4))
    y0 = tf.constant(rng.standard_normal((3, 5, 5, 4)))
    y1 = block.trajectory(y0)[1]
    h = T / 3
    f0 = _ref_f_sym(block.kernel[0], y0, block.norm_scale[0], block.norm_bias[0])
    np.testing.assert_allclose(y1, y0 + h * h * f0, rtol=1e-12, atol=1e-12)


def test_rh18_eq11_leapfrog_backward_reconstruction(rng):
    """From (Y_N, Y_{N-1}), Y_{j-1} = 2 Y_j - Y_{j+1} + h^2 F_sym(theta_j, Y_j) recovers
    (Y_0, Y_{-1} = Y_0), and the state restarts at every call (unit)."""
    block = _randomize(second_order_cnn_block(dtype="float64"), rng, (5, 5, 4))
    y0 = tf.constant(rng.standard_normal((3, 5, 5, 4)))
    final = block.propagate(block.initial_state(y0))
    back, back_prev = block.propagate(final, reverse=True)
    np.testing.assert_allclose(back, y0, rtol=0, atol=1e-12 * np.abs(y0).max())
    np.testing.assert_allclose(back_prev, y0, rtol=0, atol=1e-12 * np.abs(y0).max())
    np.testing.assert_array_equal(block(y0), block(y0))  # no state carried between calls


@pytest.mark.parametrize("mu", [3.5, 4.5])
def test_rh18_eq12_leapfrog_linear_energy(rng, mu):
    """Linear constant-K case (sigma = id, N = id, A = K^T K), h^2 lambda_max(A) = mu: for
    mu < 4 the leapfrog energy ||Y_{j+1} - Y_j||^2 / h^2 + <Y_{j+1}, A Y_j> is conserved to
    round-off over 200 steps and ||Y_j|| <= ||Y_0|| / cos(theta/2), cos(theta) = 1 - mu/2;
    for mu = 4.5 > 4 the top mode grows like 2^j (control)."""
    shape, depth = (4, 4, 2), 200
    block = second_order_cnn_block(depth, float(depth), activation="linear", normalization=None,
                                   dtype="float64")
    block.build((None, *shape))
    op = block.dynamics.operator
    kernel = rng.standard_normal((3, 3, 2, 2))
    kernel *= math.sqrt(mu) / _conv_norm(op, kernel, shape)  # h = 1
    block.kernel.assign(np.repeat(kernel[None], depth, axis=0))
    y0 = rng.standard_normal((2, *shape))
    ys = block.trajectory(y0).numpy()  # (N + 1, batch, ...)
    norms = np.linalg.norm(ys.reshape(depth + 1, 2, -1), axis=-1)
    if mu > 4:
        assert np.all(norms[-1] > 1e50 * norms[0])
        return
    a_y = -np.stack([block.dynamics({"kernel": kernel}, y).numpy() for y in ys])  # A Y_j
    diff = (ys[1:] - ys[:-1]).reshape(depth, 2, -1)
    energy = np.sum(diff**2, -1) + np.sum((ys[1:] * a_y[:-1]).reshape(depth, 2, -1), -1)
    np.testing.assert_allclose(energy, np.broadcast_to(energy[0], energy.shape), rtol=1e-10)
    bound = 1.0 / math.sqrt((1.0 + (1.0 - mu / 2.0)) / 2.0)  # 1 / cos(theta / 2)
    assert np.all(norms <= bound * norms[0] * (1 + 1e-10))
    assert norms.max() > 1.2 * norms[0].max()  # the top mode is excited: the bound is not slack


# --- Eq. 6 / Theorem 1: parabolic contraction ---------------------------------------------------


def _conv_norm(op, kernel, shape):
    size = int(np.prod(shape))
    columns = op.apply(kernel, np.eye(size).reshape(size, *shape)).numpy().reshape(size, -1)
    return np.linalg.norm(columns, 2)


def _parabolic_with_step_norm(rng, bound, activation, shape=(5, 5, 3), constant=False):
    """Parabolic unit, N = identity, kernels scaled so that h ||K_j||_2^2 = bound (h = 1)."""
    block = parabolic_cnn_block(activation=activation, normalization=None, dtype="float64")
    block.build((None, *shape))
    raw = rng.standard_normal((1 if constant else 3, 3, 3, shape[-1], shape[-1]))
    raw = np.repeat(raw, 3, axis=0) if constant else raw
    op = block.dynamics.operator
    scaled = [raw[j] * math.sqrt(bound) / _conv_norm(op, raw[j], shape) for j in range(3)]
    block.kernel.assign(np.stack(scaled))
    return block


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_rh18_eq6_parabolic_contraction(rng, activation):
    """Theorem 1 (discrete): with N = identity and h ||K||^2 <= 2 (here 1.95),
    ||Y_N - Y~_N|| <= ||Y_0 - Y~_0|| for every pair (per example, to 1e-12)."""
    block = _parabolic_with_step_norm(rng, 1.95, activation)
    y = rng.standard_normal((16, 5, 5, 3))
    for size in (1e-3, 0.3, 3.0):
        y_tilde = y + size * rng.standard_normal(y.shape)
        before = np.linalg.norm((y - y_tilde).reshape(16, -1), axis=1)
        after = np.linalg.norm((block(y) - block(y_tilde)).numpy().reshape(16, -1), axis=1)
        assert np.all(after <= before * (1 + 1e-12))


def test_rh18_eq6_parabolic_expands_beyond_the_step_bound(rng):
    """Control: h ||K||^2 = 3 > 2 amplifies the top singular direction by |1 - 3|^3 = 8."""
    shape = (5, 5, 3)
    block = _parabolic_with_step_norm(rng, 3.0, "linear", shape, constant=True)
    op, kernel = block.dynamics.operator, block.kernel[0]
    size = int(np.prod(shape))
    matrix = op.apply(kernel, np.eye(size).reshape(size, *shape)).numpy().reshape(size, -1)
    direction = np.linalg.svd(matrix)[0][:, 0].reshape(1, *shape)  # top singular vector of K
    y = rng.standard_normal((1, *shape))
    ratio = np.linalg.norm(block(y + 1e-3 * direction) - block(y)) / 1e-3
    assert ratio == pytest.approx(8.0, rel=1e-9)


# --- Layers: Keras contract, box constraint, one training step ----------------------------------


@pytest.mark.parametrize("factory", [
    lambda: parabolic_cnn_block(),
    lambda: hamiltonian_cnn_block(),
    lambda: second_order_cnn_block(),
    lambda: parabolic_cnn_block(normalization=None, kernel_constraint=BoxConstraint(1.0)),
    lambda: TVNormalization(),
], ids=["parabolic", "hamiltonian", "second_order", "identity_norm_box", "tv_norm_layer"])
def test_rh18_layers_pass_block_contract(factory, tmp_path):
    run_block_test(factory, (6, 6, 4), tmp_path)


def test_rh18_eq13_box_constraint_projects_kernels_after_a_step(rng):
    """-1 <= theta^(1) <= 1 on the PDE kernels after every SGD step (projection)."""
    block = parabolic_cnn_block(kernel_constraint=BoxConstraint(1.0))
    model = keras.Sequential([keras.Input((5, 5, 2)), block])
    block.kernel.assign(3.0 * rng.standard_normal(block.kernel.shape))
    assert np.abs(block.kernel.numpy()).max() > 1.0
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = rng.standard_normal((4, 5, 5, 2)).astype("float32")
    model.fit(x, np.zeros_like(x), epochs=1, batch_size=4, verbose=0)
    assert np.abs(block.kernel.numpy()).max() <= 1.0
    assert block.norm_scale.constraint is None  # the box is on the kernels only
    with pytest.raises(ValueError, match="bound"):
        BoxConstraint(0.0)


def test_rh18_table1_cifar10_trains_one_step_on_mock_data():
    """The CIFAR-10 parabolic network takes one SGD step on tfds mock data (pipeline with the
    paper's flip + pad/crop augmentation, raw 0..255 pixels, box constraint on)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from training.data import dataset_for

    model = zoo.create("rh18_parabolic_cifar10", kernel_constraint=BoxConstraint(1.0))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = [w.numpy().copy() for w in model.trainable_weights]
    with tfds.testing.mock_data(num_examples=8):
        ds = dataset_for("cifar10", "train", batch_size=8, seed=0, augment="default")
        history = model.fit(ds, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss) and loss > 0
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.all(np.isfinite(a)) for a in after)
    assert sum(not np.array_equal(b, a) for b, a in zip(before, after)) == len(after)
    for k in (1, 2, 3):
        assert np.abs(model.get_layer(f"unit{k}").kernel.numpy()).max() <= 1.0
