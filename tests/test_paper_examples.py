"""Haber & Ruthotto 2017, Examples 1 and 2 (Figures 1 and 2), run with the zoo's blocks."""

import numpy as np
import pytest

from zoo.paper_examples import example1, example2


def test_hr17_example1_distance_ratios():
    """|y1_N - y2_N| / |y1_0 - y2_0| = 4.2679 (K+), 0.2781 (K-), 1.0513 (K0), to 3 decimals."""
    ratios = {k: v["ratio"] for k, v in example1().items()}
    assert ratios["K+"] == pytest.approx(4.2679, abs=5e-4)
    assert ratios["K-"] == pytest.approx(0.2781, abs=5e-4)
    assert ratios["K0"] == pytest.approx(1.0513, abs=5e-4)


@pytest.fixture(scope="module")
def example2_results():
    return example2(depth=5000)


def test_hr17_example2_verlet_norm_is_bounded(example2_results):
    """||(y_j, z_j)|| stays within [0.1334, 0.1499] for all j <= 5,000, from 0.1414."""
    norm = example2_results["verlet"]["norm"]
    assert norm.shape == (5001, 2)
    assert norm[0] == pytest.approx(np.sqrt(0.02), rel=1e-12)
    assert 0.1334 - 1e-4 <= norm.min() and norm.max() <= 0.1499 + 1e-4


def test_hr17_example2_leapfrog_neither_explodes_nor_vanishes(example2_results):
    """No NaN, no exponential blow-up, no collapse to 0 (K-, h = 1, N = 5,000).

    The trajectory is chaotic: round-off differences of 1e-16 grow to O(1) by step ~1,000, so
    the final norm depends on the floating-point implementation (numpy float64 reaches ~80,
    TensorFlow ~945). The force is bounded by h^2 = 1, so growth is at most quadratic: the
    running maximum can at most quadruple from step 2,500 to 5,000, whereas exponential growth
    would multiply it by an astronomically large factor.
    """
    norm = example2_results["leapfrog"]["norm"].max(axis=1)
    assert np.all(np.isfinite(norm))
    running_max = np.maximum.accumulate(norm)
    assert running_max[5000] <= 4.0 * running_max[2500]
    assert norm[1000:].min() > 1e-3
