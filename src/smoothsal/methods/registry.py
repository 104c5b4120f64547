"""Method names the CLI and the experiments understand, and one factory to build them.

``build_method("ig", model, steps=16)`` returns an attribution method;
``build_method("ig", model, smooth=dict(noise_level=0.15, n_samples=50))`` wraps it in
:class:`~smoothsal.smoothing.Smooth`. Names are short and stable, and each maps to one class, so a
CSV row or a CLI flag names a method without ambiguity.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

#: name -> (module, class, human label)
METHODS: dict[str, tuple[str, str, str]] = {
    "grad": ("smoothsal.methods.gradient", "VanillaGradient", "Gradient"),
    "gradxinput": ("smoothsal.methods.gradient", "GradientXInput", "Gradient × Input"),
    "ig": ("smoothsal.methods.integrated_gradients", "IntegratedGradients", "Integrated Gradients"),
    "guided": ("smoothsal.methods.guided_backprop", "GuidedBackprop", "Guided Backprop"),
    "deconvnet": ("smoothsal.methods.guided_backprop", "Deconvnet", "Deconvnet"),
    "deeplift": ("smoothsal.methods.deeplift", "DeepLift", "DeepLIFT"),
    "gradcam": ("smoothsal.methods.grad_cam", "GradCAM", "Grad-CAM"),
    "gradcam++": ("smoothsal.methods.grad_cam", "GradCAMPlusPlus", "Grad-CAM++"),
    "occlusion": ("smoothsal.methods.occlusion", "Occlusion", "Occlusion"),
}


def method_class(name: str) -> type:
    """The class registered under ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    module, cls, _ = METHODS[name]
    return getattr(importlib.import_module(module), cls)


def method_label(name: str, smoothed: bool = False) -> str:
    """Human-readable label, e.g. ``"SmoothGrad"`` or ``"Integrated Gradients + smoothing"``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    if smoothed:
        return "SmoothGrad" if name == "grad" else f"Smooth {METHODS[name][2]}"
    return METHODS[name][2]


def build_method(name: str, model: nn.Module, smooth: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Build method ``name`` for ``model`` (``kwargs`` go to its constructor); wrap it in
    :class:`~smoothsal.smoothing.Smooth` with ``smooth`` as keyword arguments if given."""
    method = method_class(name)(model, **kwargs)
    if smooth is None:
        return method
    from smoothsal.smoothing import Smooth

    return Smooth(method, **dict(smooth))


def parse_methods(spec: str | list[str]) -> list[str]:
    """``"grad,ig,gradcam"`` (or a list) -> validated list of names."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ValueError("`methods` must name at least one method")
    for n in names:
        if n not in METHODS:
            raise ValueError(f"unknown method {n!r} in `methods`; expected names from {sorted(METHODS)}")
    return names
