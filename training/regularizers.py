"""Regularisers of Haber & Ruthotto 2017, Sec. 5: smoothness in time, Laplacian on head images.

The learning problem (H&R 2017, Eq. 2.4) is `(1/s) S(...) + alpha R(theta)`; a Keras
regulariser returns `alpha R(theta)`, which `model.fit` adds to the batch-mean loss, so `alpha`
has the paper's meaning.

- `TimeSmoothness`: `alpha/(2h) sum_{j=1}^{N-1} ||W_j - W_{j-1}||_F^2` over the leading depth axis
  of a block's stacked `(N, ...)` weights (Eq. 5.23), a discrete `(alpha/2) int ||dW/dt||^2 dt`.
  It acts on the raw trainable weights (what Meganet regularises too); for an antisymmetric
  parametrisation `(W - W^T - gamma I)/2` it therefore also smooths the symmetric part of `W`,
  which the forward map never sees (harmless: that part only receives this gradient).
- `LaplacianSmoothness`: `alpha/2 sum_k ||L w_k||^2` with each class column `w_k` of the
  classifier's `Dense` kernel read as an image and `L` the 5-point Laplacian (Eqs. 5.24-5.25).
- `WeightDecay`: `alpha/2 ||W||_F^2` (Sec. 5.1; the paper mentions it only to criticise it).

The Keras-native way to regularise a block is at construction, like `Dense`:
`ODEBlock(..., kernel_regularizer=TimeSmoothness(alpha, T=T), bias_regularizer=...)` (or the
same keywords through `zoo.create`). The penalty is then in the layer config, so it survives
`fit`, save/load and cloning; given with `T` it is valid at any depth. For a model that is
already built, `attach_time_smoothness(model, alpha)` sets the same thing on every `ODEBlock`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.blocks import ODEBlock

__all__ = [
    "time_smoothness",
    "block_time_smoothness",
    "TimeSmoothness",
    "TimeTotalVariation",
    "LaplacianSmoothness",
    "WeightDecay",
    "attach_time_smoothness",
    "ode_blocks",
]


def _register(cls):
    return keras.saving.register_keras_serializable(package="stable_zoo")(cls)


def time_smoothness(weights, h):
    """`1/(2h) sum_{j=1}^{N-1} ||W_j - W_{j-1}||_F^2` of stacked `(N, ...)` weights (Eq. 5.23).

    No `alpha`: this is the diagnostic value of the regulariser. Works for kernels and for
    scalar `(N,)` or vector `(N, m)` biases; 0 when `N = 1`. Keeps the input's float dtype.
    """
    w = ops.convert_to_tensor(weights)
    diff = w[1:] - w[:-1]
    return ops.sum(ops.square(diff)) / (2.0 * h)


def block_time_smoothness(block):
    """`{"kernel": R(K), "bias": R(b)}` (Eq. 5.23) of an `ODEBlock`'s raw weights at its own `h`."""
    return {
        name: float(time_smoothness(ops.convert_to_numpy(w), block.h))
        for name, w in block.raw_weights().items()
    }


@_register
class TimeSmoothness(keras.regularizers.Regularizer):
    """Smoothness in time of per-step weights: `alpha/(2h) sum_j ||W_j - W_{j-1}||_F^2`.

    (Haber & Ruthotto 2017, Eq. 5.23, `j = 1..N-1`.) Penalises changes between adjacent steps
    of a block's stacked `(N, ...)` weights, so that steps can be added or removed without
    changing the network much. The paper uses `alpha` = 1e-3 (ellipses), 5e-3 (swiss roll),
    5e-6 (peaks) and 5e-3 (MNIST).

    Give either `h` (fixed step) or `T` (final time): with `T` the step is `h = T / N` with `N`
    read from the weight's leading axis, so the same regulariser stays correct when the block's
    depth changes (multilevel prolongation, `zoo.create(..., depth=...)`). `T` is the form
    `attach_time_smoothness` uses.

    Args:
        alpha: float >= 0. Regularisation weight.
        h: float > 0 or None. Step size `T / N`.
        T: float > 0 or None. Final time; exactly one of `h` and `T` must be given.
    """

    def __init__(self, alpha, h=None, T=None):
        alpha = float(alpha)
        if not alpha >= 0:
            raise ValueError(f"`alpha` must be >= 0; Received: alpha={alpha}")
        if (h is None) == (T is None):
            raise ValueError(f"Give exactly one of `h` and `T`; Received: h={h}, T={T}")
        for name, value in (("h", h), ("T", T)):
            if value is not None and not float(value) > 0:
                raise ValueError(f"`{name}` must be > 0; Received: {name}={value}")
        self.alpha = alpha
        self.h = None if h is None else float(h)
        self.T = None if T is None else float(T)

    def step_size(self, depth):
        """`h` for a weight with `depth` steps."""
        return self.h if self.h is not None else self.T / depth

    def __call__(self, x):
        depth = x.shape[0]
        if depth is None:
            raise ValueError(f"The leading (depth) axis must be static; Received: shape={x.shape}")
        return self.alpha * time_smoothness(x, self.step_size(depth))

    def get_config(self):
        return {"alpha": self.alpha, "h": self.h, "T": self.T}


