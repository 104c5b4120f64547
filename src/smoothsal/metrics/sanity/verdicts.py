r"""Pass, fail or inconclusive: the verdicts of the sanity checks of :mod:`smoothsal.metrics.sanity`.

**The verdict rule** (fixed before any data were seen; :func:`sanity_verdict`). Changed once, in
the repair of issue 20, before any card was run under it: the denominator is corrected on both
sides (:math:`\sqrt{r_i \tilde r_i}` instead of :math:`r_i`), the interval resamples the
randomization seeds as well as the images, and an undecided verdict names the images for 80 %
power. The earlier rule (:math:`R = \sum s_i / \sum r_i`, images only) is the special case
:math:`\tilde r_i = r_i` (it assumed the randomized map reproduces itself as well as the
original), one seed.

Per image :math:`i` (and randomization seed :math:`k`, where there are several: random-label
models trained on differently permuted labels, or re-initialisations):
:math:`s_{ki}` = the mean over the cascade's checkpoints of the Spearman correlation of
:math:`|\Phi|` between the original map and the randomized model's map (signed: a map whose
ranks reverse has changed); :math:`r_i` the **original map's reproducibility** (two independent
estimates of the original map); :math:`\tilde r_{ki}` the **randomized map's own
reproducibility** (two independent estimates under the randomized model, averaged over the
checkpoints like :math:`s`). Both are 1 by construction for a deterministic method. The
statistic is the **retained similarity**

.. math:: R = \frac{\sum_{k,i} s_{ki}}{\sum_{k,i} \sqrt{r_i^+\,\tilde r_{ki}^+}}, \qquad r^+ = \max(r, 0)

-- Spearman's correction for attenuation (Spearman 1904, *Am. J. Psychol.* 15:72–101: an
observed correlation divided by the geometric mean of the two measures' reliabilities), summed
over images as a ratio estimator. Why both sides: two maps that each reproduce themselves only
to :math:`r` and :math:`\tilde r` cannot agree better than :math:`\sqrt{r \tilde r}` even if the
model did not matter, and randomization changes how reproducible a map is (top-1 % mass 0.07 →
0.50 on Lite0 after randomization), so dividing by :math:`r` alone misreads a change of
reproducibility as a change of the map. :math:`R` is the share of the reproducible rank
structure that survives the randomization. The cascade mean is the normalised area under
Adebayo et al.'s similarity-vs-depth curve: the end point alone would let a method pass that
ignores its top layers until the lowest are scrambled too (Guided Backprop keeps similarity ≈ 1
after the classifier is re-initialised, their Fig. 2); with checkpoints spaced over the depth
(:func:`spaced_layers`) every depth weighs alike. The threshold is :data:`MPRT_THRESHOLD` = 0.5:
a map that keeps more than half of its reproducible structure after its model is destroyed does
not explain that model.

**Which parts are whose.** Adebayo et al. 2018 (arXiv:1810.03292) give the two randomization
tests (model parameters, cascading and independent; data: labels permuted, the model trained
until it fits them) and the similarity measures (Spearman of absolute and signed maps, SSIM,
HOGs); they judge by eye. **Ours**: the references :math:`r` and :math:`\tilde r` and the
correction, :math:`R`, the cascade mean, the threshold 0.5, the interval and the verdict rule.

**The interval** (:mod:`smoothsal.metrics.intervals`): the studentized bootstrap 95 % interval of
:math:`R`; with one seed the images are resampled in tuples :math:`(s_i, \sqrt{r_i \tilde r_i})`;
with :math:`S \ge 2` seeds (the card's data randomization uses 3 random-label models) seeds and
images are both resampled, crossed (:func:`~smoothsal.metrics.intervals.two_level_interval`):

* **pass** when the interval lies below 0.5; **fail** when it lies at or above 0.5;
* **inconclusive** otherwise, with "≈ N images for 80 % power"
  (:func:`~smoothsal.metrics.intervals.images_for_power`), or "too few images" below
  :data:`~smoothsal.metrics.intervals.MIN_IMAGES`; and always inconclusive when the
  reproducibility's interval (of :math:`\sqrt{r_i \tilde r_i}`) does not lie above
  :data:`MIN_REFERENCE` = 0.1: two estimates of the same map then share (almost) no rank
  structure, so there is nothing measurable for the randomization to destroy (a map of pure
  sampling noise, whose reference is 0 in expectation and whose interval excludes 0 by chance one
  time in twenty) -- more samples per map are needed, not more images. 0.1 is ten times the
  per-image spread of the Spearman correlation of two independent 100 × 100 noise maps
  (:math:`1/\sqrt{d}`), and half of what SmoothGrad with 8 samples reaches on EfficientNet-Lite0
  (≈ 0.2).

eMPRT's rule (:func:`emprt_verdict`): the mean ratio over images, **pass** when its interval lies
above :data:`EMPRT_THRESHOLD` = 1 (complexity rises), **fail** when it lies at or below 1.
Hedström et al. report the ratio without a threshold; 1 is the "no change" value, the natural line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from smoothsal._core.validation import check_choice
from smoothsal.metrics.intervals import (
    Interval,
    bootstrap_interval,
    images_needed,
    too_few_images,
    two_level_interval,
    verdict,
)
from smoothsal.metrics.sanity.compare import SIMILARITY_METRICS
from smoothsal.metrics.sanity.data import DataRandomizationResult
from smoothsal.metrics.sanity.mprt import MPRTResult

__all__ = [
    "EMPRT_THRESHOLD",
    "MIN_REFERENCE",
    "MPRT_THRESHOLD",
    "SanityVerdict",
    "emprt_verdict",
    "reproducibility",
    "retained_similarity",
    "sanity_verdict",
]

#: MPRT / data randomization: pass when the retained similarity R's interval lies below this
MPRT_THRESHOLD = 0.5
#: eMPRT: pass when the complexity ratio's interval lies above this
EMPRT_THRESHOLD = 1.0
#: a sampled map must reproduce itself at least this well (reference interval above it) to be tested
MIN_REFERENCE = 0.1


def _reproducible(reference: Interval | None, by_construction: bool) -> bool:
    """The rule's precondition: a deterministic map, no reference (eMPRT), or the reference's
    interval above :data:`MIN_REFERENCE`."""
    return by_construction or reference is None or reference.low > MIN_REFERENCE


@dataclass
class SanityVerdict:
    """Outcome of a sanity check.

    Attributes:
        verdict: ``"pass"``, ``"fail"`` or ``"inconclusive"``.
        score: the statistic (retained similarity R, or the mean eMPRT ratio).
        interval: its bootstrap interval over images.
        reference: the interval of the reproducibility √(r·r̃) (``None`` for eMPRT); ``by_construction`` when it is 1
            because the method is deterministic.
        images_needed: for an inconclusive verdict, the images the interval would need (``None``
            where more images cannot help); ``n`` otherwise.
        reason: the numbers, in words.
    """

    verdict: str
    score: float
    interval: Interval
    reason: str
    reference: Interval | None = None
    by_construction: bool = False
    images_needed: int | None = None

    @property
    def reproducible(self) -> bool:
        """Whether the map is reproducible enough for the rule to apply: deterministic, or the
        reference's interval above :data:`MIN_REFERENCE` (``True`` for eMPRT, which has no reference)."""
        return _reproducible(self.reference, self.by_construction)


    @property
    def passed(self) -> bool | None:
        """``True`` / ``False``, or ``None`` when inconclusive."""
        return {"pass": True, "fail": False}.get(self.verdict)


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be a number in (0, 1], got {threshold!r}")
    return float(threshold)


