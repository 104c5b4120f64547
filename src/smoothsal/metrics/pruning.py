r"""Attribution pruning: how much of the map does the model need to keep its confidence?

The practitioner's guide to jagged landscapes ("attribution pruning": keep only the high-signal
pixels) and the deletion/insertion family (Petsiuk et al. 2018, RISE, arXiv:1806.07421) ask the
same question from the other side: keep only the top :math:`q\%` of the pixels by
:math:`|a|` (summed over channels), replace every other pixel by a baseline, and measure

.. math::
    \text{confidence\_kept}(q) = \frac{p_c(x_{\text{top}\,q})}{p_c(x)}, \qquad
    \text{mass\_kept}(q) = \frac{\sum_{p \in \text{top}\,q} |a|_p}{\sum_p |a|_p},

with :math:`p_c` the softmax probability of the target class and
:math:`x_{\text{top}\,q} = m_q \odot x + (1 - m_q) \odot x'`. A map that points at what the model
uses keeps the confidence at a small :math:`q`; :func:`smallest_q` reports the smallest such
:math:`q` per sample.

The top :math:`q\%` means :math:`k = \lceil q \cdot HW / 100 \rceil` pixels (at least 1), ties broken
by pixel order (stable sort). A map that is zero everywhere has no preferred pixels: its mass kept
is then defined as the fraction of pixels kept, :math:`k / HW` (the limit of a uniform map).

**The smallest q that keeps a share of the confidence** (``q90`` for ``share = 0.9``). A coarse
grid of ``q`` cannot rank maps: on EfficientNet-Lite0 every gradient map needs more than 50 % of
the pixels and every CAM more than 20 %, so the grid (…, 20, 50, 100) reads 100 % for all
gradients and 50 % for all CAMs. :func:`attribution_pruning` therefore refines it by bisection
on the pixel count: the grid brackets the crossing (the last grid ``q`` below ``share`` and the
first at or above it; below the first grid point the bracket starts at 0 pixels), and each
bisection step evaluates the midpoint's pruned image (one forward row per image) and keeps the
half in which the confidence crosses ``share``, until the bracket is at most ``resolution``
percentage points (``None``: one pixel) wide. The result, :attr:`PruningResult.q_share`, is the
upper end: a ``q`` whose pruned input keeps at least ``share`` while one ``resolution`` less does
not. The confidence need not be monotone in ``q``; then the bisection finds *a* crossing inside
the grid's first bracket, which is the smallest one wherever the confidence is monotone there.
Cost: :math:`\lceil\log_2(\text{bracket} / \text{resolution})\rceil` forward rows per image (8
for a 50 %-wide bracket at 0.25 points) on top of the grid's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_positive_int, resolve_targets
from smoothsal.execution.calls import forward_rows, predict
from smoothsal.execution.memory import MemorySpec
from smoothsal.maps import reduce_channels
from smoothsal.methods.baselines import BaselineSpec, make_baseline
from smoothsal.metrics._base import metric

DEFAULT_Q: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100)


@dataclass
class PruningResult:
    """The result of :func:`attribution_pruning`.

    Attributes:
        q: ``[Q]`` kept percentages, ascending.
        confidence_kept: ``[Q, B]`` :math:`p_c(\\text{pruned}) / p_c(x)` (may exceed 1).
        mass_kept: ``[Q, B]`` share of :math:`\\sum |a|` in the kept pixels, in [0, 1].
        targets: ``[B]`` the classes whose probability is tracked.
        share: the confidence share bisected for (``None``: no bisection).
        q_share: ``[B]`` the kept percentage found by bisection (module docstring); ``inf``
            where no ``q`` of the grid reaches ``share``; ``None`` without bisection.
        confidence_at_share: ``[B]`` ``confidence_kept`` at ``q_share`` (``nan`` where ``inf``).
    """

    q: Tensor
    confidence_kept: Tensor
    mass_kept: Tensor
    targets: Tensor
    share: float | None = None
    q_share: Tensor | None = None
    confidence_at_share: Tensor | None = None


def _check_q(q: Sequence[float]) -> Tensor:
    values = [q] if isinstance(q, (int, float)) else list(q)
    if not values:
        raise ValueError("`q` must hold at least one percentage in (0, 100]")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 100) or math.isnan(v):
            raise ValueError(f"`q` values must be percentages in (0, 100], got {v!r}")
    return torch.tensor(sorted(set(float(v) for v in values)), dtype=torch.float64)


def _pixel_scores(attributions: Tensor, inputs: Tensor) -> Tensor:
    """``|a|`` summed over channels, ``[B, H, W]``, checked against the inputs' ``[B, C, H, W]``."""
    if not isinstance(attributions, Tensor) or not attributions.is_floating_point():
        raise TypeError("`attributions` must be a floating-point tensor [B, C, H, W], [B, 1, H, W] or [B, H, W]")
    b, _, h, w = inputs.shape
    if attributions.dim() == 3:
        attributions = attributions[:, None]
    if attributions.dim() != 4 or attributions.shape[0] != b or attributions.shape[-2:] != (h, w):
        raise ValueError(
            f"`attributions` must have shape [B, C, H, W], [B, 1, H, W] or [B, H, W] with B={b}, H={h}, W={w} "
            f"(the inputs' shape {tuple(inputs.shape)}), got {tuple(attributions.shape)}"
        )
    if not torch.isfinite(attributions).all():
        raise ValueError("`attributions` must be finite; it contains NaN or Inf values")
    return reduce_channels(attributions.detach(), "abs_sum").to(inputs.dtype)  # [B, H, W]