@_register
class TimeTotalVariation(keras.regularizers.Regularizer):
    """Smoothed total variation in time plus weight decay (Ruthotto & Haber 2018, Eq. 13).

    `alpha * sum_j h * sum phi_tau((W_{j+1} - W_j) / h) + decay/2 * h * sum_j ||W_j||^2` with
    `phi_tau(x) = sqrt(x^2 + tau)` elementwise: the two integrals of Eq. 13 over `[0, T]` for
    one unit's stacked `(N, ...)` weights. It favours piecewise-constant dynamics. `tau` is not
    given in the paper; 1e-3 is the authors' code default (`l1Reg`).

    Args:
        alpha: float >= 0. `alpha1` of Eq. 13 (2e-4 CIFAR, 4e-4 STL-10).
        T: float > 0. Final time of the unit; `h = T / N`.
        tau: float > 0. Smoothing of the absolute value. Defaults to `1e-3`.
        decay: float >= 0. `alpha2` of Eq. 13 (weight decay). Defaults to `0`.
    """

    def __init__(self, alpha, T, tau=1e-3, decay=0.0):
        for name, value in (("alpha", alpha), ("decay", decay)):
            if not float(value) >= 0:
                raise ValueError(f"`{name}` must be >= 0; Received: {name}={value}")
        for name, value in (("T", T), ("tau", tau)):
            if not float(value) > 0:
                raise ValueError(f"`{name}` must be > 0; Received: {name}={value}")
        self.alpha, self.T, self.tau, self.decay = float(alpha), float(T), float(tau), float(decay)

    def __call__(self, x):
        depth = x.shape[0]
        if depth is None:
            raise ValueError(f"The leading (depth) axis must be static; Received: shape={x.shape}")
        h = self.T / depth
        total = self.decay / 2 * h * ops.sum(ops.square(x))
        if depth > 1:
            rate = (x[1:] - x[:-1]) / h
            total = total + self.alpha * h * ops.sum(ops.sqrt(ops.square(rate) + self.tau))
        return total

    def get_config(self):
        return {"alpha": self.alpha, "T": self.T, "tau": self.tau, "decay": self.decay}


@_register
class LaplacianSmoothness(keras.regularizers.Regularizer):
    """`alpha/2 sum_k ||L w_k||^2` on a classifier kernel whose columns are images.

    (Haber & Ruthotto 2017, Sec. 5.2, Eqs. 5.24-5.25; `L` the discretised Laplacian, `alpha`
    = 0.01 on MNIST.) For a `Dense` kernel of shape `(H*W*C, classes)` after a channels-last
    `Flatten`, each column `w_k` is reshaped to the image `(H, W, C)` and every channel is
    filtered with the 5-point stencil `[[0, 1, 0], [1, -4, 1], [0, 1, 0]]` (one depthwise
    convolution for all classes, classes as the batch axis).

    Units: unit pixel spacing, so `alpha` absorbs `1/dx^4`; the paper's 0.01 was calibrated
    with its own (unstated) scaling and optimiser, so treat it as a starting point.

    Boundary: `"neumann"` (default) mirrors the edge pixel (ghost value = edge value, zero
    normal derivative), so a constant image has `L w = 0` and only roughness is penalised.
    `"zero"` pads with zeros (Dirichlet `w = 0` outside), which also pulls the weights at the
    image border to 0.

    Args:
        alpha: float >= 0. Regularisation weight.
        image_shape: `(H, W)` or `(H, W, C)` of the image feeding the classifier.
        boundary: `"neumann"` or `"zero"`. Defaults to `"neumann"`.
    """

    BOUNDARIES = ("neumann", "zero")

    def __init__(self, alpha, image_shape, boundary="neumann"):
        alpha = float(alpha)
        if not alpha >= 0:
            raise ValueError(f"`alpha` must be >= 0; Received: alpha={alpha}")
        image_shape = tuple(int(d) for d in image_shape)
        if len(image_shape) == 2:
            image_shape = (*image_shape, 1)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(
                f"`image_shape` must be (H, W) or (H, W, C); Received: image_shape={image_shape}"
            )
        if boundary not in self.BOUNDARIES:
            raise ValueError(f"`boundary` must be one of {self.BOUNDARIES}; Received: {boundary!r}")
        self.alpha = alpha
        self.image_shape = image_shape
        self.boundary = boundary

    def laplacian(self, x):
        """`L w_k` for every class: `(classes, H, W, C)` from a `(H*W*C, classes)` kernel."""
        height, width, channels = self.image_shape
        if x.shape[0] != height * width * channels or len(x.shape) != 2:
            raise ValueError(
                f"Expected a kernel of shape ({height * width * channels}, classes) for images "
                f"{self.image_shape}; Received: shape={tuple(x.shape)}"
            )
        w = ops.transpose(ops.reshape(x, (height, width, channels, -1)), (3, 0, 1, 2))
        if self.boundary == "neumann":
            w = ops.concatenate([w[:, :1], w, w[:, -1:]], axis=1)
            w = ops.concatenate([w[:, :, :1], w, w[:, :, -1:]], axis=2)
            padding = "valid"
        else:
            padding = "same"
        stencil = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype="float64")
        stencil = np.tile(stencil[:, :, None, None], (1, 1, channels, 1))
        stencil = ops.convert_to_tensor(stencil, dtype=w.dtype)
        return ops.depthwise_conv(w, stencil, strides=1, padding=padding)

    def __call__(self, x):
        return 0.5 * self.alpha * ops.sum(ops.square(self.laplacian(x)))

    def get_config(self):
        return {
            "alpha": self.alpha,
            "image_shape": list(self.image_shape),
            "boundary": self.boundary,
        }


