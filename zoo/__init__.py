"""stable-zoo: neural networks that are time-discretised ODEs, stable at any depth.

Public interface (DESIGN.md section 7)::

    import zoo
    zoo.list_models()            # registered architectures
    zoo.create("hr17_verlet", depth=64, width=2)
"""

from zoo.blocks import ODEBlock, antisymmetric_block, leapfrog_block, resnet_block, verlet_block
from zoo.dynamics import HamiltonianTwoStream, SingleLayer
from zoo.integrators import ForwardEuler, Leapfrog, Verlet
from zoo.operators import (
    Antisymmetric,
    Conv2DOperator,
    DenseOperator,
    Free,
    NegativeSemidefinite,
)
from zoo.registry import create, list_models

__version__ = "0.1.0"

__all__ = [
    "list_models",
    "create",
    "ODEBlock",
    "resnet_block",
    "antisymmetric_block",
    "leapfrog_block",
    "verlet_block",
    "SingleLayer",
    "HamiltonianTwoStream",
    "ForwardEuler",
    "Leapfrog",
    "Verlet",
    "DenseOperator",
    "Conv2DOperator",
    "Free",
    "Antisymmetric",
    "NegativeSemidefinite",
]