def _per_unit(values: Any, name: str) -> np.ndarray:
    """``values`` as float64 ``[N]`` (one seed) or ``[S, N]`` (seeds × images)."""
    a = np.asarray(values.detach().cpu().double().numpy() if hasattr(values, "detach") else values, dtype=np.float64)
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"`{name}` must be [images] or [seeds, images] values, got shape {a.shape}")
    return a


def reproducibility(reference: Any, randomized_reference: Any = None) -> np.ndarray:
    r""":math:`\sqrt{r^+ \tilde r^+}` per unit, the denominator of :math:`R` (``randomized_reference``
    ``None``: :math:`\tilde r = r`, the earlier rule's assumption, giving :math:`r^+`); negative
    reproducibilities count as 0 (no shared rank structure).

    Example:
        >>> reproducibility([0.81, 0.25, -0.1], [0.25, 1.0, 0.5]).round(3).tolist()
        [0.45, 0.5, 0.0]
    """
    r = np.clip(_per_unit(reference, "reference"), 0.0, None)
    if randomized_reference is None:
        return r
    rt = np.clip(_per_unit(randomized_reference, "randomized_reference"), 0.0, None)
    return np.sqrt(r * rt)


def retained_similarity(
    similarity: Any, reference: Any, randomized_reference: Any = None, *, threshold: float = MPRT_THRESHOLD,
    by_construction: bool = False, seed: int = 0, what: str = "",
) -> SanityVerdict:  # fmt: skip
    r"""The rule of the module docstring on per-image :math:`s`, :math:`r` and :math:`\tilde r`.

    Args:
        similarity: :math:`s`, ``[N]`` images or ``[S, N]`` seeds × images (the same images under
            every seed: resampled crossed).
        reference: :math:`r`, ``[N]`` (the original model's, shared by every seed) or shaped like
            ``similarity``.
        randomized_reference: :math:`\tilde r`, shaped like ``similarity`` (``None``: :math:`\tilde r = r`,
            the earlier rule :math:`\sum s / \sum r`; for a deterministic method both are 1).
        threshold: in (0, 1] (default :data:`MPRT_THRESHOLD`, fixed before the data).
        by_construction: the method is deterministic (:math:`r = \tilde r = 1`, said in the reason).
        seed: seed of the bootstrap.
        what: the test's description, inserted in the reason.
    Returns:
        :class:`SanityVerdict`; ``reference`` holds the interval of :math:`\sqrt{r \tilde r}`.

    Example (hand-computed: :math:`\sum s = 1.2`, :math:`\sum \sqrt{r \tilde r} = 0.9 + 0.6 + 0.3 + 0.6 = 2.4`):
        >>> v = retained_similarity([0.3, 0.4, 0.2, 0.3], [0.81, 0.36, 0.09, 0.36], [1.0, 1.0, 1.0, 1.0])
        >>> round(v.score, 3)
        0.5
    """
    threshold = _check_threshold(threshold)
    s = _per_unit(similarity, "similarity")
    r = _per_unit(reference, "reference")
    if r.shape != s.shape:
        if r.ndim == 1 and s.ndim == 2 and r.shape[0] == s.shape[1]:
            r = np.broadcast_to(r, s.shape)
        else:
            raise ValueError(f"`reference` must be [images] or shaped like `similarity` {s.shape}, got {r.shape}")
    rt = None if randomized_reference is None else _per_unit(randomized_reference, "randomized_reference")
    if rt is not None and rt.shape != s.shape:
        raise ValueError(f"`randomized_reference` must be shaped like `similarity` {s.shape}, got {rt.shape}")
    d = reproducibility(r, rt)
    if s.ndim == 2 and s.shape[0] > 1:
        iv = two_level_interval(s, d, statistic="ratio", design="crossed", seed=seed)
        ref = two_level_interval(d, statistic="mean", design="crossed", seed=seed)
        units = f"{iv.n} image(s) × {s.shape[0]} randomization seeds (both resampled)"
    else:
        s1, d1 = s.reshape(-1), d.reshape(-1)
        iv = bootstrap_interval(s1, d1, statistic="ratio", seed=seed)
        ref = bootstrap_interval(d1, seed=seed)
        units = f"{iv.n} image(s)"
    ref_text = "1 by construction (deterministic method)" if by_construction else f"{ref.format()}"
    head = f"retained similarity R = Σs/Σ√(r·r̃) = {iv.format()} over {units}{what}; reproducibility √(r·r̃) = {ref_text}"
    if too_few_images(iv):
        v, need = "inconclusive", images_needed(iv, threshold)
        why = f"{head}; too few images for an interval that covers: inconclusive (too few images)"
    elif not _reproducible(ref, by_construction):
        v, need = "inconclusive", None
        why = (f"{head}; two estimates of the same model's map barely agree (reproducibility interval not above "
               f"{MIN_REFERENCE}): nothing measurable to destroy, inconclusive -- more samples per map needed, "
               "not more images")  # fmt: skip
    else:
        v = verdict(iv, threshold, pass_if="below")
        need = images_needed(iv, threshold)
        if v == "pass":
            why = f"{head}; interval below {threshold}: passes, the maps change"
        elif v == "fail":
            why = f"{head}; interval at or above {threshold}: fails, the maps stay similar"
        else:
            more = f"≈ {need} images for 80 % power" if need is not None else "more images cannot separate it"
            why = f"{head}; interval contains {threshold}: inconclusive ({more})"
    return SanityVerdict(v, iv.estimate, iv, why, ref, by_construction, need)


