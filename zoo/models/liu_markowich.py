"""Liu & Markowich 2020, "Selection dynamics for deep neural networks" (arXiv:1905.09076).

The paper has no experiments and no macro-architecture; these are the zoo's 2-D classifiers
built on its forward PDE (Eq. 2.8), in the shape of the `hr17_*` models::

    features (batch, d) -> lifting to f_I on M cells -> selection block (N steps, T)
                        -> quadrature readout (Eq. 2.9) "predictions": logits

- `lm_selection` (Z1): `CellLifting` (one learned value per cell), `SelectionBlock` with
  per-step kernel values, `QuadratureReadout`. `zoo.selection.prolongate_width` refines it
  to `2M` cells without changing its outputs.
- `lm_selection_continuous` (Z2): `FunctionLifting` (a smooth function of `y`),
  `ContinuousSelectionBlock` (cosine basis in `y, z`, piecewise linear in `t`),
  `BasisReadout`. `zoo.selection.at_width` evaluates the trained network on another grid.

Logits: one per example for two classes, `num_classes` otherwise (as `classifier_head`).
`T`, `depth` and the widths are not from the paper (it gives none); the defaults keep
`tau = T / N = 0.25`.
"""

from __future__ import annotations

import keras

from zoo.models.base import ZooModel
from zoo.registry import register_model
from zoo.selection import (
    BasisReadout,
    CellLifting,
    ContinuousSelectionBlock,
    FunctionLifting,
    QuadratureReadout,
    SelectionBlock,
)

__all__ = ["build_continuous_selection_classifier", "build_selection_classifier"]


def _units(num_classes):
    if isinstance(num_classes, bool) or int(num_classes) < 2:
        raise ValueError(f"`num_classes` must be >= 2; Received: num_classes={num_classes!r}")
    return 1 if int(num_classes) == 2 else int(num_classes)


def build_selection_classifier(
    depth=16, T=4.0, width=16, in_features=2, num_classes=2, kernel="free", activation="tanh",
    cell_weights=None, volume=1.0, name=None, **block_args,
):
    """Z1 classifier: `CellLifting(width)` -> `SelectionBlock` -> `QuadratureReadout`.

    Args:
        depth, T, kernel, activation, cell_weights, volume, **block_args: of `SelectionBlock`.
        width: int. Number of cells `M`. Defaults to `16`.
        in_features: int. Input dimension `d`. Defaults to `2`.
        num_classes: int >= 2. Defaults to `2` (one logit).
        name: model name. Defaults to `"lm_selection"`.
    """
    units = _units(num_classes)
    # === Layers ===
    lifting = CellLifting(width, name="lifting")
    block = SelectionBlock(
        depth, T, kernel=kernel, activation=activation, cell_weights=cell_weights, volume=volume,
        name="block", **block_args,
    )
    readout = QuadratureReadout(units, cell_weights=cell_weights, volume=volume, name="predictions")
    # === Functional Model ===
    inputs = keras.Input((in_features,), name="features")
    logits = readout(block(lifting(inputs)))
    return ZooModel(inputs, logits, name=name or "lm_selection")


def build_continuous_selection_classifier(
    depth=16, T=4.0, width=16, modes=8, time_nodes=4, in_features=2, num_classes=2,
    kernel="free", activation="tanh", lifting="basis", name=None, **block_args,
):
    """Z2 classifier: `FunctionLifting` -> `ContinuousSelectionBlock` -> `BasisReadout`.

    Args:
        depth, T, modes, time_nodes, kernel, activation, **block_args: of
            `ContinuousSelectionBlock`.
        width: int >= modes. Grid cells `M` used to evaluate the continuum network.
            Defaults to `16`.
        in_features: int. Input dimension `d`. Defaults to `2`.
        num_classes: int >= 2. Defaults to `2` (one logit).
        lifting: `"basis"` (learned) or `"interpolate"`. Defaults to `"basis"`.
        name: model name. Defaults to `"lm_selection_continuous"`.
    """
    units = _units(num_classes)
    # === Layers ===
    lift = FunctionLifting(width, modes=modes, method=lifting, name="lifting")
    block = ContinuousSelectionBlock(
        depth, T, modes=modes, time_nodes=time_nodes, kernel=kernel, activation=activation,
        name="block", **block_args,
    )
    readout = BasisReadout(units, modes=modes, name="predictions")
    # === Functional Model ===
    inputs = keras.Input((in_features,), name="features")
    logits = readout(block(lift(inputs)))
    return ZooModel(inputs, logits, name=name or "lm_selection_continuous")


# === Registered builders ===


@register_model
def lm_selection(**overrides):
    """Selection-dynamics ResNet (Z1, L&M Eqs. 2.6-2.8), 2-D classifier; 16 cells, N = 16, T = 4."""
    return build_selection_classifier(**overrides)


@register_model
def lm_selection_continuous(**overrides):
    """Continuous-kernel selection dynamics (Z2), 2-D classifier; 8 cosine modes on 16 cells."""
    return build_continuous_selection_classifier(**overrides)
