"""Data for stable-zoo (DESIGN.md §5).

* ``toy2d``: the papers' 2-D sets (ellipses, swiss roll, peaks, double moons, double circles) as
  numpy arrays with fixed sizes and splits;
* ``fashion_mnist``: Fashion-MNIST from the local Debian IDX files (offline stand-in for MNIST);
* ``tfds_sets``: MNIST, CIFAR-10/100, STL-10 through ``tensorflow_datasets`` (network needed);
* ``pipeline``: ``tf.data`` pipelines and seeded batch augmentation, and ``dataset_for(name, split)``.

The loaders are imported eagerly (numpy only; ``load_tfds`` imports tfds when called); the
pipeline names (``make_pipeline``, ``dataset_for``, ``random_flip_and_shift``,
``default_augment``, ``DATASET_NAMES``) are imported on first use, so generating a toy set does not
start TensorFlow.
"""

import importlib

from training.data.fashion_mnist import ImageSplits, load_fashion_mnist
from training.data.tfds_sets import TFDS_NAMES, load_tfds
from training.data.toy2d import TOY_NAMES, ToyDataset, load_toy

__all__ = [
    "TOY_NAMES",
    "ToyDataset",
    "load_toy",
    "ImageSplits",
    "load_fashion_mnist",
    "TFDS_NAMES",
    "load_tfds",
    "DATASET_NAMES",
    "make_pipeline",
    "random_flip_and_shift",
    "default_augment",
    "dataset_for",
]

_LAZY = {
    "DATASET_NAMES": "training.data.pipeline",
    "make_pipeline": "training.data.pipeline",
    "random_flip_and_shift": "training.data.pipeline",
    "default_augment": "training.data.pipeline",
    "dataset_for": "training.data.pipeline",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")
