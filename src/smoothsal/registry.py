"""Every method's name, label and settings, stated once; one factory builds them.

This module sits above :mod:`smoothsal.methods` and :mod:`smoothsal.smoothing` and imports both;
neither imports it back. The CLI, the studies and the API read method settings from here, so
their defaults cannot disagree.

``build_method("ig", model)`` returns Integrated Gradients with its raw settings;
``build_method("ig", model, SmoothSpec())`` returns :class:`~smoothsal.smoothing.Smooth` around IG
built with its *smoothed* settings (see below) and the smoothing of that
:class:`~smoothsal.smoothing_spec.SmoothSpec`; ``build_method("ig", model, SmoothSpec(n_samples=100),
steps=8)`` overrides both.

**Method settings are checked against the method's constructor.** A setting given to
:func:`build_method` or registered with :func:`register` must be a parameter of the method's
factory (``steps`` for IG, ``window`` for occlusion): a misspelt one fails with the parameters the
method takes, at registration or before the model is touched. The constructor is the one
statement of what a method takes and of the type of each value (it checks the values, naming the
argument); a second, per-method copy of every signature would drift from it.

**Raw vs smoothed settings.** A smoothed map averages the method over ``n`` noisy inputs, so an
expensive method is run with a cheaper inner setting: IG takes 32 Gauss–Legendre path points raw
but 4 per noisy sample under smoothing (n × 4 points in all: the noise average also averages
over the path's quadrature error, as in SmoothGrad's Fig. 7 "SmoothGrad + IG"). The alternative,
one random path point per noisy sample (:class:`~smoothsal.methods.path_point_ig.PathPointIG`,
unbiased for the smoothed exact IG), replaces it only by a rule fixed before its measurement
(``benchmarks/smoothed_ig_rule.py``: a mean completeness gap of at most 5 % and no larger map
error at the same model rows); on Lite0 at 256 rows per image its error was smaller (0.40 vs 0.56)
but its gap 10.7 % (``results/smoothed_ig/summary.json``), so the 4-point rule stays. Occlusion slides
a 32 px window with stride 16 at 224 px (both scale with the image size). Expected Gradients has
no training data to draw its baselines from here, so its registered reference is the ``"uniform"``
distribution (:mod:`smoothsal.methods.expected_gradients`; pass ``baselines=`` a reference set to
override), 50 samples raw and, like IG's 4 path points, 4 under smoothing (every noisy copy then
sees the same 4 draws of baseline and path point, the seed being fixed).

**Eq. 13 compares like with like.** The fidelity error of Ye & Farnia (eq. 13) is the distance of
E_z S(x+z) from S(x) for *one* method S; a smoothed IG with 4 path
points beside a raw IG with 32 adds the 4-point quadrature error to it (0.188 instead of 0.040 on
a digits CNN at σ = 10⁻⁴). ``build_method(name, model, smooth, inner="raw")`` wraps the method
built with its *raw* settings, the one to compare with ``build_method(name, model)`` in eq. 13;
the default ``inner="smoothed"`` stays what the pictures and tables call the smoothed method.

**How many samples.** ``Smooth``'s own default is the paper's fixed ``n_samples = 50`` (Smilkov et
al. 2017, §4: "little change beyond 50"), so an API call costs a known 50 forward+backward
passes. The studies draw pictures and tables that must be precise, and on ImageNet-size models
n = 50 is not: SmoothGrad on EfficientNet-Lite0 at σ = 15 % has a relative standard error
‖SE‖/‖map‖ of 0.65–0.77 at n = 50 (docs/guide/cli.md, ``smoothsal explain``). So the studies sample to a
stated precision instead (:data:`PRECISION`): until every map's relative standard error is at
most 0.35, at most 400 samples. Both rules are here; nothing else states them.

Users register their own methods with :func:`register` (also usable as a class decorator).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, Union, overload

from torch import Tensor, nn

from smoothsal.execution.memory import MemorySpec
from smoothsal.methods.base import Attribution
from smoothsal.methods.controls import RandomAttribution, SobelEdges
from smoothsal.methods.deeplift import DeepLift
from smoothsal.methods.expected_gradients import ExpectedGradients
from smoothsal.methods.grad_cam import GradCAM, GradCAMPlusPlus
from smoothsal.methods.gradient import GradientXInput, VanillaGradient
from smoothsal.methods.guided_backprop import Deconvnet, GuidedBackprop
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.methods.occlusion import Occlusion
from smoothsal.smoothing import Smooth
from smoothsal.smoothing_spec import SmoothSpec

__all__ = [
    "METHODS",
    "PRECISION",
    "MethodFactory",
    "MethodSetting",
    "MethodSpec",
    "build_method",
    "method_factory",
    "method_label",
    "method_spec",
    "noise_label",
    "parse_methods",
    "register",
]

#: The value of one method setting: what the built-in constructors take (path points, a window,
#: a baseline name, number or tensor, a layer by name or module, a layout callable).
MethodSetting = Union[None, bool, int, float, str, tuple[int, int], Tensor, nn.Module, Callable[[Tensor], Tensor]]
#: ``factory(model, **settings) -> method``: usually the method's class.
MethodFactory = Callable[..., Attribution]
_F = TypeVar("_F", bound=Callable[..., Attribution])

#: The studies' sampling rule for smoothed maps (see the module docstring): sample until every
#: map's relative standard error is at most ``tol``, and at most ``n_samples`` samples.
PRECISION: SmoothSpec = SmoothSpec(n_samples=400, tol=0.35)

#: Image size the size-scaled settings (``MethodSpec.size_scaled``) are stated for.
REFERENCE_SIZE = 224


def _parameters(factory: Callable[..., object]) -> tuple[set[str], bool]:
    """The keyword settings ``factory`` takes after the model, and whether it takes any (``**kwargs``)."""
    try:
        params = list(inspect.signature(factory).parameters.values())[1:]  # the model comes first
    except (TypeError, ValueError):  # a builtin without a signature: nothing can be checked
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_settings(name: str, factory: Callable[..., object], settings: Mapping[str, MethodSetting]) -> None:
    """ValueError naming the settings of ``settings`` that ``factory`` does not take."""
    names, open_ended = _parameters(factory)
    unknown = sorted(k for k in settings if k not in names)
    if unknown and not open_ended:
        raise ValueError(f"method {name!r} has no setting {unknown}; it takes {sorted(names) or 'none'}")


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes:
        name: short, stable name used in CLI flags, CSV rows and store keys (``"ig"``).
        factory: ``factory(model, **settings) -> method`` (usually the class).
        label: human-readable label (``"Integrated Gradients"``).
        raw: constructor settings for the raw map.
        smoothed: constructor settings of the inner method when wrapped in ``Smooth``.
        display: how its map is drawn: ``"abs"`` (the paper's gray |map|) or ``"overlay"``
            (coarse maps such as CAMs, as a heat map over the photo).
        kind: ``"method"`` or ``"control"`` (a map that must fail the honesty checks).
        size_scaled: settings stated in pixels at :data:`REFERENCE_SIZE` that scale with the
            image size (occlusion's window and stride).
        smoothed_label: label of the smoothed method (default ``"Smooth <label>"``).
    """

    name: str
    factory: MethodFactory
    label: str
    raw: Mapping[str, MethodSetting] = field(default_factory=dict)
    smoothed: Mapping[str, MethodSetting] = field(default_factory=dict)
    display: str = "abs"
    kind: str = "method"
    size_scaled: tuple[str, ...] = ()
    smoothed_label: str | None = None

    def settings(self, *, smoothed: bool = False, image_size: int | None = None) -> dict[str, MethodSetting]:
        """Constructor settings, raw or smoothed, with pixel sizes scaled to ``image_size``."""
        out = dict(self.smoothed if smoothed else self.raw)
        if image_size is not None:
            for key in self.size_scaled:
                value = out.get(key)
                if isinstance(value, int):
                    out[key] = max(1, round(value * image_size / REFERENCE_SIZE))
        return out

    def takes(self, setting: str) -> bool:
        """Whether the factory has a parameter ``setting`` (``"seed"``, ``"batch_size"``, ...)."""
        names, open_ended = _parameters(self.factory)
        return setting in names or open_ended

    def label_for(self, smoothed: bool = False, smooth: SmoothSpec | None = None) -> str:
        """The raw or smoothed label; with ``smooth``, a label that says which noise the map averages
        over and how much (:func:`noise_label`): ``"SmoothGrad (input 15 %)"``,
        ``"NoiseGrad (weights 20 %)"``, ``"FusionGrad Integrated Gradients (input 10 %, weights 20 %)"``."""
        if smooth is not None:
            return noise_label(self, smooth)
        if not smoothed:
            return self.label
        return self.smoothed_label or f"Smooth {self.label}"


