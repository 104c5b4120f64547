"""The base class every attribution method derives from, and the model guard.

The base owns the plumbing that all methods share, so each method only writes its maths:

* input checks (finite float tensor with a batch axis) and target resolution
  (``None`` = predicted class, an int, or one class per sample);
* the model guard (:func:`~smoothsal.execution.guard.preserve_model`, re-exported here): the
  model is explained in eval mode, and afterwards every module's train/eval flag, ``inplace``
  flag, forward override and hook dictionary is put back exactly as it was, also when the method
  raises midway. A model in training mode gets a warning (dropout and batch-norm statistics
  would make the map random);
* one place that calls the model and checks it returned ``[B, classes]`` logits.

A subclass implements :meth:`Attribution._attribute` ``(inputs, target) -> attributions``.
Methods with a completeness property (the attributions sum to :math:`F(x) - F(x')`: Integrated
Gradients, DeepLIFT) set ``has_convergence_delta = True`` and implement
:meth:`Attribution._attribute_and_delta`; callers ask :attr:`Attribution.has_convergence_delta`,
never the method's name (as Captum's ``has_convergence_delta``).

**Rows, and callers that batch them** (the nested-rows protocol). A *row* is one forward(+backward)
of one input-shaped tensor through the model. A method declares what one input costs,
:attr:`Attribution.rows_per_input` (1 for a gradient, ``steps`` for Integrated Gradients, 2 for
DeepLIFT, which runs each input with its baseline). A caller that runs many inputs and chooses
the rows of each call itself (:class:`~smoothsal.smoothing.Smooth`,
:func:`~smoothsal.metrics.attribution_maps`) sizes a call as inputs × ``rows_per_input`` rows with
its own policy (:mod:`smoothsal.execution.policy`) and calls
:meth:`Attribution.attribute_rows` ``(inputs, target, context)`` with a
:class:`~smoothsal.execution.policy.RowContext`: the method then runs those inputs in model calls
of at most ``context.batch_size`` rows, learns no size of its own and lets an out-of-memory
error reach the caller, whose runner halves its calls for good. So one policy, the caller's,
chooses the rows of both levels. The context also carries the draw index of each input
(``context.draws``: ``Smooth``'s sample ``j`` of each noisy input) for a method that spreads its
work over the draws. A method whose ``_attribute`` runs its inputs in one model call needs
nothing more (the base's :meth:`~Attribution.attribute_rows` splits the inputs to fit the
context); one that batches rows itself (Integrated Gradients) sets :attr:`Attribution.reads_row_context`
and takes ``context=`` in ``_attribute``/``_attribute_and_delta``. A user's method object with only
``attribute(inputs, target)`` (or a subclass that overrides ``attribute`` itself) also works under
``Smooth``: it is called once per call the caller sized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_logits, resolve_targets
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.execution.devices import to_model_device
from smoothsal.execution.folding import folded
from smoothsal.execution.guard import preserve_model  # re-exported: smoothsal.methods.preserve_model
from smoothsal.execution.policy import RowContext
from smoothsal.execution.runner import run_rows


@dataclass(frozen=True)
class ConvergenceDelta:
    r"""How far attributions are from completeness, per sample.

    For a method whose attributions should sum to the change of the target score between the
    baseline and the input (IG's completeness, Sundararajan et al. 2017, Prop. 1; DeepLIFT's
    summation-to-delta, Shrikumar et al. 2017, eq. 1):

    .. math:: \delta = \sum_i A_i - \big(F_c(x) - F_c(x')\big)

    Two gaps are reported, both named: :attr:`absolute` :math:`|\delta|` (in logit units, so
    not comparable across models or classes) and :attr:`relative`
    :math:`|\delta| / |F_c(x) - F_c(x')|` (the share of the score change that the attributions
    miss; the one to compare with a tolerance).

    Attributes:
        delta: the signed :math:`\delta`, ``[B]``.
        expected: :math:`F_c(x) - F_c(x')`, ``[B]``.
        steps: path points each sample used (Integrated Gradients; ``[B]`` long), or ``None``
            (DeepLIFT, which has no steps).
        converged: ``[B]`` bool, whether ``steps="auto"`` met its stopping rule before its step
            cap; ``None`` for a fixed step count.
    """

    delta: Tensor
    expected: Tensor
    steps: Tensor | None = None
    converged: Tensor | None = None

    @property
    def absolute(self) -> Tensor:
        r"""Absolute gap :math:`|\delta|`, ``[B]``."""
        return self.delta.abs()

    @property
    def relative(self) -> Tensor:
        r"""Relative gap :math:`|\delta| / |F_c(x) - F_c(x')|`, ``[B]`` (``inf`` where the score does not change)."""
        den = self.expected.abs()
        return torch.where(den > 0, self.delta.abs() / den.clamp_min(torch.finfo(den.dtype).tiny),
                           torch.where(self.delta == 0, torch.zeros_like(den), torch.full_like(den, float("inf"))))

    @classmethod
    def of(cls, attributions: Tensor, expected: Tensor, **extra: Tensor | None) -> ConvergenceDelta:
        """The delta of ``attributions`` ``[B, ...]`` against ``expected`` ``[B]`` (``extra``:
        ``steps``, ``converged``)."""
        total = attributions.detach().flatten(1).sum(dim=1)
        return cls(delta=(total - expected.detach()).detach(), expected=expected.detach(), **extra)

    @classmethod
    def cat(cls, deltas: list[ConvergenceDelta]) -> ConvergenceDelta:
        """One delta of several calls' deltas, in order (``steps``/``converged`` kept where all have them)."""
        if len(deltas) == 1:
            return deltas[0]
        join = lambda name: None if any(getattr(d, name) is None for d in deltas) else torch.cat(  # noqa: E731
            [getattr(d, name) for d in deltas])
        return cls(join("delta"), join("expected"), join("steps"), join("converged"))

    def to(self, device: torch.device | str) -> ConvergenceDelta:
        """The same delta with every tensor on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ConvergenceDelta(move(self.delta), move(self.expected), move(self.steps), move(self.converged))

    def summary(self) -> dict[str, list]:
        """Plain lists (JSON-ready): ``absolute``, ``relative``, ``expected`` and, where known,
        ``steps`` and ``converged``."""
        out: dict[str, list] = {
            "absolute": self.absolute.tolist(),
            "relative": self.relative.tolist(),
            "expected": self.expected.tolist(),
        }
        if self.steps is not None:
            out["steps"] = self.steps.tolist()
        if self.converged is not None:
            out["converged"] = self.converged.tolist()
        return out


class Attribution:
    """Base class: an attribution method built from a model.

    Args:
        model: any ``nn.Module`` that maps ``[B, ...]`` inputs to ``[B, classes]`` logits.

    Subclasses override :meth:`_attribute`; users call :meth:`attribute`.
    """

    #: shape of the result: ``"input"`` = shaped like the inputs; ``"cam"`` = ``[B, 1, H, W]``
    #: (CAM methods). ``Smooth`` forwards it; it tells renderers and metrics which layout to expect.
    output_kind: str = "input"
    #: input rank the method needs (``4`` for methods that use image structure), or ``None``.
    required_ndim: int | None = None
    #: whether :meth:`attribute_with_delta` reports a :class:`ConvergenceDelta` (completeness-style
    #: methods: IG, DeepLIFT). A plain attribute, so ``getattr(method, "has_convergence_delta", False)``
    #: works on any object.
    has_convergence_delta: bool = False
    #: model rows one input costs (Integrated Gradients: its path points; DeepLIFT: 2, the input
    #: and its baseline); a caller that batches (``Smooth``) counts its rows per call in these units.
    rows_per_input: int = 1
    #: whether ``_attribute`` and ``_attribute_and_delta`` take a ``context=`` keyword
    #: (:class:`~smoothsal.execution.policy.RowContext`, or ``None`` at the top level): a method
    #: that batches its own rows (IG) runs them as the caller's context says. ``False``: the
    #: method runs its inputs in one model call, and :meth:`attribute_rows` splits them to fit.
    reads_row_context: bool = False
    #: whether the method uses the model only as a function of its input, so that it may run the
    #: model's BatchNorm-folded copy (:func:`smoothsal.execution.folding.folded`: same function, 1.38× faster on
    #: Lite0). ``False`` for methods that read or hook the model's modules (CAMs, Guided Backprop, DeepLIFT).
    folds_batchnorm: bool = False

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def attribute(self, inputs: Tensor, target: TargetSpec = None) -> Tensor:
        """Attributions for ``inputs`` ``[B, ...]`` with respect to class ``target``.

        Args:
            inputs: float tensor ``[B, ...]`` (``[B, C, H, W]`` for images), preprocessed for the model.
            target: ``None`` (each sample's predicted class), an int, or a
                sequence/tensor of ``B`` class indices.
        Returns:
            float tensor shaped like ``inputs`` (``[B, 1, H, W]`` for CAM methods).
        """
        return self._run(inputs, target, None, with_delta=False)

    __call__ = attribute

    def attribute_with_delta(self, inputs: Tensor, target: TargetSpec = None) -> tuple[Tensor, ConvergenceDelta]:
        """Attributions and their :class:`ConvergenceDelta` (only where :meth:`has_convergence_delta`)."""
        if not self.has_convergence_delta:
            raise TypeError(f"{type(self).__name__} has no convergence delta (has_convergence_delta is False)")
        return self._run(inputs, target, None, with_delta=True)

    def attribute_rows(
        self, inputs: Tensor, target: TargetSpec, context: RowContext, *, with_delta: bool = False
    ) -> Tensor | tuple[Tensor, ConvergenceDelta]:
        """:meth:`attribute` (or, ``with_delta``, :meth:`attribute_with_delta`) under a caller's rows.

        The caller (``Smooth``, ``attribution_maps``) chose the rows of this call with its own
        policy: the method runs ``inputs`` in model calls of at most ``context.batch_size``
        rows (module docstring: the nested-rows protocol), and an out-of-memory error propagates
        to the caller. The result is the same as :meth:`attribute`'s.

        Args:
            inputs: float tensor ``[B, ...]``.
            target: as for :meth:`attribute`.
            context: the caller's :class:`~smoothsal.execution.policy.RowContext`.
            with_delta: also return the :class:`ConvergenceDelta` (only where :attr:`has_convergence_delta`).
        """
        if with_delta and not self.has_convergence_delta:
            raise TypeError(f"{type(self).__name__} has no convergence delta (has_convergence_delta is False)")
        if not isinstance(context, RowContext):
            raise TypeError(f"`context` must be a RowContext, got {type(context).__name__}")
        if not self.reads_row_context and type(self).attribute is not Attribution.attribute:
            # a subclass that overrides `attribute` itself: one call of it, as for any method object
            return self.attribute_with_delta(inputs, target) if with_delta else self.attribute(inputs, target)
        return self._run(inputs, target, context, with_delta=with_delta)

    def _run(
        self, inputs: Tensor, target: TargetSpec, context: RowContext | None, *, with_delta: bool
    ) -> Any:
        check_inputs(inputs, ndim=self.required_ndim)
        x = to_model_device(self.model, inputs.detach())  # inputs follow the model's device
        with preserve_model(self.model):
            if self.reads_row_context:
                out = self._attribute_and_delta(x, target, context=context) if with_delta else \
                    self._attribute(x, target, context=context)
            else:
                out = self._split(x, target, context, with_delta)
        if with_delta:
            attr, delta = out
            return attr.detach().to(inputs.device), delta.to(inputs.device)
        return out.detach().to(inputs.device)

    def _split(self, x: Tensor, target: TargetSpec, context: RowContext | None, with_delta: bool) -> Any:
        """A method that runs its inputs in one model call: in calls that fit ``context`` (one call without),
        through the runner with the context's policy (an out-of-memory error reaches the caller)."""
        run = self._attribute_and_delta if with_delta else self._attribute
        b = x.shape[0]
        if context is None or b * self.rows_per_input <= context.batch_size:
            return run(x, target)
        deltas: list[ConvergenceDelta] = []

        def work(lo: int, hi: int) -> Tensor:
            out = run(x[lo:hi], _target_part(target, lo, hi, b))
            if not with_delta:
                return out
            deltas.append(out[1])
            return out[0]

        attr = run_rows(context.policy(), b, work, unit=max(1, self.rows_per_input))
        return (attr, ConvergenceDelta.cat(deltas)) if with_delta else attr

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attribute_and_delta(self, inputs: Tensor, target: TargetSpec) -> tuple[Tensor, ConvergenceDelta]:
        raise NotImplementedError  # pragma: no cover - only for has_convergence_delta() methods

    # ---- helpers for subclasses -------------------------------------------------------------
    def _logits(self, inputs: Tensor) -> Tensor:
        """Call the model once (its BatchNorm-folded copy where :attr:`folds_batchnorm`) and check it
        returned ``[B, classes]`` logits."""
        model = folded(self.model, inputs) if self.folds_batchnorm else self.model
        return check_logits(model(inputs), inputs.shape[0])

    def _score_and_grad(self, inputs: Tensor, target: TargetSpec) -> tuple[Tensor, Tensor, Tensor]:
        """One forward and one backward: ``(grad of the target logit w.r.t. inputs, logits, targets)``.

        The gradient is taken with :func:`torch.autograd.grad`, so no ``.grad`` of the inputs or
        of the model's parameters is touched.
        """
        x = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self._logits(x)
            targets = resolve_targets(target, logits)
            score = logits.gather(1, targets[:, None]).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad, logits.detach(), targets

    def targets_for(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        """Resolve ``target`` for ``inputs`` (one forward pass when ``target`` is ``None``)."""
        check_inputs(inputs)
        return resolve_model_targets(self.model, inputs, target)

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if k != "model" and not k.startswith("_")}
        inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({type(self.model).__name__}{', ' if inner else ''}{inner})"


def _target_part(target: TargetSpec, lo: int, hi: int, b: int) -> TargetSpec:
    """The targets of inputs ``lo:hi`` of ``b``: a per-sample spec is sliced, ``None`` and an int are kept."""
    if target is None or isinstance(target, int):
        return target
    t = torch.as_tensor(target).reshape(-1)
    return t[lo:hi] if t.numel() == b else target


def model_of(method: Any) -> nn.Module | None:
    """The model an attribution method explains, if it exposes one (``.model``)."""
    model = getattr(method, "model", None)
    return model if isinstance(model, nn.Module) else None
