"""Stability diagnostics: Lemma 1 (H&R 2017, Eq. 3.9), antisymmetry residual, state norms."""

import numpy as np
import pytest

from zoo.blocks import antisymmetric_block, resnet_block, verlet_block
from zoo.diagnostics import antisymmetry_residual, lemma1_amplification, state_norms
from zoo.operators import Antisymmetric, Conv2DOperator, DenseOperator


def test_hr17_lemma1_matches_closed_form_for_linear_antisymmetric_layer(rng):
    """Linear activation: J = A, eigenvalues i w - gamma/2, so max|1 + h lambda| is explicit."""
    block = antisymmetric_block(3, 0.3, gamma=0.2, activation="linear", bias="none", dtype="float64")
    block.build((None, 4))
    block.kernel.assign(rng.standard_normal(block.kernel.shape))
    got = lemma1_amplification(block, rng.standard_normal((5, 4)))
    kernels = block.effective_weights()["kernel"].numpy()
    expected = [np.abs(1 + 0.1 * np.linalg.eigvals(k.T)).max() for k in kernels]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_hr17_lemma1_flags_unstable_and_stable_resnet():
    """K+ (lambda = 2) violates Eq. 3.9; K- (lambda = -2) with h = 0.1 satisfies it."""
    for kernel, unstable in ((np.array([[2.0, -2.0], [0.0, 2.0]]), True),
                             (np.array([[-2.0, 0.0], [2.0, -2.0]]), False)):
        block = resnet_block(4, 0.4, bias="none", dtype="float64")
        block.build((None, 2))
        block.kernel.assign(np.broadcast_to(kernel.T, block.kernel.shape))
        amp = lemma1_amplification(block, np.array([[0.01, 0.02], [-0.01, 0.0]]))
        assert (amp.max() > 1.0) == unstable


def test_lemma1_conv_block_runs_on_small_images(rng):
    block = antisymmetric_block(2, 0.5, operator="conv", gamma=0.1)
    block.build((None, 4, 4, 2))
    amp = lemma1_amplification(block, rng.standard_normal((2, 4, 4, 2)).astype("float32"))
    assert amp.shape == (2,) and np.all(amp > 0)


@pytest.mark.parametrize("op,shape", [(DenseOperator(), (5, 5)), (Conv2DOperator(), (3, 3, 4, 4))])
def test_antisymmetry_residual(rng, op, shape):
    raw = rng.standard_normal(shape)
    eff = Antisymmetric(0.3).effective_kernel(op, raw)
    assert antisymmetry_residual(op, eff, gamma=0.3) < 1e-14
    assert antisymmetry_residual(op, raw) > 0.1


def test_state_norms_over_steps(rng):
    block = verlet_block(10, 1.0, momentum_channels=3, dtype="float64")
    block.build((None, 2))
    x = rng.standard_normal((4, 2))
    norms = state_norms(block, x)
    assert norms.shape == (11, 4)
    np.testing.assert_allclose(norms[0], np.linalg.norm(x, axis=1), rtol=1e-12)