METHODS: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


@overload
def register(
    name: str, factory: None = None, *, label: str | None = None, raw: Mapping[str, MethodSetting] | None = None,
    smoothed: Mapping[str, MethodSetting] | None = None, display: str = "abs", kind: str = "method",
    size_scaled: Sequence[str] = (), smoothed_label: str | None = None, aliases: Sequence[str] = (),
) -> Callable[[_F], _F]: ...
@overload
def register(
    name: str, factory: MethodFactory, *, label: str | None = None, raw: Mapping[str, MethodSetting] | None = None,
    smoothed: Mapping[str, MethodSetting] | None = None, display: str = "abs", kind: str = "method",
    size_scaled: Sequence[str] = (), smoothed_label: str | None = None, aliases: Sequence[str] = (),
) -> MethodSpec: ...
def register(
    name: str,
    factory: MethodFactory | None = None,
    *,
    label: str | None = None,
    raw: Mapping[str, MethodSetting] | None = None,
    smoothed: Mapping[str, MethodSetting] | None = None,
    display: str = "abs",
    kind: str = "method",
    size_scaled: Sequence[str] = (),
    smoothed_label: str | None = None,
    aliases: Sequence[str] = (),
) -> MethodSpec | Callable[[_F], _F]:
    """Register ``factory`` under ``name``; without ``factory``, a class decorator.

    ``raw`` and ``smoothed`` must be settings the factory takes (:func:`build_method` checks the
    same way): a misspelt one fails here.

    Example:
        >>> from smoothsal.methods.gradient import VanillaGradient
        >>> @register("my_grad", label="My gradient")
        ... class MyGradient(VanillaGradient):
        ...     pass
        >>> method_label("my_grad")
        'My gradient'
        >>> _ = METHODS.pop("my_grad")
    """
    if factory is None:
        def decorate(f: _F) -> _F:
            register(name, f, label=label, raw=raw, smoothed=smoothed, display=display, kind=kind,
                     size_scaled=size_scaled, smoothed_label=smoothed_label, aliases=aliases)  # fmt: skip
            return f

        return decorate
    if not isinstance(name, str) or not name or "," in name:
        raise ValueError(f"`name` must be a non-empty string without commas, got {name!r}")
    if display not in ("abs", "overlay"):
        raise ValueError(f"`display` must be 'abs' or 'overlay', got {display!r}")
    raw = dict(raw or {})
    smoothed = dict(smoothed) if smoothed is not None else dict(raw)
    _check_settings(name, factory, {**raw, **smoothed})
    spec = MethodSpec(
        name=name,
        factory=factory,
        label=label or getattr(factory, "__name__", name),
        raw=raw,
        smoothed=smoothed,
        display=display,
        kind=kind,
        size_scaled=tuple(size_scaled),
        smoothed_label=smoothed_label,
    )
    METHODS[name] = spec
    for alias in aliases:
        _ALIASES[alias] = name
    return spec


