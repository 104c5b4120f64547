r"""Intervals over images with the coverage they claim, and verdicts stated only when they allow it.

A report number computed on a handful of images is one draw: another set of photos gives another
number. Every table entry of the report card therefore carries a **95 % bootstrap interval over
images**; this module fixes which one, the fewest images a verdict may rest on, and how many images
an undecided entry would need. The rules below were fixed (and their numbers measured, by
simulation, on data with a known answer) before they were applied to any report card.

**The interval: studentized bootstrap** (bootstrap-t; Efron & Tibshirani 1993, ch. 12.5; Hall 1988,
*Ann. Statist.* 16(3):927–953), images the units, ``n_boot = 2000`` seeded resamples
(:mod:`smoothsal.metrics.bootstrap` computes it, vectorised):

.. math:: \Big[\hat\theta - t^*_{(0.975)}\,\widehat{se},\ \hat\theta - t^*_{(0.025)}\,\widehat{se}\Big],
          \qquad t^*_b = \frac{\theta^*_b - \hat\theta}{\widehat{se}^*_b}

for a mean and for a ratio of means :math:`\hat R = \sum_i s_i / \sum_i r_i` (linearised standard
error). **Why it replaced the percentile interval**: the percentile interval is too narrow on few,
skewed values -- its spread is that of a mean of :math:`n` draws from the sample, which ignores the
:math:`t` quantile and the skew. We simulated datasets with a known mean from skewed
distributions like the real per-image scores and measured how often the nominal 95 % interval
holds the truth (``benchmarks/interval_coverage.py`` -> ``benchmarks/results/interval_coverage.md``:
4,000 datasets per cell, Monte-Carlo standard error of a coverage ≈ 0.0034; ``tests/test_intervals.py``
re-measures the rows marked * at n = 4, 8 and 18):

=========================  =====  =====  =====  =====  =====  =====
distribution, interval     n = 4  n = 5  n = 6  n = 8  n = 12 n = 18
=========================  =====  =====  =====  =====  =====  =====
beta(2, 5), percentile*    0.795  0.819  0.850  0.875  0.903  0.929
beta(2, 5), BCa            0.797  0.828  0.859  0.886  0.910  0.936
beta(2, 5), studentized*   0.945  0.941  0.944  0.954  0.952  0.959
beta(5, 1.2), studentized  0.943  0.943  0.949  0.946  0.951  0.955
lognormal(0, ½), stud.     0.938  0.936  0.932  0.931  0.937  0.946
ratio, beta pairs, BCa     0.797  0.850  0.862  0.889  0.915  0.933
ratio, beta pairs*, stud.  0.951  0.949  0.946  0.954  0.958  0.962
=========================  =====  =====  =====  =====  =====  =====

(ratio, beta pairs: :math:`r_i \sim` beta(5, 1.5), :math:`s_i = r_i u_i`, :math:`u_i \sim` beta(2, 3),
true :math:`\mathbb E s/\mathbb E r = 0.4`.) BCa corrects bias and skew but not the narrowness, so it
under-covers as the percentile interval does at these sizes. Limits, stated: on heavier skew the
studentized interval under-covers too -- lognormal(0, 1): 0.895, 0.893, 0.894, 0.897, 0.912, 0.923;
a ratio of log-normal pairs: 0.928, 0.925, 0.915, 0.931, 0.928, 0.929 (same n). At n = 3 every
studentized interval is infinite: a resample of three equal values (1 in 9) has no spread, so
:math:`t^*` is infinite beyond the 2.5 % tail.

**Fewest images** (:data:`MIN_IMAGES` = 4): the smallest n at which the studentized coverage lies in
[0.93, 0.97] for every reference distribution above (beta(2, 5), beta(5, 1.2), lognormal(0, ½), the
beta ratio) and stays there at every larger n measured (5, 6, 8, 12, 18). Below it the verdict is
``"inconclusive"`` and says "too few images". Four images give an interval that covers, not one
that is narrow: most verdicts on four images stay inconclusive, and say how many images would decide.

**Seeds as well as images** (:func:`two_level_interval`): where a result also depends on a
randomization seed or on which models were trained, the data are ``[S, N]`` (seeds × images) and
both levels are resampled -- crossed (the same images under every seed: seeds and images resampled
independently, McCullagh 2000; Owen 2007) or nested (each seed its own images). Simulated coverage
of the crossed studentized interval, :math:`x_{si} = a_s + b_i + e_{si}`, :math:`b_i` log-normal,
seed spread :math:`\mathrm{sd}(a)` from 0 to the image spread (1,000 datasets per cell, MC SE ≈
0.007): 0.912–0.949 at S = 3 seeds, N = 8 or 18 images; 0.930–0.956 at S = 5 (the percentile
interval: 0.788–0.932).

**Verdicts** (:func:`verdict`): a rule "pass when the statistic is below ``threshold``" passes only
when the *whole* interval lies below it, fails only when the whole interval lies at or above it,
and is ``"inconclusive"`` otherwise -- a point estimate on the right side of the line is not enough;
also inconclusive below :data:`MIN_IMAGES` images, and for an undefined or infinite bound.

**Images for 80 % power** (:func:`images_for_power`): the number of images :math:`n'` at which a
fresh sample, if the true value were the observed one and the per-image spread the observed one,
would give an interval that excludes the threshold with probability :data:`POWER` = 0.8 -- the usual
sample-size formula of a one-sample t test (e.g. Julious 2004, *Stat. Med.* 23:1921–1986):

.. math:: n' = \min\Big\{m \ge 2:\ \frac{|\hat\theta - \text{threshold}|\sqrt m}{\hat s}
          \ge t_{0.975,\,m-1} + t_{0.8,\,m-1}\Big\}, \qquad \hat s = \widehat{se}\,\sqrt n

It is a planning figure (the estimate moves with new images), stated as "≈ N images for 80 %
power". Simulated (``benchmarks/results/interval_coverage.md``): fresh normal samples of the size it
gives decided 0.81, 0.82, 0.80, 0.77 of the time at effects |gap|/sd = 0.3, 0.5, 0.8, 1.2. The
earlier card's "n ≈ N" was where the expected half-width meets the gap: samples of that size
decided 0.49, 0.46, 0.40 of the time (about 50 % power, less at small n).

Example:
    >>> iv = bootstrap_interval([0.1, 0.2, 0.15, 0.3, 0.25, 0.2], seed=0)
    >>> round(iv.estimate, 3), iv.low < iv.estimate < iv.high, iv.n
    (0.2, True, 6)
    >>> verdict(iv, 0.5, pass_if="below")
    'pass'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smoothsal.metrics.bootstrap import bootstrap_bounds, normal_quantile, t_quantile, two_level_bounds

__all__ = [
    "LEVEL",
    "METHOD",
    "MIN_IMAGES",
    "N_BOOT",
    "POWER",
    "Interval",
    "bootstrap_interval",
    "images_for_power",
    "images_needed",
    "mean_statistic",
    "ratio_of_means",
    "too_few_images",
    "two_level_interval",
    "verdict",
    "wilson_interval",
]

#: the interval's coverage, everywhere in the report card
LEVEL = 0.95
#: bootstrap resamples (the bounds move by < 0.01 of the spread between seeds at this size)
N_BOOT = 2000
#: the interval of the report card (module docstring: the coverage it buys)
METHOD = "studentized"
#: fewest images a verdict may rest on (module docstring: from the coverage simulation)
MIN_IMAGES = 4
#: the power of the "images for ... power" planning figure
POWER = 0.8


def mean_statistic(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis (units): ``[..., n] -> [...]``."""
    return a.mean(axis=-1)


