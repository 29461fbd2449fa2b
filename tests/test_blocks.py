"""The Haber & Ruthotto 2017 blocks: equations, serialisation, and argument checks."""

import numpy as np
import pytest

from block_harness import run_block_test
from zoo.blocks import ODEBlock, antisymmetric_block, leapfrog_block, resnet_block, verlet_block
from zoo.dynamics import HamiltonianTwoStream, SingleLayer
from zoo.integrators import ForwardEuler, Verlet

ALL_BLOCKS = {
    "resnet": resnet_block,
    "antisymmetric": antisymmetric_block,
    "leapfrog": leapfrog_block,
    "verlet": verlet_block,
}


@pytest.mark.parametrize("operator,shape", [("dense", (3,)), ("conv", (6, 6, 2))])
@pytest.mark.parametrize("name", sorted(ALL_BLOCKS))
def test_block_contract(name, operator, shape, tmp_path):
    run_block_test(lambda: ALL_BLOCKS[name](4, 1.0, operator=operator), shape, tmp_path)


@pytest.mark.parametrize("factory", [
    lambda: verlet_block(3, 1.0, momentum_channels=5),
    lambda: verlet_block(3, 1.0, carry_momentum=True),
    lambda: verlet_block(3, 1.0, bias="vector"),
    lambda: leapfrog_block(3, 1.0, start="textbook"),
])
def test_block_variants_contract(factory, tmp_path):
    run_block_test(factory, (4,), tmp_path)


def _weights(block, rng, shape):
    block.build((None, *shape))
    block.kernel.assign(rng.standard_normal(block.kernel.shape))
    if block.bias is not None:
        block.bias.assign(rng.standard_normal(block.bias.shape))
    return block.kernel.numpy(), (block.bias.numpy() if block.bias is not None else None)


def test_hr17_eq2_1_resnet_step_with_scalar_bias(rng):
    """Y_{j+1} = Y_j + h tanh(Y_j K_j + b_j), b_j one scalar per layer."""
    block = resnet_block(3, 1.5, dtype="float64")
    k, b = _weights(block, rng, (4,))
    assert b.shape == (3,)
    y = rng.standard_normal((5, 4))
    expected = y.copy()
    for j in range(3):
        expected = expected + 0.5 * np.tanh(expected @ k[j] + b[j])
    np.testing.assert_allclose(block(y), expected, rtol=1e-13, atol=1e-13)


def test_hr17_eq4_12_antisymmetric_step(rng):
    """Y_{j+1} = Y_j + h tanh(Y_j (K_j - K_j^T - gamma I)/2 + b_j)."""
    block = antisymmetric_block(2, 1.0, gamma=0.1, dtype="float64")
    k, b = _weights(block, rng, (3,))
    y = rng.standard_normal((4, 3))
    expected = y.copy()
    for j in range(2):
        a = 0.5 * (k[j] - k[j].T - 0.1 * np.eye(3))
        expected = expected + 0.5 * np.tanh(expected @ a + b[j])
    np.testing.assert_allclose(block(y), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("start", ["printed", "textbook"])
def test_hr17_eq4_16_leapfrog_first_step(rng, start):
    """Printed: Y_1 = 2 Y_0 + h^2 sigma(.) (Y_{-1} = 0); textbook: Y_1 = Y_0 + h^2 sigma(.)."""
    block = leapfrog_block(3, 1.5, start=start, dtype="float64")
    c, b = _weights(block, rng, (3,))
    y0 = rng.standard_normal((4, 3))
    y_prev = np.zeros_like(y0) if start == "printed" else y0
    y = y0
    for j in range(3):
        # Row form Y -> -(Y C) C^T: the paper's K = -C'C for its column-form C' = C^T.
        kernel = -c[j] @ c[j].T
        y, y_prev = 2 * y - y_prev + 0.25 * np.tanh(y @ kernel + b[j]), y
    np.testing.assert_allclose(block(y0), y, rtol=1e-12, atol=1e-12)


def test_hr17_eq4_17_verlet_nonsquare_same_bias_zero_start(rng):
    """Z_{-1/2} = 0; z -= h tanh(Y K + b); y += h tanh(Z K^T + b) with the same b; K is 2 x 3."""
    block = verlet_block(4, 2.0, momentum_channels=3, dtype="float64")
    k, b = _weights(block, rng, (2,))
    assert k.shape == (4, 2, 3)
    y = rng.standard_normal((5, 2))
    z = np.zeros((5, 3))
    y0 = y.copy()
    for j in range(4):
        z = z - 0.5 * np.tanh(y @ k[j] + b[j])
        y = y + 0.5 * np.tanh(z @ k[j].T + b[j])
    np.testing.assert_allclose(block(y0), y, rtol=1e-13, atol=1e-13)


def test_time_grid_is_h_equals_T_over_N():
    block = resnet_block(16, 6.0)
    assert block.h == pytest.approx(0.375)


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=0, T=1.0), "depth"),
    (dict(depth=2.5, T=1.0), "depth"),
    (dict(depth=4, T=0.0), "T"),
    (dict(depth=4, T=-1.0), "T"),
])
def test_bad_depth_or_time_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resnet_block(**kwargs)