def method_spec(name: str) -> MethodSpec:
    """The spec registered under ``name`` (or one of its aliases)."""
    key = _ALIASES.get(name, name)
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[key]


def method_label(name: str, smoothed: bool = False, smooth: SmoothSpec | None = None) -> str:
    """Human-readable label, e.g. ``"SmoothGrad"`` or ``"Smooth Integrated Gradients"``; with
    ``smooth`` (a :class:`~smoothsal.smoothing_spec.SmoothSpec`), one naming its noise and levels,
    e.g. ``"NoiseGrad (weights 20 %)"`` (:func:`noise_label`)."""
    return method_spec(name).label_for(smoothed, smooth)


def _percent(level: float) -> str:
    return f"{100 * level:.3g} %"


def noise_label(spec: MethodSpec, smooth: SmoothSpec) -> str:
    """The label of method ``spec`` smoothed by ``smooth``: the smoothing's name and its noise.

    Input noise is SmoothGrad (Smilkov et al. 2017), weight noise NoiseGrad and both FusionGrad
    (Bykov et al. 2022); the gradient's smoothed map is named by the smoothing alone, any other
    method's by the smoothing and the method. The levels follow in brackets, as percentages
    (of the input's value range; of each weight's own size).

    Example:
        >>> noise_label(method_spec("grad"), SmoothSpec(noise_level=0.15))
        'SmoothGrad (input 15 %)'
        >>> noise_label(method_spec("ig"), SmoothSpec(noise_level=0.0, weight_noise=0.2))
        'NoiseGrad Integrated Gradients (weights 20 %)'
    """
    kind = smooth.noise_kind
    parts = []
    if kind in ("input", "both"):
        parts.append(f"input {_percent(smooth.noise_level)}")
    if kind in ("weights", "both"):
        layers = f" of {', '.join(smooth.weight_noise_layers)}" if smooth.weight_noise_layers else ""
        parts.append(f"weights {_percent(smooth.weight_noise)}{layers}")
    levels = f" ({', '.join(parts)})" if parts else " (no noise)"
    if kind in ("input", "none"):
        return f"{spec.label_for(True)}{levels}"
    name = "NoiseGrad" if kind == "weights" else "FusionGrad"
    return f"{name}{levels}" if spec.name == "grad" else f"{name} {spec.label}{levels}"