def ratio_of_means(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    r""":math:`\sum_i a_i / \sum_i b_i` over the last axis (a ratio estimator, stable where single
    ratios :math:`a_i / b_i` are not); ``inf``/``NaN`` where the denominator's sum is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num.sum(axis=-1) / den.sum(axis=-1)


#: the callables above, by the name the bootstrap engine knows them by
_NAMED: dict[Callable[..., np.ndarray], str] = {mean_statistic: "mean", ratio_of_means: "ratio"}


@dataclass(frozen=True)
class Interval:
    """A statistic over ``n`` units with its bootstrap interval ``[low, high]``.

    Attributes:
        estimate, low, high: the statistic and its interval.
        n: units (images) it rests on.
        level: nominal coverage.
        se: the estimate's standard error (NaN where unknown: a percentile interval of a callable
            statistic, or an interval read back from an older file).
        method: ``"studentized"``, ``"bca"`` or ``"percentile"``.
        n_groups: seeds (or model pairs) resampled as well (1: images only).
    """

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    se: float = float("nan")
    method: str = METHOD
    n_groups: int = 1

    @property
    def defined(self) -> bool:
        """Both bounds are finite numbers."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float) -> bool:
        """The interval lies wholly on one side of ``value`` (never for an undefined interval)."""
        return self.defined and (self.high < value or self.low > value)

    def clipped(self, low: float = -math.inf, high: float = math.inf) -> Interval:
        """The interval intersected with the statistic's range ``[low, high]`` (a mean of
        probabilities stays in [0, 1]): the studentized interval is symmetric in ``t``, not in the
        range, and on few skewed values it can reach past a bound the statistic cannot. Clipping
        never lowers coverage (the true value lies in the range). NaN bounds stay NaN.

        Example:
            >>> Interval(0.6, 0.042, 5.228, 4).clipped(0.0, 1.0).high
            1.0
        """
        if low > high:
            raise ValueError(f"`low` must be <= `high`, got {low} > {high}")
        clip = lambda v: v if math.isnan(v) else min(max(v, low), high)  # noqa: E731
        return Interval(self.estimate, clip(self.low), clip(self.high), self.n, self.level, self.se, self.method,
                        self.n_groups)  # fmt: skip

    def format(self, digits: int = 3) -> str:
        """``"0.213 [0.150, 0.281]"`` (``–`` for NaN, ``∞`` for infinities)."""

        def f(v: float) -> str:
            if math.isnan(v):
                return "–"
            if math.isinf(v):
                return "∞" if v > 0 else "−∞"
            return f"{v:.{digits}f}"

        if not self.defined and math.isnan(self.low):
            return f(self.estimate)
        return f"{f(self.estimate)} [{f(self.low)}, {f(self.high)}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite values become ``None``)."""
        clean = lambda v: v if math.isfinite(v) else None  # noqa: E731
        return {"estimate": clean(self.estimate), "low": clean(self.low), "high": clean(self.high), "n": self.n,
                "level": self.level, "se": clean(self.se), "method": self.method, "n_groups": self.n_groups}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interval:
        """Inverse of :meth:`to_dict` (older files without ``se``/``method`` read as percentile intervals)."""
        nan = float("nan")
        val = lambda k: nan if d.get(k) is None else float(d[k])  # noqa: E731
        return cls(val("estimate"), val("low"), val("high"), int(d.get("n", 0)), float(d.get("level", LEVEL)),
                   val("se"), str(d.get("method", "percentile")), int(d.get("n_groups", 1)))  # fmt: skip


