"""Shared test markers."""

import os

import pytest

from training.data.fashion_mnist import DEFAULT_DIR

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(DEFAULT_DIR), reason="apt-get install dataset-fashion-mnist (make data)"
)