def _pruned_probabilities(
    model: nn.Module, inputs: Tensor, base: Tensor, keep: Tensor, targets: Tensor, batch_size: int | None,
    max_memory: MemorySpec,
) -> Tensor:
    """Target probability of every pruned image ``[Q, B]``, built and scored in the calls the
    policy sizes (:func:`smoothsal.execution.calls.forward_rows`)."""
    n_q, b = keep.shape[:2]
    h, w = inputs.shape[-2:]
    keep_flat = keep.reshape(n_q * b, 1, h, w)  # [Q*B, 1, H, W], row i = (q index i // B, sample i % B)

    def build(lo: int, hi: int) -> Tensor:
        sample = torch.arange(lo, hi, device=inputs.device) % b
        m = keep_flat[lo:hi].to(inputs.dtype)  # [n, 1, H, W]
        return m * inputs[sample] + (1 - m) * base[sample]  # [n, C, H, W]

    logits = forward_rows(model, n_q * b, build, example=inputs[0], batch_size=batch_size, max_memory=max_memory)
    return logits.softmax(dim=1).gather(1, targets.repeat(n_q)[:, None])[:, 0].reshape(n_q, b)


@metric("model", higher_is_better=None)
def attribution_pruning(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    targets: TargetSpec = None,
    *,
    q: Sequence[float] = DEFAULT_Q,
    baseline: BaselineSpec = "black",
    batch_size: int | None = None,
    share: float | None = 0.9,
    resolution: float | None = 0.25,
    max_memory: MemorySpec = None,
) -> PruningResult:
    """Keep the top ``q`` % pixels of each map, set the rest to ``baseline``; measure what is kept.

    Args:
        model: classifier returning ``[B, classes]`` logits.
        inputs: images ``[B, C, H, W]``.
        attributions: maps ``[B, C, H, W]``, ``[B, 1, H, W]`` (CAM) or ``[B, H, W]``; pixels are ranked
            by ``|a|`` summed over channels.
        targets: ``None`` (predicted class), an int or ``B`` ints.
        q: percentages in (0, 100] (sorted and deduplicated).
        baseline: what a pruned pixel becomes: ``"black"``, a number, ``"blur"``, a tensor, ... (see
            :func:`smoothsal.methods.baselines.make_baseline`).
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result. Here a row is one pruned image (forward passes only).
        share: also find, by bisection, the smallest ``q`` that keeps this share of the
            confidence (:attr:`PruningResult.q_share`; module docstring); ``None``: the grid only.
        resolution: width of the final bisection bracket in percentage points (``None``: one pixel).
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        :class:`PruningResult` with ``confidence_kept`` and ``mass_kept`` of shape ``[Q, B]``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
        >>> res = attribution_pruning(model, torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2), q=(50, 100))
        >>> res.mass_kept[-1].tolist(), tuple(res.confidence_kept.shape)
        ([1.0, 1.0, 1.0], (2, 3))
    """
    check_inputs(inputs, ndim=4)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    if share is not None:
        _check_share(share)
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, (int, float))
                                   or not (0 < resolution <= 100)):
        raise ValueError(f"`resolution` must be a number of percentage points in (0, 100] or None, got {resolution!r}")
    q_t = _check_q(q)
    scores = _pixel_scores(attributions, inputs)  # [B, H, W]
    inputs = inputs.detach()
    b, _, h, w = inputs.shape
    n_pix = h * w
    base = make_baseline(baseline, inputs)  # [B, C, H, W]

    logits = predict(model, inputs, batch_size=batch_size, max_memory=max_memory)
    targets_t = resolve_targets(targets, logits)
    p_full = logits.softmax(dim=1).gather(1, targets_t[:, None])[:, 0]  # [B]

    flat = scores.flatten(1)  # [B, H*W]
    order = torch.argsort(flat, dim=1, descending=True, stable=True)  # [B, H*W]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pix, device=order.device).expand(b, -1))  # rank of each pixel
    k = torch.clamp(torch.ceil(q_t * n_pix / 100.0 - 1e-9), min=1).long().to(order.device)  # [Q]
    keep = rank[None] < k[:, None, None]  # [Q, B, H*W]

    total = flat.sum(dim=1)  # [B]
    kept_mass = (flat[None] * keep).sum(dim=2)  # [Q, B]
    pixel_share = (k.to(flat.dtype) / n_pix)[:, None].expand_as(kept_mass)
    mass_kept = torch.where(total > 0, kept_mass / torch.where(total > 0, total, torch.ones_like(total)), pixel_share)

    p_pruned = _pruned_probabilities(model, inputs, base, keep, targets_t, batch_size, max_memory)  # [Q, B]
    p_den = p_full.clamp_min(torch.finfo(p_full.dtype).tiny)
    confidence = p_pruned / p_den
    result = PruningResult(
        q=q_t.to(inputs.dtype), confidence_kept=confidence, mass_kept=mass_kept.clamp(0, 1), targets=targets_t
    )
    if share is None:
        return result
    # bisection on the pixel count inside the grid's first bracket (module docstring)
    ok = confidence >= share  # [Q, B]
    reached = ok.any(dim=0)  # [B]
    first = ok.to(torch.int8).argmax(dim=0)  # [B] first grid index at or above the share
    hi = k[first].clone()  # [B] pixels: passes
    lo = torch.where(first > 0, k[(first - 1).clamp_min(0)], torch.zeros_like(hi))  # [B] fails (0: nothing kept)
    conf_hi = confidence[first, torch.arange(b)]
    width = 1 if resolution is None else max(1, int(math.floor(resolution * n_pix / 100.0)))
    while True:
        active = (reached & (hi - lo > width)).nonzero().flatten()
        if active.numel() == 0:
            break
        mid = (lo[active] + hi[active]) // 2  # [A]
        keep_mid = rank[active] < mid[:, None]  # [A, H*W]
        p_mid = _pruned_probabilities(model, inputs[active], base[active], keep_mid[None], targets_t[active], batch_size,
                                      max_memory)[0]  # fmt: skip
        c_mid = p_mid / p_den[active]
        passed = c_mid >= share
        hi[active] = torch.where(passed, mid, hi[active])
        lo[active] = torch.where(passed, lo[active], mid)
        conf_hi[active] = torch.where(passed, c_mid, conf_hi[active])
    result.share = float(share)
    result.q_share = torch.where(reached, 100.0 * hi.to(torch.float64) / n_pix, torch.full((b,), math.inf,
                                 dtype=torch.float64)).to(inputs.dtype)  # fmt: skip
    result.confidence_at_share = torch.where(reached, conf_hi, torch.full_like(conf_hi, math.nan))
    return result


