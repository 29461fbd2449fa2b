"""PyTorch peers of four zoo networks: same trainable parameters, same per-step math.

Written the way a PyTorch user following the papers would write them: the per-step weights of
the `N` steps are one stacked `nn.Parameter` `(N, ...)`, the depth loop is a Python `for` over
it, convolutions are `F.conv2d` and the adjoint `K^T` of a convolution is `F.conv_transpose2d`
with the same kernel. Tensors are PyTorch's native layouts (images NCHW; a dense state is
`(batch, n)` acting as `y @ K`, as in the zoo).

| peer                 | zoo model                      | per step                                          |
|----------------------|--------------------------------|---------------------------------------------------|
| `DenseAntisymmetric` | `hr17_antisymmetric`           | `y += h tanh(y K_j + b_j)`, `K = (W - W^T - gI)/2` |
| `DenseVerlet`        | `hr17_verlet`                  | `z -= h tanh(y K_j + b_j)`; `y += h tanh(z K_j^T + b_j)` |
| `ConvAntisymmetric`  | `hr17_antisymmetric_conv`      | as `DenseAntisymmetric`, with 3x3 convolutions     |
| `ParabolicCNN`       | `rh18_parabolic_fashion_mnist` | `y -= h K_j^T relu(TV_j(K_j y))`                  |

This module imports no TensorFlow or Keras: `load_from_keras` and `keras_count_params` only read
attributes of the Keras model they are given. The constants below restate the zoo's defaults
(`zoo.operators.DEFAULT_GAMMA`, `zoo.normalization.DEFAULT_TV_EPSILON`, Keras'
`BatchNormalization`); tests/test_peers.py proves the two implementations compute the same logits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DenseAntisymmetric",
    "DenseVerlet",
    "ConvAntisymmetric",
    "ParabolicCNN",
    "PEERS",
    "peer",
    "count_params",
    "keras_count_params",
    "assert_same_param_count",
    "load_from_keras",
]

GAMMA = 0.01  # zoo.operators.DEFAULT_GAMMA
TV_EPSILON = 1e-3  # zoo.normalization.DEFAULT_TV_EPSILON (R&H 2018, Sec. 5)
BN_EPSILON = 1e-3  # keras.layers.BatchNormalization default
BN_MOMENTUM = 0.01  # Keras' momentum 0.99 in PyTorch's convention (weight of the new batch)


def _stepwise_glorot(depth, fan_in, fan_out, shape):
    """One Glorot-uniform draw repeated over the `depth` steps (the zoo's default initialiser:
    the network starts as a time-invariant ODE)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(1, *shape).uniform_(-limit, limit).repeat(depth, *([1] * len(shape)))


def _head(features, num_classes):
    """Affine head: one logit for two classes (logistic regression), else `num_classes`."""
    return nn.Linear(features, 1 if num_classes == 2 else num_classes)


def _array(variable):
    """A Keras variable (or anything array-like) as a float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(variable), dtype=np.float32))


def _conv_kernel(variable):
    """Keras `(kh, kw, in, out)` (or stacked `(N, kh, kw, in, out)`) -> PyTorch `(.., out, in, kh, kw)`."""
    return _array(variable).movedim((-4, -3), (-2, -1)).transpose(-4, -3).contiguous()


def _dense(layer, prefix):
    """A Keras `Dense` layer's weights under `prefix` of an `nn.Linear`."""
    return {f"{prefix}.weight": _array(layer.kernel).T.contiguous(), f"{prefix}.bias": _array(layer.bias)}


# === Dense networks of Haber & Ruthotto 2017, Sec. 6.1-6.3 ===


class _DenseODE(nn.Module):
    """Zero-padding lifting `in_features -> width`, `N` steps, affine head (`hr17_<network>`).

    Stacked per-step weights: `kernel (N, width, width)` and one scalar `bias (N,)` per step.
    """

    def __init__(self, depth=16, T=20.0, width=2, in_features=2, num_classes=2, lifting="pad"):
        super().__init__()
        if lifting != "pad" or width < in_features:
            raise ValueError(f"Only zero-padding lifting to width >= in_features; Received: {lifting!r}, {width}")
        self.depth, self.h, self.width, self.in_features = depth, T / depth, width, in_features
        self.kernel = nn.Parameter(_stepwise_glorot(depth, width, width, (width, width)))
        self.bias = nn.Parameter(torch.zeros(depth))
        self.head = _head(width, num_classes)

    def forward(self, x):
        y = F.pad(x, (0, self.width - self.in_features))
        return self.head(self.propagate(y))

    def propagate(self, y):
        raise NotImplementedError

    def keras_state_dict(self, keras_model):
        block = keras_model.get_layer("block")
        return {"kernel": _array(block.kernel), "bias": _array(block.bias),
                **_dense(keras_model.get_layer("predictions"), "head")}


