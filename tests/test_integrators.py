"""Integrator properties: exact reversibility, volume preservation, order (H&R 2017 Sec. 4)."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.blocks import leapfrog_block, resnet_block, verlet_block


def _build(block, rng, channels, scale=1.0):
    block.build((None, channels))
    block.kernel.assign(scale * rng.standard_normal(block.kernel.shape))
    if block.bias is not None:
        block.bias.assign(rng.standard_normal(block.bias.shape))
    return block


@pytest.mark.parametrize("operator,shape", [("dense", (2,)), ("conv", (5, 5, 2))])
def test_verlet_is_exactly_reversible(rng, operator, shape):
    """Reconstruct y_0 from the final state (y_N, z_{N-1/2}) by running the steps backwards."""
    block = verlet_block(50, 5.0, operator=operator, dtype="float64")
    block.build((None, *shape))
    block.kernel.assign(rng.standard_normal(block.kernel.shape))
    y0 = rng.standard_normal((3, *shape))
    final = block.propagate(block.initial_state(tf.constant(y0)))
    y_back, z_back = block.propagate(final, reverse=True)
    np.testing.assert_allclose(y_back, y0, atol=1e-11)
    np.testing.assert_allclose(z_back, 0.0, atol=1e-11)


def test_verlet_block_inverse_with_carried_momentum(rng):
    block = _build(verlet_block(40, 4.0, carry_momentum=True, dtype="float64"), rng, 6)
    x = rng.standard_normal((5, 6))
    np.testing.assert_allclose(block.inverse(block(x)), x, atol=1e-11)


def test_leapfrog_is_exactly_reversible(rng):
    block = _build(leapfrog_block(40, 4.0, dtype="float64"), rng, 3)
    y0 = tf.constant(rng.standard_normal((4, 3)))
    state0 = block.initial_state(y0)
    back = block.propagate(block.propagate(state0), reverse=True)
    for got, want in zip(back, state0):
        np.testing.assert_allclose(got, want, atol=1e-10)


def _jacobian_determinant(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return np.linalg.det(tape.jacobian(y, x).numpy().reshape(x.shape[-1], x.shape[-1]))


def test_verlet_steps_are_volume_preserving(rng):
    """The map (y_0, z_{-1/2}) -> (y_N, z_{N-1/2}) has Jacobian determinant 1 (non-square K)."""
    block = verlet_block(7, 3.0, momentum_channels=3, carry_momentum=True, dtype="float64")
    _build(block, rng, 5)
    det = _jacobian_determinant(lambda v: block(v), tf.constant(rng.standard_normal((1, 5))))
    assert det == pytest.approx(1.0, abs=1e-12)


def test_leapfrog_steps_are_volume_preserving(rng):
    block = _build(leapfrog_block(6, 3.0, dtype="float64"), rng, 2)

    def pair_map(v):
        state = block.propagate((v[:, 2:], v[:, :2]))  # (Y_j, Y_{j-1})
        return tf.concat([state[1], state[0]], axis=1)

    det = _jacobian_determinant(pair_map, tf.constant(rng.standard_normal((1, 4))))
    assert det == pytest.approx(1.0, abs=1e-12)


def test_forward_euler_is_first_order(rng):
    """Linear dynamics Y' = Y A: error of Y_N against expm(T A) halves when h halves."""
    from scipy.linalg import expm

    a = 0.5 * rng.standard_normal((3, 3))
    y0 = rng.standard_normal((2, 3))
    errors = []
    for depth in (16, 32, 64, 128):
        block = resnet_block(depth, 1.0, activation="linear", bias="none", dtype="float64")
        block.build((None, 3))
        block.kernel.assign(np.broadcast_to(a, block.kernel.shape))
        errors.append(np.abs(block(y0).numpy() - y0 @ expm(a)).max())
    slope = np.polyfit(np.log([16, 32, 64, 128]), np.log(errors), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)


def test_leapfrog_is_second_order(rng):
    """Y'' = Y A, Y'(0) = 0, started from the exact Y_{-1}: global error O(h^2)."""
    from scipy.linalg import cosm, sqrtm

    c = rng.standard_normal((3, 3))
    a = -(c.T @ c) / 3.0  # negative definite: Y(t) = y0 cos(t sqrt(-A))
    root = np.real(sqrtm(-a))
    y0 = rng.standard_normal((2, 3))
    exact = y0 @ np.real(cosm(root))
    errors = []
    depths = (16, 32, 64, 128)
    for depth in depths:
        block = leapfrog_block(depth, 1.0, parametrization="free", activation="linear",
                               bias="none", dtype="float64")
        block.build((None, 3))
        block.kernel.assign(np.broadcast_to(a, block.kernel.shape))
        y_before = y0 @ np.real(cosm(root / depth))  # Y(-h) = Y(h) by symmetry
        y_n, _ = block.propagate((tf.constant(y0), tf.constant(y_before)))
        errors.append(np.abs(y_n.numpy() - exact).max())
    slope = np.polyfit(np.log(depths), np.log(errors), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.1)
