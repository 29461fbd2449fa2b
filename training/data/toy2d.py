"""Toy 2-D classification sets of Haber & Ruthotto (2017, §6.1-6.3) and Galimberti et al. (2021, §4.1).

Each generator returns ``(x_train, y_train), (x_val, y_val)`` as numpy arrays, ``x`` float32 of
shape ``(s, 2)`` (rows are examples) and ``y`` int32 of shape ``(s,)``. Sizes and splits are fixed;
the ``seed`` argument only drives the random parts (sampling, noise, random splits).

Where a paper is silent we follow its authors' code, as recorded in Appendix A of the paper notes
(``/work/shared/papers``): Meganet (``XtractOpen/Meganet.m``) for Haber & Ruthotto and
``DecodEPFL/HamiltonianNet`` for Galimberti et al. Each generator's docstring says which parts come
from the paper and which from the code.

| name            | train | validation | classes | source of the sizes                       |
|-----------------|-------|------------|---------|-------------------------------------------|
| ellipses        | 1,000 | 200        | 2 x 600 | H&R §6.1                                  |
| swiss_roll      | 513   | 513        | 2 x 513 | H&R §6.2 (every other curve point)        |
| peaks           | 4,000 | 1,000      | 5 x 1000| H&R §6.3 (20% random validation)          |
| double_moons    | 4,000 | 4,000      | 2 x 4000| Galimberti code (even/odd of 8,000)       |
| double_circles  | 4,000 | 4,000      | 2 x 4000| Galimberti code (even/odd of 8,000)       |
| swiss_roll_galimberti | 4,000 | 4,000 | 2 x 4000| Galimberti code (even/odd of 8,000)       |

Galimberti et al. call their held-out half a *test* set; here it is the validation split.
``swiss_roll_galimberti`` (Galimberti et al.'s sampling of the swiss roll) is loadable with
``load_toy`` but not (yet) listed in ``TOY_NAMES``, which drives the data-set tests and pipelines.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

__all__ = [
    "TOY_NAMES",
    "ToyDataset",
    "ellipses",
    "swiss_roll",
    "peaks",
    "peaks_function",
    "double_moons",
    "double_circles",
    "swiss_roll_galimberti",
    "load_toy",
]

TOY_NAMES = ("ellipses", "swiss_roll", "peaks", "double_moons", "double_circles")

# Plotting domains (x1_min, x1_max, x2_min, x2_max), from the authors' code.
_DOMAINS = {
    "ellipses": (-2.0, 2.0, -1.0, 1.0),  # Meganet EResNN_Circle.m viewContour2D
    "swiss_roll": (-1.2, 1.2, -1.2, 1.2),  # HamiltonianNet data/datasets.py
    "peaks": (-3.0, 3.0, -3.0, 3.0),  # the peaks grid
    "double_moons": (-2.0, 5.0, -1.0, 2.0),  # HamiltonianNet; matches Galimberti Fig. 1(b)
    "double_circles": (-5.0, 5.0, -5.0, 5.0),  # HamiltonianNet
    "swiss_roll_galimberti": (-1.2, 1.2, -1.2, 1.2),  # HamiltonianNet data/datasets.py
}


@dataclasses.dataclass(frozen=True)
class ToyDataset:
    """A toy set with its fixed split; ``domain`` is the plotting box for prediction maps."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    domain: tuple


def _rng(seed):
    # Only plain non-negative integers: None would silently make the set irreproducible.
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng(int(seed))


def _pack(x, y, train_idx, val_idx):
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int32)
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def ellipses(seed=0):
    """Two concentric ellipses, 1,200 points (600 per class), random split 1,000 / 200 (H&R §6.1).

    The paper gives only the counts and the split. The geometry is Meganet's ``setupCircle.m``
    (the script ``EResNN_Circle.m`` runs it as the 1,000/200 ellipse example): with
    ``theta ~ U(0, 2 pi)``,

    * class 0 (inside): ``x = r (cos theta, 0.4 sin theta)``, ``r ~ U(0, 1)`` - a filled ellipse
      with semi-axes 1 and 0.4;
    * class 1 (around it): the same with ``r ~ U(1, 2)`` - an elliptic annulus between semi-axes
      (1, 0.4) and (2, 0.8).

    Class 1 encloses class 0, so no line separates them. Meganet draws train and test per class
    separately; we draw 600 per class and split the 1,200 at random, as the paper states, so the
    class counts inside each split vary with the seed.
    """
    rng = _rng(seed)
    n = 600
    r = np.concatenate([rng.uniform(0.0, 1.0, n), rng.uniform(1.0, 2.0, n)])
    theta = rng.uniform(0.0, 2.0 * np.pi, 2 * n)
    x = np.stack([r * np.cos(theta), 0.4 * r * np.sin(theta)], axis=1)
    y = np.repeat([0, 1], n)
    perm = rng.permutation(2 * n)
    return _pack(x, y, perm[:1000], perm[1000:])


