"""stable-zoo: neural networks that are time-discretised ODEs, stable at any depth.

Public interface (DESIGN.md section 7)::

    import zoo
    zoo.list_models()            # registered architectures
    zoo.create("hr17_verlet", depth=64, width=2)
    zoo.list_models(pretrained=True)      # pretrained entries (saved_models/)
    zoo.load("rh18_parabolic_fashion_mnist", num_classes=5)   # checksum-verified, new head
    zoo.card("rh18_parabolic_fashion_mnist")
"""

from zoo.blocks import (
    ODEBlock,
    antisymmetric_block,
    h1_block,
    h2_block,
    ms1_block,
    ms2_block,
    ms3_block,
    hamiltonian_cnn_block,
    leapfrog_block,
    parabolic_cnn_block,
    resnet_block,
    second_order_cnn_block,
    verlet_block,
)
from zoo.constraints import BoxConstraint
from zoo.dynamics import HamiltonianTwoStream, HDNNLayer, SingleLayer, SymmetricLayer, SymmetricTwoStream
from zoo.integrators import ForwardEuler, Leapfrog, Verlet
from zoo.operators import (
    Antisymmetric,
    Conv2DOperator,
    DenseOperator,
    Free,
    NegativeSemidefinite,
    SkewSymmetric,
)
from zoo.normalization import TVNormalization, tv_norm
from zoo.pretrained import card, load
from zoo.registry import create, list_models

__version__ = "0.1.0"

__all__ = [
    "list_models",
    "create",
    "load",
    "card",
    "ODEBlock",
    "resnet_block",
    "antisymmetric_block",
    "leapfrog_block",
    "verlet_block",
    "parabolic_cnn_block",
    "hamiltonian_cnn_block",
    "second_order_cnn_block",
    "h1_block",
    "h2_block",
    "ms1_block",
    "ms2_block",
    "ms3_block",
    "HDNNLayer",
    "SkewSymmetric",
    "SingleLayer",
    "HamiltonianTwoStream",
    "SymmetricLayer",
    "SymmetricTwoStream",
    "TVNormalization",
    "tv_norm",
    "BoxConstraint",
    "ForwardEuler",
    "Leapfrog",
    "Verlet",
    "DenseOperator",
    "Conv2DOperator",
    "Free",
    "Antisymmetric",
    "NegativeSemidefinite",
]
