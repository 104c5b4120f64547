r"""Pass, fail or inconclusive: the verdicts of the sanity checks of :mod:`smoothsal.metrics.sanity`.

**The verdict rule** (fixed before any data were seen; :func:`sanity_verdict`)

Per image :math:`i`: :math:`s_i` = the mean over the cascade's checkpoints of the Spearman
correlation of :math:`|\Phi|` (signed: a map whose ranks reverse has changed), :math:`r_i` its
reference. The statistic is the **retained similarity**

.. math:: R = \frac{\sum_i s_i}{\sum_i r_i}

-- the share of the map's *reproducible* rank structure that survives the randomization
(:math:`1 - R` the share lost; for a deterministic method :math:`R = \bar s`, the mean
|Spearman| over the cascade of the earlier card). The cascade mean is the normalised area under
Adebayo et al.'s similarity-vs-depth curve: the end point alone would let a method pass that
ignores its top layers until the lowest are scrambled too (Guided Backprop keeps similarity ≈ 1
after the classifier is re-initialised, their Fig. 2); with checkpoints spaced over the depth
(:func:`spaced_layers`) every depth weighs alike. The threshold is :data:`MPRT_THRESHOLD` = 0.5:
a map that keeps more than half of its reproducible structure after its model is destroyed does
not explain that model. With the bootstrap 95 % interval of :math:`R` over images
(:mod:`smoothsal.metrics.intervals`, images resampled in pairs :math:`(s_i, r_i)`):

* **pass** when the interval lies below 0.5; **fail** when it lies at or above 0.5;
* **inconclusive** otherwise, with the images for 80 % power
  (:func:`~smoothsal.metrics.intervals.images_needed`), or on too few images
  (:data:`~smoothsal.metrics.intervals.MIN_IMAGES`); and always inconclusive when the
  reference's own interval does not lie above :data:`MIN_REFERENCE` = 0.1: two estimates of the
  same model's map then share (almost) no rank structure, so there is nothing measurable for the
  randomization to destroy (a map of pure sampling noise, whose reference is 0 in expectation
  and whose interval excludes 0 by chance one time in twenty) -- more samples per map are
  needed, not more images. 0.1 is ten times the per-image spread of the Spearman correlation of
  two independent 100 × 100 noise maps (:math:`1/\sqrt{d}`), and half of what SmoothGrad with
  8 samples reaches on EfficientNet-Lite0 (≈ 0.2).

eMPRT's rule (:func:`emprt_verdict`): the mean ratio over images, **pass** when its interval lies
above :data:`EMPRT_THRESHOLD` = 1 (complexity rises), **fail** when it lies at or below 1.
Hedström et al. report the ratio without a threshold; 1 is the "no change" value, the natural line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from smoothsal._core.validation import check_choice
from smoothsal.metrics.intervals import (
    Interval,
    bootstrap_interval,
    images_needed,
    ratio_of_means,
    too_few_images,
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
        reference: the reference's interval (``None`` for eMPRT); ``by_construction`` when it is 1
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


def retained_similarity(
    similarity: Any, reference: Any, *, threshold: float = MPRT_THRESHOLD, by_construction: bool = False,
    seed: int = 0, what: str = "",
) -> SanityVerdict:  # fmt: skip
    r"""The rule of the module docstring on per-image :math:`s_i` and :math:`r_i` (1-D, paired).

    Used by :func:`sanity_verdict`, and by the report card on stored per-image values.
    """
    threshold = _check_threshold(threshold)
    s = torch.as_tensor(similarity, dtype=torch.float64).flatten()
    r = torch.as_tensor(reference, dtype=torch.float64).flatten()
    ref = bootstrap_interval(r, seed=seed)
    iv = bootstrap_interval(s, r, statistic=ratio_of_means, seed=seed)
    ref_text = "1 by construction (deterministic method)" if by_construction else f"{ref.format()}"
    head = f"retained similarity R = Σs/Σr = {iv.format()} over {iv.n} image(s){what}; reference r = {ref_text}"
    if too_few_images(iv):
        v, need = "inconclusive", images_needed(iv, threshold)
        why = f"{head}; too few images for an interval that covers: inconclusive (too few images)"
    elif not _reproducible(ref, by_construction):
        v, need = "inconclusive", None
        why = (f"{head}; two estimates of the same model's map barely agree (reference interval not above "
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


def sanity_verdict(
    result: MPRTResult | DataRandomizationResult, threshold: float = MPRT_THRESHOLD, metric: str = "spearman_abs",
    *, seed: int = 0,
) -> SanityVerdict:  # fmt: skip
    r"""Pass / fail / inconclusive by the rule fixed in the module docstring (retained similarity
    :math:`R = \sum_i s_i / \sum_i r_i` against ``threshold``, with its bootstrap 95 % interval).

    * cascading or independent MPRT: :math:`s_i` = image :math:`i`'s similarity averaged over the
      checkpoints (the normalised area under the similarity-vs-depth curve);
    * data randomization: :math:`s_i` between the true-label and the random-label model.

    An input-only edge detector keeps :math:`R = 1` and fails; a pure-noise map is inconclusive.

    Args:
        result: from :func:`model_parameter_randomization` or :func:`data_randomization`.
        threshold: in (0, 1] (default :data:`MPRT_THRESHOLD`, fixed before the data).
        metric: one of :data:`SIMILARITY_METRICS` for :math:`s_i` (the reference is always the
            Spearman of ``|map|``, so keep the default unless you know why).
        seed: seed of the bootstrap.
    """
    check_choice(metric, "metric", SIMILARITY_METRICS)
    _check_threshold(threshold)
    if isinstance(result, MPRTResult):
        s = result.per_image(metric)
        where = f" ({result.order} MPRT, {len(result.layers)} checkpoint(s) down to {result.layers[-1]!r}, init {result.init})"
    elif isinstance(result, DataRandomizationResult):
        s = result.per_image(metric)
        where = " (true-label vs random-label model)"
    else:
        raise TypeError(f"`result` must be an MPRTResult or DataRandomizationResult, got {type(result).__name__}")
    if bool(torch.isnan(s).all()):
        raise ValueError(f"`metric` {metric!r} is undefined (NaN) for these maps; use 'spearman_abs'")
    r = result.reference if result.reference is not None else torch.ones_like(s)
    return retained_similarity(s, r, threshold=threshold, by_construction=result.reference_by_construction,
                               seed=seed, what=where)  # fmt: skip


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

