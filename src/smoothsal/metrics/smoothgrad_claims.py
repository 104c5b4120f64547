r"""SmoothGrad's claims (Smilkov et al. 2017, arXiv:1706.03825) as numbers, and the rules that score them.

``smoothsal reproduce smoothgrad`` measures five of the paper's claims, each as a number with a
95 % interval, beside a control where one is needed, and states **agrees / disagrees /
inconclusive by the rules below, fixed before any data were seen** (the reason for each is
given with it). Images are the units; where trained models are replicated (claim 5) the model
pairs are resampled as well (:func:`~smoothsal.metrics.intervals.two_level_interval`, crossed).
Fewer than :data:`~smoothsal.metrics.intervals.MIN_IMAGES` images: inconclusive.

1. **Smoothing sharpens, beyond blurring** (Secs. 3.2–3.3, Figs. 3 and 5: SmoothGrad maps are
   sharper, "the highlights are only on the object of interest"). Score: relevance mass inside the object (:func:`~smoothsal.metrics.localization.relevance_mass`
   of :math:`|a|`; the synthetic scenes' masks, MNIST's stroke pixels :math:`x > 0.5`) of
   SmoothGrad at the run's σ, minus that of the **control**: the gradient's magnitude blurred by a
   Gaussian to the same normalised total variation as the SmoothGrad map
   (:func:`~smoothsal.metrics.smoothness.blur_to_smoothness`). Per data set, :func:`direction_verdict`
   ``"up"`` on the mean paired difference; the claim over data sets by :func:`combine_verdicts`.
   *Why the blur*: any averaging smooths, and a smoother map may sit more on a compact object for
   that reason alone; SmoothGrad must beat the smoothing it brings. The pointing game is reported
   beside it and does not vote.
2. **The best noise level is 10–20 %** (Sec. 3.2, Fig. 3: "10%-20% noise ... seems to balance the
   sharpness of sensitivity map and maintain the structure of the original image"). Score: the same relevance mass for
   SmoothGrad over σ ∈ {0, 2.5, 5, 10, 15, 20, 30, 50 %}; the σ that maximises the mean over
   images, and the 2.5–97.5 % percentiles of that argmax over bootstrap resamples of the images
   (:func:`argmax_interval`). :func:`range_verdict`: agrees when the whole interval lies within
   [10 %, 20 %], disagrees when it lies wholly outside, otherwise inconclusive. *Why*: the
   paper's claim is a range, so the interval must sit inside it to agree.
3. **n ≈ 50 samples is enough** (Sec. 3.2, Fig. 4: "little apparent change in the visualizations
   for n > 50"). Score: per image, the smallest n of
   {1, 2, 5, 10, 20, 50, 100, ...} at which SmoothGrad's map reaches SSIM 0.9
   (:func:`~smoothsal.metrics.similarity.ssim_maps`) to a map of many more *independent* draws
   (:func:`n_reaching`; an image that never reaches it counts as twice the largest n tried); the
   median over images with its percentile bootstrap interval, and the mean's relative standard
   error across images. :func:`range_verdict` against [1, 50]: agrees when the interval's upper
   end is at most 50, disagrees when its lower end is above 50. *Why*: "enough" means 50 draws
   already give a map close to the converged one.
4. **Discriminativity** (Sec. 3.3, Fig. 6: the map of the monkey class on the monkey, not the spoon). On composites of two objects side by side (two MNIST
   digits of different classes; two photos with different top-1 classes), the map of each
   object's class: the share of its magnitude on its own half (:func:`~smoothsal.metrics.smoothness.half_share`),
   averaged over the two classes of a composite (0.5 = no discrimination). Smoothed minus raw,
   :func:`direction_verdict` ``"up"``, per data set, combined by :func:`combine_verdicts`.
5. **Training with noise** (Sec. 3.5, Figs. 8–9: adding noise during training "also improves the
   sharpness of the sensitivity map"). MNIST models trained without and with input noise
   (:func:`smoothsal.studies.train.noise_models`, 3 replicate pairs), scored by claim 1's
   relevance mass and claim 4's share (the gradient, raw): noisy-trained minus plain, pairs ×
   images, :func:`direction_verdict` ``"up"`` each, combined by :func:`combine_verdicts`. *Why not
   stability error*: the paper's claim is about the maps' sharpness and what they single out, not
   about agreement between models.

:func:`combine_verdicts`: agrees when every part agrees, disagrees when any part disagrees,
otherwise inconclusive (a claim holds only where it was tested and held).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from smoothsal.metrics.intervals import MIN_IMAGES, Interval

__all__ = [
    "PAPER_BEST_SIGMA",
    "PAPER_ENOUGH_SAMPLES",
    "SSIM_TARGET",
    "VERDICTS",
    "argmax_interval",
    "combine_verdicts",
    "direction_verdict",
    "median_interval",
    "n_reaching",
    "range_verdict",
]

#: the three outcomes of a claim
VERDICTS = ("agrees", "disagrees", "inconclusive")
#: the paper's best noise level, σ / (x_max − x_min) (Sec. 3.2: "10%-20%")
PAPER_BEST_SIGMA = (0.10, 0.20)
#: the paper's sample size beyond which maps change little (Sec. 3.2: "n > 50")
PAPER_ENOUGH_SAMPLES = 50
#: claim 3's closeness to the converged map
SSIM_TARGET = 0.9


def direction_verdict(interval: Interval, direction: str = "up") -> str:
    """``"agrees"`` when the interval of a difference lies wholly on the paper's side of 0
    (``"up"``: above, ``"down"``: below), ``"disagrees"`` when wholly on the other side, else
    ``"inconclusive"`` (also for an undefined interval or fewer than :data:`MIN_IMAGES` images).

    Example:
        >>> direction_verdict(Interval(0.05, 0.01, 0.09, 20)), direction_verdict(Interval(-0.05, -0.09, -0.01, 20))
        ('agrees', 'disagrees')
        >>> direction_verdict(Interval(0.05, -0.01, 0.09, 20)), direction_verdict(Interval(0.05, 0.01, 0.09, 3))
        ('inconclusive', 'inconclusive')
    """
    if direction not in ("up", "down"):
        raise ValueError(f"`direction` must be 'up' or 'down', got {direction!r}")
    if not interval.defined or interval.n < MIN_IMAGES:
        return "inconclusive"
    above, below = interval.low > 0, interval.high < 0
    if direction == "down":
        above, below = below, above
    return "agrees" if above else "disagrees" if below else "inconclusive"


def range_verdict(interval: Interval, low: float, high: float) -> str:
    """``"agrees"`` when ``[interval.low, interval.high]`` lies within ``[low, high]``,
    ``"disagrees"`` when it lies wholly outside (no overlap), else ``"inconclusive"`` (also for an
    undefined interval or fewer than :data:`MIN_IMAGES` images).

    Example:
        >>> range_verdict(Interval(0.15, 0.10, 0.15, 30), 0.10, 0.20), range_verdict(Interval(0.3, 0.3, 0.5, 30), 0.10, 0.20)
        ('agrees', 'disagrees')
        >>> range_verdict(Interval(0.15, 0.05, 0.15, 30), 0.10, 0.20)
        'inconclusive'
    """
    if low > high:
        raise ValueError(f"`low` must be <= `high`, got {low} > {high}")
    if not interval.defined or interval.n < MIN_IMAGES:
        return "inconclusive"
    if low <= interval.low and interval.high <= high:
        return "agrees"
    if interval.high < low or interval.low > high:
        return "disagrees"
    return "inconclusive"


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """The claim over its parts: agrees when all agree, disagrees when any disagrees, else inconclusive.

    Example:
        >>> combine_verdicts(["agrees", "agrees"]), combine_verdicts(["agrees", "disagrees"]), combine_verdicts(["agrees", "inconclusive"])
        ('agrees', 'disagrees', 'inconclusive')
    """
    parts = list(verdicts)
    if not parts or any(v not in VERDICTS for v in parts):
        raise ValueError(f"`verdicts` must be a non-empty list of {VERDICTS}, got {parts}")
    if all(v == "agrees" for v in parts):
        return "agrees"
    return "disagrees" if "disagrees" in parts else "inconclusive"


def _resampled(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def argmax_interval(scores: Any, grid: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    r"""The grid value maximising the mean score over images, with the ``level`` percentile interval
    of that argmax over bootstrap resamples of the images.

    Args:
        scores: ``[len(grid), N]`` one score per grid value and image.
        grid: the grid (e.g. noise levels), increasing.
        n_boot, seed, level: the bootstrap.
    Returns:
        :class:`~smoothsal.metrics.intervals.Interval` (``method="percentile"``) of grid values.

    Example:
        >>> s = np.array([[0.1, 0.2, 0.1, 0.2], [0.5, 0.6, 0.5, 0.6], [0.3, 0.2, 0.3, 0.2]])
        >>> iv = argmax_interval(s, [0.0, 0.1, 0.2])
        >>> iv.estimate, iv.low, iv.high
        (0.1, 0.1, 0.1)
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != g.shape[0]:
        raise ValueError(f"`scores` must be [len(grid)={g.shape[0]}, images], got {s.shape}")
    keep = np.isfinite(s).all(axis=0)
    s = s[:, keep]
    n = s.shape[1]
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level, math.nan, "percentile")
    est = float(g[int(np.argmax(s.mean(axis=1)))])
    if n < 2:
        return Interval(est, math.nan, math.nan, n, level, math.nan, "percentile")
    idx = _resampled(n, n_boot, seed)  # [B, n]
    means = s[:, idx].mean(axis=2)  # [G, B]
    best = g[np.argmax(means, axis=0)]  # [B]
    alpha = (1 - level) / 2
    return Interval(est, float(np.quantile(best, alpha, method="lower")), float(np.quantile(best, 1 - alpha, method="higher")),
                    n, level, math.nan, "percentile")  # fmt: skip


