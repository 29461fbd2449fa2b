"""Galimberti, Xu & Ferrari Trecate 2021 (key `galimberti21`): H-DNNs and the MS-DNNs.

Checks of the paper notes, Sec. 6.1: items 1-3 (Eq. 11 layers, J skew, parameter counts, Eq. 9
gradient, Lemma 3 eigenvalues) and 6-10 (non-vanishing backward sensitivity at depth 64, exact
invertibility of MS1/MS3, the MS embeddings, the printed MS layer equations, the Eq. 13
regulariser, the time-invariant option), plus serialisation and argument checks.
Mathematical checks run in float64.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from block_harness import run_block_test
from zoo.blocks import (
    ODEBlock,
    fcnn_block,
    h1_block,
    h2_block,
    ms1_block,
    ms2_block,
    ms3_block,
)
from zoo.diagnostics import backward_sensitivity, state_jacobians
from zoo.dynamics import (
    HamiltonianTwoStream,
    HDNNLayer,
    SingleLayer,
    SymmetricLayer,
    interconnection_matrix,
)
from zoo.integrators import Verlet
from zoo.operators import Conv2DOperator, DenseOperator, SkewSymmetric

HDNN_BLOCKS = {"h1": h1_block, "h2": h2_block, "ms1": ms1_block, "ms2": ms2_block, "ms3": ms3_block}
PARAMS_PER_LAYER_NF4 = {"h1": 20, "h2": 20, "ms1": 8, "ms2": 10, "ms3": 12}  # Table 1, last row


def _random_block(factory, depth, T, rng, width=4, scale=1.0, **kwargs):
    block = factory(depth, T, dtype="float64", **kwargs)
    block.build((None, width))
    for w in block.weights:
        w.assign(scale * rng.standard_normal(w.shape))
    return block


# === Item 1: Eq. 11, J1 / J2, parameter counts ===


@pytest.mark.parametrize("name,n", [("J1", 2), ("J1", 4), ("J1", 8), ("J2", 3), ("J2", 4), ("J2", 8)])
def test_galimberti21_eq11_interconnections_are_exactly_skew(name, n):
    j = interconnection_matrix(name, n)
    assert np.array_equal(j + j.T, np.zeros((n, n)))
    if name == "J1":
        half = n // 2
        np.testing.assert_array_equal(j[:half, half:], np.eye(half))
        np.testing.assert_array_equal(j[half:, :half], -np.eye(half))
    else:
        assert np.all(j[np.triu_indices(n, 1)] == 1) and np.all(j[np.tril_indices(n, -1)] == -1)


@pytest.mark.parametrize("network,J", [("h1", "J1"), ("h2", "J2")])
def test_galimberti21_eq11_hdnn_layer(rng, network, J):
    """Column form y_{j+1} = y_j + h J K_j' tanh(K_j y_j + b_j), K_j = (our kernel)^T."""
    block = _random_block(HDNN_BLOCKS[network], 3, 0.6, rng)
    k, b = block.kernel.numpy(), block.bias.numpy()
    j = interconnection_matrix(J, 4)
    x = rng.standard_normal((5, 4))
    expected = []
    for y in x:  # one example at a time, as columns
        for step in range(3):
            K = k[step].T
            y = y + 0.2 * j @ K.T @ np.tanh(K @ y + b[step])
        expected.append(y)
    np.testing.assert_allclose(block(x), np.array(expected), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("network", sorted(PARAMS_PER_LAYER_NF4))
def test_galimberti21_table1_parameters_per_layer(network):
    """H1, H2: nf^2 + nf = 20; MS1: nf^2/4 + nf = 8; MS2: (nf^2 + nf)/2 = 10; MS3: nf^2/2 + nf = 12."""
    for depth in (1, 4, 16):
        model = zoo.create(f"galimberti_{network}", depth=depth)
        assert model.get_layer("block").count_params() == depth * PARAMS_PER_LAYER_NF4[network]
        assert model.count_params() == depth * PARAMS_PER_LAYER_NF4[network] + 4 + 1  # head W, mu


# === Item 2: Eq. 9, the Hamiltonian gradient ===


@pytest.mark.parametrize("operator,shape", [("dense", (4,)), (Conv2DOperator(), (5, 5, 4))])
def test_galimberti21_eq9_autodiff_gradient_of_log_cosh(rng, operator, shape):
    """d/dy sum log cosh(K y + b) = K' tanh(K y + b) (rows: tanh(Y K + b) K^T; conv: adjoint)."""
    dynamics = HDNNLayer("J2", operator)
    shapes = dynamics.weight_shapes(4)
    theta = {k: tf.constant(2.0 * rng.standard_normal(s)) for k, s in shapes.items()}
    y = tf.constant(rng.standard_normal((3, *shape)))
    with tf.GradientTape() as tape:
        tape.watch(y)
        energy = tf.reduce_sum(dynamics.hamiltonian(theta, y))
    np.testing.assert_allclose(
        tape.gradient(energy, y), dynamics.hamiltonian_gradient(theta, y), rtol=1e-12, atol=1e-12
    )
    if operator == "dense":
        K, b = theta["kernel"].numpy().T, theta["bias"].numpy()
        expected = np.stack([K.T @ np.tanh(K @ v + b) for v in y.numpy()])
        np.testing.assert_allclose(dynamics.hamiltonian_gradient(theta, y), expected, rtol=1e-13)
        log_cosh = np.log(np.cosh(y.numpy() @ K.T + b)).sum(axis=1)
        np.testing.assert_allclose(dynamics.hamiltonian(theta, y), log_cosh, rtol=1e-12)


# === Item 3: Lemma 3 ===


@pytest.mark.parametrize("J", ["J1", "J2", "random"])
def test_galimberti21_lemma3_eigenvalues_are_imaginary(rng, J):
    """Eq. 16: eig(K' D K J') have |Re| <= 1e-10 ||A||, and trace 0; also for the autodiff Jacobian."""
    n = 6
    for _ in range(5):
        K, b, y = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal(n)
        if J == "random":
            a = rng.standard_normal((n, n))
            j = a - a.T
        else:
            j = interconnection_matrix(J, n)
        d = np.diag(1.0 - np.tanh(K @ y + b) ** 2)
        a = K.T @ d @ K @ j.T
        scale = np.linalg.norm(a, 2)
        assert np.abs(np.linalg.eigvals(a).real).max() <= 1e-10 * scale
        assert abs(np.trace(a)) <= 1e-12 * scale
    # The layer's own Jacobian (autodiff, rows) is the transpose of Eq. 16: same spectrum.
    dynamics = HDNNLayer("J2")
    theta = {"kernel": tf.constant(rng.standard_normal((n, n))), "bias": tf.constant(rng.standard_normal(n))}
    y = tf.constant(rng.standard_normal((1, n)))
    with tf.GradientTape() as tape:
        tape.watch(y)
        f = dynamics(theta, y)
    jac = tape.batch_jacobian(f, y).numpy()[0]
    assert np.abs(np.linalg.eigvals(jac).real).max() <= 1e-10 * np.linalg.norm(jac, 2)


# === Item 6: non-vanishing backward sensitivity ===


@pytest.mark.parametrize("network,T", [
    ("h1", 0.8), ("h1", 32.0), ("h2", 32.0), ("ms1", 32.0), ("ms2", 32.0), ("ms3", 32.0),
])  # h = 0.0125 (Fig. 1's T = 0.8) and h = 0.5: the bound holds for any h
def test_galimberti21_eq14_backward_sensitivity_at_least_one(rng, network, T):
    """Depth 64, N(0, 1) weights: ||dy_N/dy_j||_2 >= 1 - 1e-6 and det >= 1 - 1e-6 for every j.

    Per example (notes 2.7(2)-(4)): forward-Euler H1/H2/MS2 steps have Jacobian eigenvalues
    1 + i h w (det >= 1), Verlet MS1/MS3 steps are shears (det = 1), and det >= 1 forces the
    largest singular value >= 1; so every example and hence the batch minimum satisfy it.
    """
    block = _random_block(HDNN_BLOCKS[network], 64, T, rng)
    x = rng.standard_normal((8, 4))
    jacobians = state_jacobians(block, x)  # (65, batch, 4, 4), l = 0..N
    norms = np.linalg.norm(jacobians, ord=2, axis=(-2, -1))
    assert norms.shape == (65, 8) and norms.min() >= 1 - 1e-6
    dets = np.linalg.det(jacobians)
    assert dets.min() >= 1 - 1e-6
    if network in ("ms1", "ms3"):
        np.testing.assert_allclose(dets, 1.0, atol=1e-9)


def test_plain_fcnn_sensitivity_vanishes(rng):
    """The Fig. 2 baseline y_{j+1} = tanh(K_j y_j + b_j) with N(0, 1) weights: ||dy_32/dy_0|| << 1."""
    block = fcnn_block(32, dtype="float64")
    block.build((None, 4))
    for w in block.weights:
        w.assign(rng.standard_normal(w.shape))
    norms = backward_sensitivity(block, rng.standard_normal((16, 4)), layers=[0, 16, 31, 32])
    assert norms[0] < 1e-3 and norms[-1] == pytest.approx(1.0)


def test_sensitivity_power_iteration_matches_exact_and_options(rng):
    block = h2_block(3, 0.6, operator=Conv2DOperator(), dtype="float64")  # 3x3: couples pixels
    block.build((None, 3, 3, 2))
    for w in block.weights:
        w.assign(0.5 * rng.standard_normal(w.shape))
    x = rng.standard_normal((2, 3, 3, 2))
    exact = backward_sensitivity(block, x, layers=[0, 2, 3], aggregate=None, method="exact")
    power = backward_sensitivity(block, x, layers=[0, 2, 3], aggregate=None, method="power",
                                 iterations=60)
    # Power iteration approaches the norm from below; close top singular values slow it down.
    assert np.all(power <= exact * (1 + 1e-9)) and np.all(power >= exact * (1 - 1e-2))
    np.testing.assert_allclose(np.median(power / exact), 1.0, atol=1e-4)
    assert exact.shape == (3, 2)
    np.testing.assert_allclose(
        backward_sensitivity(block, x, layers=[0, 3], aggregate="max"), exact[[0, 2]].max(axis=1)
    )
    with pytest.raises(ValueError, match="layers"):
        backward_sensitivity(block, x, layers=[7])
    with pytest.raises(ValueError, match="aggregate"):
        backward_sensitivity(block, x, aggregate="sum")


# === Item 7: invertibility of MS1 and MS3 ===


@pytest.mark.parametrize("network", ["ms1", "ms3"])
@pytest.mark.parametrize("operator,shape", [("dense", (4,)), ("conv", (4, 4, 4))])
def test_galimberti21_ms1_ms3_are_exactly_invertible(rng, network, operator, shape):
    block = HDNN_BLOCKS[network](32, 8.0, operator=operator, dtype="float64")
    block.build((None, *shape))
    for w in block.weights:
        w.assign(rng.standard_normal(w.shape))
    x = rng.standard_normal((3, *shape))
    np.testing.assert_allclose(block.inverse(block(x)), x, atol=1e-10)


# === Items 7-8: MS embeddings and the printed MS layer equations ===


def test_galimberti21_sec3_2_ms_embeddings_are_hdnn_fields(rng):
    """MS1, MS2, MS3 right-hand sides equal J K' tanh(K x + b) with the notes' (K, J) (table 1.7)."""
    n, x = 2, rng.standard_normal(4)
    y, z = x[:n], x[n:]
    # MS1: K = [[0, K0], [-K0', 0]], J = (K')^{-1} (skew); our kernel is K0, bias [b_z, b_y].
    ms1 = HamiltonianTwoStream("dense", "free", "tanh", "per_stream")
    k0, bias = rng.standard_normal((n, n)), rng.standard_normal(2 * n)
    theta = {"kernel": tf.constant(k0), "bias": tf.constant(bias)}
    rhs = np.concatenate([ms1.position_rate(theta, tf.constant(z[None]))[0],
                          ms1.momentum_rate(theta, tf.constant(y[None]))[0]])
    K = np.block([[np.zeros((n, n)), k0], [-k0.T, np.zeros((n, n))]])
    J = np.linalg.inv(K.T)
    np.testing.assert_allclose(J + J.T, 0.0, atol=1e-12)
    c = np.concatenate([bias[n:], -bias[:n]])  # odd tanh: -tanh(a + b) = tanh(-a - b)
    np.testing.assert_allclose(rhs, J @ K.T @ np.tanh(K @ x + c), rtol=1e-12, atol=1e-12)
    # MS2: skew, invertible K (n even), J = (K')^{-1}.
    ms2 = SingleLayer("dense", SkewSymmetric(), "tanh", "vector")
    theta = ms2.prepare({"kernel": tf.constant(rng.standard_normal(6)), "bias": tf.constant(rng.standard_normal(4))})
    K = theta["kernel"].numpy().T
    J = np.linalg.inv(K.T)
    np.testing.assert_allclose(J + J.T, 0.0, atol=1e-10)
    np.testing.assert_allclose(ms2(theta, tf.constant(x[None]))[0],
                               J @ K.T @ np.tanh(K @ x + theta["bias"].numpy()), rtol=1e-10)
    # MS3: K = [[0, K1], [K2, 0]], J = J1; K1 = kernel[1]^T, K2 = kernel[0]^T.
    block = _random_block(ms3_block, 1, 1.0, rng)
    theta = block.effective_weights()
    theta = {k: v[0] for k, v in theta.items()}
    dyn = block.dynamics
    rhs = np.concatenate([dyn.position_rate(theta, tf.constant(z[None]))[0],
                          dyn.momentum_rate(theta, tf.constant(y[None]))[0]])
    k1, k2 = theta["kernel"][1].numpy().T, theta["kernel"][0].numpy().T
    K = np.block([[np.zeros((n, n)), k1], [k2, np.zeros((n, n))]])
    b = np.concatenate([theta["bias"][1].numpy(), theta["bias"][0].numpy()])
    np.testing.assert_allclose(rhs, interconnection_matrix("J1", 4) @ K.T @ np.tanh(K @ x + b),
                               rtol=1e-12, atol=1e-12)


def test_galimberti21_sec2_3_ms_layer_equations_as_printed(rng):
    """MS1: z then y, shared K0, two biases; MS2: skew K; MS3: y then z with K1, K2 (column form)."""
    x = rng.standard_normal((3, 4))
    h = 0.25
    # MS1
    block = _random_block(ms1_block, 2, 2 * h, rng)
    k, b = block.kernel.numpy(), block.bias.numpy()
    out = []
    for v in x:
        y, z = v[:2], v[2:]
        for j in range(2):
            K0, b1, b2 = k[j], b[j, :2], b[j, 2:]
            z = z - h * np.tanh(K0.T @ y + b1)
            y = y + h * np.tanh(K0 @ z + b2)
        out.append(np.concatenate([y, z]))
    np.testing.assert_allclose(block(x), out, rtol=1e-13, atol=1e-13)
    # MS2
    block = _random_block(ms2_block, 2, 2 * h, rng)
    kernels = block.effective_weights()["kernel"].numpy()
    np.testing.assert_array_equal(kernels + np.swapaxes(kernels, 1, 2), 0.0)
    out = x.copy()
    for j in range(2):
        out = out + h * np.tanh(out @ kernels[j] + block.bias.numpy()[j])
    np.testing.assert_allclose(block(x), out, rtol=1e-13, atol=1e-13)
    # MS3
    block = _random_block(ms3_block, 2, 2 * h, rng)
    k, b = block.kernel.numpy(), block.bias.numpy()
    out = []
    for v in x:
        y, z = v[:2], v[2:]
        for j in range(2):
            K1, K2, b1, b2 = k[j, 1].T, k[j, 0].T, b[j, 1], b[j, 0]
            y = y + h * K1.T @ np.tanh(K1 @ z + b1)
            z = z - h * K2.T @ np.tanh(K2 @ y + b2)
        out.append(np.concatenate([y, z]))
    np.testing.assert_allclose(block(x), out, rtol=1e-13, atol=1e-13)


def test_skew_symmetric_parametrization_is_exact_for_dense_and_conv(rng):
    p = SkewSymmetric()
    for op, shape, free in ((DenseOperator(), (5, 5), 10), (Conv2DOperator(), (3, 3, 3, 3), 39)):
        assert p.raw_shape(op, shape) == (free,)
        kernel = p.effective_kernel(op, rng.standard_normal((2, free)))
        assert tuple(kernel.shape) == (2, *shape)
        assert np.array_equal(np.asarray(kernel + op.adjoint_kernel(kernel)), np.zeros((2, *shape)))


# === Item 9: the Eq. 13 regulariser ===


def test_galimberti21_eq13_regularizer_is_h_over_2():
    """alpha (h/2) sum_j ||K_j - K_{j-1}||_F^2 (not H&R's 1/(2h)); 0 for layer-constant weights."""
    from training.recipes.galimberti_toy import eq13_regularizer

    depth, T, alpha = 8, 0.8, 5e-4
    w = np.random.default_rng(3).standard_normal((depth, 4, 4))
    expected = alpha * (T / depth) / 2 * np.sum((w[1:] - w[:-1]) ** 2)
    assert float(eq13_regularizer(alpha, depth, T)(tf.constant(w))) == pytest.approx(expected, rel=1e-12)
    assert float(eq13_regularizer(alpha, depth, T)(tf.constant(np.broadcast_to(w[:1], w.shape)))) == 0.0


# === Item 10: the time-invariant option ===


def test_time_invariant_block_shares_one_set_of_weights(rng, tmp_path):
    """K(t) = K, b(t) = b (Sec. 4.3): (1, ...) variables equal a time-varying block with them repeated."""
    shared = _random_block(h1_block, 16, 0.8, rng, time_invariant=True)
    assert shared.kernel.shape == (1, 4, 4) and shared.count_params() == 20
    varying = h1_block(16, 0.8, dtype="float64")
    varying.build((None, 4))
    varying.kernel.assign(np.repeat(shared.kernel.numpy(), 16, axis=0))
    varying.bias.assign(np.repeat(shared.bias.numpy(), 16, axis=0))
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(shared(x), varying(x), rtol=1e-13)
    assert shared.get_config()["time_invariant"] is True
    model = zoo.create("galimberti_h1", depth=8, time_invariant=True)
    assert model.get_layer("block").count_params() == 20
    run_block_test(lambda: ms3_block(8, 0.8, time_invariant=True), (4,), tmp_path)


# === Serialisation, contracts and argument checks ===


@pytest.mark.parametrize("network", sorted(HDNN_BLOCKS))
def test_hdnn_block_contract(network, tmp_path):
    run_block_test(lambda: HDNN_BLOCKS[network](4, 0.8), (4,), tmp_path)


def test_hdnn_conv_block_contract(tmp_path):
    """MS3 with 3x3 convolutions: two streams, stacked kernels and biases (H1/H2 conv: below)."""
    run_block_test(lambda: ms3_block(2, 0.8, operator="conv"), (5, 5, 4), tmp_path)


@pytest.mark.parametrize("name", [
    "galimberti_h1", "galimberti_h2", "galimberti_ms1", "galimberti_ms2", "galimberti_ms3",
    "galimberti_fcnn", "galimberti_ms1_conv", "galimberti_h2_conv",
])
def test_galimberti_models_save_and_load(name, tmp_path):
    model = zoo.create(name, depth=2)
    x = np.random.default_rng(0).uniform(0, 255 if "conv" in name else 1,
                                         (3, *model.input_shape[1:])).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    config = model.get_layer("block").get_config()
    assert json.dumps(config, sort_keys=True) == json.dumps(
        restored.get_layer("block").get_config(), sort_keys=True)


def test_galimberti21_sec4_2_mnist_network():
    """Conv 1 -> 8, per-pixel block (K 8 x 8), head 6,272 -> 10; T = h N with h = 0.4 / 0.05."""
    ms1 = zoo.create("galimberti_ms1_conv", depth=4)
    h2 = zoo.create("galimberti_h2_conv", depth=16)
    assert ms1.get_layer("block").h == pytest.approx(0.4) and h2.get_layer("block").h == pytest.approx(0.05)
    assert h2.get_layer("block").count_params() == 16 * (64 + 8)
    assert ms1.get_layer("block").count_params() == 4 * (16 + 8)
    assert h2.get_layer("predictions").count_params() == 6272 * 10 + 10
    assert h2.output_shape == (None, 10)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="J"):
        HDNNLayer("J3")
    with pytest.raises(ValueError, match="even"):
        h1_block(2, 1.0)(np.zeros((2, 5), "float32"))
    h2_block(2, 1.0)(np.zeros((2, 5), "float32"))  # J2 takes any width
    with pytest.raises(ValueError, match="first"):
        Verlet(first="x")
    with pytest.raises(ValueError, match="per_stream"):
        ODEBlock("forward_euler", SingleLayer(bias="per_stream"), 2, 1.0)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="per_stream"):
        HDNNLayer(bias="per_stream")
    with pytest.raises(ValueError, match="time_invariant"):
        h1_block(2, 1.0, time_invariant="yes")
    with pytest.raises(ValueError, match="normalization"):
        SymmetricLayer(bias="vector")  # the TV norm has its own bias
    with pytest.raises(ValueError, match="h"):
        zoo.create("galimberti_h2_conv", h=0.1, T=1.0)
    with pytest.raises(ValueError, match="Unknown network"):
        from zoo.models.galimberti import build_dense_classifier

        build_dense_classifier("h3")


