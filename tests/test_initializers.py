"""Per-step initialisation of stacked (N, ...) kernels."""

import numpy as np

from zoo.blocks import resnet_block
from zoo.initializers import StepwiseGlorotUniform


def test_stepwise_glorot_uses_one_step_fans():
    """Limit sqrt(6 / (fan_in + fan_out)) of one step's kernel, not of the (N, n, m) stack."""
    w = np.asarray(StepwiseGlorotUniform(seed=1)((512, 3, 5)))
    limit = np.sqrt(6.0 / (3 + 5))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    conv = np.asarray(StepwiseGlorotUniform(seed=1)((64, 3, 3, 4, 6)))
    assert np.abs(conv).max() <= np.sqrt(6.0 / (9 * 4 + 9 * 6))


def test_constant_in_time_draws_one_kernel_for_all_steps():
    w = np.asarray(StepwiseGlorotUniform(constant_in_time=True, seed=2)((16, 4, 4)))
    np.testing.assert_array_equal(w, np.broadcast_to(w[0], w.shape))
    independent = np.asarray(StepwiseGlorotUniform(seed=2)((16, 4, 4)))
    assert np.abs(np.diff(independent, axis=0)).max() > 0.1


def test_blocks_start_time_invariant_by_default():
    block = resnet_block(8, 1.0)
    block.build((None, 3))
    k = block.kernel.numpy()
    np.testing.assert_array_equal(k, np.broadcast_to(k[0], k.shape))