def median_interval(values: Any, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """The median over images with its percentile bootstrap interval (robust to the censored
    values of :func:`n_reaching`); ``se`` is the mean's standard error across images.

    Example:
        >>> iv = median_interval([10, 20, 20, 50, 20, 10, 20, 20])
        >>> iv.estimate, iv.low <= 20 <= iv.high
        (20.0, True)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    n = v.shape[0]
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level, math.nan, "percentile")
    se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    if n < 2:
        return Interval(float(v[0]), math.nan, math.nan, n, level, se, "percentile")
    meds = np.median(v[_resampled(n, n_boot, seed)], axis=1)
    alpha = (1 - level) / 2
    return Interval(float(np.median(v)), float(np.quantile(meds, alpha)), float(np.quantile(meds, 1 - alpha)), n, level,
                    se, "percentile")  # fmt: skip


def n_reaching(similarity: Any, sizes: Sequence[int], target: float = SSIM_TARGET) -> np.ndarray:
    """``[N]`` the smallest size whose similarity reaches ``target``, per image, from
    ``similarity`` ``[N, len(sizes)]``; ``2 * max(sizes)`` where none does (censored).

    Example:
        >>> n_reaching([[0.5, 0.85, 0.92, 0.95], [0.3, 0.5, 0.7, 0.8]], [1, 10, 50, 100]).tolist()
        [50.0, 200.0]
    """
    s = np.asarray(similarity, dtype=np.float64)
    n = np.asarray(sizes, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != n.shape[0]:
        raise ValueError(f"`similarity` must be [images, len(sizes)={n.shape[0]}], got {s.shape}")
    hit = s >= target
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), n[first], 2 * n.max())