def swiss_roll(seed=0):
    """Two interleaved spirals, 513 points per class, every other curve point held out (H&R §6.2).

    ``f1(r, theta) = r (cos theta, sin theta)`` (class 0) and
    ``f2 = (r + 0.2) (cos theta, sin theta)`` (class 1) with ``theta = linspace(0, 4 pi, 513)``
    and ``r = linspace(0, 1, 513)`` varying together (one spiral per class), no noise.
    As in Meganet's ``setupSwissRoll.m`` the two arms are concatenated (class 0 first) and the
    odd 1-based positions (0-based even) go to training, the others to validation: 513 / 513
    (train 257 of class 0 + 256 of class 1; validation 256 + 257).

    The set is deterministic: ``seed`` is accepted for a uniform interface and not used.
    (Galimberti et al.'s swiss roll is a different sampling - 4,000 points per arm,
    ``r2 = linspace(0.2, 1.2)`` - and is not this function.)
    """
    _rng(seed)  # validate only
    n = 513
    theta = np.linspace(0.0, 4.0 * np.pi, n)
    r = np.linspace(0.0, 1.0, n)
    arm = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    x = np.concatenate([r[:, None] * arm, (r + 0.2)[:, None] * arm])
    y = np.repeat([0, 1], n)
    idx = np.arange(2 * n)
    return _pack(x, y, idx[0::2], idx[1::2])


def peaks_function(x1, x2):
    """MATLAB's ``peaks`` (H&R §6.3): the function whose level sets define the classes."""
    return (
        3.0 * (1.0 - x1) ** 2 * np.exp(-(x1**2) - (x2 + 1.0) ** 2)
        - 10.0 * (x1 / 5.0 - x1**3 - x2**5) * np.exp(-(x1**2) - x2**2)
        - 1.0 / 3.0 * np.exp(-((x1 + 1.0) ** 2) - x2**2)
    )


def _peaks_classes(f, f_min, f_max, num_classes):
    # Equal-width bins of f between min and max, right-closed as in Meganet's setupPeaks.m
    # ((lo, hi] -> class), with the minimum itself in class 0.
    width = (f_max - f_min) / num_classes
    return np.clip(np.ceil((f - f_min) / width) - 1, 0, num_classes - 1).astype(np.int32)


def peaks(seed=0):
    """Five level-set classes of MATLAB ``peaks`` on [-3, 3]^2, 1,000 points each (H&R §6.3).

    The function is evaluated on a regular 256 x 256 grid. The paper does not state the class
    thresholds; as in Meganet's ``setupPeaks.m`` the classes are 5 equal-width bins of f between its
    minimum and maximum on the grid, and each class draws 1,000 grid points **with replacement**
    (so a grid point can appear twice, and in both splits). 20% of the 5,000 points, chosen at
    random, are the validation set: 4,000 / 1,000.
    """
    rng = _rng(seed)
    grid = np.linspace(-3.0, 3.0, 256)
    g1, g2 = np.meshgrid(grid, grid)
    f = peaks_function(g1, g2)
    cls = _peaks_classes(f, f.min(), f.max(), 5).ravel()
    points = np.stack([g1.ravel(), g2.ravel()], axis=1)
    xs, ys = [], []
    for k in range(5):
        members = np.flatnonzero(cls == k)
        xs.append(points[members[rng.integers(0, members.size, 1000)]])
        ys.append(np.full(1000, k))
    perm = rng.permutation(5000)
    return _pack(np.concatenate(xs), np.concatenate(ys), perm[1000:], perm[:1000])


def _even_odd_split(x, y, rng):
    # HamiltonianNet generates 8,000 points, shuffles them, and trains on the even positions and
    # tests on the odd ones: a random half split.
    perm = rng.permutation(len(y))
    return _pack(x, y, perm[0::2], perm[1::2])


