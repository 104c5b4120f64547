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

* ``layer=None`` picks the last ``nn.Conv2d`` in ``model.modules()`` order; a module instance or
  its dotted name (``"features.3"``) works too.
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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothsal._validation import TargetSpec, check_inputs, check_logits, resolve_targets
from smoothsal.methods.base import Attribution, preserve_model

LayerSpec = nn.Module | str | None


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


def resolve_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of ``layer`` in ``model``; ``None`` = the last ``nn.Conv2d``."""
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "`model` is a TorchScript module: layer methods need an eager nn.Module, because forward hooks "
            "do not fire inside compiled code (load the model as 'package.module:factory' instead)"
        )
    named = dict(model.named_modules())
    convs = _conv_names(model)
    if layer is None:
        if not convs:
            raise ValueError("`layer`=None picks the last nn.Conv2d, but the model has none; pass `layer`")
        return convs[-1], named[convs[-1]]
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
        layer: ``None`` (last ``nn.Conv2d``), a submodule of ``model``, or its dotted name.
    """

    output_kind = "cam"
    required_ndim = 4

    def __init__(self, model: nn.Module, layer: LayerSpec = None) -> None:
        super().__init__(model)
        self.layer_name, self._layer = resolve_layer(model, layer)

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
        if acts.dim() != 4:
            raise ValueError(
                f"`layer` {self.layer_name!r} must output [B, K, h, w] feature maps, got shape {tuple(acts.shape)}"
            )
        return weighted_cam(acts, self.channel_weights(acts, grads))

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        return upsample_cam(self._low_res(inputs, target), tuple(inputs.shape[-2:]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r})"


class GradCAM(LayerMethod):
    r"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391).

    .. math:: L_c = \mathrm{ReLU}\Big(\sum_k \Big(\frac{1}{hw}\sum_{ij}\frac{\partial S_c}{\partial A^k_{ij}}\Big) A^k\Big)

    Args:
        model: ``nn.Module`` mapping ``[B, C, H, W]`` to ``[B, classes]``.
        layer: ``None`` (last ``nn.Conv2d``), a submodule, or its dotted name.
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


def grad_cam(model: nn.Module, inputs: Tensor, target: TargetSpec = None, layer: LayerSpec = None) -> Tensor:
    """Functional form of :class:`GradCAM`."""
    return GradCAM(model, layer).attribute(inputs, target)


def grad_cam_plus_plus(model: nn.Module, inputs: Tensor, target: TargetSpec = None, layer: LayerSpec = None) -> Tensor:
    """Functional form of :class:`GradCAMPlusPlus`."""
    return GradCAMPlusPlus(model, layer).attribute(inputs, target)