def _as_units(samples: Sequence[Any], ndim: int = 1) -> list[np.ndarray]:
    arrays = []
    for i, s in enumerate(samples):
        if hasattr(s, "detach"):  # a torch tensor
            s = s.detach().cpu().double().numpy()
        a = np.asarray(s, dtype=np.float64)
        if a.ndim != ndim:
            what = "one value per unit (1-D)" if ndim == 1 else "[seeds, images] (2-D)"
            raise ValueError(f"sample {i} must be {what}, got shape {a.shape}")
        arrays.append(a)
    if not arrays:
        raise ValueError("`samples`: give at least one sample (one value per unit)")
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError(f"paired samples must have one value per unit each, got shapes {[a.shape for a in arrays]}")
    finite = np.all([np.isfinite(a) for a in arrays], axis=0)
    keep = finite if ndim == 1 else finite.all(axis=0)  # 2-D: an image with a NaN under any seed is dropped
    return [a[..., keep] for a in arrays]


def _statistic_name(statistic: str | Callable[..., np.ndarray] | None, n_samples: int) -> str | Callable[..., Any]:
    if statistic is None:
        if n_samples != 1:
            raise ValueError("`statistic` is required for more than one sample (e.g. ratio_of_means)")
        return "mean"
    name = statistic if isinstance(statistic, str) else next((v for k, v in _NAMED.items() if k is statistic), statistic)
    if isinstance(name, str) and name not in ("mean", "ratio"):
        raise ValueError(f"`statistic` must be 'mean', 'ratio' or a callable, got {statistic!r}")
    if name == "mean" and n_samples != 1 or name == "ratio" and n_samples != 2:
        raise ValueError(f"`statistic` {name!r} takes {1 if name == 'mean' else 2} sample(s), got {n_samples}")
    return name