def _stack(results: Sequence[MPRTResult | DataRandomizationResult], metric: str) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(s [S, N], r [S, N], r̃ [S, N] or None)`` of results on the same images."""
    s, r, rt = [], [], []
    for res in results:
        per = res.per_image(metric)
        s.append(per)
        r.append(res.reference if res.reference is not None else torch.ones_like(per))
        if isinstance(res, MPRTResult):
            rt.append(None if res.randomized_reference is None else res.per_image_randomized_reference())
        else:
            rt.append(res.randomized_reference)
    if len({tuple(x.shape) for x in s}) != 1:
        raise ValueError(f"`result`: every seed's result must hold the same images, got {[tuple(x.shape) for x in s]}")
    tilde = None if all(x is None for x in rt) else torch.stack([torch.ones_like(s[i]) if x is None else x for i, x in enumerate(rt)])
    return torch.stack(s), torch.stack(r), tilde


def sanity_verdict(
    result: MPRTResult | DataRandomizationResult | Sequence[MPRTResult | DataRandomizationResult],
    threshold: float = MPRT_THRESHOLD, metric: str = "spearman_abs", *, seed: int = 0,
) -> SanityVerdict:  # fmt: skip
    r"""Pass / fail / inconclusive by the rule fixed in the module docstring (retained similarity
    :math:`R = \sum s / \sum \sqrt{r \tilde r}` against ``threshold``, with its bootstrap 95 % interval).

    * cascading or independent MPRT: :math:`s_i` = image :math:`i`'s similarity averaged over the
      checkpoints (the normalised area under the similarity-vs-depth curve), :math:`\tilde r_i` likewise;
    * data randomization: :math:`s_i` between the true-label and the random-label model.

    A sequence of results (the same test under several randomization seeds, e.g. one per
    random-label model, on the same images) is judged together, seeds and images resampled.
    An input-only edge detector keeps :math:`R = 1` and fails; a pure-noise map is inconclusive.

    Args:
        result: from :func:`model_parameter_randomization` or :func:`data_randomization`, or a
            sequence of them (one per seed).
        threshold: in (0, 1] (default :data:`MPRT_THRESHOLD`, fixed before the data).
        metric: one of :data:`SIMILARITY_METRICS` for :math:`s_i` (the references are always the
            Spearman of ``|map|``, so keep the default unless you know why).
        seed: seed of the bootstrap.
    """
    check_choice(metric, "metric", SIMILARITY_METRICS)
    _check_threshold(threshold)
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    if not results:
        raise ValueError("`result`: give at least one result")
    first = results[0]
    if not all(type(r) is type(first) for r in results) or not isinstance(first, (MPRTResult, DataRandomizationResult)):
        raise TypeError(f"`result` must be an MPRTResult or DataRandomizationResult (or a sequence of one kind), got "
                        f"{[type(r).__name__ for r in results]}")  # fmt: skip
    if isinstance(first, MPRTResult):
        where = f" ({first.order} MPRT, {len(first.layers)} checkpoint(s) down to {first.layers[-1]!r}, init {first.init})"
    else:
        where = " (true-label vs random-label model)"
    s, r, rt = _stack(results, metric)
    if bool(torch.isnan(s).all()):
        raise ValueError(f"`metric` {metric!r} is undefined (NaN) for these maps; use 'spearman_abs'")
    by_construction = all(res.reference_by_construction for res in results)
    if len(results) == 1:
        s, r, rt = s[0], r[0], None if rt is None else rt[0]
    return retained_similarity(s, r, rt, threshold=threshold, by_construction=by_construction, seed=seed,
                               what=where)  # fmt: skip


def emprt_verdict(ratios: Any, *, seed: int = 0) -> SanityVerdict:
    """eMPRT's rule (module docstring): the mean ratio over images, pass when its interval lies above
    :data:`EMPRT_THRESHOLD` (complexity rises), fail when at or below it."""
    x = torch.as_tensor(ratios, dtype=torch.float64).flatten()
    iv = bootstrap_interval(x, seed=seed)
    v = verdict(iv, EMPRT_THRESHOLD, pass_if="above")
    need = images_needed(iv, EMPRT_THRESHOLD)
    head = f"mean eMPRT ratio H(randomized)/H(original) = {iv.format()} over {iv.n} image(s)"
    tail = {"pass": "complexity rises: passes", "fail": "complexity does not rise: fails"}.get(v)
    if tail is None:
        tail = f"interval contains 1: inconclusive ({f'≈ {need} images for 80 % power' if need else 'more images cannot separate it'})"
    return SanityVerdict(v, iv.estimate, iv, f"{head}; {tail}", None, False, need)

