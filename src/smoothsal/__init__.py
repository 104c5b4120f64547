"""smoothsal: sharp, stable and honest gradient saliency maps for PyTorch image classifiers.

>>> import smoothsal as ss
>>> model = ss.zoo.efficientnet_lite0()                      # doctest: +SKIP
>>> x = ss.datasets.load_photo("chelsea").tensor             # doctest: +SKIP
>>> ss.SmoothGrad(model, noise_level=0.15, n_samples=50).attribute(x)   # doctest: +SKIP
"""

from smoothsal import datasets, metrics, render, zoo
from smoothsal.methods import (
    METHODS,
    Attribution,
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
    build_method,
    preserve_model,
)
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
    "METHODS",
    "build_method",
    "preserve_model",
    "datasets",
    "metrics",
    "render",
    "zoo",
    "__version__",
]
