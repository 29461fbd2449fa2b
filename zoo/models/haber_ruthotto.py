"""Haber & Ruthotto 2017, "Stable architectures for deep neural networks" (arXiv:1705.03341).

Two macro-architectures, each for the four forward propagations (ResNet, antisymmetric ResNet,
Hamiltonian leapfrog, Hamiltonian Verlet):

- 2-D classifiers of Sec. 6.1-6.3 (`hr17_<net>`): input `features` `(batch, 2)`, optional
  weight-free lifting to `width` (zero padding or duplication), one block, affine head.
- The MNIST network of Sec. 6.4 (`hr17_<net>_conv`): input `image` `(batch, 28, 28, 1)` of raw
  pixels 0..255, normalised inside; an opening 3x3 convolution lifts 1 -> `width` = 6 channels
  (the paper does not say how; this is our choice), one block of 3x3 convolutions with `T = 6`,
  and an affine head on all `6 * 28 * 28 = 4,704` output values (no pooling).

Every builder returns logits (one for two classes, else `num_classes`).
"""

from __future__ import annotations

import keras

from zoo.blocks import antisymmetric_block, leapfrog_block, resnet_block, verlet_block
from zoo.layers import FeatureLifting
from zoo.models.base import ZooModel, check_image_shape
from zoo.models.heads import classifier_head
from zoo.registry import register_model

__all__ = ["build_dense_classifier", "build_conv_classifier"]

_BLOCKS = {
    "resnet": resnet_block,
    "antisymmetric": antisymmetric_block,
    "leapfrog": leapfrog_block,
    "verlet": verlet_block,
}


def _block(network, depth, T, operator, name, **block_args):
    if network not in _BLOCKS:
        raise ValueError(f"Unknown network {network!r}; expected one of {sorted(_BLOCKS)}")
    return _BLOCKS[network](depth, T, operator=operator, name=name, **block_args)


def build_dense_classifier(
    network, depth=16, T=20.0, width=2, in_features=2, num_classes=2, lifting="pad",
    name=None, **block_args,
):
    """A Sec. 6.1-6.3 network: lifting to `width`, one `network` block, affine head."""
    inputs = keras.Input((in_features,), name="features")
    x = FeatureLifting(width, lifting, name="lifting")(inputs) if width != in_features else inputs
    x = _block(network, depth, T, "dense", "block", **block_args)(x)
    logits = classifier_head(x, num_classes)
    return ZooModel(inputs, logits, name=name or f"hr17_{network}")


def build_conv_classifier(
    network, depth=16, T=6.0, width=6, image_shape=(28, 28, 1), num_classes=10,
    head_regularizer=None, name=None, **block_args,
):
    """The Sec. 6.4 network: normalise, 3x3 opening to `width`, one conv block, flat head."""
    image_shape = check_image_shape(image_shape)
    inputs = keras.Input(image_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="tanh", name="opening")(x)
    x = _block(network, depth, T, "conv", "block", **block_args)(x)
    logits = classifier_head(x, num_classes, flatten=True, kernel_regularizer=head_regularizer)
    return ZooModel(inputs, logits, name=name or f"hr17_{network}_conv")


# === Registered builders (defaults: the paper's settings) ===


@register_model
def hr17_resnet(**overrides):
    """Forward-Euler ResNet (Eq. 2.1), 2-D classifier; width 2, T = 20."""
    return build_dense_classifier("resnet", **overrides)


@register_model
def hr17_antisymmetric(**overrides):
    """Antisymmetric ResNet (Eq. 4.12), 2-D classifier; width 2, T = 20."""
    return build_dense_classifier("antisymmetric", **overrides)


@register_model
def hr17_leapfrog(**overrides):
    """Hamiltonian leapfrog with K = -C^T C (Eqs. 4.14, 4.16), 2-D classifier."""
    return build_dense_classifier("leapfrog", **overrides)


@register_model
def hr17_verlet(**overrides):
    """Hamiltonian Verlet (Eq. 4.17), 2-D classifier; width 2, T = 20."""
    return build_dense_classifier("verlet", **overrides)


@register_model
def hr17_resnet_conv(**overrides):
    """Forward-Euler ResNet with 3x3 convolutions, the Sec. 6.4 MNIST network."""
    return build_conv_classifier("resnet", **overrides)


@register_model
def hr17_antisymmetric_conv(**overrides):
    """Antisymmetric ResNet with 3x3 convolutions, the Sec. 6.4 MNIST network."""
    return build_conv_classifier("antisymmetric", **overrides)


@register_model
def hr17_leapfrog_conv(**overrides):
    """Hamiltonian leapfrog with 3x3 convolutions (K = -C^T C), Sec. 6.4 macro-architecture."""
    return build_conv_classifier("leapfrog", **overrides)


@register_model
def hr17_verlet_conv(**overrides):
    """Hamiltonian Verlet with 3x3 convolutions, the Sec. 6.4 MNIST network."""
    return build_conv_classifier("verlet", **overrides)