def bootstrap_interval(
    *samples: Any,
    statistic: str | Callable[..., np.ndarray] | None = None,
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
    method: str = METHOD,
) -> Interval:
    r"""Bootstrap interval of a statistic over units (images): the module docstring's rule.

    Paired samples (two numbers per image, e.g. a similarity and its reference) are resampled
    together; units with a NaN in any sample are dropped first (``n`` counts the rest).

    Args:
        samples: one or more 1-D arrays/tensors/lists of equal length ``n``, paired by unit.
        statistic: ``"mean"`` (default for one sample, also :func:`mean_statistic`), ``"ratio"``
            (two samples: :math:`\sum s / \sum r`, also :func:`ratio_of_means`), or another callable
            that reduces the **last** axis, vectorised over leading ones (``method="bca"`` or
            ``"percentile"`` only).
        level: coverage in (0, 1).
        n_boot: resamples (>= 100).
        seed: seed of the resampling (``numpy.random.default_rng(seed)``).
        method: ``"studentized"`` (the card's), ``"bca"`` or ``"percentile"`` (the earlier card's).
    Returns:
        :class:`Interval`; NaN bounds when fewer than 2 units are left after dropping NaNs.
    """
    units = _as_units(samples)
    name = _statistic_name(statistic, len(units))
    n = units[0].shape[0]
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, 0, level, nan, method)
    if n < 2:
        est = float(units[0][0] if name == "mean" else (ratio_of_means(*units) if name == "ratio" else name(*units)))
        return Interval(est, nan, nan, n, level, nan, method)
    b = bootstrap_bounds(units[0], units[1] if len(units) > 1 else None, statistic=name, method=method,
                         level=level, n_boot=n_boot, seed=seed)  # fmt: skip
    return Interval(float(b.estimate), float(b.low), float(b.high), n, level, float(b.se), method)