def test_wrong_rank_names_the_input():
    with pytest.raises(ValueError, match="inputs"):
        resnet_block(2, 1.0, operator="conv")(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="inputs"):
        resnet_block(2, 1.0)(np.zeros((2, 4, 4, 3), "float32"))


def test_wrong_channel_count_after_build():
    block = resnet_block(2, 1.0)
    block(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        block(np.zeros((2, 4), "float32"))


def test_odd_width_split_raises():
    with pytest.raises(ValueError, match="even"):
        verlet_block(2, 1.0, carry_momentum=True)(np.zeros((2, 5), "float32"))


def test_incompatible_axes_raise():
    with pytest.raises(ValueError, match="stream"):
        ODEBlock(ForwardEuler(), HamiltonianTwoStream(), 2, 1.0)
    with pytest.raises(ValueError, match="square"):
        ODEBlock("verlet", HamiltonianTwoStream(parametrization="antisymmetric"), 2, 1.0,
                 momentum_channels=3)(np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="bias"):
        SingleLayer(bias="matrix")


def test_depth_loop_gradient_matches_unrolled_autodiff(rng):
    """The adjoint-method gradient of the depth loop equals plain autodiff of an unrolled loop."""
    import tensorflow as tf

    block = verlet_block(6, 1.0, momentum_channels=3, dtype="float64")  # 2 steps an iteration
    _weights(block, rng, (2,))
    x = tf.constant(rng.standard_normal((4, 2)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(block(x) ** 3)
    grads = tape.gradient(loss, [x, block.kernel, block.bias])

    theta = block.effective_weights()
    with tf.GradientTape() as tape:
        tape.watch(x)
        theta = block.effective_weights()
        state = block.initial_state(x)
        for j in range(6):
            state = block.integrator.step(block.dynamics, {k: v[j] for k, v in theta.items()}, state, block.h)
        loss = tf.reduce_sum(state[0] ** 3)
    expected = tape.gradient(loss, [x, block.kernel, block.bias])
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, depth, width", [
    (antisymmetric_block, 12, 4), (verlet_block, 12, 4), (verlet_block, 6, 4), (verlet_block, 12, 2),
    (antisymmetric_block, 12, 2),
])
@pytest.mark.parametrize("batch", [32, 1])
def test_adjoint_fold_with_several_steps_an_iteration_matches_one_step_an_iteration(
        make, depth, width, batch, rng, monkeypatch):
    """`STEPS_PER_ITERATION` only regroups the loop (feature-major Euler steps and two-stream
    Verlet steps; depth 6 takes 2 steps an iteration): the compiled float32 training step's
    outputs and gradients are bit for bit those of one step an iteration at batch 32. At batch 1
    XLA turns the 1-row matmuls into element-wise products and fuses them across the regrouped
    steps, which rounds differently: measured up to 1.7e-6 relative."""
    import tensorflow as tf

    from zoo import depth_loop

    block = make(depth, 1.0)
    x = tf.constant(rng.standard_normal((batch, width)).astype("float32"))
    _weights(block, rng, (width,))

    def compiled_step():
        @tf.function(jit_compile=True)
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = block(x, training=True)
                loss = tf.reduce_sum(tf.tanh(y) ** 2)
            return [y] + tape.gradient(loss, [x] + block.trainable_weights)
        return [t.numpy() for t in run()]

    assert depth_loop.steps_per_iteration(depth) == (4 if depth % 4 == 0 else 2)
    regrouped = compiled_step()
    monkeypatch.setattr(depth_loop, "STEPS_PER_ITERATION", 1)
    assert depth_loop.steps_per_iteration(depth) == 1
    one_by_one = compiled_step()
    for a, b in zip(regrouped, one_by_one):
        if batch > 1:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _verlet_y_first_block(depth, T, bias="scalar", **kwargs):
    """A Verlet block that updates `Y` first (`Verlet(first="y")`)."""
    return ODEBlock(Verlet(first="y"), HamiltonianTwoStream("dense", "free", "tanh", bias), depth, T, **kwargs)


@pytest.mark.parametrize("make, bias, extra", [
    (resnet_block, "scalar", {}), (antisymmetric_block, "vector", {}), (resnet_block, "none", {}),
    (verlet_block, "scalar", {}), (_verlet_y_first_block, "vector", {}),
    (verlet_block, "none", {"momentum_channels": 2}),
])
def test_training_steps_run_feature_major_with_the_same_function_and_gradient(make, bias, extra, rng,
                                                                            monkeypatch):
    """Dense Euler and Verlet layers train on a `(width, batch)` state (`zoo.feature_major`): the
    same outputs and gradients as the `(batch, width)` path inference takes, float64 to 1e-12."""
    import tensorflow as tf

    from zoo import blocks, feature_major

    block = make(8, 4.0, bias=bias, dtype="float64", **extra)
    x = tf.constant(rng.standard_normal((5, 3)))
    block(x)
    block.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in block.get_weights()])
    used = []
    monkeypatch.setattr(blocks, "feature_major_step",
                        lambda *a: used.append(1) or feature_major.feature_major_step(*a))

    def forward_and_gradients(training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = block(x, training=training)
            loss = tf.reduce_sum(y ** 3)
        return [y] + tape.gradient(loss, [x] + block.trainable_weights)

    trained, inferred = forward_and_gradients(True), forward_and_gradients(False)
    assert used == [1]  # only the training call
    for a, b in zip(trained, inferred):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert float(np.max(np.abs(trained[0] - x))) > 1e-2  # the block does something


def test_feature_major_steps_only_for_plain_dense_euler_and_verlet_layers():
    from zoo.feature_major import feature_major_step

    def chosen(block):
        return feature_major_step(block.integrator, block.dynamics, block.h) is not None

    assert chosen(resnet_block(4, 1.0)) and chosen(antisymmetric_block(4, 1.0))
    assert not chosen(resnet_block(4, 1.0, operator="conv"))
    assert chosen(verlet_block(4, 1.0)) and chosen(_verlet_y_first_block(4, 1.0))
    assert not chosen(verlet_block(4, 1.0, bias="per_stream"))
    assert not chosen(leapfrog_block(4, 1.0))  # its kernel is -C^T C, applied in two matmuls


@pytest.mark.parametrize("shape", [(3, 4), (2, 5, 5, 3)])
def test_depth_loop_gradients_agree_and_image_states_use_tensorflows_own(shape, rng, monkeypatch):
    """Both gradients of the fold (recomputing adjoint, TF's own) are the same numbers; by
    default vector states take the adjoint and image states TF's own (faster for convolutions)."""
    import tensorflow as tf

    from zoo import depth_loop

    x = tf.constant(rng.standard_normal(shape))
    weights = {"a": tf.constant(rng.standard_normal((4, shape[-1])))}

    def step(carry, w):
        return (carry[0] + 0.5 * tf.tanh(carry[0] * w["a"]),)

    def gradients(**kwargs):
        with tf.GradientTape() as tape:
            tape.watch([x, weights["a"]])
            (final,) = depth_loop.fold_steps(step, (x,), weights, **kwargs)
            loss = tf.reduce_sum(final ** 3)
        return tape.gradient(loss, [x, weights["a"]])

    adjoint, own = gradients(recompute=True), gradients(recompute=False)
    for a, b in zip(adjoint, own):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    used = []
    real = depth_loop._fold_with_adjoint
    monkeypatch.setattr(depth_loop, "_fold_with_adjoint", lambda *a: used.append(1) or real(*a))
    gradients()
    assert used == ([1] if len(shape) == 2 else [])



