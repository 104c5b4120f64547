r"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017, arXiv:1704.02685).

DeepLIFT explains the difference of the score from its value at a reference (baseline)
:math:`x'` with *multipliers* :math:`m_{\Delta x \Delta t} = C_{\Delta x \Delta t} / \Delta x`
that obey a chain rule (the paper's eq. 3). Linear layers (convolutions, linear, eval-mode
batch-norm, average pooling, padding, additions, reshapes) pass multipliers back like gradients.
An elementwise nonlinearity :math:`y = f(x)` uses the Rescale rule (section 3.5.1):

.. math:: m_{\Delta x \Delta y} = \frac{\Delta y}{\Delta x} = \frac{f(x) - f(x')}{x - x'}

falling back to the local derivative :math:`f'((x + x')/2)` where :math:`|x - x'| \le \varepsilon`.
The attribution is

.. math:: C_i = (x_i - x'_i)\, m_{\Delta x_i \Delta F_c}, \qquad \sum_i C_i = F_c(x) - F_c(x')

(*summation-to-delta*, eq. 1), which holds up to rounding for networks made of linear layers and
the supported activation modules; :meth:`DeepLift.delta` reports the gap per sample.

How it is computed: one forward pass on ``torch.cat([x, x'])`` (``[2B, ...]``) in which every
supported activation module instance has its ``forward`` replaced (instance-level override,
removed in a ``finally``) by a custom autograd function. Its forward computes the activation out
of place (``inplace=True`` modules are switched to out-of-place for the pass); its backward
multiplies the incoming gradient by the Rescale multiplier computed from the two halves of the
batch. A module called several times in one forward (EfficientNet-Lite's shared ``ReLU6``) is
handled call by call. One backward pass from the target logits of the first half then gives the
multipliers :math:`m_{\Delta x \Delta F_c}` as the gradient with respect to :math:`x`.

Limitations (document, not silently fix):

* nonlinearities the model calls as functions (``F.relu(x)``, ``torch.sigmoid(x)``, ``x * y``
  gates such as squeeze-excitation) cannot be patched; they fall back to plain gradients and
  summation-to-delta no longer holds exactly (check it with :meth:`DeepLift.delta`);
* max pooling, softmax and other non-elementwise nonlinear modules raise a ``ValueError``
  naming the module (the Rescale rule is defined for elementwise activations only);
* the model must treat the samples of a batch independently (batch-norm in eval mode, which
  the model guard ensures): the input and baseline halves share one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from smoothsal._validation import TargetSpec, check_inputs, check_nonnegative, resolve_targets
from smoothsal.methods.base import Attribution, preserve_model
from smoothsal.methods.baselines import BaselineSpec, check_baseline_spec, make_baseline

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

#: nonlinear modules the Rescale rule does not cover: DeepLift refuses models that contain them.
UNSUPPORTED_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.FractionalMaxPool2d,
    nn.FractionalMaxPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
    nn.Softmax,
    nn.Softmax2d,
    nn.LogSoftmax,
    nn.Softmin,
    nn.GLU,
    nn.MultiheadAttention,
)


class _Rescale(torch.autograd.Function):
    """Identity-shaped activation whose backward uses the Rescale multiplier.

    Input ``[2B, ...]`` = inputs' activations stacked on the baseline's; the multiplier
    ``[B, ...]`` is shared by both halves.
    """

    @staticmethod
    def forward(ctx, z: Tensor, fn: Callable[[Tensor], Tensor], eps: float) -> Tensor:  # type: ignore[override]
        if z.shape[0] % 2:
            raise ValueError(
                "DeepLift needs the model to keep the batch axis: an activation received an odd batch "
                f"of shape {tuple(z.shape)} instead of [2B, ...] (inputs stacked on baselines)"
            )
        out = fn(z)  # [2B, ...], out of place
        half = z.shape[0] // 2
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


def _check_supported(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, UNSUPPORTED_MODULES):
            raise ValueError(
                f"DeepLift (Rescale rule) does not support module `{name or type(module).__name__}` "
                f"({type(module).__name__}) in `model`; supported nonlinearities are elementwise "
                f"activations: {', '.join(t.__name__ for t in RESCALE_MODULES)}"
            )


def _patch_activations(model: nn.Module, eps: float) -> list[tuple[nn.Module, object, bool | None]]:
    """Override ``forward`` of every supported activation; return what to restore."""
    saved = []
    for module in model.modules():
        if not isinstance(module, RESCALE_MODULES):
            continue
        had_override = "forward" in module.__dict__
        inplace = getattr(module, "inplace", None)
        saved.append((module, module.__dict__.get("forward") if had_override else None, inplace))
        if inplace:
            module.inplace = False
        original = module.forward  # bound method (or the user's override), called out of place

        def patched(z: Tensor, _fn=original) -> Tensor:
            return _Rescale.apply(z, _fn, eps)

        module.forward = patched
    return saved


def _restore_activations(saved: list[tuple[nn.Module, object, bool | None]]) -> None:
    for module, override, inplace in saved:
        if override is None:
            module.__dict__.pop("forward", None)
        else:
            module.__dict__["forward"] = override
        if inplace is not None:
            module.inplace = inplace


class DeepLift(Attribution):
    """DeepLIFT (Rescale rule) attributions relative to a baseline (see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits, built from linear
            layers and the activation modules in :data:`RESCALE_MODULES`.
        baseline: see :func:`~smoothsal.methods.baselines.make_baseline` (default ``"black"``).
        eps: up to this :math:`|x - x'|` an activation uses its local derivative.
        seed: int or ``torch.Generator`` for the ``"uniform"`` baseline.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
        >>> attr, delta = DeepLift(model).attribute_with_delta(torch.randn(5, 3), target=1)
        >>> bool(delta.max() < 1e-5)
        True
    """

    def __init__(
        self,
        model: nn.Module,
        baseline: BaselineSpec = "black",
        eps: float = 1e-6,
        *,
        seed: int | torch.Generator = 0,
    ) -> None:
        super().__init__(model)
        self.baseline = check_baseline_spec(baseline)
        self.eps = check_nonnegative(eps, "eps")
        self.seed = seed

    def attribute_with_delta(self, inputs: Tensor, target: TargetSpec = None) -> tuple[Tensor, Tensor]:
        """Attributions ``[B, ...]`` and the summation-to-delta gap ``[B]``, :math:`|\\sum_i C_i - \\Delta F_c|`."""
        check_inputs(inputs, ndim=self.required_ndim)
        with preserve_model(self.model):
            attr, gap = self._attribute_and_delta(inputs.detach(), target)
        return attr.detach(), gap.detach()

    def delta(self, inputs: Tensor, target: TargetSpec = None) -> Tensor:
        """Per-sample summation-to-delta gap ``[B]``: :math:`|\\sum_i C_i - (F_c(x) - F_c(x'))|`."""
        return self.attribute_with_delta(inputs, target)[1]

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        return self._attribute_and_delta(inputs, target)[0]

    def _attribute_and_delta(self, inputs: Tensor, target: TargetSpec) -> tuple[Tensor, Tensor]:
        _check_supported(self.model)
        b = inputs.shape[0]
        baseline = make_baseline(self.baseline, inputs, seed=self.seed)
        x = inputs.detach().requires_grad_(True)
        saved = _patch_activations(self.model, self.eps)
        try:
            with torch.enable_grad():
                logits = self._logits(torch.cat([x, baseline]))  # [2B, classes]: F(x) then F(x')
                targets = resolve_targets(target, logits[:b].detach())
                score = logits[:b].gather(1, targets[:, None]).sum()
                (mult,) = torch.autograd.grad(score, x)  # [B, ...] multipliers m_{Δx ΔF_c}
        finally:
            _restore_activations(saved)
        attr = (inputs - baseline) * mult
        delta_f = (logits[:b] - logits[b:]).detach().gather(1, targets[:, None]).squeeze(1)  # [B]
        gap = (attr.flatten(1).sum(dim=1) - delta_f).abs()
        return attr, gap


def deeplift(model: nn.Module, inputs: Tensor, target: TargetSpec = None, **kw) -> Tensor:
    """Functional form of :class:`DeepLift`; ``kw`` go to its constructor."""
    return DeepLift(model, **kw).attribute(inputs, target)