def two_level_interval(
    *samples: Any,
    statistic: str = "mean",
    design: str = "crossed",
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
    method: str = METHOD,
) -> Interval:
    r"""Interval of the grand mean (or :math:`\sum s/\sum r`) of ``[S, N]`` data, seeds and images both
    resampled (module docstring; :func:`smoothsal.metrics.bootstrap.two_level_bounds`).

    Args:
        samples: one (mean) or two (ratio: numerators, denominators) ``[S, N]`` arrays: row = a
            randomization seed or a retrained model pair, column = an image. An image with a NaN
            under any seed is dropped.
        statistic: ``"mean"`` or ``"ratio"``.
        design: ``"crossed"`` (the same images under every seed) or ``"nested"`` (each its own).
        level, n_boot, seed: as :func:`bootstrap_interval`.
        method: ``"studentized"`` or ``"percentile"``.
    Returns:
        :class:`Interval` with ``n`` = images, ``n_groups`` = seeds. With a single seed it is
        :func:`bootstrap_interval` over the images (nothing to resample at the seed level).
    """
    units = _as_units(samples, ndim=2)
    if statistic not in ("mean", "ratio") or len(units) != (1 if statistic == "mean" else 2):
        raise ValueError(f"`statistic` must be 'mean' (one sample) or 'ratio' (two), got {statistic!r} "
                         f"with {len(units)} sample(s)")  # fmt: skip
    s, n = units[0].shape
    if s == 1:
        return bootstrap_interval(*[u[0] for u in units], statistic=statistic, level=level, n_boot=n_boot, seed=seed,
                                  method=method)  # fmt: skip
    nan = float("nan")
    if n < 2:
        est = float(units[0].mean()) if statistic == "mean" else float(units[0].sum() / units[1].sum()) if n else nan
        return Interval(est, nan, nan, n, level, nan, method, s)
    b = two_level_bounds(units[0], units[1] if len(units) > 1 else None, statistic=statistic, design=design,
                         method=method, level=level, n_boot=n_boot, seed=seed)  # fmt: skip
    return Interval(float(b.estimate), float(b.low), float(b.high), n, level, float(b.se), method, s)


def wilson_interval(hits: Any, level: float = LEVEL) -> Interval:
    r"""Wilson score interval of a proportion: the report card's interval for a per-image hit or
    miss (the pointing game), where the studentized bootstrap breaks down.

    With :math:`\hat p = k/n` hits and :math:`z = \Phi^{-1}(1 - \alpha/2)` (Wilson 1927, *JASA*
    22:209–212):

    .. math:: \frac{\hat p + \frac{z^2}{2n}}{1 + \frac{z^2}{n}} \pm
              \frac{z}{1 + \frac{z^2}{n}} \sqrt{\frac{\hat p (1 - \hat p)}{n} + \frac{z^2}{4n^2}}

    Why not the bootstrap-t: a resample of 0/1 values that are all equal has no spread, so its
    :math:`t^*` is infinite; near :math:`\hat p = 1` that happens often (128 images with 2 misses:
    :math:`(126/128)^{128} \approx 13\,\%` of resamples), the 2.5 % tail of :math:`t^*` is infinite
    and the interval runs to the range's end. The Wilson interval stays inside [0, 1] and covers
    near the nominal level from a few dozen units on, unlike the Wald interval (Brown, Cai &
    DasGupta 2001, *Statist. Sci.* 16:101–133, who recommend it for these sizes).

    Args:
        hits: 1-D values in {0, 1} (NaNs dropped).
        level: coverage in (0, 1).
    Returns:
        :class:`Interval` with ``method="wilson"`` and ``se`` = :math:`\sqrt{\hat p(1-\hat p)/n}`;
        NaN bounds without units.

    Example:
        >>> iv = wilson_interval([1] * 8 + [0] * 2)
        >>> round(iv.low, 4), round(iv.high, 4)
        (0.4902, 0.9433)
    """
    x = _as_units([hits])[0]
    if not np.all((x == 0) | (x == 1)):
        raise ValueError(f"`hits` must be 0 or 1 per unit, got values {sorted(set(x.tolist()))[:5]}")
    n = int(x.shape[0])
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, 0, level, nan, "wilson")
    p = float(x.mean())
    z = float(normal_quantile(1 - (1 - level) / 2))
    shrink = 1 + z * z / n
    center = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, center - half), min(1.0, center + half), n, level, math.sqrt(p * (1 - p) / n), "wilson")


def too_few_images(interval: Interval, min_images: int = MIN_IMAGES) -> bool:
    """Whether ``interval`` rests on fewer than ``min_images`` images (:data:`MIN_IMAGES`)."""
    return interval.n < min_images