def test_backward_sensitivity_callback_records_during_fit(tmp_path):
    from training.callbacks import BackwardSensitivity

    model = zoo.create("galimberti_h1", depth=8)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    x = np.random.default_rng(0).standard_normal((64, 2)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    path = tmp_path / "sens.npy"
    callback = BackwardSensitivity(x[:16], layers=[0, 4, 8], every=2, path=str(path))
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    assert callback.iterations == [0, 2, 4, 6, 8]
    values = np.load(path)
    assert values.shape == (5, 4, 3)  # records, aggregates (mean, min, max, mean_jacobian), layers
    assert np.all(values[:, :3, :2] >= 1 - 1e-4)  # float32: per-example norms >= 1
    np.testing.assert_array_equal(np.load(tmp_path / "sens_iterations.npy"), [0, 2, 4, 6, 8])
    assert "sensitivity_l0" in history.history and len(history.history["sensitivity_l0"]) == 2


@pytest.mark.slow
def test_galimberti_toy_recipe_quick(tmp_path):
    """The reduced Table 1 / Figure 2 recipe runs end to end and writes its outputs."""
    from training.recipes.galimberti_toy import main

    main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["network"] for r in results["table"]} == {"ms1", "ms2", "ms3", "h1", "h2"}
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in results["table"])
    fig2 = results["figure2"]
    assert fig2["h1"]["min_over_training"] >= 1 - 1e-4
    assert (tmp_path / "table1.md").read_text().count("|") > 20
    assert (tmp_path / "figure2.png").stat().st_size > 10_000
    assert (tmp_path / "table1.png").stat().st_size > 10_000
