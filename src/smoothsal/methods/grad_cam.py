r"""Grad-CAM and Grad-CAM++: class activation maps weighted by gradients at a conv layer.

Both take the activations :math:`A^k` (``[B, K, h, w]``) of one layer and the gradients
:math:`g^k = \partial S_c / \partial A^k` of the target logit :math:`S_c`, reduce them to one weight
per channel, and combine the channels:

.. math:: L_c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)

The ReLU is the papers' (Grad-CAM eq. 2; Grad-CAM++ keeps it): only regions that raise the
class score are kept, so the map is >= 0. The map is upsampled bilinearly
(``align_corners=False``) to the input's ``H x W`` and returned as ``[B, 1, H, W]`` with its raw
magnitude (no per-image min-max scaling, which would destroy the L2 distances stability metrics
measure). :meth:`LayerMethod.cam_low_res` gives the map at the layer's resolution.

Plumbing shared by both (:class:`LayerMethod`):

* ``layer=None`` picks a default per architecture family (:func:`architecture_family`, recognised
  from the model's module class names; :data:`DEFAULT_LAYERS`): ViT/DeiT/BEiT/DINOv2 the last
  block's first LayerNorm (``blocks.11.norm1``, torchvision ``ln_1``, HF ``layernorm_before``:
  after the last block only the class token reaches the head, so the last place where the patch
  tokens still matter is the input of the last attention); Swin the final LayerNorm (the last
  stage's normalized feature map); ConvNeXt the last stage; ResNet ``layer4``. Any other model:
  the last ``nn.Conv2d`` in ``model.modules()`` order. A module instance or its dotted name
  (``"features.3"``) works too.
* Token-shaped layers go through a documented reshape to ``[B, K, h, w]`` (``layout``, see
  :func:`to_feature_map`): ``"nchw"`` (convolutions), ``"nhwc"`` (Swin's ``[B, H, W, C]``, permuted),
  ``"tokens"`` (``[B, N, C]``: the leading class/distillation/register tokens are dropped and the
  ``h × w`` patch tokens laid back on their grid, row-major as patch embeddings flatten them), or a
  callable. ``"auto"`` (default) picks ``"tokens"`` for 3-D outputs, ``"nhwc"`` for 4-D outputs of
  Swin models and ``"nchw"`` otherwise. The same reshape is applied to activations and gradients,
  so the Grad-CAM weights average the gradient over the patch tokens only.
* Activations are captured with a forward hook (removed in ``finally``), gradients taken with
  :func:`torch.autograd.grad` w.r.t. the captured tensor (no full backward hooks, which break with
  in-place operations). The hook hands the rest of the network a copy of the layer output, so an
  in-place op right after the layer (``nn.ReLU(inplace=True)`` on a conv without batch-norm)
  cannot change the captured activations.
* If the layer runs several times in one forward, the **last** call is used.
* Each sample gets its own target; the batch's scores are summed before the single backward,
  which is exact because samples do not interact in eval mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_logits, check_positive_int, resolve_targets
from smoothsal.execution.guard import preserve_model
from smoothsal.methods.base import Attribution

LayerSpec = nn.Module | str | None
#: ``"auto"``, ``"nchw"``, ``"nhwc"``, ``"tokens"`` or ``acts -> [B, K, h, w]``.
LayoutSpec = str | Callable[[Tensor], Tensor]
LAYOUTS = ("auto", "nchw", "nhwc", "tokens")

#: Architecture families recognised from the module class names (lower-cased, ``re.search``),
#: tried in this order: family -> (class-name pattern, default-layer module-name pattern; the
#: last module whose dotted name matches is the default layer, ``None`` = the last LayerNorm).
DEFAULT_LAYERS: dict[str, tuple[str, str | None]] = {
    "swin": (r"swin", None),
    "vit": (r"visiontransformer|^vit|^deit|^beit|^dinov2", r"(^|\.)(norm1|ln_1|layernorm_before)$"),
    "convnext": (r"convnext", r"(^|\.)(stages|features)\.\d+$"),
    "resnet": (r"^resnet", r"(^|\.)(layer4|stages\.\d+)$"),
}


# ---- functional core ------------------------------------------------------------------------
def grad_cam_weights(acts: Tensor, grads: Tensor) -> Tensor:
    r"""Grad-CAM channel weights (Selvaraju et al. 2017, eq. 1): :math:`w_k = \frac{1}{hw}\sum_{ij} g^k_{ij}`.

    Args:
        acts, grads: ``[B, K, h, w]``.
    Returns:
        ``[B, K]``.
    """
    del acts
    return grads.mean(dim=(2, 3))


def grad_cam_plus_plus_weights(acts: Tensor, grads: Tensor) -> Tensor:
    r"""Grad-CAM++ channel weights (Chattopadhay et al. 2018, arXiv:1710.11063).

    With the paper's exponential score :math:`Y_c = \exp(S_c)`, the higher derivatives are powers
    of :math:`g = \partial S_c / \partial A` and the pixel weights have the closed form of eq. 19:

    .. math::

        \alpha^{kc}_{ij} = \frac{(g^k_{ij})^2}
            {2 (g^k_{ij})^2 + \big(\sum_{ab} A^k_{ab}\big) (g^k_{ij})^3},
        \qquad
        w^c_k = \sum_{ij} \alpha^{kc}_{ij}\,\mathrm{ReLU}(g^k_{ij})

    (the weights are eq. 7 with :math:`\partial Y_c/\partial A = e^{S_c} g`; the positive factor
    :math:`e^{S_c}` is dropped, as in the authors' code). Where the paper is silent we define
    :math:`\alpha = 0` where the denominator is 0 (this covers :math:`g = 0`, where it is 0/0);
    no epsilon is added, so the other values are exact. Like the paper we do not clip
    :math:`\alpha`, which can be negative where :math:`2 + g \sum A < 0`.

    Args:
        acts, grads: ``[B, K, h, w]``.
    Returns:
        ``[B, K]``.
    """
    g2 = grads.pow(2)
    g3 = g2 * grads
    sum_acts = acts.sum(dim=(2, 3), keepdim=True)  # [B, K, 1, 1]
    denom = 2 * g2 + sum_acts * g3  # [B, K, h, w]
    nonzero = denom != 0
    alpha = torch.where(nonzero, g2 / torch.where(nonzero, denom, torch.ones_like(denom)), 0.0)
    return (alpha * grads.clamp(min=0)).sum(dim=(2, 3))


def weighted_cam(acts: Tensor, weights: Tensor) -> Tensor:
    r"""The map :math:`\mathrm{ReLU}(\sum_k w_k A^k)`: ``acts [B, K, h, w]``, ``weights [B, K]`` -> ``[B, 1, h, w]``."""
    return (weights[:, :, None, None] * acts).sum(dim=1, keepdim=True).clamp(min=0)


def upsample_cam(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (``align_corners=False``) resize of ``[B, 1, h, w]`` maps to ``[B, 1, *size]``."""
    if tuple(cam.shape[-2:]) == tuple(size):
        return cam
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)


