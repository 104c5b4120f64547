r"""The maps a sanity check compares: a method's maps of a model, their four similarities, and the
references (two independent estimates of the original map, and of the randomized model's map; see
:mod:`smoothsal.metrics.sanity`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal.metrics._base import check_method_factory

__all__ = ["SIMILARITY_METRICS", "MethodFactory", "map_reproducibility"]

MethodFactory = Callable[[nn.Module], Any]

#: the similarity measures every result holds, each ``[L, B]`` (MPRT) or ``[B]`` (data).
SIMILARITY_METRICS: tuple[str, ...] = ("spearman_abs", "spearman_signed", "ssim", "topk_iou")


def _similarities(reference: Tensor, maps: Tensor) -> dict[str, Tensor]:
    """The four similarities ``[B]`` between paired maps. See :class:`MPRTResult`."""
    from smoothsal.metrics.similarity import spearman, ssim_maps, topk_iou

    out: dict[str, Tensor] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, absolute in (("spearman_abs", True), ("spearman_signed", False)):
            rho = spearman(reference, maps, absolute=absolute)
            out[name] = torch.nan_to_num(rho, nan=0.0)
    if caught:
        warnings.warn(
            "a map is constant (e.g. all zeros after randomization); its Spearman correlation with the "
            "original is undefined and counted as 0 (no shared rank structure)",
            RuntimeWarning,
            stacklevel=3,
        )
    nan = torch.full((reference.shape[0],), float("nan"), dtype=reference.dtype, device=reference.device)
    is_image = reference.dim() in (3, 4) and min(reference.shape[-2:]) >= 11
    out["ssim"] = ssim_maps(reference, maps) if is_image else nan
    out["topk_iou"] = topk_iou(reference, maps) if reference.dim() in (3, 4) else nan
    return out


def _attribute(method: MethodFactory, model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    explainer = method(model)
    if not callable(getattr(explainer, "attribute", None)):
        raise TypeError(
            f"`method(model)` must return an object with .attribute(inputs, target), got {type(explainer).__name__}"
        )
    return explainer.attribute(inputs, targets).detach()


def _original_maps(
    method: MethodFactory, model: nn.Module, x: Tensor, t: Tensor, original: Tensor | None
) -> Tensor:
    """Estimate (a) of the original model's maps: ``original`` when the caller has them, else computed."""
    if original is None:
        return _attribute(method, model, x, t)
    if original.shape[0] != x.shape[0]:
        raise ValueError(f"`original` must hold one map per input ({x.shape[0]}), got shape {tuple(original.shape)}")
    return original.detach().to(x.device)


def _reference(
    method: MethodFactory, second: MethodFactory | None, model: nn.Module, x: Tensor, t: Tensor, first: Tensor
) -> tuple[Tensor, Tensor, bool]:
    """``(second estimate of the original map, r [B], by_construction)``."""
    if second is None:
        return first, torch.ones(x.shape[0], dtype=first.dtype, device=first.device), True
    check_method_factory(second, "second_estimate")
    other = _attribute(second, model, x, t)
    return other, map_reproducibility(first, other), False


def map_reproducibility(first: Tensor, other: Tensor) -> Tensor:
    """``[B]`` Spearman of ``|map|`` between two estimates of the same maps (a constant map counts
    as 0): the reference :math:`r` of :func:`~smoothsal.metrics.sanity.model_parameter_randomization`
    when ``other`` is an independent second estimate."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="a map is constant")
        return _similarities(first, other)["spearman_abs"]


def _randomized_maps(
    method: MethodFactory, second: MethodFactory | None, model: nn.Module, x: Tensor, t: Tensor
) -> tuple[Tensor, Tensor | None]:
    r"""The randomized model's map :math:`\Phi^{(b)}(f_{\tilde\theta}, x)` and its own reproducibility
    :math:`\tilde r` ``[B]`` (Spearman of ``|map|`` with a second estimate :math:`\Phi^{(a)}(f_{\tilde\theta}, x)`);
    ``None`` for a deterministic method (:math:`\tilde r = 1` by construction)."""
    if second is None:
        return _attribute(method, model, x, t), None
    b = _attribute(second, model, x, t)
    return b, map_reproducibility(_attribute(method, model, x, t), b)