class DenseAntisymmetric(_DenseODE):
    """Antisymmetric ResNet (H&R 2017, Eq. 4.12): `y <- y + h tanh(y K_j + b_j)`,
    `K_j = (W_j - W_j^T - gamma I) / 2` so that `K_j + K_j^T = -gamma I`."""

    def __init__(self, depth=16, T=20.0, width=2, in_features=2, num_classes=2, lifting="pad", gamma=GAMMA):
        super().__init__(depth, T, width, in_features, num_classes, lifting)
        self.gamma = gamma

    def propagate(self, y):
        eye = torch.eye(self.width, dtype=y.dtype, device=y.device)
        K = 0.5 * (self.kernel - self.kernel.transpose(1, 2) - self.gamma * eye)
        for j in range(self.depth):
            y = y + self.h * torch.tanh(y @ K[j] + self.bias[j])
        return y


class DenseVerlet(_DenseODE):
    """Hamiltonian Verlet (H&R 2017, Eq. 4.17), momentum first, `z_0 = 0`:
    `z <- z - h tanh(y K_j + b_j)`, then `y <- y + h tanh(z K_j^T + b_j)`."""

    def propagate(self, y):
        z = torch.zeros_like(y)
        for j in range(self.depth):
            K, b = self.kernel[j], self.bias[j]
            z = z - self.h * torch.tanh(y @ K + b)
            y = y + self.h * torch.tanh(z @ K.T + b)
        return y


# === The MNIST network of H&R 2017, Sec. 6.4 ===