@overload
def build_method(
    name: str, model: nn.Module, smooth: None = None, *, image_size: int | None = None, inner: str = "smoothed",
    batch_size: int | None = None, max_memory: MemorySpec = None, **settings: MethodSetting,
) -> Attribution: ...
@overload
def build_method(
    name: str, model: nn.Module, smooth: SmoothSpec, *, image_size: int | None = None, inner: str = "smoothed",
    batch_size: int | None = None, max_memory: MemorySpec = None, **settings: MethodSetting,
) -> Smooth: ...
def build_method(
    name: str,
    model: nn.Module,
    smooth: SmoothSpec | None = None,
    *,
    image_size: int | None = None,
    inner: str = "smoothed",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
    **settings: MethodSetting,
) -> Attribution | Smooth:
    """Build method ``name`` for ``model``.

    Args:
        name: a registered name (:data:`METHODS`) or alias.
        model: the model to explain.
        smooth: ``None`` for the raw method; a :class:`~smoothsal.smoothing_spec.SmoothSpec`
            (``SmoothSpec()`` for the defaults, :data:`PRECISION` for the studies' rule) to wrap it
            in :class:`~smoothsal.smoothing.Smooth`, the inner method then built with its
            *smoothed* settings.
        image_size: scale the pixel-sized settings (occlusion's window) to this image size
            (default: the inputs' size is not known here, so the 224-px values are used).
        inner: with ``smooth``, the settings of the wrapped method: ``"smoothed"`` (its cheaper
            smoothed settings, the default) or ``"raw"`` (its raw settings: the smoothed map of
            eq. 13, compared with the raw map of the same method; module docstring).
        batch_size: most model rows per call (``None``: automatic): the method's if it batches
            (IG, occlusion; a method that runs its inputs in one call has none), and ``Smooth``'s
            when smoothed. Never changes the map.
        max_memory: the memory budget of the automatic ``batch_size``, passed the same way.
        settings: constructor settings that replace the registered ones; each must be a
            parameter of the method's factory (ValueError naming the ones it takes).

    Example:
        >>> import torch
        >>> ig = build_method("ig", torch.nn.Linear(4, 3), steps=8)
        >>> type(ig).__name__, ig.steps
        ('IntegratedGradients', 8)
        >>> build_method("ig", torch.nn.Linear(4, 3), SmoothSpec(n_samples=4)).method.steps
        4
    """
    spec = _checked(name, smooth, inner, settings)
    smoothed = smooth is not None and inner == "smoothed"
    chosen = {**spec.settings(smoothed=smoothed, image_size=image_size), **settings}
    run = {"batch_size": batch_size, "max_memory": max_memory}
    chosen.update({k: v for k, v in run.items() if v is not None and spec.takes(k)})
    method = spec.factory(model, **chosen)
    if smooth is None:
        return method
    return Smooth.from_spec(method, smooth, batch_size=batch_size, max_memory=max_memory)