def double_moons(seed=0):
    """Four half-moons (two interleaved pairs), 8,000 points, random halves 4,000 / 4,000.

    Galimberti et al. (§4.1) give no generator, size, noise or split; all of it is from
    ``DecodEPFL/HamiltonianNet`` ``data/datasets.py`` and ``train_2d_example.py``: with
    ``theta_i = pi i / 2000``, ``i = 0..1999``,

    * class 0: ``(cos theta, sin theta)`` and the same shifted by +2 in x1;
    * class 1: ``(1 - cos theta, 0.5 - sin theta)`` and the same shifted by +2 in x1;
    * every coordinate gets independent uniform noise in [-0.15, 0.15];
    * 2,000 points per half-moon (4,000 per class); a seeded shuffle, then even positions train
      and odd positions validation (the code's "test").

    The code writes 3.14 for pi; we use pi.
    """
    rng = _rng(seed)
    n = 2000
    theta = np.pi * np.arange(n) / n
    c, s = np.cos(theta), np.sin(theta)
    moon0 = np.stack([c, s], axis=1)
    moon1 = np.stack([1.0 - c, 0.5 - s], axis=1)
    shift = np.array([2.0, 0.0])
    x = np.concatenate([moon0, moon1, moon0 + shift, moon1 + shift])
    x = x + rng.uniform(-0.15, 0.15, x.shape)
    y = np.tile(np.repeat([0, 1], n), 2)
    return _even_odd_split(x, y, rng)


def double_circles(seed=0):
    """Four concentric noisy circles, radii 1-4 with alternating labels, 8,000 points, 4,000 / 4,000.

    Only named in the Galimberti notes (used in the authors' later paper); everything else is
    ``DecodEPFL/HamiltonianNet`` ``data/datasets.py``: radii 1, 2, 3, 4 with labels 0, 1, 0, 1,
    2,000 points per circle at ``theta_i = 4 pi i / 2000`` (the code winds twice round each circle,
    writing 3.14 for pi; we use pi), independent uniform noise in [-0.3, 0.3] per coordinate, then
    a seeded shuffle with even positions for training and odd for validation.
    """
    rng = _rng(seed)
    n = 2000
    theta = 4.0 * np.pi * np.arange(n) / n
    unit = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    x = np.concatenate([radius * unit for radius in (1.0, 2.0, 3.0, 4.0)])
    x = x + rng.uniform(-0.3, 0.3, x.shape)
    y = np.repeat([0, 1, 0, 1], n)
    return _even_odd_split(x, y, rng)


def swiss_roll_galimberti(seed=0):
    """Galimberti et al.'s swiss roll: two noiseless spirals, 4,000 points each, 4,000 / 4,000.

    Galimberti et al. (§4.1) give no generator; this is ``DecodEPFL/HamiltonianNet``
    ``data/datasets.py`` (``swiss_roll(8000)``) and ``train_2d_example.py``: with
    ``M = 4000`` and ``theta = linspace(0, 4 pi - 4 pi / M, M)``,

    * class 0: ``r1 (cos theta, sin theta)``, ``r1 = linspace(0, 1, M)``;
    * class 1: ``r2 (cos theta, sin theta)``, ``r2 = linspace(0.2, 1.2, M)``;
    * no noise; a seeded shuffle, then even positions train and odd positions validation (the
      code's "test").

    The code labels the inner arm 1 and the outer arm 0; we use 0 / 1 as in ``swiss_roll``
    (accuracies are unaffected). Compared with H&R's ``swiss_roll`` the geometry is the same
    (the outer arm is the inner one at radius + 0.2) but sampled 8 times more densely.
    """
    rng = _rng(seed)
    m = 4000
    theta = np.linspace(0.0, 4.0 * np.pi - 4.0 * np.pi / m, m)
    arm = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    x = np.concatenate([np.linspace(0.0, 1.0, m)[:, None] * arm, np.linspace(0.2, 1.2, m)[:, None] * arm])
    y = np.repeat([0, 1], m)
    return _even_odd_split(x, y, rng)


_GENERATORS = {
    "ellipses": (ellipses, 2),
    "swiss_roll": (swiss_roll, 2),
    "peaks": (peaks, 5),
    "double_moons": (double_moons, 2),
    "double_circles": (double_circles, 2),
    "swiss_roll_galimberti": (swiss_roll_galimberti, 2),
}


def load_toy(name, seed=0):
    """The toy set ``name`` (one of ``TOY_NAMES``) with its fixed split, as a ``ToyDataset``."""
    if name not in _GENERATORS:
        raise ValueError(f"Unknown toy data set name={name!r}; expected one of {tuple(_GENERATORS)}")
    generate, num_classes = _GENERATORS[name]
    (x_train, y_train), (x_val, y_val) = generate(seed)
    return ToyDataset(name, x_train, y_train, x_val, y_val, num_classes, _DOMAINS[name])
