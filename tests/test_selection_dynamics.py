"""Liu & Markowich 2020 selection dynamics (`zoo.selection`): the notes' Sec. 6.3 tests and the layers.

Conventions of the numpy references: cell weights `w`, `(B f)_i = sum_j b_ij w_j f_j`, norms
`||f||_w^2 = sum_i w_i f_i^2`, adjoint `(B^* g)_j = sum_i b_ij w_i g_i`; on `||.||_w` the operator
norm of `B` is `||W^1/2 b W^1/2||_2` and its Hilbert-Schmidt norm `||b||_{L^2(YxY)}` is
`||W^1/2 b W^1/2||_F`. Mathematical properties run in float64 (layers built with
`dtype="float64"`).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from block_harness import run_block_test

import zoo
from zoo.selection import (
    KERNELS,
    BasisReadout,
    CellLifting,
    ContinuousSelectionBlock,
    FunctionLifting,
    ParabolicSelectionBlock,
    QuadratureReadout,
    SelectionBlock,
    at_width,
    cosine_basis,
    prolongate_width,
)

# === numpy references ===


def _wnorm(f, w):
    return np.sqrt(np.sum(w * f**2, axis=-1))


def _sym(b, w):
    """`W^1/2 b W^1/2`: the matrix of `B` in an orthonormal basis of `L^2_w`."""
    s = np.sqrt(w)
    return s[:, None] * b * s[None, :]


def _op_norm(b, w):
    return np.linalg.norm(_sym(b, w), 2)


def _hs_norm(b, w):
    return np.linalg.norm(_sym(b, w))


def _apply(b, w, f):
    """`B f` for row states `f` `(..., M)`."""
    return (f * w) @ b.T


def _block(cls, depth, T, m, a=None, raw=None, skew=None, **kwargs):
    block = cls(depth, T, dtype="float64", **kwargs)
    block.build((None, m))
    if raw is not None:
        block.kernel_raw.assign(raw)
    if skew is not None:
        block.skew.assign(skew)
    if a is not None:
        block.bias.assign(a)
    return block


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _trajectory(block, x):
    return _np(tf.function(block.trajectory)(x))  # graph mode: eager tf.scan steps in Python


# === Equations of the layers ===


def test_lm20_z1_step_equation_for_every_kernel(rng):
    """f_{k+1} = f_k + tau tanh(a_k - B_k f_k) with b = K, G W G^T, G W G^T + K - K^T, K - K^T."""
    m, n, T = 5, 3, 1.2
    w = rng.uniform(0.1, 0.5, m)
    for kernel in KERNELS:
        raw, skew, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
        block = _block(SelectionBlock, n, T, m, a, raw, skew if kernel == "positive_symmetric_part" else None,
                       kernel=kernel, cell_weights=w)
        gram = (raw * w) @ np.swapaxes(raw, 1, 2)
        anti = raw - np.swapaxes(raw, 1, 2)
        b = {"free": raw, "psd": gram, "antisymmetric": anti,
             "positive_symmetric_part": gram + skew - np.swapaxes(skew, 1, 2)}[kernel]
        np.testing.assert_allclose(_np(block.effective_weights()["b"]), b, rtol=1e-13, atol=1e-13)
        x = rng.standard_normal((4, m))
        f = x
        for k in range(n):
            f = f + T / n * np.tanh(a[k] - _apply(b[k], w, f))
        np.testing.assert_allclose(_np(block(x)), f, rtol=1e-13, atol=1e-13)


def test_lm20_z5_parabolic_step_uses_the_weighted_adjoint(rng):
    """Z5: f_{k+1} = f_k + tau B_k^* tanh(a_k - B_k f_k), (B^* g)_j = sum_i b_ij w_i g_i."""
    m, n, T = 4, 3, 0.9
    w = rng.uniform(0.1, 0.5, m)
    b, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    block = _block(ParabolicSelectionBlock, n, T, m, a, b, cell_weights=w)
    x = rng.standard_normal((3, m))
    f = x
    for k in range(n):
        f = f + T / n * (w * np.tanh(a[k] - _apply(b[k], w, f))) @ b[k]
    np.testing.assert_allclose(_np(block(x)), f, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("cls", [SelectionBlock, ContinuousSelectionBlock])
def test_lm20_z4_kernel_structure(cls, rng):
    """psd: symmetric, W^1/2 b W^1/2 >= 0; antisymmetric: b = -b^T; B_s >= 0 for the sum form."""
    m = 12
    if cls is SelectionBlock:
        args = {"cell_weights": rng.uniform(0.05, 0.2, m)}
    else:
        args = {"modes": 5, "time_nodes": 2}
    for kernel in ("psd", "positive_symmetric_part", "antisymmetric"):
        block = cls(3, 1.0, kernel=kernel, dtype="float64", **args)
        block.build((None, m))
        for var in block.trainable_weights:
            var.assign(rng.standard_normal(var.shape))
        b, w = _np(block.effective_weights()["b"]), block.quadrature
        for bk in b:
            sym = 0.5 * (bk + bk.T)
            if kernel == "antisymmetric":
                np.testing.assert_allclose(sym, 0.0, atol=1e-14)
            else:
                assert np.linalg.eigvalsh(_sym(sym, w)).min() >= -1e-12 * np.abs(bk).max()
            if kernel == "psd":
                np.testing.assert_allclose(bk, bk.T, rtol=1e-14, atol=1e-14)


def test_lm20_z2_samples_the_continuous_kernel(rng):
    """b_k(i, j) = sum_pq phi_p(y_i) C_pq(t_k) phi_q(y_j), C piecewise linear between time nodes."""
    m, n, T, p = 10, 4, 2.0, 3
    block = ContinuousSelectionBlock(n, T, modes=p, time_nodes=2, dtype="float64")
    block.build((None, m))
    c, alpha = rng.standard_normal((2, p, p)), rng.standard_normal((2, p))
    block.kernel_raw.assign(c)
    block.bias.assign(alpha)
    y = (np.arange(m) + 0.5) / m
    phi = np.stack([np.ones(m)] + [np.sqrt(2) * np.cos(np.pi * q * y) for q in range(1, p)])
    np.testing.assert_allclose(cosine_basis(p, m), phi, atol=1e-15)
    np.testing.assert_allclose(phi @ phi.T / m, np.eye(p), atol=1e-14)  # midpoint rule is exact
    s = np.arange(n) * T / n / T  # t_k / T: weight of the second node
    c_t = (1 - s)[:, None, None] * c[0] + s[:, None, None] * c[1]
    a_t = (1 - s)[:, None] * alpha[0] + s[:, None] * alpha[1]
    b = np.einsum("pi,kpq,qj->kij", phi, c_t, phi)
    theta = block.effective_weights()
    np.testing.assert_allclose(_np(theta["b"]), b, atol=1e-13)
    np.testing.assert_allclose(_np(theta["a"]), a_t @ phi, atol=1e-13)
    x = rng.standard_normal((3, m))
    f, w = x, np.full(m, 1.0 / m)
    for k in range(n):
        f = f + T / n * np.tanh(a_t[k] @ phi - _apply(b[k], w, f))
    np.testing.assert_allclose(_np(block(x)), f, atol=1e-13)


# === Notes Sec. 6.3 ===


def test_lm20_eq2_4_dense_resnet_embeds_exactly(rng):
    """6.3.1 (E2): a Dense ResNet z + tau tanh(z W_k + a_k) equals Z1 with B = -W^T and
    b_ij = B^{ij} / |Y_j| on 7 cells of unequal volume, 20 layers: max difference <= 1e-12."""
    m, n, T = 7, 20, 2.0
    w = rng.uniform(0.2, 1.5, m)
    big_b, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    x = rng.standard_normal((5, m))
    z = x
    for k in range(n):
        dense = keras.layers.Dense(m, dtype="float64")
        dense.build((None, m))
        dense.set_weights([-big_b[k].T, a[k]])
        z = z + T / n * np.tanh(_np(dense(z)))
    block = _block(SelectionBlock, n, T, m, a, big_b / w[None, None, :], cell_weights=w)
    assert np.max(np.abs(_np(block(x)) - z)) <= 1e-12


def test_lm20_thm3_1_lipschitz_stability(rng):
    """6.3.2 (E4): ||e_{k+1}||_w <= (1 + tau ||B_k||) ||e_k||_w at every step, hence
    ||f_1 - f_2||_N <= exp(sum_k tau Lip(tanh) ||b_k||_HS) ||f_1 - f_2||_0."""
    m, n, T = 9, 30, 3.0
    w = rng.uniform(0.05, 0.3, m)
    b, a = 2.0 * rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    block = _block(SelectionBlock, n, T, m, a, b, cell_weights=w)
    x1 = rng.standard_normal((6, m))
    x2 = x1 + 1e-2 * rng.standard_normal((6, m))
    e = _wnorm(_trajectory(block, x1) - _trajectory(block, x2), w)  # (N + 1, pairs)
    tau = T / n
    step_bound = 1.0 + tau * np.array([_op_norm(bk, w) for bk in b])
    assert np.all(e[1:] <= step_bound[:, None] * e[:-1] * (1 + 1e-12))
    assert np.all(e[-1] <= np.exp(tau * sum(_hs_norm(bk, w) for bk in b)) * e[0])


@pytest.mark.parametrize("tau_norm", [1.9, 1.0])
def test_lm20_thm3_2_lyapunov_functionals_decrease(tau_norm, rng):
    """6.3.4-5 (E6): symmetric PSD B (kernel="psd"), tanh, tau ||B|| <= 2, autonomous, a = B^1/2 c:
    E_k = (Bf, f)/2 - (a, f) and sum w Sigma(u_k) (Sigma = log cosh) never increase;
    ||B^1/2 f_k|| <= ||c|| + sqrt(||c||^2 + 2 E_0); and
    (1 - tau ||B|| / 2) sum_k tau (u_k, tanh u_k) <= E_0 + ||c||^2 / 2."""
    m, n = 16, 300
    w = rng.uniform(0.5, 1.5, m)
    w /= w.sum()
    g = rng.standard_normal((m, m))
    b = (g * w) @ g.T
    evals, vecs = np.linalg.eigh(_sym(b, w))
    norm_b = evals.max()
    tau = tau_norm / norm_b
    s = np.sqrt(w)
    sqrt_sym = vecs @ np.diag(np.sqrt(np.clip(evals, 0, None))) @ vecs.T
    c = rng.standard_normal(m)
    a = (sqrt_sym @ (s * c)) / s  # B^1/2 c in L^2_w
    block = _block(SelectionBlock, n, n * tau, m, np.repeat(a[None], n, 0), np.repeat(g[None], n, 0),
                   kernel="psd", cell_weights=w)
    f = _trajectory(block, 2.0 * rng.standard_normal((4, m)))  # (N + 1, batch, M)
    bf = _apply(b, w, f)
    u = a - bf
    energy = 0.5 * np.sum(w * f * bf, -1) - np.sum(w * a * f, -1)
    sigma_int = np.sum(w * (np.logaddexp(u, -u) - np.log(2.0)), -1)
    scale = np.abs(energy).max() + np.abs(sigma_int).max()
    assert np.all(np.diff(energy, axis=0) <= 1e-12 * scale)
    assert np.all(np.diff(sigma_int, axis=0) <= 1e-12 * scale)
    c_norm = np.sqrt(np.sum(w * c**2))
    k_bound = c_norm + np.sqrt(c_norm**2 + 2 * energy[0])
    assert np.all(_wnorm((sqrt_sym @ (s * f)[..., None])[..., 0], np.ones(m)) <= k_bound)
    dissipation = (1 - tau * norm_b / 2) * tau * np.sum(w * u[:-1] * np.tanh(u[:-1]), axis=(0, 2))
    assert np.all(dissipation <= energy[0] + c_norm**2 / 2)


def test_lm20_sec3_3_linear_growth_on_the_null_space(rng):
    """6.3.7 (E7): b(y, z) = phi(y) psi(z), ||phi|| = 1, psi _|_ tanh(phi), a = 0.7 phi,
    (f_I, psi) = 0.7 - 1: u stays phi and f_k = f_I + t_k tanh(phi) to <= 1e-10 (tau = 0.1, 600 steps)."""
    m, n, T, alpha = 32, 600, 60.0, 0.7
    w = rng.uniform(0.5, 1.5, m) / m

    def dot(f, g):
        return np.sum(w * f * g)

    phi = rng.standard_normal(m)
    phi /= np.sqrt(dot(phi, phi))
    sig = np.tanh(phi)
    psi = rng.standard_normal(m)
    psi -= dot(psi, sig) / dot(sig, sig) * sig
    f_i = rng.standard_normal(m)
    f_i += ((alpha - 1) - dot(f_i, psi)) / dot(psi, psi) * psi
    block = _block(SelectionBlock, n, T, m, np.repeat(alpha * phi[None], n, 0),
                   np.repeat(np.outer(phi, psi)[None], n, 0), cell_weights=w)
    f = _trajectory(block, f_i[None])[:, 0]
    t = np.arange(n + 1)[:, None] * T / n
    assert np.max(np.abs(f - (f_i + t * sig))) <= 1e-10


def test_lm20_sec3_4_relu_l1_bound_random(rng):
    """6.3.11 (E10): ReLU, |Y| = 2: ||f_k||_1 <= (||f_I||_1 + sum_l tau ||a_l||_1)
    exp(sum_l tau |Y| max|b_l|) at every step (the factor |Y| the paper omits)."""
    m, n, T, volume = 8, 40, 2.0, 2.0
    w = rng.uniform(0.5, 1.5, m)
    w *= volume / w.sum()
    b, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    block = _block(SelectionBlock, n, T, m, a, b, activation="relu", cell_weights=w)
    f = _trajectory(block, rng.standard_normal((5, m)))
    tau = T / n
    l1 = np.sum(w * np.abs(f), -1)
    a_sum = np.concatenate([[0.0], np.cumsum(tau * np.sum(w * np.abs(a), -1))])
    growth = np.concatenate([[0.0], np.cumsum(tau * volume * np.abs(b).max(axis=(1, 2)))])
    assert np.all(l1 <= (l1[0] + a_sum[:, None]) * np.exp(growth)[:, None] * (1 + 1e-12))


@pytest.mark.parametrize("layers,expected", [(30, 237.4), (300, 380.2), (3000, 401.0)])
def test_lm20_sec3_4_relu_exponential_bound_is_sharp(layers, expected):
    """6.3.11 (E10): b == -2, a = 0, f_I == 1, T = 3: f_L = (1 + 2 tau)^L (237.4, 380.2, 401.0)
    -> e^6 = 403.4, which is the bound (||f_I||_1 + 0) exp(T |Y| max|b|)."""
    m, T, c = 3, 3.0, 2.0
    block = _block(SelectionBlock, layers, T, m, np.zeros((layers, m)), np.full((layers, m, m), -c),
                   activation="relu")
    f = _np(tf.function(block)(np.ones((1, m))))
    exact = (1 + c * T / layers) ** layers
    np.testing.assert_allclose(f, exact, rtol=1e-12)
    assert abs(exact - expected) < 0.05
    assert exact <= np.exp(c * T)


def test_lm20_prop3_5_relu_linear_growth(rng):
    """6.3.12 (E11): symmetric PSD B (kernel="psd"), ReLU, tau ||B|| = 1.9, autonomous:
    ||f_k||_w <= ||f_I||_w + t_k ||(a - B f_I)^+||_w at every step."""
    m, n = 12, 200
    w = rng.uniform(0.5, 1.5, m) / m
    g = rng.standard_normal((m, m))
    b = (g * w) @ g.T
    tau = 1.9 / _op_norm(b, w)
    a = rng.standard_normal(m)
    block = _block(SelectionBlock, n, n * tau, m, np.repeat(a[None], n, 0), np.repeat(g[None], n, 0),
                   kernel="psd", activation="relu", cell_weights=w)
    x = rng.standard_normal((6, m))
    f = _trajectory(block, x)
    c2 = _wnorm(np.maximum(a - _apply(b, w, x), 0.0), w)
    t = np.arange(n + 1)[:, None] * tau
    assert np.all(_wnorm(f, w) <= (_wnorm(x, w) + t * c2) * (1 + 1e-12))


def test_lm20_sec3_5_parabolic_variant_is_non_expansive(rng):
    """6.3.14 (E13): Z5 with tanh and tau Lip ||B_k||^2 <= 1.9 < 2 (per-step random kernels,
    unequal cells): ||f_1 - f_2||_w never increases."""
    m, n = 10, 200
    w = rng.uniform(0.5, 1.5, m) / m
    b, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    tau = 1.9 / max(_op_norm(bk, w) ** 2 for bk in b)
    block = _block(ParabolicSelectionBlock, n, n * tau, m, a, b, cell_weights=w)
    x1 = 3.0 * rng.standard_normal((5, m))
    x2 = 3.0 * rng.standard_normal((5, m))
    e = _wnorm(_trajectory(block, x1) - _trajectory(block, x2), w)
    assert np.all(np.diff(e, axis=0) <= 1e-12 * e[0])
    assert np.all(e[-1] < e[0])


def test_lm20_prop4_1_adjoint_gradients(rng):
    """6.3.15 (Prop. 4.1, discrete): r_N = f_N - f~, r_k = r_{k+1} - tau B_k^*(tanh'(u_k) r_{k+1});
    dJ/da_k = w tau tanh'(u_k) r_{k+1}, dJ/db_k = -tau (w tanh'(u_k) r_{k+1}) (w f_k)^T for
    J = ||f_N - f~||_w^2 / 2. Autodiff of the layer matches to 1e-12; central differences
    (eps = 1e-6) match to relative error < 1e-5 (12 cells, 15 layers)."""
    m, n, T = 12, 15, 1.5
    tau = T / n
    w = rng.uniform(0.5, 1.5, m) / m
    b, a = rng.standard_normal((n, m, m)), rng.standard_normal((n, m))
    f_i, target = rng.standard_normal(m), rng.standard_normal(m)

    def forward(a, b):
        fs, us = [f_i], []
        for k in range(n):
            us.append(a[k] - _apply(b[k], w, fs[-1]))
            fs.append(fs[-1] + tau * np.tanh(us[-1]))
        return fs, us

    def loss(a, b):
        return 0.5 * np.sum(w * (forward(a, b)[0][-1] - target) ** 2)

    fs, us = forward(a, b)
    r = fs[-1] - target
    grad_a, grad_b = np.zeros_like(a), np.zeros_like(b)
    for k in reversed(range(n)):
        s = (1 - np.tanh(us[k]) ** 2) * r
        grad_a[k] = w * tau * s
        grad_b[k] = -tau * np.outer(w * s, w * fs[k])
        r = r - tau * (w * s) @ b[k]

    block = _block(SelectionBlock, n, T, m, a, b, cell_weights=w)
    with tf.GradientTape() as tape:
        out = block(f_i[None])
        j = 0.5 * tf.reduce_sum(w * (out - target) ** 2)
    auto_b, auto_a = tape.gradient(j, [block.kernel_raw, block.bias])
    np.testing.assert_allclose(_np(auto_a), grad_a, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_np(auto_b), grad_b, rtol=1e-12, atol=1e-15)

    eps = 1e-6
    for grad, which in ((grad_a, "a"), (grad_b, "b")):
        idx = np.argsort(np.abs(grad).ravel())[-5:]
        fd = []
        for i in idx:
            delta = np.zeros(grad.size)
            delta[i] = eps
            delta = delta.reshape(grad.shape)
            plus = loss(a + delta, b) if which == "a" else loss(a, b + delta)
            minus = loss(a - delta, b) if which == "a" else loss(a, b - delta)
            fd.append((plus - minus) / (2 * eps))
        exact = grad.ravel()[idx]
        assert np.linalg.norm(np.array(fd) - exact) / np.linalg.norm(exact) < 1e-5


# === Width: prolongation (Z1) and resampling (Z2) ===


def _randomise(model, rng, scale=0.5):
    for var in model.trainable_weights:
        var.assign(scale * rng.standard_normal(var.shape).astype(var.dtype))


@pytest.mark.parametrize("kernel", KERNELS)
def test_lm20_eq2_4_width_prolongation_is_exact(kernel, rng):
    """E2: M -> 2M cells (sub-cells inherit a, K/G, lifting and readout; w halves): same logits
    to 1e-6 in float32."""
    model = zoo.create("lm_selection", depth=6, T=2.0, width=8, num_classes=3, kernel=kernel)
    _randomise(model, rng)
    fine = prolongate_width(model)
    assert fine.get_layer("block").kernel_raw.shape == (6, 16, 16)
    np.testing.assert_allclose(fine.get_layer("block").quadrature, np.full(16, 1 / 16))
    x = rng.standard_normal((32, 2)).astype("float32")
    coarse_out, fine_out = _np(model(x)), _np(fine(x))
    assert np.abs(coarse_out).max() > 0.1
    np.testing.assert_allclose(fine_out, coarse_out, rtol=1e-6, atol=1e-6)


def test_width_prolongation_of_a_block_with_unequal_cells(rng):
    """Factor 3, unequal cells, float64: P f_N of the coarse block == the fine block on P f_I."""
    m = 5
    w = rng.uniform(0.1, 0.4, m)
    block = _block(SelectionBlock, 4, 1.0, m, rng.standard_normal((4, m)), rng.standard_normal((4, m, m)),
                   rng.standard_normal((4, m, m)), kernel="positive_symmetric_part", cell_weights=w)
    fine = prolongate_width(block, 3)
    np.testing.assert_allclose(fine.quadrature, np.repeat(w, 3) / 3)
    x = rng.standard_normal((4, m))
    np.testing.assert_allclose(_np(fine(np.repeat(x, 3, axis=1))), np.repeat(_np(block(x)), 3, axis=1),
                               rtol=1e-13, atol=1e-13)


def test_lm20_thm2_2_continuous_network_is_width_independent(rng):
    """E3: one smooth Z2 theta (lifting, a and G coefficients decaying like 2^-p over 8 modes) at
    M = 16, 32, 64 vs M = 256: max logit error <= 1e-3 of the logit scale at M = 16, <= 1e-5
    (float32 round-off) from M = 32 on. (Undamped random coefficients: about 1e-2, 1e-3, 1e-4.)"""
    model = zoo.create("lm_selection_continuous", depth=8, T=2.0, width=16, modes=8, kernel="psd")
    decay = 2.0 ** -np.arange(8)
    block, lifting = model.get_layer("block"), model.get_layer("lifting")
    block.bias.assign(rng.standard_normal(block.bias.shape) * decay)
    block.kernel_raw.assign(rng.standard_normal(block.kernel_raw.shape) * decay[:, None] * decay)
    lifting.kernel.assign(rng.standard_normal(lifting.kernel.shape) * decay)
    x = rng.standard_normal((64, 2)).astype("float32")
    ref = _np(at_width(model, 256)(x))
    scale = np.abs(ref).max()
    errors = [np.abs(_np(at_width(model, m)(x)) - ref).max() / scale for m in (16, 32, 64)]
    np.testing.assert_allclose(_np(at_width(model, 16)(x)), _np(model(x)), rtol=1e-6)
    assert scale > 0.1 and errors[0] <= 1e-3 and max(errors[1:]) <= 1e-5, errors
    assert at_width(model, 48).get_layer("block").effective_weights()["b"].shape == (8, 48, 48)


def test_z2_block_with_width_shares_theta(rng):
    block = ContinuousSelectionBlock(3, 1.0, modes=4)
    block(np.zeros((1, 8), "float32"))
    other = block.with_width(20)
    for v, u in zip(block.weights, other.weights):
        np.testing.assert_array_equal(_np(v), _np(u))
    assert other.effective_weights()["a"].shape == (3, 20)


def test_function_lifting_interpolates_the_inputs(rng):
    """"interpolate": f_I(y) = x_1 + (x_2 - x_1) y at the cell centres, no weights."""
    layer = FunctionLifting(10, method="interpolate", dtype="float64")
    x = rng.standard_normal((3, 2))
    y = (np.arange(10) + 0.5) / 10
    np.testing.assert_allclose(_np(layer(x)), x[:, :1] + (x[:, 1:] - x[:, :1]) * y, atol=1e-14)
    assert not layer.weights


# === Serialisation, registry, arguments ===


@pytest.mark.parametrize("factory,shape", [
    (lambda: SelectionBlock(3, 1.0, kernel="positive_symmetric_part", cell_weights=[0.1, 0.2, 0.3, 0.4]), (4,)),
    (lambda: ParabolicSelectionBlock(3, 1.0), (5,)),
    (lambda: ContinuousSelectionBlock(3, 1.0, modes=4, kernel="psd"), (6,)),
])
def test_selection_block_contract(factory, shape, tmp_path):
    run_block_test(factory, shape, tmp_path)


@pytest.mark.parametrize("layer", [
    SelectionBlock(2, 0.5, kernel="antisymmetric", activation="relu", cell_weights=[0.5, 0.5], volume=1.0),
    ParabolicSelectionBlock(2, 0.5, kernel="psd"),
    ContinuousSelectionBlock(2, 0.5, modes=3, time_nodes=1, kernel="positive_symmetric_part"),
    CellLifting(7),
    QuadratureReadout(3, cell_weights=[1.0, 2.0]),
    FunctionLifting(9, modes=3, method="interpolate"),
    BasisReadout(2, modes=5),
])
def test_serialize_deserialize_round_trip(layer):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)


@pytest.mark.parametrize("name", ["lm_selection", "lm_selection_continuous"])
def test_registered_models_save_and_load(name, tmp_path, rng):
    model = zoo.create(name, depth=3, T=1.5, width=8, modes=4, num_classes=3, kernel="psd") \
        if name.endswith("continuous") else zoo.create(name, depth=3, T=1.5, width=8, num_classes=3, kernel="psd")
    assert model.input.name == "features" and model.output_shape == (None, 3)
    assert model.get_layer("predictions") is model.layers[-1]
    _randomise(model, rng)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = rng.standard_normal((5, 2)).astype("float32")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    if name == "lm_selection":
        np.testing.assert_allclose(prolongate_width(restored).predict(x, verbose=0),
                                   model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_registered_model_weight_counts():
    """Z1: d M + M + N (M^2 + M) + M + 1 (binary); Z2: d P + P + n_t (P^2 + P) + P + 1."""
    assert zoo.create("lm_selection", depth=4, width=6).count_params() == 2 * 6 + 6 + 4 * 42 + 6 + 1
    assert zoo.create("lm_selection_continuous", depth=4, width=6, modes=5, time_nodes=3).count_params() \
        == 2 * 5 + 5 + 3 * 30 + 5 + 1


@pytest.mark.parametrize("make,match", [
    (lambda: SelectionBlock(4, 1.0, kernel="spd"), "kernel"),
    (lambda: ContinuousSelectionBlock(4, 1.0, kernel="symmetric"), "kernel"),
    (lambda: SelectionBlock(0, 1.0), "depth"),
    (lambda: SelectionBlock(-2, 1.0), "depth"),
    (lambda: ContinuousSelectionBlock(2.5, 1.0), "depth"),
    (lambda: SelectionBlock(4, 0.0), "T"),
    (lambda: ParabolicSelectionBlock(4, -1.0), "T"),
    (lambda: ContinuousSelectionBlock(4, 1.0, modes=0), "modes"),
    (lambda: ContinuousSelectionBlock(4, 1.0, modes=8)(np.zeros((1, 6), "float32")), "modes"),
    (lambda: SelectionBlock(4, 1.0, cell_weights=[0.5, 0.0]), "cell_weights"),
    (lambda: SelectionBlock(4, 1.0, cell_weights=[0.5, 0.5])(np.zeros((1, 3), "float32")), "cell_weights"),
    (lambda: SelectionBlock(4, 1.0, volume=0.0), "volume"),
    (lambda: FunctionLifting(8, method="spline"), "method"),
    (lambda: zoo.create("lm_selection", kernel="bad"), "kernel"),
    (lambda: zoo.create("lm_selection_continuous", depth=0), "depth"),
    (lambda: zoo.create("lm_selection", T=0), "T"),
    (lambda: zoo.create("lm_selection", num_classes=1), "num_classes"),
    (lambda: prolongate_width(zoo.create("lm_selection", depth=2), factor=0), "factor"),
    (lambda: prolongate_width(zoo.create("lm_selection_continuous", depth=2)), "at_width"),
    (lambda: at_width(zoo.create("lm_selection", depth=2), 32), "FunctionLifting"),
])
def test_bad_arguments_name_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# === Recipe ===


@pytest.mark.slow  # 7 s on an idle machine, up to 30 s on 2 loaded cores
def test_lm_width_recipe_quick(tmp_path):
    """The recipe's --quick path: results.json, the figure and the CSV log are written."""
    from training.recipes.lm_width import main

    main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["trained_width"] == 16 and summary["widths"] == [16, 32, 64]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in summary["by_width"].values())
    assert isinstance(summary["accepted"], bool) and summary["train_seconds"] > 0
    assert (tmp_path / "accuracy_vs_width.png").stat().st_size > 10_000
    assert (tmp_path / "training.csv").read_text().count("\n") == 1 + 2  # header + 2 epochs
