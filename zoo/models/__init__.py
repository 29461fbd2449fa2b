"""Macro-architectures, one module per paper family; importing this registers them all."""

from zoo.models import haber_ruthotto  # noqa: F401
from zoo.models import ruthotto_haber  # noqa: F401
from zoo.models import galimberti  # noqa: F401
from zoo.models import liu_markowich  # noqa: F401
