r"""Captum interop: smooth a Captum attribution object, and measure Captum's maps with our metrics.

`Captum <https://captum.ai>`_ is an optional extra (``pip install "smoothsal[captum]"``): this
module imports it only when a Captum object is handed to it, so smoothsal imports and runs
without it.

What works:

* ``Smooth(captum_method)`` smooths any Captum attribution object (``Saliency``,
  ``IntegratedGradients``, ``GuidedBackprop``, ``DeepLift``, ``LayerGradCam``, ...): every noisy
  copy is explained with its ``attribute(inputs, target=...)``. ``Smooth`` adapts it with
  :func:`from_captum`; call that yourself to pass Captum's own keyword arguments
  (``from_captum(ig, n_steps=16)``, ``from_captum(saliency, abs=False)``).
* the model is found from the Captum object's ``forward_func`` (an ``nn.Module`` or a bound
  method of one), so ``target=None`` means each input's predicted class, as everywhere in
  smoothsal, and the model is explained in eval mode and left exactly as found
  (:func:`~smoothsal.execution.guard.preserve_model`);
* :mod:`smoothsal.metrics` accept Captum's outputs: a tensor, or a 1-tuple of tensors (what
  Captum returns for a tuple of one input); metrics that take an attribution method take a Captum
  object; metrics that take a method factory (stability, fidelity, sanity checks) take a Captum
  *object* (rebuilt for each model compared: the same class and settings, its ``forward_func`` and
  layers replaced by the other model's modules of the same name) or a Captum *class*
  (``captum.attr.Saliency``).

Two differences from smoothsal's own methods to keep in mind:

* Captum's ``Saliency`` returns the **absolute** gradient :math:`|\partial S_c/\partial x|` by
  default (``abs=True``); :class:`~smoothsal.methods.gradient.VanillaGradient`, and so
  :class:`~smoothsal.smoothing.SmoothGrad`, keep the sign, as the SmoothGrad paper's eq. 3 does.
  ``Smooth(from_captum(Saliency(model), abs=False))`` is ``SmoothGrad(model)`` (same seed, same
  noise); ``Smooth(Saliency(model))`` is the mean of :math:`|\partial S_c/\partial x|` over the
  noisy copies.
* Captum's ``IntegratedGradients(method="riemann_trapezoid")`` weighs its ``n`` nodes on
  ``linspace(0, 1, n)`` by ``1/n`` (ends halved): the weights sum to ``(n - 1)/n``, so its map is
  smoothsal's ``rule="riemann_trapezoid"`` map times ``(n - 1)/n``. The other rules agree
  (``tests/test_captum_interop.py``).
* Captum's ``NoiseTunnel`` takes an absolute ``stdevs``; ``Smooth`` takes σ as a fraction of the
  input's range (``noise_level``), never holds all noisy copies at once and reports a standard
  error. Prefer ``Smooth(method)`` over ``Smooth(NoiseTunnel(method))``.

Example:
    >>> import torch, captum.attr                                  # doctest: +SKIP
    >>> import smoothsal as ss                                     # doctest: +SKIP
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()   # doctest: +SKIP
    >>> sal = ss.interop.from_captum(captum.attr.Saliency(model), abs=False)  # doctest: +SKIP
    >>> ss.Smooth(sal, n_samples=8).attribute(torch.rand(2, 4))    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.guard import preserve_model
from smoothsal.execution.policy import RowContext
from smoothsal.methods.base import ConvergenceDelta

__all__ = [
    "CaptumMethod",
    "as_attributions",
    "as_method",
    "as_method_factory",
    "from_captum",
    "is_captum_class",
    "is_captum_method",
    "rebind_captum",
]


# ---- recognising Captum objects without importing Captum ---------------------------------------------
def _captum_attribution_class() -> type | None:
    """``captum.attr.Attribution`` if Captum is already imported, else ``None``: an object made by
    Captum implies Captum is imported, so nothing is ever imported just to check."""
    module = sys.modules.get("captum.attr")
    return getattr(module, "Attribution", None) if module is not None else None


def is_captum_method(obj: Any) -> bool:
    """Whether ``obj`` is a Captum attribution object (an instance of ``captum.attr.Attribution``)."""
    base = _captum_attribution_class()
    return base is not None and isinstance(obj, base)


def is_captum_class(obj: Any) -> bool:
    """Whether ``obj`` is a Captum attribution class (``captum.attr.Saliency``, ...)."""
    base = _captum_attribution_class()
    return base is not None and isinstance(obj, type) and issubclass(obj, base)


def _model_of_forward(forward_func: Any) -> nn.Module | None:
    """The ``nn.Module`` behind a Captum ``forward_func``: the module itself or the owner of a bound method."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _default(func: Callable[..., Any], name: str) -> Any:
    try:
        param = inspect.signature(func).parameters.get(name)
    except (TypeError, ValueError):  # pragma: no cover
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