class ConvAntisymmetric(nn.Module):
    """Raw pixels / 255 -> 3x3 conv + tanh (1 -> `width`) -> `N` antisymmetric 3x3 conv steps
    -> affine head on all `width * H * W` values (`hr17_antisymmetric_conv`).

    `K_j = (W_j - W_j^T - gamma I) / 2` with `W^T` the convolution adjoint: the kernel flipped in
    space with its channel axes swapped, and `I` the centre-tap identity kernel.
    """

    def __init__(self, depth=16, T=6.0, width=6, image_shape=(28, 28, 1), num_classes=10, gamma=GAMMA):
        super().__init__()
        height, image_width, channels = image_shape
        self.depth, self.h, self.width, self.gamma = depth, T / depth, width, gamma
        self.opening = nn.Conv2d(channels, width, 3, padding=1)
        self.kernel = nn.Parameter(_stepwise_glorot(depth, 9 * width, 9 * width, (width, width, 3, 3)))
        self.bias = nn.Parameter(torch.zeros(depth))
        self.head = _head(width * height * image_width, num_classes)

    def effective_kernels(self):
        identity = torch.zeros(self.width, self.width, 3, 3, dtype=self.kernel.dtype, device=self.kernel.device)
        identity[:, :, 1, 1] = torch.eye(self.width)
        adjoint = self.kernel.transpose(1, 2).flip(-2, -1)
        return 0.5 * (self.kernel - adjoint - self.gamma * identity)

    def forward(self, x):
        y = torch.tanh(self.opening(x * (1.0 / 255.0)))
        K = self.effective_kernels()
        for j in range(self.depth):
            y = y + self.h * torch.tanh(F.conv2d(y, K[j], padding=1) + self.bias[j])
        return self.head(y.flatten(1))

    def keras_state_dict(self, keras_model):
        opening, block, head = (keras_model.get_layer(n) for n in ("opening", "block", "predictions"))
        # Keras flattens (H, W, C), PyTorch (C, H, W): reorder the head's input rows.
        kernel = np.asarray(head.kernel)
        height, width = keras_model.input_shape[1:3]
        kernel = kernel.reshape(height, width, self.width, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
        return {"opening.weight": _conv_kernel(opening.kernel), "opening.bias": _array(opening.bias),
                "kernel": _conv_kernel(block.kernel), "bias": _array(block.bias),
                "head.weight": _array(kernel).T.contiguous(), "head.bias": _array(head.bias)}


# === The Fashion-MNIST parabolic CNN of Ruthotto & Haber 2018, Sec. 5 ===


class ConvBNReLU(nn.Module):
    """Bias-free convolution, batch norm (Keras' epsilon and momentum), ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))

    def keras_state_dict(self, keras_model, prefix):
        conv, bn = keras_model.get_layer(f"{prefix}_conv"), keras_model.get_layer(f"{prefix}_bn")
        return {"conv.weight": _conv_kernel(conv.kernel), "bn.weight": _array(bn.gamma),
                "bn.bias": _array(bn.beta), "bn.running_mean": _array(bn.moving_mean),
                "bn.running_var": _array(bn.moving_variance)}


class ParabolicUnit(nn.Module):
    """`N` forward-Euler steps `y <- y - h K_j^T relu(TV_j(K_j y))` (R&H 2018, Eqs. 7-9).

    `TV_j(z) = scale_j * z / sqrt(sum_c z_c^2 + eps) + bias_j` per pixel over the channels; the
    one 3x3 kernel per step serves as `K` (`conv2d`) and `K^T` (`conv_transpose2d`).
    """

    def __init__(self, width, depth=3, T=3.0, epsilon=TV_EPSILON):
        super().__init__()
        self.depth, self.h, self.epsilon = depth, T / depth, epsilon
        self.kernel = nn.Parameter(_stepwise_glorot(depth, 9 * width, 9 * width, (width, width, 3, 3)))
        self.norm_scale = nn.Parameter(torch.ones(depth, width))
        self.norm_bias = nn.Parameter(torch.zeros(depth, width))

    def forward(self, y):
        for j in range(self.depth):
            z = F.conv2d(y, self.kernel[j], padding=1)
            z = z * torch.rsqrt(z.square().sum(1, keepdim=True) + self.epsilon)
            z = z * self.norm_scale[j, :, None, None] + self.norm_bias[j, :, None, None]
            y = y - self.h * F.conv_transpose2d(F.relu(z), self.kernel[j], padding=1)
        return y

    def keras_state_dict(self, block):
        return {"kernel": _conv_kernel(block.kernel), "norm_scale": _array(block.norm_scale),
                "norm_bias": _array(block.norm_bias)}


class ParabolicCNN(nn.Module):
    """Raw pixels / 255 -> conv3x3+BN+ReLU -> for each width: parabolic unit, then connector
    conv1x1+BN+ReLU (+ 2x2 average pooling but after the last) -> global average pooling ->
    affine head (`rh18_parabolic_fashion_mnist`: widths 16, 32, 64, final 64, 153,626 weights).
    """

    def __init__(self, widths=(16, 32, 64), final_width=64, image_shape=(28, 28, 1), num_classes=10,
                 depth=3, T=3.0):
        super().__init__()
        widths = tuple(widths)
        self.opening = ConvBNReLU(image_shape[-1], widths[0], 3)
        self.units = nn.ModuleList(ParabolicUnit(w, depth, T) for w in widths)
        outs = widths[1:] + (final_width,)
        self.connectors = nn.ModuleList(ConvBNReLU(w, out, 1) for w, out in zip(widths, outs))
        self.head = _head(final_width, num_classes)

    def forward(self, x):
        x = self.opening(x * (1.0 / 255.0))
        for k, (unit, connector) in enumerate(zip(self.units, self.connectors)):
            x = connector(unit(x))
            if k < len(self.units) - 1:
                x = F.avg_pool2d(x, 2)
        return self.head(x.mean((2, 3)))

    def keras_state_dict(self, keras_model):
        state = _dense(keras_model.get_layer("predictions"), "head")
        parts = [("opening", self.opening, "opening")]
        parts += [(f"connectors.{k}", c, f"connector{k + 1}") for k, c in enumerate(self.connectors)]
        for prefix, module, keras_prefix in parts:
            state.update({f"{prefix}.{n}": v for n, v in module.keras_state_dict(keras_model, keras_prefix).items()})
        for k, unit in enumerate(self.units):
            block = keras_model.get_layer(f"unit{k + 1}")
            state.update({f"units.{k}.{n}": v for n, v in unit.keras_state_dict(block).items()})
        return state


# === Matching zoo models and peers ===

PEERS = {
    "hr17_antisymmetric": DenseAntisymmetric,
    "hr17_verlet": DenseVerlet,
    "hr17_antisymmetric_conv": ConvAntisymmetric,
    "rh18_parabolic_fashion_mnist": ParabolicCNN,
}


def peer(name, **overrides):
    """The PyTorch peer of `zoo.create(name, **overrides)` (the same keyword overrides)."""
    if name not in PEERS:
        raise ValueError(f"No PyTorch peer for {name!r}; peers exist for {sorted(PEERS)}")
    return PEERS[name](**overrides)


def count_params(module):
    """Trainable parameters of a PyTorch module (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def keras_count_params(keras_model):
    """Trainable parameters of a Keras model (BN moving statistics are not trainable)."""
    return sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)


def assert_same_param_count(module, keras_model):
    """Raise AssertionError unless the peer has exactly the Keras model's trainable parameters."""
    ours, theirs = count_params(module), keras_count_params(keras_model)
    assert ours == theirs, f"{type(module).__name__} has {ours:,} parameters, {keras_model.name} {theirs:,}"


def load_from_keras(module, keras_model):
    """Copy a zoo model's weights (and BN moving statistics) into its peer, in place.

    Every parameter and buffer of the peer is set (BN's `num_batches_tracked` aside, which Keras
    does not keep); a mismatch in names or shapes raises. Returns `module`.
    """
    missing, unexpected = module.load_state_dict(module.keras_state_dict(keras_model), strict=False)
    missing = [name for name in missing if not name.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"Weights not mapped from {keras_model.name}: missing {missing}, unexpected {unexpected}")
    return module