def verdict(interval: Interval, threshold: float, pass_if: str = "below", *, min_images: int = MIN_IMAGES) -> str:
    """``"pass"``, ``"fail"`` or ``"inconclusive"`` for the rule "pass when the statistic is
    ``pass_if`` (``"below"``/``"above"``) ``threshold``".

    ``"pass"`` needs the whole interval on the passing side (strictly), ``"fail"`` the whole interval
    on the other side (the threshold itself counts as failing: a statistic that sits exactly on
    it, with no spread, has not crossed it); anything else, an undefined or infinite interval, or
    fewer than ``min_images`` images (:func:`too_few_images`) is ``"inconclusive"``.
    """
    if pass_if not in ("below", "above"):
        raise ValueError(f"`pass_if` must be 'below' or 'above', got {pass_if!r}")
    if not interval.defined or too_few_images(interval, min_images):
        return "inconclusive"
    lo, hi = interval.low, interval.high
    if pass_if == "below":
        if hi < threshold:
            return "pass"
        if lo >= threshold:
            return "fail"
    else:
        if lo > threshold:
            return "pass"
        if hi <= threshold:
            return "fail"
    return "inconclusive"


def _per_unit_sd(interval: Interval, threshold: float) -> float:
    """The per-image spread behind ``interval``: ``se·√n``, or (no ``se``) from the half-width on
    the threshold's side, as a normal interval's ``h = z·se``."""
    if math.isfinite(interval.se) and interval.se > 0:
        return interval.se * math.sqrt(interval.n)
    if not interval.defined:
        return float("nan")
    h = (interval.high - interval.estimate) if threshold > interval.estimate else (interval.estimate - interval.low)
    z = float(normal_quantile(0.5 + interval.level / 2))
    return h / z * math.sqrt(interval.n) if h > 0 else float("nan")


def images_for_power(interval: Interval, threshold: float, power: float = POWER, *, max_images: int = 10**7) -> int | None:
    r"""Images at which a fresh sample would exclude ``threshold`` with probability ``power``.

    The module docstring's formula: the smallest :math:`m \ge 2` with
    :math:`|\hat\theta - \text{threshold}|\sqrt m / \hat s \ge t_{(1+\text{level})/2,\,m-1} + t_{\text{power},\,m-1}`.
    For an interval that already excludes the threshold it is still the figure for a *fresh*
    sample (smaller or larger than ``interval.n``). ``None`` where the estimate sits on the
    threshold, the spread is unknown or zero, or more than ``max_images`` would be needed.

    Args:
        interval: the observed interval (its ``se`` and ``n``; without ``se``, its half-width).
        threshold: the verdict's line.
        power: in (0, 1), default :data:`POWER`.
        max_images: the largest answer (beyond it, ``None``: no practical number helps).
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"`power` must be in (0, 1), got {power!r}")
    est = interval.estimate
    if not math.isfinite(est) or est == threshold or interval.n < 2:
        return None
    sd = _per_unit_sd(interval, threshold)
    if not (math.isfinite(sd) and sd > 0):
        return None
    effect = abs(est - threshold) / sd
    q_level = 0.5 + interval.level / 2

    def enough(m: int) -> bool:
        return effect * math.sqrt(m) >= t_quantile(q_level, m - 1) + t_quantile(power, m - 1)

    z_guess = (float(normal_quantile(q_level)) + float(normal_quantile(power))) / effect
    m = max(2, math.floor(z_guess**2))
    if m > max_images:
        return None
    while m > 2 and enough(m - 1):  # the normal guess can overshoot by one or two
        m -= 1
    while not enough(m):
        m += 1
        if m > max_images:
            return None
    return m


def images_needed(interval: Interval, threshold: float) -> int | None:
    """The images an inconclusive entry would need: :func:`images_for_power` at :data:`POWER` (80 %).

    (The name of the earlier card's figure, which was the ~50 % power point; kept so callers read
    the 80 % figure under the old name.)
    """
    return images_for_power(interval, threshold, POWER)