# ---- outputs ------------------------------------------------------------------------------------------
def as_attributions(value: Any, name: str = "attributions") -> Any:
    """A Captum output as one tensor: a 1-tuple (or 1-list) of tensors is unwrapped.

    Captum returns a tuple when its inputs were a tuple; smoothsal explains one input tensor, so a
    tuple of several tensors (a multi-input model) is refused. Anything else is returned as it is,
    for the metric's own checks.

    Example:
        >>> t = torch.ones(2, 3)
        >>> as_attributions((t,)) is t
        True
    """
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, Tensor) for v in value):
        if len(value) != 1:
            raise ValueError(
                f"`{name}` must be one tensor (or a 1-tuple of tensors, as Captum returns for one input), "
                f"got a {type(value).__name__} of {len(value)} tensors: smoothsal explains single-input models"
            )
        return value[0]
    return value


# ---- the adapter --------------------------------------------------------------------------------------
class CaptumMethod:
    """A Captum attribution object behind smoothsal's method interface.

    ``attribute(inputs, target=None)`` calls the Captum object's ``attribute(inputs, target=...)``
    with ``attribute_kwargs`` and returns one tensor: ``target=None`` is each input's predicted
    class (the model comes from ``forward_func``), the model is explained in eval mode and
    restored as found, the inputs are never modified (Captum sets ``requires_grad`` on what it is
    given, so it gets a copy), and the result comes back on the inputs' device.

    Args:
        method: a Captum attribution object (``captum.attr.Saliency(model)``, ...).
        **attribute_kwargs: keyword arguments for every ``method.attribute`` call (``abs=False``,
            ``n_steps=16``, ``baselines=...``, also Captum's own ``method="riemann_trapezoid"``:
            ``method`` is positional-only here); not ``inputs`` nor ``target``.

    Attributes:
        captum: the wrapped Captum object.
        model: the ``nn.Module`` explained, or ``None`` when ``forward_func`` is a plain function
            (then ``target`` must be given).
        has_convergence_delta: whether :meth:`attribute_with_delta` works (Captum's
            ``has_convergence_delta()``: IG, DeepLIFT, ...).
        rows_per_input: model rows one input costs (IG's ``n_steps``), so that ``Smooth`` counts
            its rows per call in model rows; under a caller's
            :class:`~smoothsal.execution.policy.RowContext` (:meth:`attribute_rows`) the adapter
            runs each model call's rows through Captum's ``internal_batch_size``.
    """

    def __init__(self, method: Any, /, **attribute_kwargs: Any) -> None:
        if not is_captum_method(method):
            raise TypeError(
                f"`method` must be a Captum attribution object (e.g. captum.attr.Saliency(model)), "
                f"got {type(method).__name__}"
            )
        for reserved in ("inputs", "target"):
            if reserved in attribute_kwargs:
                raise TypeError(f"`{reserved}` is passed by smoothsal on each call; drop it from the keyword arguments")
        if "return_convergence_delta" in attribute_kwargs:
            raise TypeError("`return_convergence_delta`: call attribute_with_delta() instead")
        self.captum = method
        self.attribute_kwargs = dict(attribute_kwargs)
        self.model: nn.Module | None = _model_of_forward(getattr(method, "forward_func", None))
        self.output_kind = "input" if not _is_layer_method(method) else "layer"

    def __repr__(self) -> str:
        kw = "".join(f", {k}={v!r}" for k, v in self.attribute_kwargs.items())
        return f"from_captum({type(self.captum).__name__}(...){kw})"

    @property
    def has_convergence_delta(self) -> bool:  # noqa: D401 - an attribute, as on smoothsal's methods
        return bool(self.captum.has_convergence_delta())

    @property
    def rows_per_input(self) -> int:
        if not _accepts(self.captum.attribute, "internal_batch_size"):
            return 1
        steps = self.attribute_kwargs.get("n_steps", _default(self.captum.attribute, "n_steps"))
        return int(steps) if isinstance(steps, int) and steps > 0 else 1

    def _kwargs(self, context: RowContext | None) -> dict[str, Any]:
        kw = dict(self.attribute_kwargs)
        if context is not None and "internal_batch_size" not in kw and self.rows_per_input > 1:
            kw["internal_batch_size"] = context.batch_size  # the caller's rows per model call
        return kw

    def _targets(self, x: Tensor, target: TargetSpec) -> Any:
        if self.model is None:
            return target  # a plain forward_func: Captum's own rules (None = scalar output)
        if isinstance(target, Tensor) and target.dim() == 1 and target.shape[0] == x.shape[0] and not (
            target.is_floating_point() or target.is_complex() or target.dtype == torch.bool
        ):
            return target.to(x.device)  # already resolved (as Smooth and the metrics pass it)
        return resolve_model_targets(self.model, x, target)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """The model guard, and quiet about Captum's note that it set ``requires_grad`` on our copy."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Input Tensor \d+ did not already require gradients")
            with preserve_model(self.model) if self.model is not None else contextlib.nullcontext():
                yield

    def _call(
        self, inputs: Tensor, target: TargetSpec, with_delta: bool = False, context: RowContext | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Captum's ``attribute`` on a detached copy of ``inputs`` moved to the model's device,
        under :meth:`_guard`: its attributions as one detached tensor and, with ``with_delta``,
        its detached convergence delta (else ``None``), both still on the model's device."""
        check_inputs(inputs)
        x = to_model_device(self.model, inputs.detach()).clone()
        kw = self._kwargs(context)
        if with_delta:
            kw["return_convergence_delta"] = True
        with self._guard():
            out = self.captum.attribute(x, target=self._targets(x, target), **kw)
        out, delta = out if with_delta else (out, None)
        attr = as_attributions(out, "the Captum result")
        if not isinstance(attr, Tensor):
            raise TypeError(f"the Captum method returned {type(attr).__name__}, expected a tensor")
        return attr.detach(), None if delta is None else delta.detach()

    def attribute(self, inputs: Tensor, target: TargetSpec = None) -> Tensor:
        """Captum's attributions for ``inputs`` ``[B, ...]`` and class ``target``, as one tensor.

        Args:
            inputs: float tensor ``[B, ...]``, preprocessed for the model.
            target: ``None`` (each sample's predicted class), an int, or ``B`` class indices.
        Returns:
            Captum's result: shaped like ``inputs`` for primary attributions, like the layer's
            output for layer attributions.
        """
        return self._call(inputs, target)[0].to(inputs.device)

    __call__ = attribute

    def attribute_with_delta(self, inputs: Tensor, target: TargetSpec = None) -> tuple[Tensor, ConvergenceDelta]:
        """Attributions and their :class:`~smoothsal.methods.base.ConvergenceDelta` from Captum's delta.

        Captum's delta is :math:`\\sum_i A_i - (F_c(x) - F_c(x'))`, smoothsal's convention, so the
        expected change is :math:`\\sum_i A_i - \\delta`.
        """
        if not self.has_convergence_delta:
            raise TypeError(f"{type(self.captum).__name__} has no convergence delta (has_convergence_delta() is False)")
        return self._with_delta(inputs, target, None)

    def attribute_rows(
        self, inputs: Tensor, target: TargetSpec, context: RowContext, *, with_delta: bool = False
    ) -> Tensor | tuple[Tensor, ConvergenceDelta]:
        """:meth:`attribute` (or :meth:`attribute_with_delta`) under a caller's rows: a Captum method
        that batches (``internal_batch_size``) runs at most ``context.batch_size`` rows per
        model call (see :meth:`smoothsal.methods.base.Attribution.attribute_rows`)."""
        if not isinstance(context, RowContext):
            raise TypeError(f"`context` must be a RowContext, got {type(context).__name__}")
        if with_delta:
            if not self.has_convergence_delta:
                raise TypeError(f"{type(self.captum).__name__} has no convergence delta (has_convergence_delta() is False)")
            return self._with_delta(inputs, target, context)
        return self._call(inputs, target, context=context)[0].to(inputs.device)

    def _with_delta(
        self, inputs: Tensor, target: TargetSpec, context: RowContext | None
    ) -> tuple[Tensor, ConvergenceDelta]:
        attr, delta = self._call(inputs, target, with_delta=True, context=context)
        delta = delta.reshape(-1).to(attr.dtype)
        if delta.shape[0] != attr.shape[0]:
            raise ValueError(f"Captum returned {delta.shape[0]} deltas for {attr.shape[0]} inputs")
        expected = attr.flatten(1).sum(dim=1) - delta
        return attr.to(inputs.device), ConvergenceDelta(delta.to(inputs.device), expected.to(inputs.device))


