"""Attribution methods: one module each, all derived from :class:`~smoothsal.methods.base.Attribution`.

Names, labels and settings of the methods live in :mod:`smoothsal.registry`, which sits above
this package.
"""

from smoothsal.methods.base import Attribution, ConvergenceDelta, preserve_model
from smoothsal.methods.controls import RandomAttribution, SobelEdges
from smoothsal.methods.deeplift import DeepLift
from smoothsal.methods.expected_gradients import ExpectedGradients
from smoothsal.methods.grad_cam import GradCAM, GradCAMPlusPlus, LayerMethod
from smoothsal.methods.gradient import GradientXInput, VanillaGradient
from smoothsal.methods.guided_backprop import Deconvnet, GuidedBackprop
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.methods.occlusion import Occlusion
from smoothsal.methods.path_point_ig import PathPointIG

__all__ = [
    "Attribution",
    "preserve_model",
    "VanillaGradient",
    "GradientXInput",
    "IntegratedGradients",
    "ExpectedGradients",
    "PathPointIG",
    "GuidedBackprop",
    "Deconvnet",
    "DeepLift",
    "GradCAM",
    "GradCAMPlusPlus",
    "LayerMethod",
    "Occlusion",
    "SobelEdges",
    "RandomAttribution",
    "ConvergenceDelta",
]
