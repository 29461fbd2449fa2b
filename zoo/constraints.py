"""Weight constraints: projections applied by the optimiser after every update."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BoxConstraint"]


@keras.saving.register_keras_serializable(package="stable_zoo")
class BoxConstraint(keras.constraints.Constraint):
    """Projection onto the box `-bound <= w <= bound`, elementwise: `w <- min(max(w, -b), b)`.

    Ruthotto & Haber 2018, Sec. 4: the PDE kernels satisfy `-1 <= theta^(1)(t_j) <= 1`, enforced
    (in the authors' Meganet code) by this projection after every SGD step. Keras applies a
    variable's constraint after each optimiser update, e.g.
    `ODEBlock(..., kernel_constraint=BoxConstraint(1.0))`. A box alone does not guarantee
    `dt ||K||^2 <= 2`; it bounds the kernels.

    Args:
        bound: float > 0. Half-width of the box. Defaults to `1.0` (the paper's value).
    """

    def __init__(self, bound=1.0):
        bound = float(bound)
        if not bound > 0:
            raise ValueError(f"`bound` must be > 0; Received: bound={bound!r}")
        self.bound = bound

    def __call__(self, w):
        return ops.clip(w, -self.bound, self.bound)

    def get_config(self):
        return {"bound": self.bound}