def _check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not (0 < share) or math.isnan(share):
        raise ValueError(f"`share` must be a number > 0, got {share!r}")
    return float(share)


@metric("curve", higher_is_better=False)
def smallest_q(result: PruningResult, share: float = 0.9) -> Tensor:
    """Smallest ``q`` whose pruned input keeps at least ``share`` of the confidence, per sample ``[B]``.

    Where ``result`` was bisected for this ``share`` (``attribution_pruning(..., share=share)``,
    the default 0.9), the bisected :attr:`PruningResult.q_share` (module docstring); otherwise
    the first ``q`` of the grid (ascending) with ``confidence_kept >= share``. ``inf`` when no
    ``q`` of the result reaches it (e.g. a ``q`` grid without 100 and a map that misses the evidence).

    Example:
        >>> res = PruningResult(torch.tensor([10.0, 50.0, 100.0]),
        ...                     torch.tensor([[0.2, 0.95], [0.92, 0.97], [1.0, 1.0]]),
        ...                     torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
        >>> smallest_q(res, share=0.9).tolist()
        [50.0, 10.0]
    """
    if not isinstance(result, PruningResult):
        raise TypeError(f"`result` must be a PruningResult, got {type(result).__name__}")
    _check_share(share)
    if result.q_share is not None and result.share == float(share):
        return result.q_share
    ok = result.confidence_kept >= share  # [Q, B]
    first = ok.to(torch.int8).argmax(dim=0)  # [B] index of the first True (0 if none)
    q = result.q[first]
    return torch.where(ok.any(dim=0), q, torch.full_like(q, float("inf")))
