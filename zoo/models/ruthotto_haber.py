"""Ruthotto & Haber 2018, "Deep neural networks motivated by partial differential equations".

(arXiv:1804.04272.) Parabolic, Hamiltonian and second-order CNNs in the paper's Sec. 5
macro-architecture (`rh18_<unit>_<dataset>`)::

    image (raw 0..255) -> Rescaling(1/255)
    -> opening: conv3x3 (no bias) -> BatchNorm -> ReLU                     3 -> w_1
    -> for every unit k: PDE unit (3 steps, h = 1, width w_k)
                         -> connector: conv1x1 (no bias) -> BatchNorm -> ReLU
                            -> 2x2 average pooling (not after the last unit)   w_k -> w_{k+1}
    -> global average pooling -> Dense "predictions" (with bias): logits

The PDE unit is one `ODEBlock` (`parabolic_cnn_block`, `hamiltonian_cnn_block` or
`second_order_cnn_block`): symmetric layers `-K^T relu(N_tv(K Y))` with TV normalisation
(Eq. 9, eps = 1e-3, per-step scale and bias). Every convolution is bias-free; every BN and
TV-norm has a trainable scale and bias per channel (BN's moving mean and variance are
non-trainable). The last unit is also followed by a connector (to `final_width`), which the
paper states only for CIFAR-100 but which its Table 1 weight counts require for all three data
sets. Trainable weights::

    opening 9 c_in w_1 + 2 w_1;  unit 3 (9 w^2 + 2 w) (Hamiltonian: 3 (9 w^2 / 2 + 2 w));
    connector w_k w_{k+1} + 2 w_{k+1};  head w_last * classes + classes.

| configuration | input    | widths        | final | classes | parabolic / Hamiltonian / second-order |
|---------------|----------|---------------|-------|---------|----------------------------------------|
| stl10         | 96x96x3  | 16, 32, 64, 128 | 128 | 10      | 618,554 / 324,794 / 618,554 (Table 1)  |
| cifar10       | 32x32x3  | 32, 64, 112   | 112   | 10      | 502,570 / 264,106 / 502,570 (Table 1)  |
| cifar100      | 32x32x3  | 32, 64, 128   | 256   | 100     | 652,484 / 362,180 / 652,484 (Table 1)  |
| fashion_mnist | 28x28x1  | 16, 32, 64    | 64    | 10      | 153,626 / 81,050 / 153,626 (ours)      |

Input preprocessing is not stated in the paper (the authors' code standardises every image);
the models here take raw pixels and divide by 255, and the opening BN absorbs the affine part.
BN uses moving averages at inference (the authors' code uses batch statistics; a deviation).
"""

from __future__ import annotations

import keras

from zoo.blocks import hamiltonian_cnn_block, parabolic_cnn_block, second_order_cnn_block
from zoo.models.base import ZooModel, check_image_shape
from zoo.models.heads import classifier_head
from zoo.registry import register_model

__all__ = ["build_pde_cnn", "RH18_CONFIGS", "RH18_UNITS"]

RH18_UNITS = {
    "parabolic": parabolic_cnn_block,
    "hamiltonian": hamiltonian_cnn_block,
    "second_order": second_order_cnn_block,
}

# dataset -> (image_shape, unit widths, final connector width, classes); R&H 2018 Sec. 5 and the
# notes' Sec. 1.4 (final connectors derived from Table 1). Fashion-MNIST: DESIGN.md Sec. 3.
RH18_CONFIGS = {
    "stl10": dict(image_shape=(96, 96, 3), widths=(16, 32, 64, 128), final_width=128, num_classes=10),
    "cifar10": dict(image_shape=(32, 32, 3), widths=(32, 64, 112), final_width=112, num_classes=10),
    "cifar100": dict(image_shape=(32, 32, 3), widths=(32, 64, 128), final_width=256, num_classes=100),
    "fashion_mnist": dict(image_shape=(28, 28, 1), widths=(16, 32, 64), final_width=64, num_classes=10),
}


def _conv_bn_relu(x, filters, kernel_size, prefix):
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=False, name=f"{prefix}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(name=f"{prefix}_relu")(x)


