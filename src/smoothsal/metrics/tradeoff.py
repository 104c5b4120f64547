r"""The stability–fidelity trade-off of Gaussian smoothing: two errors and a σ recommendation.

From Ye & Farnia 2025, *Gaussian Smoothing in Saliency Maps: The Stability-Fidelity Trade-Off in
Neural Network Interpretability* (AISTATS, arXiv:2411.05837; Table 1, eqs. 12–13):

* **Stability error** (eq. 12) — how much the map of an input changes when the network is
  retrained (on a disjoint training set, with another recipe, or with another architecture):

  .. math:: \mathrm{Stab}(S) = \mathbb{E}_x \big\lVert S_{A(D_1)}(x) - S_{A(D_2)}(x) \big\rVert_2

* **Fidelity error** (eq. 13) — how far the smoothed map of one model moves from its own
  unsmoothed map:

  .. math:: \mathrm{Fid}_\sigma(S) = \mathbb{E}_x \big\lVert \mathbb{E}_{z\sim\mathcal N(0,\sigma^2 I)}
            S(x + z) - S(x) \big\rVert_2

  The smoothed and the unsmoothed map are of the *same* method with the same settings (IG: the
  same path rule and steps), so the fidelity error is 0 at σ = 0; a cheaper inner setting under
  smoothing would add its quadrature error to eq. 13 (:func:`smoothsal.registry.build_method`'s
  ``inner="raw"`` builds the smoothed map for eq. 13).

Both are reported on raw maps and *norm-scaled* (each map divided by its L2 norm first, which
makes them comparable across methods and models whose maps differ in scale).

**The Monte-Carlo bias of** :math:`\mathbb E_z` (:func:`debiased_distance`). A smoothed map is a mean of
``n`` noisy draws, :math:`\hat\mu = \mu + \varepsilon` with :math:`\mathbb E\varepsilon = 0`,
:math:`\mathrm{Cov}\,\varepsilon = \Sigma/n` (:math:`\Sigma` the per-draw covariance of the map), so
the plain distance is biased upward:

.. math:: \mathbb E\,\lVert \hat\mu - s\rVert^2 = \lVert \mu - s\rVert^2 + \operatorname{tr}\Sigma / n .

Split the draws into two independent halves with means :math:`\hat a, \hat b` (each unbiased for
:math:`\mu`); the cross term is unbiased, because the halves' errors are independent with mean 0:

.. math:: \mathbb E\,\langle \hat a - s,\ \hat b - s\rangle = \lVert \mu - s\rVert^2 \quad\text{(fidelity, } s
          \text{ the raw map)}, \qquad
          \mathbb E\,\langle \hat a_1 - \hat a_2,\ \hat b_1 - \hat b_2\rangle = \lVert \mu_1 - \mu_2\rVert^2
          \quad\text{(stability)}

and, for equal halves, :math:`\lVert \tfrac{\hat a + \hat b}2 - s\rVert^2 - \langle \hat a - s, \hat b - s\rangle
= \lVert \hat a - \hat b\rVert^2/4`, an unbiased estimate of the bias :math:`\operatorname{tr}\Sigma/n`.
Two models smoothed with the same seed see the same draws (common random numbers): then
:math:`\hat a_1 - \hat a_2` is one mean over the first half's draws of the difference of the two
models' maps and :math:`\hat b_1 - \hat b_2` over the second half's; the halves stay independent,
so the cross term stays unbiased, and the shared noise only lowers its variance (and the plain
bias :math:`\operatorname{tr}\mathrm{Cov}(S_1 - S_2)/n`). The halves must be independent:
Gaussian or uniform draws, or antithetic pairs that do not straddle the split (an even first
half); a Latin hypercube stratifies all ``n`` draws jointly, so no halves are taken from it.

The squared cross term can be negative (when :math:`\lVert\mu - s\rVert` is small against the noise):
the results report it *unclipped* (its mean over inputs is unbiased for
:math:`\mathbb E_x \lVert\mu - s\rVert^2`) beside the corrected distance
:math:`\sqrt{\max(0, \cdot)}` and the plain one. The norm-scaled errors are not corrected (the norm
of a noisy map is itself biased).

The paper's theory (Theorem 6, Proposition 7; :mod:`smoothsal.metrics.theory`): the smoothed
stability *bound* falls as :math:`\sigma^{-1/(\beta c + 1)}`, an exponent in (−1, 0), while the
fidelity *bound* grows as :math:`\gamma\sigma\sqrt m`. :func:`recommend_noise_level` picks a σ on the
measured curve.

The maths lives in :func:`stability_from_maps` and :func:`fidelity_from_maps` (maps in, numbers
out); :func:`stability_error` and :func:`fidelity_error` build the maps from models first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_inputs, check_nonnegative, check_positive_int
from smoothsal.execution.calls import resolve_model_targets
from smoothsal.execution.memory import MemorySpec
from smoothsal.metrics._base import attribution_maps, check_method_factory, metric

__all__ = [
    "DebiasedDistance",
    "FidelityResult",
    "Recommendation",
    "StabilityResult",
    "attribution_maps",
    "debiased_distance",
    "fidelity_error",
    "fidelity_from_maps",
    "recommend_noise_level",
    "smoothed_halves",
    "stability_error",
    "stability_from_maps",
]

#: ``model -> attribution method`` (any object with ``.attribute(inputs, target)``), e.g. a class
#: such as ``VanillaGradient`` or ``lambda m: Smooth(VanillaGradient(m), noise_level=0.1)``.
MethodFactory = Callable[[nn.Module], Any]


# ---- result objects -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StabilityResult:
    r"""Stability error and map agreement between every pair of models.

    Floats average over the model pairs (``std`` is the sample std over pairs, ``0.0`` for a single
    pair); per-pair tensors hold ``P = n_models (n_models - 1) / 2`` values, in the order of ``pairs``.

    Attributes:
        mean, std: raw L2 distance :math:`\lVert S_i(x) - S_j(x)\rVert_2`, averaged over inputs,
            then mean / std over pairs.
        mean_normalized, std_normalized: the same after dividing each map by its L2 norm.
        ssim, ssim_std: SSIM between the pair's maps (:func:`~smoothsal.metrics.similarity.ssim_maps`).
        topk_iou, topk_iou_std: top-k IoU (:func:`~smoothsal.metrics.similarity.topk_iou`).
        spearman, cosine: rank correlation of ``|map|`` and cosine similarity (means over pairs).
        pairs: ``(i, j)`` model indices, ``i < j``.
        pair_errors, pair_errors_normalized, pair_ssim, pair_topk_iou: ``[P]`` per-pair means over inputs.
        per_input, per_input_normalized: ``[P, N]`` distances per pair and input.
        n_inputs: ``N``.
        per_input_squared_debiased: ``[P, N]`` unbiased estimates of the squared distance between
            the pair's *expected* maps (module docstring; may be negative), or ``None`` when the
            maps came without independent halves (raw maps need none: their squared distance is exact).
        per_input_debiased: ``[P, N]`` the corrected distance :math:`\sqrt{\max(0, \cdot)}` (``None`` likewise).
        mean_debiased: mean over pairs of the per-pair mean over inputs of ``per_input_debiased``.
        mean_squared_debiased: the same of ``per_input_squared_debiased`` (unbiased for
            :math:`\mathbb E_x\lVert\mu_i - \mu_j\rVert^2`), beside ``mean_squared`` (plain).
        mean_squared: mean over pairs and inputs of the plain squared distance.
    """

    mean: float
    std: float
    mean_normalized: float
    std_normalized: float
    ssim: float
    ssim_std: float
    topk_iou: float
    topk_iou_std: float
    spearman: float
    cosine: float
    pairs: tuple[tuple[int, int], ...]
    pair_errors: Tensor
    pair_errors_normalized: Tensor
    pair_ssim: Tensor
    pair_topk_iou: Tensor
    per_input: Tensor
    per_input_normalized: Tensor
    n_inputs: int
    per_input_squared_debiased: Tensor | None = None
    per_input_debiased: Tensor | None = None
    mean_debiased: float | None = None
    mean_squared_debiased: float | None = None
    mean_squared: float | None = None


@dataclass(frozen=True)
class FidelityResult:
    r"""Fidelity error :math:`\lVert \mathrm{Smooth}_\sigma(S)(x) - S(x) \rVert_2` over inputs.

    Attributes:
        mean, std: raw distance, mean and sample std over inputs.
        mean_normalized, std_normalized: the same after dividing each map by its L2 norm.
        per_input, per_input_normalized: ``[N]`` distances.
        noise_level, n_samples: the smoothing that produced the maps (``None`` if unknown).
        per_input_squared_debiased: ``[N]`` unbiased estimates of
            :math:`\lVert \mathbb E_z S(x+z) - S(x)\rVert^2` from two independent halves of the
            draws (module docstring; may be negative), ``None`` without halves.
        per_input_debiased: ``[N]`` the corrected distance :math:`\sqrt{\max(0, \cdot)}`.
        mean_debiased, std_debiased: its mean and sample std over inputs.
        mean_squared_debiased: mean of ``per_input_squared_debiased`` (unbiased for
            :math:`\mathbb E_x\lVert\mu - s\rVert^2`), beside ``mean_squared`` (plain).
        mean_squared: mean over inputs of the plain squared distance.
    """

    mean: float
    std: float
    mean_normalized: float
    std_normalized: float
    per_input: Tensor
    per_input_normalized: Tensor
    noise_level: float | None = None
    n_samples: int | None = None
    per_input_squared_debiased: Tensor | None = None
    per_input_debiased: Tensor | None = None
    mean_debiased: float | None = None
    std_debiased: float | None = None
    mean_squared_debiased: float | None = None
    mean_squared: float | None = None


@dataclass(frozen=True)
class DebiasedDistance:
    r"""Distance between two expected maps estimated from independent halves of their Monte-Carlo draws.

    Attributes:
        squared: ``[N]`` the cross term :math:`\langle \hat a_1 - \hat a_2, \hat b_1 - \hat b_2\rangle`,
            unbiased for :math:`\lVert \mu_1 - \mu_2\rVert^2` (may be negative).
        corrected: ``[N]`` :math:`\sqrt{\max(0, \text{squared})}`.
        plain_squared: ``[N]`` :math:`\lVert \hat\mu_1 - \hat\mu_2\rVert^2` of the full means.
        plain: ``[N]`` its square root, the usual (upward-biased) distance.
        bias: ``[N]`` ``plain_squared - squared``: the Monte-Carlo part of the plain squared
            distance (:math:`\lVert \hat a - \hat b\rVert^2/4` for equal halves).
    """

    squared: Tensor
    corrected: Tensor
    plain_squared: Tensor
    plain: Tensor
    bias: Tensor


@dataclass(frozen=True)
class Recommendation:
    """A noise level chosen on the stability–fidelity curve, with the numbers behind the choice.

    Attributes:
        noise_level: the recommended σ (a fraction of the input range).
        rule: ``"knee"``, ``"stability_target"``, ``"fidelity_bound"`` or
            ``"stability_target+fidelity_bound"``.
        reason: one sentence quoting the numbers that justify the choice.
        table: one dict per grid point (sorted by σ): ``noise_level``, ``stability``, ``fidelity``,
            the [0, 1]-scaled ``stability_scaled``/``fidelity_scaled``, ``knee_distance`` (signed
            distance below the chord; positive = better than the straight line) and ``pareto_optimal``.
    """

    noise_level: float
    rule: str
    reason: str
    table: list[dict[str, float]]


# ---- helpers --------------------------------------------------------------------------------------
def _mean_std(values: Tensor) -> tuple[float, float]:
    """Mean and sample std of a 1-D tensor, ignoring NaN; std is ``0.0`` for fewer than two values."""
    values = values[~torch.isnan(values)]
    if values.numel() == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    std = float(values.std(correction=1)) if values.numel() > 1 else 0.0
    return mean, std


def _n_pixels(maps: Tensor) -> int:
    """Pixels per map: ``H * W`` for ``[B, C, H, W]`` / ``[B, H, W]`` maps."""
    return int(maps.shape[-2] * maps.shape[-1])


def _check_k(k: int | None, n_pixels: int) -> None:
    if k is None:
        return
    check_positive_int(k, "k")
    if k > n_pixels:
        raise ValueError(f"`k` must be <= H * W = {n_pixels} (the pixels per map), got {k}")


def _input_pixels(inputs: Tensor) -> int | None:
    return int(inputs.shape[-2] * inputs.shape[-1]) if inputs.dim() == 4 else None


# ---- Monte-Carlo bias ------------------------------------------------------------------------------
Halves = tuple[Tensor, Tensor]


def _check_halves(halves: Any, name: str, shape: torch.Size | None = None) -> Halves:
    if not (isinstance(halves, (tuple, list)) and len(halves) == 2 and all(isinstance(h, Tensor) for h in halves)):
        raise TypeError(f"`{name}` must be a pair (first_half, second_half) of map tensors, got {type(halves).__name__}")
    a, b = halves
    check_inputs(a, name=f"{name}[0]")
    check_inputs(b, name=f"{name}[1]")
    if a.shape != b.shape or (shape is not None and a.shape != shape):
        want = f" (the maps' shape {tuple(shape)})" if shape is not None else ""
        raise ValueError(f"`{name}` halves must have one shape{want}, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def debiased_distance(
    halves: Halves, other: Tensor | Halves, *, sizes: tuple[int, int] | None = None
) -> DebiasedDistance:
    r"""L2 distance between an expected map and a fixed map (or another expected map), Monte-Carlo bias removed.

    .. math:: \widehat{D^2} = \langle \hat a - \hat a', \hat b - \hat b' \rangle, \qquad
              \mathbb E\,\widehat{D^2} = \lVert \mu - \mu' \rVert^2

    (module docstring), with :math:`\hat a, \hat b` the means of two independent halves of the
    draws of one map and :math:`\hat a', \hat b'` those of the other (or both equal to a fixed map
    :math:`s`, e.g. the raw map for the fidelity error).

    Args:
        halves: ``(first_half, second_half)`` ``[N, ...]`` means of two independent sets of draws
            (:func:`smoothed_halves`).
        other: a fixed ``[N, ...]`` map, or its own ``(first_half, second_half)`` (another model's
            smoothed map; the same seed on both sides gives common random numbers, which keep the
            estimate unbiased).
        sizes: draws in each half ``(n_first, n_second)`` (default equal): the plain estimate uses
            the full mean :math:`(n_1\hat a + n_2\hat b)/(n_1 + n_2)`.
    Returns:
        :class:`DebiasedDistance` (per input).

    Example:
        >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])  # two halves around (0.5, 0.5)
        >>> d = debiased_distance((a, b), torch.zeros(1, 2))
        >>> d.squared, d.plain_squared, d.bias  # cross term 0, plain 0.5, of which 0.5 is noise
        (tensor([0.]), tensor([0.5000]), tensor([0.5000]))
    """
    a, b = _check_halves(halves, "halves")
    if isinstance(other, Tensor):
        check_inputs(other, name="other")
        if other.shape != a.shape:
            raise ValueError(f"`other` must have the halves' shape {tuple(a.shape)}, got {tuple(other.shape)}")
        a2 = b2 = other
    else:
        a2, b2 = _check_halves(other, "other", a.shape)
    if sizes is None:
        w = 0.5
    else:
        n1, n2 = (check_positive_int(int(v), "sizes") for v in sizes)
        w = n1 / (n1 + n2)
    da = (a - a2).double().flatten(1)  # [N, D]
    db = (b - b2).double().flatten(1)
    squared = (da * db).sum(dim=1)  # [N] the cross term
    full = w * da + (1.0 - w) * db  # [N, D] the full mean's difference
    plain_squared = (full * full).sum(dim=1)
    dtype = a.dtype
    return DebiasedDistance(
        squared=squared.to(dtype),
        corrected=squared.clamp_min(0.0).sqrt().to(dtype),
        plain_squared=plain_squared.to(dtype),
        plain=plain_squared.sqrt().to(dtype),
        bias=(plain_squared - squared).to(dtype),
    )


def _halves_allowed(smooth: Any, first: int) -> bool:
    """Independent halves from ``smooth``'s draws: a mean-type statistic, no early stop, and draws
    that do not tie the halves (independent ones, or antithetic pairs within an even first half)."""
    from smoothsal.noise import AntitheticStream, independent_draws

    if smooth.statistic not in ("mean", "square") or smooth.tol is not None or smooth.n_samples < 2:
        return False
    sampler = smooth.sampler
    antithetic = sampler == "antithetic" or sampler is AntitheticStream
    return bool(independent_draws(sampler) or (antithetic and first % 2 == 0))


def smoothed_halves(
    smooth: Any, inputs: Tensor, targets: TargetSpec = None
) -> tuple[Tensor, Halves, tuple[int, int]] | None:
    r"""A smoothed map and the means of the two halves of its draws, from one run.

    :meth:`~smoothsal.smoothing.Smooth.estimate` keeps the running mean after the first
    :math:`h = \lfloor n/2 \rfloor` draws (``snapshots``), so the second half's mean is
    :math:`(n\hat\mu - h\hat a)/(n - h)`: no extra samples.

    Args:
        smooth: a :class:`~smoothsal.smoothing.Smooth` (statistic ``"mean"`` or ``"square"``, no
            ``tol``, ``n_samples >= 2``, independent or antithetic draws).
        inputs: ``[N, ...]``.
        targets: as :meth:`~smoothsal.smoothing.Smooth.attribute`.

    ``smooth`` runs its rows as it was built to (its ``batch_size`` and ``max_memory``) and holds
    the running sums of as many images at once as its memory budget allows.

    Returns:
        ``(full_mean, (first_half, second_half), (h, n - h))``, or ``None`` when ``smooth`` cannot
        give independent halves (another statistic, ``tol`` set, a Latin hypercube, one sample).
    """
    from smoothsal.smoothing import Smooth

    if not isinstance(smooth, Smooth):
        raise TypeError(f"`smooth` must be a Smooth, got {type(smooth).__name__}")
    n = smooth.n_samples
    h = n // 2
    if not _halves_allowed(smooth, h):
        return None
    est = smooth.estimate(inputs, targets, snapshots=(h,))
    full, first = est.attributions.detach(), est.snapshots[h].detach()
    second = (n * full - h * first) / (n - h)
    return full, (first, second), (h, n - h)


# ---- functional core -------------------------------------------------------------------------------
@metric("map_pair", higher_is_better=False)
def stability_from_maps(
    maps: Sequence[Tensor], *, k: int | None = None, halves: Sequence[Halves] | None = None
) -> StabilityResult:
    r"""Stability error (Ye & Farnia 2025, eq. 12) and agreement of the maps of several models.

    .. math:: \mathrm{Stab} = \frac{1}{|P|}\sum_{(i,j)\in P}\frac1N\sum_{n=1}^N
              \lVert S_i(x_n) - S_j(x_n)\rVert_2, \qquad P = \{(i, j): i < j\}

    Args:
        maps: one tensor per model, all the same shape ``[N, ...]`` (``[N, C, H, W]`` or CAM
            ``[N, 1, H, W]``), map ``n`` of every tensor explaining the same input and class.
        k: pixels in the top-k sets (default: 1 % of ``H * W``, ``k = 500`` at 224²).
        halves: for smoothed maps, one ``(first_half, second_half)`` per model
            (:func:`smoothed_halves`): the result then also holds the Monte-Carlo-debiased distance
            (:func:`debiased_distance`; module docstring).
    Returns:
        :class:`StabilityResult`.
    """
    from smoothsal.metrics.similarity import cosine_similarity, l2_distance, spearman, ssim_maps, topk_iou

    maps = list(maps)
    if len(maps) < 2:
        raise ValueError(f"`maps` must hold the maps of at least 2 models, got {len(maps)}")
    for i, m in enumerate(maps):
        check_inputs(m, name=f"maps[{i}]")
        if m.shape != maps[0].shape:
            raise ValueError(
                f"all maps must have the same shape; maps[0] has {tuple(maps[0].shape)}, maps[{i}] has {tuple(m.shape)}"
            )
    image_maps = maps[0].dim() in (3, 4)
    if image_maps:
        _check_k(k, _n_pixels(maps[0]))
    if halves is not None:
        halves = [_check_halves(h, f"halves[{i}]", maps[0].shape) for i, h in enumerate(halves)]
        if len(halves) != len(maps):
            raise ValueError(f"`halves` must hold one pair per model ({len(maps)}), got {len(halves)}")
    pairs = tuple(combinations(range(len(maps)), 2))
    raw, normed, ssim, iou, rho, cos = [], [], [], [], [], []
    for i, j in pairs:
        a, b = maps[i], maps[j]
        raw.append(l2_distance(a, b))  # [N]
        normed.append(l2_distance(a, b, normalize=True))
        cos.append(cosine_similarity(a, b).mean())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant maps -> NaN, dropped below
            rho.append(spearman(a, b).nanmean())
        if image_maps:
            ssim.append(ssim_maps(a, b).mean())
            iou.append(topk_iou(a, b, k=k).mean())
    per_input = torch.stack(raw)  # [P, N]
    per_input_normalized = torch.stack(normed)  # [P, N]
    nan = torch.full((len(pairs),), float("nan"))
    pair_ssim = torch.stack(ssim) if image_maps else nan
    pair_iou = torch.stack(iou) if image_maps else nan
    mean, std = _mean_std(per_input.mean(dim=1))
    mean_n, std_n = _mean_std(per_input_normalized.mean(dim=1))
    ssim_mean, ssim_std = _mean_std(pair_ssim)
    iou_mean, iou_std = _mean_std(pair_iou)
    debiased: dict[str, Any] = {"mean_squared": float((per_input.double() ** 2).mean())}
    if halves is not None:
        sq = torch.stack([debiased_distance(halves[i], halves[j]).squared for i, j in pairs])  # [P, N]
        corrected = sq.clamp_min(0.0).sqrt()
        debiased.update(per_input_squared_debiased=sq, per_input_debiased=corrected,
                        mean_debiased=float(corrected.double().mean()),
                        mean_squared_debiased=float(sq.double().mean()))  # fmt: skip
    return StabilityResult(
        mean=mean,
        std=std,
        mean_normalized=mean_n,
        std_normalized=std_n,
        ssim=ssim_mean,
        ssim_std=ssim_std,
        topk_iou=iou_mean,
        topk_iou_std=iou_std,
        spearman=_mean_std(torch.stack(rho))[0],
        cosine=_mean_std(torch.stack(cos))[0],
        pairs=pairs,
        pair_errors=per_input.mean(dim=1),
        pair_errors_normalized=per_input_normalized.mean(dim=1),
        pair_ssim=pair_ssim,
        pair_topk_iou=pair_iou,
        per_input=per_input,
        per_input_normalized=per_input_normalized,
        n_inputs=int(per_input.shape[1]),
        **debiased,
    )


@metric("map_pair", higher_is_better=False)
def fidelity_from_maps(
    smoothed: Tensor,
    raw: Tensor,
    *,
    noise_level: float | None = None,
    n_samples: int | None = None,
    halves: Halves | None = None,
    sizes: tuple[int, int] | None = None,
) -> FidelityResult:
    r"""Fidelity error (Ye & Farnia 2025, eq. 13) from paired smoothed and unsmoothed maps.

    .. math:: \mathrm{Fid} = \frac1N\sum_{n=1}^N \lVert \tilde S(x_n) - S(x_n) \rVert_2

    ``smoothed`` and ``raw`` must come from the same method with the same settings (IG: the same
    path rule and steps), else the difference of the settings is counted as fidelity error.

    Args:
        smoothed, raw: ``[N, ...]`` maps of the same shape (row ``n`` explains the same input and class).
        noise_level, n_samples: recorded in the result.
        halves: ``(first_half, second_half)`` of ``smoothed``'s draws (:func:`smoothed_halves`): the
            result then also holds the Monte-Carlo-debiased distance (module docstring).
        sizes: draws per half (default equal), as :func:`debiased_distance`.
    """
    from smoothsal.metrics.similarity import l2_distance

    check_inputs(smoothed, name="smoothed")
    check_inputs(raw, name="raw")
    if smoothed.shape != raw.shape:
        raise ValueError(
            f"`smoothed` and `raw` must have the same shape, got {tuple(smoothed.shape)} and {tuple(raw.shape)}"
        )
    d = l2_distance(smoothed, raw)  # [N]
    dn = l2_distance(smoothed, raw, normalize=True)  # [N]
    mean, std = _mean_std(d)
    mean_n, std_n = _mean_std(dn)
    debiased: dict[str, Any] = {"mean_squared": float((d.double() ** 2).mean())}
    if halves is not None:
        dd = debiased_distance(_check_halves(halves, "halves", smoothed.shape), raw, sizes=sizes)
        mean_c, std_c = _mean_std(dd.corrected)
        debiased.update(per_input_squared_debiased=dd.squared, per_input_debiased=dd.corrected, mean_debiased=mean_c,
                        std_debiased=std_c, mean_squared_debiased=float(dd.squared.double().mean()))  # fmt: skip
    return FidelityResult(mean, std, mean_n, std_n, d, dn, noise_level, n_samples, **debiased)


# ---- model-level metrics -----------------------------------------------------------------------------
@metric("comparison", higher_is_better=False)
def stability_error(
    method: MethodFactory,
    models: Sequence[nn.Module],
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    batch_size: int | None = None,
    k: int | None = None,
    max_memory: MemorySpec = None,
) -> StabilityResult:
    r"""Stability error of an attribution method across retrained models (Ye & Farnia 2025, eq. 12).

    .. math:: \mathrm{Stab} = \operatorname{mean}_{i<j}\ \mathbb{E}_x \lVert S_{f_i}(x) - S_{f_j}(x)\rVert_2

    Every model explains the **same class** for an input, so the maps are comparable: ``targets``
    when given (pass the true labels, as the experiments do), otherwise the class the *first* model
    predicts. Each model's maps are computed once and reused for all its pairs. When ``method``
    builds a :class:`~smoothsal.smoothing.Smooth` that can give independent halves of its draws
    (:func:`smoothed_halves`), the result also holds the Monte-Carlo-debiased distance; give every
    model's ``Smooth`` the same int seed for common random numbers (module docstring).

    Args:
        method: factory ``model -> attribution method`` (``VanillaGradient``,
            ``lambda m: Smooth(IntegratedGradients(m), noise_level=0.15)``, ...).
        models: at least 2 models taking ``inputs``.
        inputs: ``[N, ...]`` (``[N, C, H, W]`` images).
        targets: ``None``, an int, or ``N`` class indices.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
        k: pixels in the top-k sets (default 1 % of ``H * W``).
    Returns:
        :class:`StabilityResult` (raw and norm-scaled error, SSIM, top-k IoU, per pair and averaged).

    Example:
        >>> from smoothsal.methods.gradient import VanillaGradient
        >>> _ = torch.manual_seed(0)
        >>> nets = [nn.Linear(4, 3).eval() for _ in range(3)]
        >>> res = stability_error(VanillaGradient, nets, torch.randn(5, 4), targets=0)
        >>> len(res.pairs), res.mean > 0
        (3, True)
    """
    check_method_factory(method)
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"`models` must hold at least 2 models to compare, got {len(models)}")
    check_inputs(inputs)
    pixels = _input_pixels(inputs)
    if pixels is not None:
        _check_k(k, pixels)
    from smoothsal.smoothing import Smooth

    resolved = resolve_model_targets(models[0], inputs, targets, batch_size=batch_size, max_memory=max_memory)
    maps, halves = [], []
    for model in models:
        built = method(model)
        split = smoothed_halves(built, inputs, resolved) if isinstance(built, Smooth) else None
        if split is None:
            maps.append(attribution_maps(built, inputs, resolved, batch_size=batch_size, max_memory=max_memory))
            halves.append(None)
        else:
            maps.append(split[0])
            halves.append(split[1])
    return stability_from_maps(maps, k=k, halves=halves if all(h is not None for h in halves) else None)


@metric("comparison", higher_is_better=False)
def fidelity_error(
    method: MethodFactory,
    model: nn.Module,
    inputs: Tensor,
    targets: TargetSpec = None,
    *,
    noise_level: float,
    n_samples: int = 50,
    seed: int | torch.Generator = 0,
    statistic: str = "mean",
    batch_size: int | None = None,
    max_memory: MemorySpec = None,
) -> FidelityResult:
    r"""Fidelity error of smoothing an attribution method (Ye & Farnia 2025, eq. 13).

    .. math:: \mathrm{Fid}_\sigma = \mathbb{E}_x \big\lVert \tfrac1n \textstyle\sum_{s=1}^n S(x + z_s) - S(x)\big\rVert_2,
              \quad z_s \sim \mathcal N(0, \sigma^2 I),\ \sigma = \text{noise\_level}\,(x_{\max} - x_{\min})

    The smoothed map is :class:`smoothsal.smoothing.Smooth` of the same method (every sample
    noisy), compared with the unsmoothed map for the same class: ``targets`` if given, else the
    class the model predicts for the clean input. The plain n-sample distance is biased upward by
    the map's Monte-Carlo noise; for ``statistic="mean"``/``"square"`` and ``n_samples >= 2`` the
    result also holds the debiased estimate from two halves of the draws (module docstring).

    Args:
        method: factory ``model -> attribution method``.
        model: the model explained.
        inputs: ``[N, ...]``.
        noise_level: σ as a fraction of each input's value range (>= 0).
        targets: ``None``, an int, or ``N`` class indices.
        n_samples, seed, statistic: passed to :class:`~smoothsal.smoothing.Smooth`.
        batch_size: most model rows per call (a row: one forward(+backward) pass of one input-shaped
            tensor); ``None``: learned from the calls' timings under the memory budget. Never changes the
            result.
        max_memory: the memory budget when ``batch_size`` is ``None`` (bytes, ``"4GB"``, ``"25%"``;
            ``None``: the default of :func:`smoothsal.execution.memory.memory_budget`).
    Returns:
        :class:`FidelityResult` (mean and std over inputs, raw and norm-scaled).
    """
    from smoothsal.smoothing import Smooth

    check_method_factory(method)
    noise_level = check_nonnegative(noise_level, "noise_level")
    check_positive_int(n_samples, "n_samples")
    check_inputs(inputs)
    resolved = resolve_model_targets(model, inputs, targets, batch_size=batch_size, max_memory=max_memory)
    base = method(model)
    raw = attribution_maps(base, inputs, resolved, batch_size=batch_size, max_memory=max_memory)
    smooth = Smooth(base, noise_level=noise_level, n_samples=n_samples, statistic=statistic, seed=seed,
                    batch_size=batch_size, max_memory=max_memory)
    split = smoothed_halves(smooth, inputs, resolved)
    if split is None:
        smoothed = attribution_maps(smooth, inputs, resolved, batch_size=batch_size, max_memory=max_memory)
        return fidelity_from_maps(smoothed, raw, noise_level=noise_level, n_samples=n_samples)
    smoothed, halves, sizes = split
    return fidelity_from_maps(smoothed, raw, noise_level=noise_level, n_samples=n_samples, halves=halves, sizes=sizes)


# ---- σ recommendation ----------------------------------------------------------------------------------
def _as_floats(values: Any, name: str, n: int | None = None) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().reshape(-1).tolist()
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a sequence of numbers, got {values!r}") from err
    if n is not None and len(out) != n:
        raise ValueError(f"`{name}` must hold one value per noise level ({n}), got {len(out)}")
    if any(not math.isfinite(v) for v in out):
        raise ValueError(f"`{name}` must be finite, got {out}")
    return out


def check_noise_grid(noise_levels: Any, name: str = "noise_levels") -> list[float]:
    """Check a σ grid: finite, ``>= 0``, no repeats; returns it as floats (order kept)."""
    grid = _as_floats(noise_levels, name)
    if not grid:
        raise ValueError(f"`{name}` must hold at least one noise level, got an empty grid")
    negative = [v for v in grid if v < 0]
    if negative:
        raise ValueError(f"`{name}` must be >= 0 (a fraction of the input range), got negative values {negative}")
    if len(set(grid)) != len(grid):
        raise ValueError(f"`{name}` must not repeat values, got {grid}")
    return grid


def _scale01(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


def recommend_noise_level(
    noise_levels: Sequence[float],
    stability: Sequence[float],
    fidelity: Sequence[float],
    *,
    stability_target: float | None = None,
    fidelity_bound: float | None = None,
) -> Recommendation:
    r"""Choose σ on the stability–fidelity curve.

    Rules:

    * default — the **knee** of the Pareto front: both errors are scaled to ``[0, 1]`` over the
      grid; among the Pareto-optimal σ (no other σ is at least as good on both errors and better
      on one), the chord joins the front's two ends (lowest fidelity error, lowest stability
      error), and the front point farthest below it (towards zero error on both axes) wins:

      .. math:: \sigma^\star = \arg\max_{\sigma \in \text{front}}\ \frac{(\mathbf c_1 - \mathbf c_0) \times
                (\mathbf p_\sigma - \mathbf c_0)}{\lVert \mathbf c_1 - \mathbf c_0 \rVert}, \quad
                \mathbf p_\sigma = (\widehat{\mathrm{Fid}}_\sigma, \widehat{\mathrm{Stab}}_\sigma)

      If one σ dominates all others (e.g. smoothing only raises the stability error) it is
      returned; if no front point lies below the chord (a straight or bulging front has no knee)
      the front point closest to the ideal ``(0, 0)`` is chosen. The reason says which case applied.
    * ``stability_target`` — the smallest σ whose stability error is ``<= stability_target``.
    * ``fidelity_bound`` — the largest σ whose fidelity error is ``<= fidelity_bound``.
    * both — the smallest σ meeting both.

    When no σ meets a target, a warning is issued and the closest feasible compromise is returned
    (the lowest stability error within the fidelity bound, or the lowest error of the violated kind).

    Args:
        noise_levels: the σ grid (``>= 0``, no repeats, any order).
        stability, fidelity: one error per noise level (same units within each list).
    Returns:
        :class:`Recommendation`; ``table`` lists every grid point sorted by σ.
    """
    grid = check_noise_grid(noise_levels)
    stab = _as_floats(stability, "stability", len(grid))
    fid = _as_floats(fidelity, "fidelity", len(grid))
    if len(grid) < 2:
        raise ValueError(f"`noise_levels` must hold at least 2 noise levels to trade off, got {grid}")
    for value, name in ((stability_target, "stability_target"), (fidelity_bound, "fidelity_bound")):
        if value is not None:
            check_nonnegative(value, name)
    order = sorted(range(len(grid)), key=grid.__getitem__)
    grid, stab, fid = [grid[i] for i in order], [stab[i] for i in order], [fid[i] for i in order]
    s01, f01 = _scale01(stab), _scale01(fid)
    idx = range(len(grid))
    front = [
        i
        for i in idx
        if not any(stab[j] <= stab[i] and fid[j] <= fid[i] and (stab[j], fid[j]) != (stab[i], fid[i]) for j in idx)
    ]
    end0 = min(front, key=lambda i: (fid[i], stab[i], grid[i]))  # the front's low-fidelity-error end
    end1 = min(front, key=lambda i: (stab[i], fid[i], grid[i]))  # its low-stability-error end
    # signed distance of (f, s) to the chord end0 -> end1; positive on the side of the ideal point (0, 0)
    (x0, y0), (x1, y1) = (f01[end0], s01[end0]), (f01[end1], s01[end1])
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy)
    sign = 1.0 if (dx * (0.0 - y0) - dy * (0.0 - x0)) >= 0 else -1.0
    dist = [0.0 if length == 0 else sign * (dx * (s - y0) - dy * (f - x0)) / length for f, s in zip(f01, s01)]
    table = [
        {
            "noise_level": g,
            "stability": s,
            "fidelity": f,
            "stability_scaled": ss,
            "fidelity_scaled": fs,
            "knee_distance": d,
            "pareto_optimal": i in front,
        }
        for i, (g, s, f, ss, fs, d) in enumerate(zip(grid, stab, fid, s01, f01, dist))
    ]

    def describe(i: int) -> str:
        return f"σ={grid[i]:g}: stability error {stab[i]:.4g}, fidelity error {fid[i]:.4g}"

    if stability_target is None and fidelity_bound is None:
        if len(front) == 1:
            reason = (
                f"{describe(front[0])} is at least as good on both errors as every other σ of the grid "
                f"(it dominates; from {describe(0)} to {describe(len(grid) - 1)})"
            )
            return Recommendation(grid[front[0]], "knee", reason, table)
        best = max(front, key=lambda i: (dist[i], -grid[i]))
        if dist[best] > 1e-12:
            reason = (
                f"knee of the stability–fidelity front at {describe(best)} "
                f"(front from {describe(end0)} to {describe(end1)}); it lies {dist[best]:.3f} below the chord "
                f"after scaling both errors to [0, 1]"
            )
            return Recommendation(grid[best], "knee", reason, table)
        best = min(front, key=lambda i: (math.hypot(f01[i], s01[i]), grid[i]))
        reason = (
            f"the front has no knee (no point lies below the chord from σ={grid[end0]:g} to σ={grid[end1]:g}); "
            f"the point closest to zero scaled error is {describe(best)}"
        )
        return Recommendation(grid[best], "knee", reason, table)

    within = [i for i in idx if fidelity_bound is None or fid[i] <= fidelity_bound]
    if stability_target is None:
        if within:
            best = max(within, key=grid.__getitem__)
            reason = f"largest σ with fidelity error <= {fidelity_bound:g}: {describe(best)}"
        else:
            best = min(idx, key=lambda i: (fid[i], grid[i]))
            warnings.warn(f"no noise level keeps the fidelity error <= {fidelity_bound:g}", UserWarning, stacklevel=2)
            reason = f"no σ keeps fidelity error <= {fidelity_bound:g}; the lowest fidelity error is at {describe(best)}"
        return Recommendation(grid[best], "fidelity_bound", reason, table)

    rule = "stability_target" if fidelity_bound is None else "stability_target+fidelity_bound"
    bound_text = "" if fidelity_bound is None else f" and fidelity error <= {fidelity_bound:g}"
    feasible = [i for i in within if stab[i] <= stability_target]
    if feasible:
        best = min(feasible, key=grid.__getitem__)
        reason = f"smallest σ with stability error <= {stability_target:g}{bound_text}: {describe(best)}"
        return Recommendation(grid[best], rule, reason, table)
    pool = within or list(idx)
    best = min(pool, key=lambda i: (stab[i], grid[i]))
    warnings.warn(
        f"no noise level reaches stability error <= {stability_target:g}{bound_text}", UserWarning, stacklevel=2
    )
    reason = (
        f"no σ reaches stability error <= {stability_target:g}{bound_text}; "
        f"the lowest stability error{' within the bound' if within and fidelity_bound is not None else ''} "
        f"is at {describe(best)}"
    )
    return Recommendation(grid[best], rule, reason, table)