@_register
class WeightDecay(keras.regularizers.Regularizer):
    """Tikhonov / weight decay `alpha/2 ||W||_F^2` (Haber & Ruthotto 2017, Sec. 5.1).

    The same penalty as `keras.regularizers.L2(alpha / 2)` (Keras' L2 has no 1/2:
    `l2 * sum(W^2)`). A separate class keeps the paper's `alpha` in configs and cards (a recipe
    stating "alpha = 1e-3" reads the same in code), and computes in the weight's dtype (L2
    rounds its factor through float32, 1e-8 relative error in float64 checks). Not the
    decoupled `weight_decay` of `keras.optimizers.AdamW`, which is not a loss term.

    Args:
        alpha: float >= 0. Regularisation weight.
    """

    def __init__(self, alpha):
        alpha = float(alpha)
        if not alpha >= 0:
            raise ValueError(f"`alpha` must be >= 0; Received: alpha={alpha}")
        self.alpha = alpha

    def __call__(self, x):
        return 0.5 * self.alpha * ops.sum(ops.square(ops.convert_to_tensor(x)))

    def get_config(self):
        return {"alpha": self.alpha}


# === Attaching to blocks ===


def ode_blocks(model):
    """Every `ODEBlock` inside `model` (nested models and composite layers included), in order."""
    layers = model._flatten_layers(include_self=True, recursive=True)
    return [layer for layer in layers if isinstance(layer, ODEBlock)]


def attach_time_smoothness(model, alpha, bias=True):
    """Put `TimeSmoothness(alpha, T=block.T)` on the kernel (and bias) of every `ODEBlock`.

    For models already built (e.g. loaded or pretrained); at construction pass
    `kernel_regularizer`/`bias_regularizer` instead. Sets both the block's
    `kernel_regularizer`/`bias_regularizer` (so `get_config`, hence save/load and
    `keras.models.clone_model`, carry it; loading needs `training.regularizers` imported for
    the registered class) and the variables' `regularizer` (public in Keras 3 and read by
    `Layer.losses`, hence added to the loss by `fit` and `evaluate`, with or without
    `jit_compile`). `T` rather than `h` keeps it valid at any depth, e.g. after
    `training.multilevel.prolongate_model`. A compiled model has its traced train/test
    functions reset, as `compile` does. Calling again replaces the penalty; `alpha = 0`
    removes it.

    Args:
        model: a built `keras.Model` (or layer) containing `ODEBlock`s.
        alpha: float >= 0. Weight of Eq. 5.23.
        bias: bool. Also regularise the biases. Defaults to `True` (the paper does both).

    Returns:
        `model`, modified in place.
    """
    blocks = ode_blocks(model)
    if not blocks:
        raise ValueError(f"`model` contains no ODEBlock; Received: {model.name!r}")
    for block in blocks:
        if not block.built:
            raise ValueError(f"Build the model before attaching; block {block.name!r} is not built")
        kernel_reg = TimeSmoothness(alpha, T=block.T) if alpha > 0 else None
        bias_reg = kernel_reg if (bias and block.bias is not None) else None
        block.kernel_regularizer, block.bias_regularizer = kernel_reg, bias_reg
        block.kernel.regularizer = kernel_reg
        if block.bias is not None:
            block.bias.regularizer = bias_reg
    if getattr(model, "compiled", False):
        # What `compile` does: the next fit/evaluate retraces with the new losses.
        model.train_function = None
        model.test_function = None
    return model