def _is_layer_method(method: Any) -> bool:
    module = sys.modules.get("captum.attr")
    layer = getattr(module, "LayerAttribution", None) if module is not None else None
    return layer is not None and isinstance(method, layer)


def from_captum(method: Any, /, **attribute_kwargs: Any) -> CaptumMethod:
    """Adapt a Captum attribution object, with Captum's own ``attribute`` keyword arguments.

    Example:
        >>> sal = from_captum(captum.attr.Saliency(model), abs=False)   # doctest: +SKIP
        >>> Smooth(sal, noise_level=0.15).attribute(x)                  # doctest: +SKIP
    """
    if isinstance(method, CaptumMethod):
        merged = {**method.attribute_kwargs, **attribute_kwargs}
        return CaptumMethod(method.captum, **merged)
    if not is_captum_method(method):
        from smoothsal._core.extras import require

        require("captum.attr", "smoothsal.interop.from_captum")  # a one-line error if Captum is missing
    return CaptumMethod(method, **attribute_kwargs)


def as_method(method: Any) -> Any:
    """A Captum attribution object adapted by :func:`from_captum`; anything else unchanged."""
    return from_captum(method) if is_captum_method(method) else method


# ---- rebuilding a Captum object for another model -----------------------------------------------------
def rebind_captum(method: Any, model: nn.Module) -> Any:
    """The Captum object ``method`` rebuilt for ``model``: same class and settings, with every
    reference to the original model replaced by ``model`` (``forward_func``, ``.model``, bound
    methods) and every layer of it by ``model``'s module of the same qualified name
    (``LayerGradCam``'s ``layer``). Wrapped Captum objects (``NoiseTunnel``) are rebuilt too.

    Raises:
        TypeError: ``method``'s ``forward_func`` is not an ``nn.Module`` (nor a bound method of
            one), so there is nothing to replace; pass a factory ``lambda m: ...`` instead.
        ValueError: a layer of the original model has no module of the same name in ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    old = _model_of_forward(getattr(method, "forward_func", None))
    if old is None:
        raise TypeError(
            f"cannot rebuild {type(method).__name__} for another model: its forward_func is not an "
            "nn.Module; pass a factory instead, e.g. lambda model: captum.attr.Saliency(model)"
        )
    if old is model:
        return method
    names = {id(m): n for n, m in old.named_modules()}
    return _rebind_object(method, old, model, names)


def _rebind_value(value: Any, old: nn.Module, new: nn.Module, names: dict[int, str]) -> Any:
    if value is old:
        return new
    if is_captum_method(value):
        return _rebind_object(value, old, new, names)
    if isinstance(value, nn.Module) and id(value) in names:
        name = names[id(value)]
        try:
            return new.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the new model has no module {name!r} (the Captum method's layer)") from None
    if inspect.ismethod(value) and value.__self__ is old:
        return getattr(new, value.__func__.__name__)
    if isinstance(value, (list, tuple)):
        items = [_rebind_value(v, old, new, names) for v in value]
        return type(value)(items) if isinstance(value, list) else tuple(items)
    return value


def _rebind_object(obj: Any, old: nn.Module, new: nn.Module, names: dict[int, str]) -> Any:
    clone = copy.copy(obj)
    for key, value in vars(obj).items():
        setattr(clone, key, _rebind_value(value, old, new, names))
    return clone


# ---- factories and metric arguments --------------------------------------------------------------------
class _CaptumFactory:
    """``model -> from_captum(rebind_captum(method, model), **kwargs)``."""

    def __init__(self, method: Any, attribute_kwargs: dict[str, Any]) -> None:
        self.method = method
        self.attribute_kwargs = attribute_kwargs

    def __call__(self, model: nn.Module) -> CaptumMethod:
        return CaptumMethod(rebind_captum(self.method, model), **self.attribute_kwargs)

    def __repr__(self) -> str:
        return f"captum factory of {type(self.method).__name__}"


class _AdaptingFactory:
    """A factory whose result passes through :func:`as_method` (a factory that builds Captum objects)."""

    def __init__(self, factory: Callable[[nn.Module], Any]) -> None:
        self.factory = factory
        functools.update_wrapper(self, factory, assigned=("__module__", "__name__", "__qualname__", "__doc__"),
                                 updated=())

    def __call__(self, model: nn.Module) -> Any:
        return as_method(self.factory(model))


def as_method_factory(method: Any) -> Any:
    """A method factory ``model -> method`` that accepts Captum: a Captum object (or an adapted
    one) becomes a factory rebuilding it for each model (:func:`rebind_captum`); a Captum class or
    a factory returning Captum objects has its results adapted; anything else is unchanged (for
    :func:`smoothsal.metrics._base.check_method_factory` to judge)."""
    if isinstance(method, CaptumMethod):
        return _CaptumFactory(method.captum, dict(method.attribute_kwargs))
    if is_captum_method(method):
        return _CaptumFactory(method, {})
    if is_captum_class(method) or (callable(method) and not isinstance(method, type)
                                   and not hasattr(method, "attribute")):
        return _AdaptingFactory(method)
    return method


def _each_attributions(value: Any, name: str) -> Any:
    """``maps``: each element through :func:`as_attributions` (a list of Captum 1-tuples works)."""
    if isinstance(value, (list, tuple)):
        items = [as_attributions(v, f"{name}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


#: metric argument -> how a Captum value is adapted, per metric kind (``None``: every kind).
_ADAPTERS: dict[str, Callable[[Any, str, str], Any]] = {
    "attributions": lambda v, name, kind: as_attributions(v, name),
    "a": lambda v, name, kind: as_attributions(v, name),
    "b": lambda v, name, kind: as_attributions(v, name),
    "smoothed": lambda v, name, kind: as_attributions(v, name),
    "raw": lambda v, name, kind: as_attributions(v, name),
    "maps": lambda v, name, kind: _each_attributions(v, name),
    "method": lambda v, name, kind: as_method_factory(v) if kind == "comparison" else as_method(v),
}


def accept_captum(fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Wrap a metric so that its attribution and method arguments accept Captum's values.

    The arguments named ``attributions``, ``a``, ``b``, ``smoothed``, ``raw`` (a Captum 1-tuple
    is unwrapped), ``maps`` (each element) and ``method`` (a Captum object is adapted; for
    ``comparison`` metrics it becomes a factory) pass through the adapters above; a metric
    with none of them is returned unchanged.
    """
    params = list(inspect.signature(fn).parameters.values())
    slots = [
        (i if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) else None, p.name)
        for i, p in enumerate(params)
        if p.name in _ADAPTERS
    ]
    if not slots:
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args_list = list(args)
        for index, name in slots:
            if index is not None and index < len(args_list):
                args_list[index] = _ADAPTERS[name](args_list[index], name, kind)
            elif name in kwargs:
                kwargs[name] = _ADAPTERS[name](kwargs[name], name, kind)
        return fn(*args_list, **kwargs)

    return wrapper