def build_pde_cnn(
    unit,
    widths,
    final_width=None,
    image_shape=(32, 32, 3),
    num_classes=10,
    depth=3,
    T=3.0,
    name=None,
    **unit_args,
):
    """The R&H 2018 Sec. 5 network with `unit` in `("parabolic", "hamiltonian", "second_order")`.

    Args:
        unit: str. The PDE unit (`RH18_UNITS`).
        widths: sequence of int. Channels inside each unit (even for `"hamiltonian"`).
        final_width: int. Output channels of the last connector. Defaults to `widths[-1]`.
        image_shape: `(H, W, C)` of the raw-pixel input `image`. Defaults to `(32, 32, 3)`.
        num_classes: int >= 2. Defaults to `10`.
        depth: int. Steps per unit. Defaults to `3`.
        T: float. Final time of each unit (`h = T / depth`). Defaults to `3.0` (`h = 1`).
        name: model name. Defaults to `"rh18_<unit>"`.
        **unit_args: passed to every unit, e.g. `activation`, `normalization`, `epsilon`,
            `kernel_constraint=BoxConstraint(1.0)`, `kernel_regularizer`.

    Returns:
        A `keras.Model` from `image` to logits.
    """
    if unit not in RH18_UNITS:
        raise ValueError(f"Unknown unit {unit!r}; expected one of {sorted(RH18_UNITS)}")
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1:
        raise ValueError(f"`widths` must be positive ints; Received: widths={widths!r}")
    if unit == "hamiltonian" and any(w % 2 for w in widths):
        raise ValueError(
            f"The Hamiltonian unit splits the channels in halves; Received: widths={widths!r}"
        )
    final_width = widths[-1] if final_width is None else int(final_width)

    # === Layers / Functional Model ===
    inputs = keras.Input(check_image_shape(image_shape), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="normalize")(inputs)
    x = _conv_bn_relu(x, widths[0], 3, "opening")
    outs = widths[1:] + (final_width,)
    for k, (width, out) in enumerate(zip(widths, outs), start=1):
        x = RH18_UNITS[unit](depth, T, name=f"unit{k}", **unit_args)(x)
        x = _conv_bn_relu(x, out, 1, f"connector{k}")
        if k < len(widths):
            x = keras.layers.AveragePooling2D(2, name=f"connector{k}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = classifier_head(x, num_classes)
    return ZooModel(inputs, logits, name=name or f"rh18_{unit}")


def _build(unit, dataset, **overrides):
    model_args = dict(RH18_CONFIGS[dataset], name=f"rh18_{unit}_{dataset}")
    return build_pde_cnn(unit, **dict(model_args, **overrides))


# === Registered builders (defaults: the paper's settings; Table 1 weight counts) ===


@register_model
def rh18_parabolic_stl10(**overrides):
    """Parabolic CNN for STL-10 (96x96x3, widths 16/32/64/128, 128); 618,554 weights."""
    return _build("parabolic", "stl10", **overrides)


@register_model
def rh18_hamiltonian_stl10(**overrides):
    """Hamiltonian CNN for STL-10 (96x96x3, widths 16/32/64/128, 128); 324,794 weights."""
    return _build("hamiltonian", "stl10", **overrides)


@register_model
def rh18_second_order_stl10(**overrides):
    """Second-order CNN for STL-10 (96x96x3, widths 16/32/64/128, 128); 618,554 weights."""
    return _build("second_order", "stl10", **overrides)


@register_model
def rh18_parabolic_cifar10(**overrides):
    """Parabolic CNN for CIFAR-10 (32x32x3, widths 32/64/112, 112); 502,570 weights."""
    return _build("parabolic", "cifar10", **overrides)


@register_model
def rh18_hamiltonian_cifar10(**overrides):
    """Hamiltonian CNN for CIFAR-10 (32x32x3, widths 32/64/112, 112); 264,106 weights."""
    return _build("hamiltonian", "cifar10", **overrides)


@register_model
def rh18_second_order_cifar10(**overrides):
    """Second-order CNN for CIFAR-10 (32x32x3, widths 32/64/112, 112); 502,570 weights."""
    return _build("second_order", "cifar10", **overrides)


@register_model
def rh18_parabolic_cifar100(**overrides):
    """Parabolic CNN for CIFAR-100 (32x32x3, widths 32/64/128, 256); 652,484 weights."""
    return _build("parabolic", "cifar100", **overrides)


@register_model
def rh18_hamiltonian_cifar100(**overrides):
    """Hamiltonian CNN for CIFAR-100 (32x32x3, widths 32/64/128, 256); 362,180 weights."""
    return _build("hamiltonian", "cifar100", **overrides)


@register_model
def rh18_second_order_cifar100(**overrides):
    """Second-order CNN for CIFAR-100 (32x32x3, widths 32/64/128, 256); 652,484 weights."""
    return _build("second_order", "cifar100", **overrides)


@register_model
def rh18_parabolic_fashion_mnist(**overrides):
    """Parabolic CNN for Fashion-MNIST (28x28x1, widths 16/32/64, 64); 153,626 weights."""
    return _build("parabolic", "fashion_mnist", **overrides)


@register_model
def rh18_hamiltonian_fashion_mnist(**overrides):
    """Hamiltonian CNN for Fashion-MNIST (28x28x1, widths 16/32/64, 64); 81,050 weights."""
    return _build("hamiltonian", "fashion_mnist", **overrides)


@register_model
def rh18_second_order_fashion_mnist(**overrides):
    """Second-order CNN for Fashion-MNIST (28x28x1, widths 16/32/64, 64); 153,626 weights."""
    return _build("second_order", "fashion_mnist", **overrides)
