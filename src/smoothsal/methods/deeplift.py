r"""DeepLIFT with the Rescale rule and a max-pool rule (Shrikumar et al. 2017, arXiv:1704.02685).

DeepLIFT explains the difference of the score from its value at a reference (baseline)
:math:`x'` with *multipliers* :math:`m_{\Delta x \Delta t} = C_{\Delta x \Delta t} / \Delta x`
that obey a chain rule (the paper's eq. 3). Linear layers (convolutions, linear, eval-mode
batch-norm, average pooling, padding, additions, reshapes) pass multipliers back like gradients.
An elementwise nonlinearity :math:`y = f(x)` uses the Rescale rule (section 3.5.2):

.. math:: m_{\Delta x \Delta y} = \frac{\Delta y}{\Delta x} = \frac{f(x) - f(x')}{x - x'}

falling back to the local derivative :math:`f'((x + x')/2)` where :math:`|x - x'| \le \varepsilon`.
Max pooling (:data:`MAXPOOL_MODULES`) routes each window's output difference to one input (the
Rescale rule covers elementwise units only; this split, from Captum's DeepLift, keeps
summation-to-delta exact because the receiving input always moved): with
:math:`\bar y = \max(y, y')`, the part :math:`\bar y - y'` goes to the window's maximiser under
:math:`x`, the part :math:`y - \bar y` to its maximiser under :math:`x'`,
and each input's multiplier is the difference routed to it divided by its own :math:`\Delta x_i`
(the plain gradient where :math:`|\Delta x_i| \le \varepsilon`). The attribution is

.. math:: C_i = (x_i - x'_i)\, m_{\Delta x_i \Delta F_c}, \qquad \sum_i C_i = F_c(x) - F_c(x')

(*summation-to-delta*, eq. 1), which holds up to rounding for networks made of linear layers,
max pooling and the supported activation modules; :meth:`DeepLift.delta` reports the gap per sample.

How it is computed: one forward pass on ``torch.cat([x, x'])`` (``[2B, ...]``) in which every
supported activation and max-pool module instance has its ``forward`` replaced (instance-level
override, removed in a ``finally``) by a custom autograd function. Its forward computes the module
out of place (``inplace=True`` modules are switched to out-of-place for the pass); its backward
applies the Rescale (or max) rule to the incoming gradient, pairing the two halves of the batch.
A module called several times in one forward (EfficientNet-Lite's shared ``ReLU6``) is handled
call by call. One backward pass from the target logits of the first half then gives the
multipliers :math:`m_{\Delta x \Delta F_c}` as the gradient with respect to :math:`x`.

Limitations (document, not silently fix):

* nonlinearities the model calls as functions (``F.relu(x)``, ``torch.sigmoid(x)``, ``x * y``
  gates such as squeeze-excitation) cannot be patched; they fall back to plain gradients and
  summation-to-delta no longer holds exactly (check it with :meth:`DeepLift.delta`);
* softmax, LP pooling and other non-elementwise nonlinear modules (:data:`UNSUPPORTED_MODULES`)
  raise a ``ValueError`` naming the module;
* attention (``nn.MultiheadAttention`` and modules whose class name says attention, such as
  timm's, Swin's and Hugging Face's; a softmax inside one included), LayerNorm/GroupNorm and
  activation modules outside :data:`RESCALE_MODULES` (timm's and Hugging Face's GELU classes call
  ``F.gelu``) have no DeepLIFT rule here: they pass plain gradients, and a ``UserWarning`` names
  them (``on_uncovered="raise"`` makes it an error, ``"ignore"`` silences it);
* the model must treat the samples of a batch independently (batch-norm in eval mode, which
  the model guard ensures): the input and baseline halves share one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_choice, check_nonnegative, resolve_targets
from smoothsal.methods.base import Attribution, ConvergenceDelta
from smoothsal.methods.baselines import BaselineSpec, check_baseline_spec, make_baseline
from smoothsal.methods.guided_backprop import (
    ON_UNCOVERED,
    attention_scopes,
    inside,
    report_uncovered,
    uncovered_nonlinearities,
)

#: elementwise activation modules that get the Rescale rule.
RESCALE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.LogSigmoid,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Threshold,
)

#: max-pooling modules that get the max rule (``return_indices=False`` only).
MAXPOOL_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)

#: nonlinear modules neither rule covers: DeepLift refuses models that contain them.
UNSUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    nn.FractionalMaxPool2d,
    nn.FractionalMaxPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
    nn.Softmax,
    nn.Softmax2d,
    nn.LogSoftmax,
    nn.Softmin,
    nn.GLU,
)


def _check_halves(z: Tensor) -> int:
    if z.shape[0] % 2:
        raise ValueError(
            "DeepLift needs the model to keep the batch axis: a patched module received an odd batch "
            f"of shape {tuple(z.shape)} instead of [2B, ...] (inputs stacked on baselines)"
        )
    return z.shape[0] // 2


class _Rescale(torch.autograd.Function):
    """An elementwise activation whose backward uses the Rescale multiplier instead of the derivative.

    Input ``[2B, ...]`` = inputs' activations stacked on the baseline's; the multiplier
    ``[B, ...]`` is shared by both halves.
    """

    @staticmethod
    def forward(ctx, z: Tensor, fn: Callable[[Tensor], Tensor], eps: float) -> Tensor:  # type: ignore[override]
        half = _check_halves(z)
        out = fn(z)  # [2B, ...], out of place
        dz = z[:half] - z[half:]  # [B, ...]
        near = dz.abs() <= eps
        mult = (out[:half] - out[half:]) / torch.where(near, torch.ones_like(dz), dz)
        if near.any():
            with torch.enable_grad():
                mid = ((z[:half] + z[half:]) / 2).detach().requires_grad_(True)
                (local,) = torch.autograd.grad(fn(mid).sum(), mid)  # f'((x + x') / 2)
            mult = torch.where(near, local, mult)
        ctx.save_for_backward(mult)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        (mult,) = ctx.saved_tensors
        return grad_out * torch.cat([mult, mult]), None, None


class _MaxRule(torch.autograd.Function):
    """Max pooling whose backward routes ``grad * Δy`` to the maximisers and divides by ``Δx``.

    Input ``[2B, ...]`` = inputs' activations stacked on the baseline's.
    """

    @staticmethod
    def forward(ctx, z: Tensor, fn: Callable[[Tensor], Tensor], eps: float) -> Tensor:  # type: ignore[override]
        _check_halves(z)
        out = fn(z)  # [2B, ...]
        ctx.fn, ctx.eps = fn, eps
        ctx.save_for_backward(z, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        z, out = ctx.saved_tensors
        half = z.shape[0] // 2
        y, y_ref = out[:half], out[half:]
        top = torch.maximum(y, y_ref)
        g = grad_out[:half]
        with torch.enable_grad():
            # one vector-Jacobian product for three routings: [x | x' | x] -> [g(ȳ - y') | g(y - ȳ) | g]
            z3 = torch.cat([z[:half], z[half:], z[:half]]).detach().requires_grad_(True)  # [3B, ...]
            (routed,) = torch.autograd.grad(ctx.fn(z3), z3, torch.cat([g * (top - y_ref), g * (y - top), g]))
        moved = routed[:half] + routed[half : 2 * half]  # Σ of the Δy parts routed to each input
        dz = z[:half] - z[half:]
        near = dz.abs() <= ctx.eps
        grad_in = torch.where(near, routed[2 * half :], moved / torch.where(near, torch.ones_like(dz), dz))
        return torch.cat([grad_in, grad_in]), None, None


def _check_supported(model: nn.Module) -> None:
    """Raise naming the first module of ``model`` DeepLift cannot run (outside attention blocks)."""
    scopes = attention_scopes(model)  # a softmax inside attention is part of the (uncovered) attention
    for name, module in model.named_modules():
        if inside(name, scopes):
            continue
        label = f"`{name or type(module).__name__}` ({type(module).__name__})"
        if isinstance(module, UNSUPPORTED_MODULES):
            raise ValueError(
                f"DeepLift does not support module {label} in `model`; supported "
                "nonlinearities are max pooling and the elementwise activations "
                f"{', '.join(t.__name__ for t in RESCALE_MODULES)}"
            )
        if isinstance(module, MAXPOOL_MODULES) and getattr(module, "return_indices", False):
            raise ValueError(
                f"DeepLift supports max pooling only with `return_indices=False`; module {label} returns indices"
            )


def _patch_modules(model: nn.Module, eps: float) -> list[tuple[nn.Module, object, bool | None]]:
    """Override ``forward`` of every supported activation and max pool; return what to restore."""
    saved = []
    for module in model.modules():
        if isinstance(module, RESCALE_MODULES):
            rule = _Rescale
        elif isinstance(module, MAXPOOL_MODULES):
            rule = _MaxRule
        else:
            continue
        had_override = "forward" in module.__dict__
        inplace = getattr(module, "inplace", None)
        saved.append((module, module.__dict__.get("forward") if had_override else None, inplace))
        if inplace:
            module.inplace = False
        original = module.forward  # bound method (or the user's override), called out of place

        def patched(z: Tensor, _fn=original, _rule=rule) -> Tensor:
            return _rule.apply(z, _fn, eps)

        module.forward = patched
    return saved


def _restore_modules(saved: list[tuple[nn.Module, object, bool | None]]) -> None:
    for module, override, inplace in saved:
        if override is None:
            module.__dict__.pop("forward", None)
        else:
            module.__dict__["forward"] = override
        if inplace is not None:
            module.inplace = inplace


class DeepLift(Attribution):
    """DeepLIFT attributions (Rescale rule, max-pool rule) relative to a baseline (see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits, built from linear
            layers, max pooling and the activation modules in :data:`RESCALE_MODULES`.
        baseline: see :func:`~smoothsal.methods.baselines.make_baseline` (default ``"black"``).
        eps: up to this :math:`|x - x'|` an activation uses its local derivative.
        seed: int or ``torch.Generator`` for the ``"uniform"`` baseline.
        on_uncovered: ``"warn"`` (default), ``"raise"`` or ``"ignore"`` for nonlinear modules
            without a DeepLIFT rule (attention, LayerNorm, third-party activations; see the
            module docstring).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
        >>> attr, delta = DeepLift(model).attribute_with_delta(torch.randn(5, 3), target=1)
        >>> bool(delta.absolute.max() < 1e-5)
        True
    """

    has_convergence_delta = True
    #: each input runs with its baseline in one forward+backward: two model rows.
    rows_per_input = 2

    def __init__(
        self,
        model: nn.Module,
        baseline: BaselineSpec = "black",
        eps: float = 1e-6,
        *,
        seed: int | torch.Generator = 0,
        on_uncovered: str = "warn",
    ) -> None:
        super().__init__(model)
        check_choice(on_uncovered, "on_uncovered", ON_UNCOVERED)
        _check_supported(model)  # once: the model's modules do not change between calls
        found = uncovered_nonlinearities(model, RESCALE_MODULES + MAXPOOL_MODULES + UNSUPPORTED_MODULES)
        report_uncovered(
            "DeepLift", "max pooling and the elementwise activation modules in RESCALE_MODULES", found, on_uncovered,
            " Summation-to-delta then holds only approximately (see DeepLift.delta).",
        )
        self.baseline = check_baseline_spec(baseline)
        self.eps = check_nonnegative(eps, "eps")
        self.seed = seed

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        return self._attribute_and_delta(inputs, target)[0]

    def _attribute_and_delta(self, inputs: Tensor, target: TargetSpec) -> tuple[Tensor, ConvergenceDelta]:
        b = inputs.shape[0]
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        x = inputs.detach().requires_grad_(True)
        saved = _patch_modules(self.model, self.eps)
        try:
            with torch.enable_grad():
                logits = self._logits(torch.cat([x, baseline]))  # [2B, classes]: F(x) then F(x')
                targets = resolve_targets(target, logits[:b].detach())
                score = logits[:b].gather(1, targets[:, None]).sum()
                (mult,) = torch.autograd.grad(score, x)  # [B, ...] multipliers m_{Δx ΔF_c}
        finally:
            _restore_modules(saved)
        attr = (inputs - baseline) * mult
        delta_f = (logits[:b] - logits[b:]).detach().gather(1, targets[:, None]).squeeze(1)  # [B]
        return attr, ConvergenceDelta.of(attr, delta_f)


def deeplift(model: nn.Module, inputs: Tensor, target: TargetSpec = None, **kw) -> Tensor:
    """Functional form of :class:`DeepLift`; ``kw`` go to its constructor."""
    return DeepLift(model, **kw).attribute(inputs, target)
