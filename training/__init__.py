"""Training utilities for stable-zoo: data, regularisers, multilevel training, recipes.

Importing this package is cheap (no TensorFlow); import the submodules you need,
e.g. ``from training.data import load_toy, make_pipeline``.
"""

__all__ = []
