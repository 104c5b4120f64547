"""Attribution methods: one module each, all derived from :class:`~smoothsal.methods.base.Attribution`."""

from smoothsal.methods.base import Attribution, preserve_model
from smoothsal.methods.controls import RandomAttribution, SobelEdges
from smoothsal.methods.deeplift import DeepLift
from smoothsal.methods.grad_cam import GradCAM, GradCAMPlusPlus, LayerMethod
from smoothsal.methods.gradient import GradientXInput, VanillaGradient
from smoothsal.methods.guided_backprop import Deconvnet, GuidedBackprop
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.methods.occlusion import Occlusion
from smoothsal.methods.registry import METHODS, build_method, method_label, parse_methods

__all__ = [
    "Attribution",
    "preserve_model",
    "VanillaGradient",
    "GradientXInput",
    "IntegratedGradients",
    "GuidedBackprop",
    "Deconvnet",
    "DeepLift",
    "GradCAM",
    "GradCAMPlusPlus",
    "LayerMethod",
    "Occlusion",
    "SobelEdges",
    "RandomAttribution",
    "METHODS",
    "build_method",
    "method_label",
    "parse_methods",
]