def _checked(name: str, smooth: SmoothSpec | None, inner: str, settings: Mapping[str, MethodSetting]) -> MethodSpec:
    """The spec of ``name``, after checking the arguments of :func:`build_method` (before any model)."""
    spec = method_spec(name)
    _check_settings(spec.name, spec.factory, settings)
    if smooth is not None and not isinstance(smooth, SmoothSpec):
        raise TypeError(f"`smooth` must be a SmoothSpec or None, got {type(smooth).__name__}")
    if inner not in ("smoothed", "raw"):
        raise ValueError(f"`inner` must be 'smoothed' or 'raw', got {inner!r}")
    return spec


def method_factory(
    name: str,
    smooth: SmoothSpec | None = None,
    *,
    image_size: int | None = None,
    inner: str = "smoothed",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
    **settings: MethodSetting,
) -> Callable[[nn.Module], Attribution | Smooth]:
    """``model -> method`` (:func:`build_method` with these arguments): what the model-comparison
    metrics (stability, sanity) take. The arguments are checked now, not at the first model."""
    _checked(name, smooth, inner, settings)

    def factory(model: nn.Module) -> Attribution | Smooth:
        return build_method(name, model, smooth, image_size=image_size, inner=inner, batch_size=batch_size,
                            max_memory=max_memory, **settings)  # fmt: skip

    factory.__name__ = f"{name}{'_smooth' if smooth is not None else ''}"
    return factory


def parse_methods(spec: str | Sequence[str], *, kinds: Sequence[str] = ("method",)) -> list[str]:
    """``"grad,ig,gradcam"`` (or a list) -> validated list of registered names, aliases resolved,
    duplicates dropped, restricted to the registered ``kinds``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        key = _ALIASES.get(item, item)
        if key not in METHODS or METHODS[key].kind not in kinds:
            allowed = sorted(n for n, s in METHODS.items() if s.kind in kinds)
            raise ValueError(f"unknown method {item!r} in `methods`; expected names from {allowed}")
        if key not in names:
            names.append(key)
    if not names:
        raise ValueError("`methods` must name at least one method")
    return names


# ---- the built-in methods ---------------------------------------------------------------------
register("grad", VanillaGradient, label="Gradient", smoothed_label="SmoothGrad", aliases=("gradient", "smoothgrad"))
register("gradxinput", GradientXInput, label="Gradient × Input")
register(
    "ig", IntegratedGradients, label="Integrated Gradients", raw={"steps": 32}, smoothed={"steps": 4},
    aliases=("integrated_gradients",),
)
register(
    "eg", ExpectedGradients, label="Expected Gradients", raw={"baselines": "uniform", "n_samples": 50},
    smoothed={"baselines": "uniform", "n_samples": 4}, aliases=("expected_gradients",),
)
register("guided", GuidedBackprop, label="Guided Backprop", aliases=("guided_backprop",))
register("deconvnet", Deconvnet, label="Deconvnet")
register("deeplift", DeepLift, label="DeepLIFT")
register("gradcam", GradCAM, label="Grad-CAM", display="overlay")
register("gradcam++", GradCAMPlusPlus, label="Grad-CAM++", display="overlay")
register(
    "occlusion", Occlusion, label="Occlusion", raw={"window": 32, "stride": 16}, display="overlay",
    size_scaled=("window", "stride"),
)
register("sobel", SobelEdges, label="Sobel edges (control)", kind="control")
register("random", RandomAttribution, label="Random map (control)", kind="control")
