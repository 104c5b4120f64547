r"""Guided Backpropagation and Deconvnet: the gradient with a modified backward through rectifiers.

Both methods run the ordinary forward pass and the ordinary backward pass through every layer
except the rectifiers, where the signal :math:`g = \partial S_c / \partial y` arriving at the
rectifier output :math:`y = \rho(x)` is replaced:

.. math::

    \text{gradient:}\quad        & \partial S_c / \partial x = \rho'(x)\, g \\
    \text{guided backprop:}\quad & R = \rho'(x)\,[g > 0]\, g = \rho'(x)\,\max(g, 0) \\
    \text{deconvnet:}\quad       & R = [g > 0]\, g = \max(g, 0)

Guided Backpropagation is Springenberg et al. 2014, "Striving for Simplicity: The All
Convolutional Net" (arXiv:1412.6806, Fig. 1): it keeps the forward mask of the
gradient and also zeroes negative backward signals. Deconvnet is Zeiler & Fergus 2014,
"Visualizing and Understanding Convolutional Networks" (arXiv:1311.2901, Sec. 2.1): the backward
signal is rectified on its own, ignoring the forward mask. Convolutions are run transposed and
max-pools unpooled with their switches in both methods, which is exactly what autograd does.

Which modules are rectifiers here: ``nn.ReLU``, ``nn.ReLU6`` and ``nn.LeakyReLU`` with
``negative_slope >= 0`` (its local derivative is 1 or the slope, so guided backprop multiplies by
the slope on the negative side; deconvnet ignores it as it ignores the forward mask). Other
activations (SiLU, GELU, Tanh, ...) keep their plain gradient. A LeakyReLU with a negative slope
is not a rectifier and is left alone.

How: during one call the ``forward`` of each rectifier *instance* is replaced by a custom
:class:`torch.autograd.Function` that computes the activation out of place (so ``inplace=True``
modules work, and the ``inplace`` flag is never touched) and implements the modified backward. The
local derivative is recovered from the saved output (ReLU: :math:`y > 0`; ReLU6:
:math:`0 < y < 6`; LeakyReLU: 1 where :math:`y > 0`, else the slope), as PyTorch's own ReLU does,
so a module called several times in one forward (EfficientNet-Lite shares one ReLU6 per block)
gets the rule at every call. The override is removed in ``finally``.

Limitation: activations applied functionally inside a ``forward`` (``F.relu(x)``,
``torch.relu(x)``, ``x.clamp(min=0)``) are not modules and cannot be intercepted; they keep their
plain gradient. Use ``nn.ReLU`` modules for these methods to see them.

Not covered, and said so: the nonlinear modules of Vision Transformers and modern CNNs — GELU,
SiLU and other smooth activations, softmax attention, LayerNorm/GroupNorm (per-sample
normalization is nonlinear) — have no guided/deconvnet rule in the papers and keep their plain
gradient. :func:`uncovered_nonlinearities` finds them (torch's activation modules, its
non-batch normalization layers, and third-party modules whose class name says attention, GELU,
SiLU/Swish, Mish, softmax, sigmoid, tanh, LayerNorm/RMSNorm/GroupNorm or "activation"; modules
inside an attention module are reported as that attention module). The methods warn naming them
(``on_uncovered="warn"``, the default), or raise (``"raise"``), or stay silent (``"ignore"``). A
model with no rectifier at all (a ViT) gets exactly the plain gradient, and the warning says so.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_choice
from smoothsal.methods.base import Attribution

#: ``rule(grad_out, local_grad) -> grad_in`` applied at every rectifier in the backward pass.
BackwardRule = Callable[[Tensor, Tensor], Tensor]


def guided_rule(grad_out: Tensor, local_grad: Tensor) -> Tensor:
    r"""Guided backprop: :math:`\rho'(x)\,\max(g, 0)`."""
    return local_grad * grad_out.clamp(min=0)


def deconvnet_rule(grad_out: Tensor, local_grad: Tensor) -> Tensor:
    r"""Deconvnet: :math:`\max(g, 0)`, the forward mask is ignored."""
    del local_grad
    return grad_out.clamp(min=0)


#: class-name pattern of third-party nonlinear modules (lower-cased, ``re.search``).
NONLINEAR_NAME = re.compile(r"attention|attn|gelu|silu|swish|mish|softmax|sigmoid|tanh|layernorm|rmsnorm|groupnorm|activation")
_ATTENTION_NAME = re.compile(r"attention|attn")
#: normalization layers that are nonlinear even in eval mode (statistics of each sample).
NONLINEAR_NORMS: tuple[type[nn.Module], ...] = tuple(
    t for t in (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, getattr(nn, "RMSNorm", None),
                nn.modules.instancenorm._InstanceNorm) if t is not None
)  # fmt: skip


def is_attention(module: nn.Module) -> bool:
    """``nn.MultiheadAttention`` or a module whose class name says attention (timm, HF, Swin)."""
    return isinstance(module, nn.MultiheadAttention) or bool(_ATTENTION_NAME.search(type(module).__name__.lower()))


def attention_scopes(model: nn.Module) -> list[str]:
    """Dotted names of the outermost attention modules of ``model``."""
    scopes: list[str] = []
    for name, module in model.named_modules():
        if name and is_attention(module) and not inside(name, scopes):
            scopes.append(name)
    return scopes


def inside(name: str, scopes: list[str]) -> bool:
    """Whether the module ``name`` lies strictly inside one of the modules ``scopes`` (dotted names,
    e.g. :func:`attention_scopes`): such a module counts as part of its attention block."""
    return any(name.startswith(s + ".") for s in scopes)


def _is_nonlinear(module: nn.Module) -> bool:
    if isinstance(module, NONLINEAR_NORMS) or is_attention(module):
        return True
    if type(module).__module__ == "torch.nn.modules.activation":  # ReLU, GELU, Softmax, Tanh, ...
        return True
    return bool(NONLINEAR_NAME.search(type(module).__name__.lower()))


def uncovered_nonlinearities(model: nn.Module, covered: tuple[type[nn.Module], ...]) -> dict[str, list[str]]:
    """The nonlinear modules of ``model`` that are not instances of ``covered``, by class name.

    Returns ``{class name: [dotted module names]}``; modules inside an attention module are
    counted as part of it (see the module docstring for what counts as nonlinear).
    """
    scopes = attention_scopes(model)
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if not name or isinstance(module, covered) or not _is_nonlinear(module):
            continue
        if inside(name, scopes):
            continue
        found.setdefault(type(module).__name__, []).append(name)
    return found


def describe_modules(found: dict[str, list[str]]) -> str:
    """``"GELU ×12 (blocks.0.mlp.act, ...), LayerNorm ×25 (...)"``."""
    parts = []
    for cls, names in found.items():
        shown = ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")
        parts.append(f"{cls} ×{len(names)} ({shown})")
    return "; ".join(parts)


ON_UNCOVERED = ("warn", "raise", "ignore")


def report_uncovered(method: str, rule: str, found: dict[str, list[str]], on_uncovered: str, extra: str = "") -> None:
    """Warn (or raise ``ValueError``) naming the uncovered modules of a modified-backward method."""
    if not found or on_uncovered == "ignore":
        return
    message = (
        f"{method} has rules only for {rule}; these nonlinear modules of the model pass their plain gradient: "
        f"{describe_modules(found)}.{extra} (on_uncovered='ignore' silences this)"
    )
    if on_uncovered == "raise":
        raise ValueError(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _rectifier_spec(module: nn.Module) -> tuple[float, float] | None:
    """``(upper, negative_slope)`` of a rectifier module, ``None`` for any other module.

    The activation is ``y = x`` on ``(0, upper)``, ``negative_slope * x`` below 0 and ``upper``
    above ``upper``.
    """
    if isinstance(module, nn.ReLU6):
        return 6.0, 0.0
    if isinstance(module, nn.ReLU):
        return float("inf"), 0.0
    if isinstance(module, nn.LeakyReLU) and module.negative_slope >= 0:
        return float("inf"), float(module.negative_slope)
    return None


class _ModifiedRectifier(torch.autograd.Function):
    """Out-of-place rectifier whose backward applies a :data:`BackwardRule`."""

    @staticmethod
    def forward(ctx, x: Tensor, upper: float, slope: float, rule: BackwardRule) -> Tensor:
        if slope > 0:
            y = F.leaky_relu(x, slope)
        elif upper == float("inf"):
            y = F.relu(x)
        else:
            y = x.clamp(min=0.0, max=upper)
        ctx.save_for_backward(y)
        ctx.upper, ctx.slope, ctx.rule = upper, slope, rule
        return y

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:
        (y,) = ctx.saved_tensors
        inside = (y > 0) & (y < ctx.upper)  # the linear piece: local derivative 1
        local_grad = torch.where(inside, 1.0, ctx.slope).to(grad_out.dtype)
        return ctx.rule(grad_out, local_grad), None, None, None


@contextlib.contextmanager
def modified_rectifiers(model: nn.Module, rule: BackwardRule) -> Iterator[list[nn.Module]]:
    """Within the block, every rectifier module of ``model`` back-propagates with ``rule``.

    Yields the list of patched modules. On exit each one's instance-level ``forward`` is put back
    as it was (removed, or the user's own override restored), also when the block raises.
    """
    patched: list[tuple[nn.Module, object]] = []
    try:
        for module in model.modules():
            spec = _rectifier_spec(module)  # model.modules() yields a shared module once
            if spec is None:
                continue
            upper, slope = spec
            patched.append((module, module.__dict__.get("forward")))
            module.__dict__["forward"] = _make_forward(upper, slope, rule)  # instance-level override
        yield [m for m, _ in patched]
    finally:
        for module, previous in patched:
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = previous


def _make_forward(upper: float, slope: float, rule: BackwardRule) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        return _ModifiedRectifier.apply(x, upper, slope, rule)

    return forward


class ModifiedBackprop(Attribution):
    """Base: the input gradient of the target logit with :meth:`backward_rule` at every rectifier.

    Subclasses override only :meth:`backward_rule`. One forward and one backward per batch; each
    sample gets its own target (the scores of the batch are summed, and samples do not interact).

    Args:
        model: the model to explain.
        on_uncovered: ``"warn"`` (default), ``"raise"`` or ``"ignore"`` when the model has nonlinear
            modules no rule covers (GELU, attention, LayerNorm...; see the module docstring).
    """

    def __init__(self, model: nn.Module, *, on_uncovered: str = "warn") -> None:
        super().__init__(model)
        self.on_uncovered = check_choice(on_uncovered, "on_uncovered", ON_UNCOVERED)
        covered = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
        found = uncovered_nonlinearities(model, covered)
        has_rectifier = any(_rectifier_spec(m) is not None for m in model.modules())
        extra = "" if has_rectifier else (
            " The model has no rectifier module, so this map is exactly the plain gradient (VanillaGradient)."
        )
        report_uncovered(type(self).__name__, "rectifier modules (nn.ReLU, nn.ReLU6, nn.LeakyReLU)", found,
                         on_uncovered, extra)  # fmt: skip

    @staticmethod
    def backward_rule(grad_out: Tensor, local_grad: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        with modified_rectifiers(self.model, self.backward_rule):
            grad, _, _ = self._score_and_grad(inputs, target)
        return grad


class GuidedBackprop(ModifiedBackprop):
    r"""Guided Backpropagation (Springenberg et al. 2014, arXiv:1412.6806).

    .. math:: R^{(l)} = [x^{(l)} > 0]\,[R^{(l+1)} > 0]\,R^{(l+1)}

    at every ReLU (ReLU6 and LeakyReLU analogously, see the module docstring).

    Args:
        model: ``nn.Module`` mapping ``[B, ...]`` to ``[B, classes]`` logits, with its ReLUs as
            modules (functional ``F.relu`` calls keep their plain gradient).
    Returns (from :meth:`attribute`):
        attributions shaped like ``inputs``.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU(),
        ...                             torch.nn.Linear(2, 1, bias=False)).eval()
        >>> with torch.no_grad():
        ...     _ = model[0].weight.copy_(torch.eye(2))
        ...     _ = model[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        >>> GuidedBackprop(model).attribute(torch.tensor([[1.0, 2.0]]), target=0)
        tensor([[1., 0.]])
    """

    backward_rule = staticmethod(guided_rule)


class Deconvnet(ModifiedBackprop):
    r"""Deconvnet attribution (Zeiler & Fergus 2014, arXiv:1311.2901).

    .. math:: R^{(l)} = [R^{(l+1)} > 0]\,R^{(l+1)}

    at every ReLU (ReLU6 and LeakyReLU too), ignoring the forward activation pattern.

    Args:
        model: as for :class:`GuidedBackprop`.
    Returns (from :meth:`attribute`):
        attributions shaped like ``inputs``.
    """

    backward_rule = staticmethod(deconvnet_rule)


def guided_backprop(model: nn.Module, inputs: Tensor, target: TargetSpec = None) -> Tensor:
    """Functional form of :class:`GuidedBackprop`."""
    return GuidedBackprop(model).attribute(inputs, target)


def deconvnet(model: nn.Module, inputs: Tensor, target: TargetSpec = None) -> Tensor:
    """Functional form of :class:`Deconvnet`."""
    return Deconvnet(model).attribute(inputs, target)