def _conv_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def architecture_family(model: nn.Module) -> str | None:
    """``"swin"``, ``"vit"``, ``"convnext"``, ``"resnet"`` (see :data:`DEFAULT_LAYERS`) or ``None``.

    Recognised from the class names of ``model``'s modules, so wrappers (a :class:`ZooModel`
    around a timm, torchvision or Hugging Face network) are seen through.
    """
    classes = {type(m).__name__.lower() for m in model.modules()}
    for family, (pattern, _) in DEFAULT_LAYERS.items():
        if any(re.search(pattern, c) for c in classes):
            return family
    return None


def default_layer_name(model: nn.Module) -> str:
    """The dotted name of the default CAM layer of ``model`` (see the module docstring)."""
    family = architecture_family(model)
    if family is not None:
        pattern = DEFAULT_LAYERS[family][1]
        if pattern is None:
            names = [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
        else:
            names = [n for n, _ in model.named_modules() if re.search(pattern, n)]
        if names:
            return names[-1]
    convs = _conv_names(model)
    if not convs:
        raise ValueError(
            "`layer`=None picks the last nn.Conv2d (or a known architecture's default layer), but the model "
            "has none; pass `layer`"
        )
    return convs[-1]


def token_grid(n_tokens: int, input_hw: tuple[int, int], prefix_tokens: int | None = None) -> tuple[int, int, int]:
    """``(prefix, h, w)``: how ``n_tokens`` tokens split into leading extra tokens and an ``h × w`` grid.

    With ``prefix_tokens`` given, the remaining tokens must form a grid of the input's aspect
    ratio; otherwise the smallest prefix (0 to 8: class, distillation and register tokens) that
    leaves such a grid is taken (``h / w = H / W`` exactly).
    """
    H, W = input_hw
    candidates = [prefix_tokens] if prefix_tokens is not None else range(0, min(n_tokens, 9))
    for prefix in candidates:
        n = n_tokens - prefix
        if n <= 0:
            continue
        h = round(math.sqrt(n * H / W))
        if h > 0 and n % h == 0 and h * W == (n // h) * H:
            return prefix, h, n // h
    raise ValueError(
        f"cannot lay {n_tokens} tokens on a grid with the input's aspect ratio {H}x{W}"
        + (f" after {prefix_tokens} prefix tokens" if prefix_tokens is not None else " (tried 0-8 prefix tokens)")
        + "; pass `prefix_tokens` or a callable `layout`"
    )


def to_feature_map(
    t: Tensor, layout: LayoutSpec, input_hw: tuple[int, int], prefix_tokens: int | None = None
) -> Tensor:
    """A layer's output (or its gradient) as ``[B, K, h, w]`` (see the module docstring).

    Args:
        t: ``[B, K, h, w]`` (``"nchw"``), ``[B, h, w, K]`` (``"nhwc"``) or ``[B, N, K]`` (``"tokens"``).
        layout: one of ``"nchw"``, ``"nhwc"``, ``"tokens"`` or a callable (``"auto"`` is resolved by
            the caller).
        input_hw: the model input's ``(H, W)``, for the token grid's aspect ratio.
        prefix_tokens: leading non-patch tokens (``None`` = inferred, :func:`token_grid`).
    """
    if callable(layout):
        out = layout(t)
        if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != t.shape[0]:
            raise ValueError(f"`layout` callable must return [B, K, h, w], got {getattr(out, 'shape', type(out))}")
        return out
    if layout == "nchw":
        if t.dim() != 4:
            raise ValueError(f"`layout`='nchw' needs a [B, K, h, w] layer output, got shape {tuple(t.shape)}")
        return t
    if layout == "nhwc":
        if t.dim() != 4:
            raise ValueError(f"`layout`='nhwc' needs a [B, h, w, K] layer output, got shape {tuple(t.shape)}")
        return t.permute(0, 3, 1, 2)
    if layout == "tokens":
        if t.dim() != 3:
            raise ValueError(f"`layout`='tokens' needs a [B, N, K] layer output, got shape {tuple(t.shape)}")
        prefix, h, w = token_grid(t.shape[1], input_hw, prefix_tokens)
        return t[:, prefix:, :].transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
    raise ValueError(f"`layout` must be one of {LAYOUTS} or a callable, got {layout!r}")


def resolve_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of ``layer`` in ``model``; ``None`` = the default (:func:`default_layer_name`)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "`model` is a TorchScript module: layer methods need an eager nn.Module, because forward hooks "
            "do not fire inside compiled code (load the model as 'package.module:factory' instead)"
        )
    named = dict(model.named_modules())
    convs = _conv_names(model)
    if layer is None:
        name = default_layer_name(model)
        return name, named[name]
    if isinstance(layer, str):
        if layer not in named:
            shown = ", ".join(repr(n) for n in convs[-5:]) or "(the model has no nn.Conv2d)"
            raise ValueError(f"`layer` {layer!r} is not a module name of the model; conv layers are e.g. {shown}")
        return layer, named[layer]
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return name, module
        raise ValueError(f"`layer` ({type(layer).__name__}) is not a submodule of the model")
    raise TypeError(f"`layer` must be None, a module name (str) or an nn.Module, got {type(layer).__name__}")


def layer_activations_and_grads(
    model: nn.Module, layer: nn.Module, inputs: Tensor, target: TargetSpec
) -> tuple[Tensor, Tensor, Tensor]:
    """One forward and one backward: ``(acts, grads, targets)`` of ``layer``'s last call.

    ``acts`` and ``grads`` are ``[B, K, ...]`` (the layer's output shape); ``targets`` ``[B]``.
    """
    captured: list[Tensor] = []  # the output of the layer's most recent call

    def hook(module: nn.Module, args: object, output: object) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(f"`layer` must return a tensor to build a CAM, got {type(output).__name__}")
        captured[:] = [output]
        return output.clone()  # downstream in-place ops modify the copy, not the captured tensor

    handle = layer.register_forward_hook(hook)
    try:
        x = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = check_logits(model(x), inputs.shape[0])
            if not captured:
                raise ValueError("`layer` was not called during the model's forward pass")
            acts = captured[-1]
            targets = resolve_targets(target, logits)
            score = logits.gather(1, targets[:, None]).sum()
            (grads,) = torch.autograd.grad(score, acts, allow_unused=True)
    finally:
        handle.remove()
    if grads is None:  # the target logit does not depend on the layer's last call
        grads = torch.zeros_like(acts)
    return acts.detach(), grads.detach(), targets


# ---- classes --------------------------------------------------------------------------------
class LayerMethod(Attribution):
    """Base of the CAM methods: layer lookup, activation/gradient capture, weighting, upsampling.

    Subclasses override only :meth:`channel_weights` ``(acts, grads) -> [B, K]``.

    Args:
        model: ``nn.Module`` mapping ``[B, C, H, W]`` images to ``[B, classes]`` logits.
        layer: ``None`` (the architecture's default, else the last ``nn.Conv2d``), a submodule of
            ``model``, or its dotted name.
        layout: how the layer output becomes ``[B, K, h, w]``: ``"auto"``, ``"nchw"``, ``"nhwc"``,
            ``"tokens"`` or a callable (see :func:`to_feature_map`).
        prefix_tokens: for token layers, the number of leading non-patch tokens (``None`` = the
            model's ``num_prefix_tokens`` attribute if it has one, else inferred).
    """

    output_kind = "cam"
    required_ndim = 4

    def __init__(
        self, model: nn.Module, layer: LayerSpec = None, *, layout: LayoutSpec = "auto", prefix_tokens: int | None = None
    ) -> None:
        super().__init__(model)
        self.layer_name, self._layer = resolve_layer(model, layer)
        if not callable(layout) and layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {LAYOUTS} or a callable, got {layout!r}")
        if prefix_tokens is not None:
            check_positive_int(prefix_tokens, "prefix_tokens", minimum=0)
        if prefix_tokens is None:
            found = [m.num_prefix_tokens for m in model.modules() if isinstance(getattr(m, "num_prefix_tokens", None), int)]
            prefix_tokens = found[0] if found else None
        self.layout = layout
        self.prefix_tokens = prefix_tokens
        self.family = architecture_family(model)

    def resolved_layout(self, ndim: int) -> LayoutSpec:
        """The layout used for a layer output with ``ndim`` dimensions (``"auto"`` resolved)."""
        if self.layout != "auto":
            return self.layout
        if ndim == 3:
            return "tokens"
        if ndim == 4:
            return "nhwc" if self.family == "swin" else "nchw"
        raise ValueError(
            f"`layer` {self.layer_name!r} outputs a {ndim}-D tensor; CAMs need [B, K, h, w], [B, h, w, K] or "
            "[B, tokens, K] (or pass a callable `layout`)"
        )

    @property
    def layer(self) -> nn.Module:
        """The module whose activations are weighted."""
        return self._layer

    def channel_weights(self, acts: Tensor, grads: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``acts, grads [B, K, h, w] -> [B, K]``."""
        raise NotImplementedError

    def cam_low_res(self, inputs: Tensor, target: TargetSpec = None) -> Tensor:
        """The map at the layer's resolution, ``[B, 1, h, w]`` (before upsampling)."""
        check_inputs(inputs, ndim=self.required_ndim)
        with preserve_model(self.model):
            return self._low_res(inputs.detach(), target).detach()

    def _low_res(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        acts, grads, _ = layer_activations_and_grads(self.model, self._layer, inputs, target)
        layout = self.resolved_layout(acts.dim())
        hw = tuple(inputs.shape[-2:])
        acts = to_feature_map(acts, layout, hw, self.prefix_tokens)
        grads = to_feature_map(grads, layout, hw, self.prefix_tokens)
        return weighted_cam(acts, self.channel_weights(acts, grads))

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        return upsample_cam(self._low_res(inputs, target), tuple(inputs.shape[-2:]))

    def __repr__(self) -> str:
        layout = "" if self.layout == "auto" else f", layout={self.layout!r}"
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r}{layout})"


class GradCAM(LayerMethod):
    r"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391).

    .. math:: L_c = \mathrm{ReLU}\Big(\sum_k \Big(\frac{1}{hw}\sum_{ij}\frac{\partial S_c}{\partial A^k_{ij}}\Big) A^k\Big)

    Args:
        model: ``nn.Module`` mapping ``[B, C, H, W]`` to ``[B, classes]``.
        layer: ``None`` (the architecture's default layer, else the last ``nn.Conv2d``), a
            submodule, or its dotted name.
        layout, prefix_tokens: how a token-shaped layer becomes a feature map (see :class:`LayerMethod`).
    Returns (from :meth:`attribute`):
        ``[B, 1, H, W]`` maps >= 0, raw magnitudes.
    """

    def channel_weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return grad_cam_weights(acts, grads)


class GradCAMPlusPlus(LayerMethod):
    r"""Grad-CAM++ (Chattopadhay et al. 2018, arXiv:1710.11063), closed form of eq. 19.

    .. math:: w^c_k = \sum_{ij} \frac{g_{ij}^2}{2 g_{ij}^2 + \sum_{ab} A^k_{ab}\, g_{ij}^3}\,\mathrm{ReLU}(g_{ij}),
              \quad g = \partial S_c / \partial A^k

    See :func:`grad_cam_plus_plus_weights` for the 0/0 convention. Arguments and output as
    :class:`GradCAM`.
    """

    def channel_weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return grad_cam_plus_plus_weights(acts, grads)


def grad_cam(
    model: nn.Module, inputs: Tensor, target: TargetSpec = None, layer: LayerSpec = None, **kw: object
) -> Tensor:
    """Functional form of :class:`GradCAM`; ``kw``: ``layout``, ``prefix_tokens``."""
    return GradCAM(model, layer, **kw).attribute(inputs, target)


def grad_cam_plus_plus(
    model: nn.Module, inputs: Tensor, target: TargetSpec = None, layer: LayerSpec = None, **kw: object
) -> Tensor:
    """Functional form of :class:`GradCAMPlusPlus`; ``kw``: ``layout``, ``prefix_tokens``."""
    return GradCAMPlusPlus(model, layer, **kw).attribute(inputs, target)

