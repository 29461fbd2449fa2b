"""Galimberti, Xu & Ferrari Trecate 2021, "A unified framework for Hamiltonian deep neural
networks" (L4DC 2021; arXiv:2104.13166): H1/H2-DNNs and the MS1-MS3 networks they encompass.

Rows are examples. The paper writes states as columns, `y_{j+1} = y_j + h J K_j' tanh(K_j y_j +
b_j)` (Eq. 11); here `Y_{j+1} = Y_j + h tanh(Y_j K_j + b_j) K_j^T J^T` with our `K_j` the paper's
`K_j'` (see `zoo.dynamics.HDNNLayer`).

Two macro-architectures:

- 2-D classifiers of Sec. 4.1 (`galimberti_<net>`, net in h1, h2, ms1, ms2, ms3): input
  `features` `(batch, 2)`, zero-augmented to `[x1, x2, 0, 0]` (`nf = 4`, Dupont et al. 2019; for
  MS1/MS3 the data enter the `y` half and `z_0 = 0`), one block of `depth` layers on `[0, T]`
  with `T = 0.8` (the only hint in the paper: Fig. 1 titles "T: 0.80"), and a logistic output
  `sigma(W y_N + mu)`: the model returns the logit `W y_N + mu` (train with
  `BinaryCrossentropy(from_logits=True)`). `galimberti_fcnn` is the plain fully connected
  network of Fig. 2 (`y_{j+1} = tanh(K_j y_j + b_j)`, no skip connection; authors' code).
- The MNIST network of Sec. 4.2 (`galimberti_ms1_conv`, `galimberti_h2_conv`): input `image`
  `(batch, 28, 28, 1)` of raw pixels 0..255, normalised inside with the MNIST mean and standard
  deviation (0.1307, 0.3081; authors' code), a linear 3x3 convolution 1 -> 8 channels, one block
  acting per pixel on the 8 channels (`block_kernel_size=1`, the authors' code; 3 gives a 3x3
  convolutional H-DNN), and an affine head on all `8 * 28 * 28 = 6,272` values (no pooling).
  The paper fixes the step, `h = 0.4` (MS1) and `h = 0.05` (H2): `T = h * depth` unless `T` is
  given.

Initialisation (not in the paper): every per-layer `K_j` and `b_j` entry is drawn from N(0, 1),
independently per layer, as in the authors' code (`torch.randn`); override with
`kernel_initializer=` / `bias_initializer=`. Per-layer weights at `nf = 4`: H1/H2 20, MS1 8,
MS2 10, MS3 12 (Table 1).
"""

from __future__ import annotations

import keras

from zoo.blocks import fcnn_block, h1_block, h2_block, ms1_block, ms2_block, ms3_block
from zoo.layers import FeatureLifting
from zoo.models.base import ZooModel, check_image_shape
from zoo.models.heads import classifier_head
from zoo.operators import Conv2DOperator
from zoo.registry import register_model

__all__ = ["build_dense_classifier", "build_conv_classifier", "NETWORKS", "DEFAULT_T", "MNIST_STEP"]

_BLOCKS = {
    "h1": h1_block,
    "h2": h2_block,
    "ms1": ms1_block,
    "ms2": ms2_block,
    "ms3": ms3_block,
    "fcnn": fcnn_block,
}
NETWORKS = ("ms1", "ms2", "ms3", "h1", "h2")
DEFAULT_T = 0.8  # Fig. 1: "T: 0.80 - 64 layers" and "T: 0.80 - 4 layers"
MNIST_STEP = {"ms1": 0.4, "h2": 0.05}  # Sec. 4.2
_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081


def _block(network, depth, T, operator, name, **block_args):
    if network not in _BLOCKS:
        raise ValueError(f"Unknown network {network!r}; expected one of {sorted(_BLOCKS)}")
    block_args.setdefault("kernel_initializer", keras.initializers.RandomNormal(stddev=1.0))
    block_args.setdefault("bias_initializer", keras.initializers.RandomNormal(stddev=1.0))
    if network == "fcnn":
        return fcnn_block(depth, operator=operator, name=name, **block_args)
    return _BLOCKS[network](depth, T, operator=operator, name=name, **block_args)


def build_dense_classifier(
    network, depth=16, T=DEFAULT_T, width=4, in_features=2, num_classes=2,
    head_regularizer=None, name=None, **block_args,
):
    """A Sec. 4.1 network: zero augmentation to `width`, one `network` block, logistic head."""
    inputs = keras.Input((in_features,), name="features")
    x = FeatureLifting(width, "pad", name="lifting")(inputs) if width != in_features else inputs
    x = _block(network, depth, T, "dense", "block", **block_args)(x)
    logits = classifier_head(x, num_classes, kernel_regularizer=head_regularizer)
    return ZooModel(inputs, logits, name=name or f"galimberti_{network}")


def build_conv_classifier(
    network, depth=4, h=None, T=None, width=8, block_kernel_size=1, image_shape=(28, 28, 1),
    num_classes=10, head_regularizer=None, name=None, **block_args,
):
    """The Sec. 4.2 network: normalise, linear 3x3 conv 1 -> `width`, one block, flat head."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"`depth` must be an int >= 0 (0: Table 2's baseline); Received: depth={depth!r}")
    if T is None:
        if h is None:
            h = MNIST_STEP.get(network)
        if h is None or not float(h) > 0:
            raise ValueError(
                f"Give `h` > 0 or `T` for network {network!r} (the paper fixes h only for "
                f"{sorted(MNIST_STEP)}); Received: h={h!r}, T={T!r}"
            )
        T = float(h) * depth
    elif h is not None:
        raise ValueError(f"Give one of `h` and `T`; Received: h={h!r}, T={T!r}")
    inputs = keras.Input(check_image_shape(image_shape), name="image")
    x = keras.layers.Rescaling(
        1.0 / (255.0 * _MNIST_STD), offset=-_MNIST_MEAN / _MNIST_STD, name="normalize"
    )(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", name="opening")(x)  # linear lifting
    if depth > 0:  # depth 0: Table 2's baseline, the linear conv straight into the head
        operator = Conv2DOperator(kernel_size=block_kernel_size)
        x = _block(network, depth, T, operator, "block", **block_args)(x)
    logits = classifier_head(x, num_classes, flatten=True, kernel_regularizer=head_regularizer)
    return ZooModel(inputs, logits, name=name or f"galimberti_{network}_conv")


# === Registered builders (defaults: nf = 4, T = 0.8, 16 layers) ===


@register_model
def galimberti_h1(**overrides):
    """H1-DNN (Eq. 11, J = J1), 2-D classifier; nf = 4, T = 0.8."""
    return build_dense_classifier("h1", **overrides)


@register_model
def galimberti_h2(**overrides):
    """H2-DNN (Eq. 11, J = J2), 2-D classifier; nf = 4, T = 0.8."""
    return build_dense_classifier("h2", **overrides)


@register_model
def galimberti_ms1(**overrides):
    """MS1-DNN (H&R Verlet, z first, two bias vectors), 2-D classifier; nf = 4, T = 0.8."""
    return build_dense_classifier("ms1", **overrides)


@register_model
def galimberti_ms2(**overrides):
    """MS2-DNN (forward Euler, skew K, no gamma), 2-D classifier; nf = 4, T = 0.8."""
    return build_dense_classifier("ms2", **overrides)


@register_model
def galimberti_ms3(**overrides):
    """MS3-DNN (Chang et al. 2018 Verlet, y first), 2-D classifier; nf = 4, T = 0.8."""
    return build_dense_classifier("ms3", **overrides)


@register_model
def galimberti_fcnn(**overrides):
    """Plain fully connected tanh network (Fig. 2 baseline; authors' code), nf = 4."""
    overrides.setdefault("depth", 32)
    return build_dense_classifier("fcnn", **overrides)


@register_model
def galimberti_ms1_conv(**overrides):
    """MS1-DNN on MNIST (Sec. 4.2): conv 1 -> 8, per-pixel MS1 block with h = 0.4, flat head."""
    return build_conv_classifier("ms1", **overrides)


@register_model
def galimberti_h2_conv(**overrides):
    """H2-DNN on MNIST (Sec. 4.2): conv 1 -> 8, per-pixel H2 block with h = 0.05, flat head."""
    return build_conv_classifier("h2", **overrides)
