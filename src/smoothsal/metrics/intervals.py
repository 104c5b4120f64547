r"""Bootstrap intervals over images, and verdicts that are stated only when the interval allows it.

A report number computed on a handful of images is one draw: another set of photos gives another
number. Every table entry of the report card therefore carries a **percentile bootstrap 95 %
interval over images** (Efron & Tibshirani 1993, ch. 13): the images are the units, drawn with
replacement ``n_boot`` times (seeded, so the same data give the same interval), the statistic is
recomputed on each resample, and the interval is the ``(1 - level)/2`` and ``(1 + level)/2``
quantiles of those values.

* Paired samples (two numbers per image, e.g. a similarity and its reference) are resampled
  together: the same images in every sample of a resample.
* Units with a NaN in any sample are dropped first (``n`` counts the rest).
* With fewer than 2 units the interval is undefined (NaN bounds); a verdict is then
  "inconclusive".

**Verdicts** (:func:`verdict`): a rule "pass when the statistic is below ``threshold``" passes only
when the *whole* interval lies below it, fails only when the whole interval lies at or above it,
and is ``"inconclusive"`` otherwise -- a point estimate on the right side of the line is not enough.

**How many images an inconclusive entry would need** (:func:`images_needed`): the interval's
half-width on the threshold's side, :math:`h`, shrinks like :math:`1/\sqrt n` (standard error of a
mean over independent images), so the interval stops touching the threshold once
:math:`h\sqrt{n/n'} < |\hat\theta - \text{threshold}|` (strictly), i.e.

.. math:: n' = \Big\lfloor n \,\Big(\frac{h}{|\hat\theta - \text{threshold}|}\Big)^2 \Big\rfloor + 1

assuming the estimate :math:`\hat\theta` stays where it is. It is a planning figure, not a
guarantee (the estimate moves with new images); where :math:`\hat\theta` sits on the threshold no
number of images helps (``None``).

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

__all__ = [
    "LEVEL",
    "N_BOOT",
    "Interval",
    "bootstrap_interval",
    "images_needed",
    "mean_statistic",
    "ratio_of_means",
    "verdict",
]

#: the interval's coverage, everywhere in the report card
LEVEL = 0.95
#: bootstrap resamples (the percentile bounds move by < 0.01 of the spread between runs at this size)
N_BOOT = 2000


def mean_statistic(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis (units): ``[..., n] -> [...]``."""
    return a.mean(axis=-1)


def ratio_of_means(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    r""":math:`\sum_i a_i / \sum_i b_i` over the last axis (a ratio estimator, stable where single
    ratios :math:`a_i / b_i` are not); ``inf``/``NaN`` where the denominator's sum is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num.sum(axis=-1) / den.sum(axis=-1)


@dataclass(frozen=True)
class Interval:
    """A statistic over ``n`` units with its percentile bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def defined(self) -> bool:
        """Both bounds are finite numbers."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float) -> bool:
        """The interval lies wholly on one side of ``value`` (never for an undefined interval)."""
        return self.defined and (self.high < value or self.low > value)

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
                "level": self.level}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interval:
        nan = float("nan")
        val = lambda k: nan if d.get(k) is None else float(d[k])  # noqa: E731
        return cls(val("estimate"), val("low"), val("high"), int(d.get("n", 0)), float(d.get("level", LEVEL)))


def _as_units(samples: Sequence[Any]) -> list[np.ndarray]:
    arrays = []
    for i, s in enumerate(samples):
        if hasattr(s, "detach"):  # a torch tensor
            s = s.detach().cpu().double().numpy()
        a = np.asarray(s, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"sample {i} must be one value per unit (1-D), got shape {a.shape}")
        arrays.append(a)
    if not arrays:
        raise ValueError("`samples`: give at least one sample (one value per unit)")
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError(f"paired samples must have one value per unit each, got lengths {[a.shape[0] for a in arrays]}")
    keep = np.all([np.isfinite(a) for a in arrays], axis=0) if n else np.zeros(0, dtype=bool)
    return [a[keep] for a in arrays]


def bootstrap_interval(
    *samples: Any,
    statistic: Callable[..., np.ndarray] | None = None,
    level: float = LEVEL,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Interval:
    r"""Percentile bootstrap interval of ``statistic(*samples)`` over units (images).

    Args:
        samples: one or more 1-D arrays/tensors/lists of equal length ``n``, paired by unit.
        statistic: a function of the samples that reduces their **last** axis, vectorised over the
            leading ones: called once with ``[n]`` arrays (the estimate) and once with
            ``[n_boot, n]`` resampled arrays. Default :func:`mean_statistic` (one sample).
            :func:`ratio_of_means` for two.
        level: coverage in (0, 1).
        n_boot: resamples (>= 100).
        seed: seed of the resampling (``numpy.random.default_rng(seed)``).
    Returns:
        :class:`Interval`; NaN bounds when fewer than 2 units are left after dropping NaNs.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"`n_boot` must be an int >= 100, got {n_boot!r}")
    units = _as_units(samples)
    if statistic is None:
        if len(units) != 1:
            raise ValueError("`statistic` is required for more than one sample (e.g. ratio_of_means)")
        statistic = mean_statistic
    n = units[0].shape[0]
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, 0, level)
    estimate = float(statistic(*units))
    if n < 2:
        return Interval(estimate, nan, nan, n, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))  # [n_boot, n] resampled unit indices
    values = np.asarray(statistic(*[u[idx] for u in units]), dtype=np.float64)  # [n_boot]
    alpha = (1.0 - level) / 2.0
    # non-finite resamples (a zero denominator) are extreme values: +inf sorts last, -inf first
    values = np.where(np.isnan(values), np.inf, values)
    low, high = np.quantile(values, [alpha, 1.0 - alpha], method="linear")
    return Interval(estimate, float(low), float(high), n, level)


def verdict(interval: Interval, threshold: float, pass_if: str = "below") -> str:
    """``"pass"``, ``"fail"`` or ``"inconclusive"`` for the rule "pass when the statistic is
    ``pass_if`` (``"below"``/``"above"``) ``threshold``".

    ``"pass"`` needs the whole interval on the passing side (strictly), ``"fail"`` the whole interval
    on the other side (the threshold itself counts as failing: a statistic that sits exactly on
    it, with no spread, has not crossed it); anything else, or an undefined interval, is
    ``"inconclusive"``.
    """
    if pass_if not in ("below", "above"):
        raise ValueError(f"`pass_if` must be 'below' or 'above', got {pass_if!r}")
    if not interval.defined:
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


def images_needed(interval: Interval, threshold: float) -> int | None:
    r"""Units an interval would need to exclude ``threshold``, from its half-width :math:`\propto 1/\sqrt n`.

    See the module docstring. ``interval.n`` when it already excludes it; ``None`` when the
    estimate sits on the threshold, or the interval is undefined or infinite.
    """
    if interval.excludes(threshold):
        return interval.n
    est = interval.estimate
    if not interval.defined or not math.isfinite(est) or est == threshold:
        return None
    h = (interval.high - est) if threshold > est else (est - interval.low)
    gap = abs(est - threshold)
    if h <= 0 or not math.isfinite(h):
        return None
    # the smallest n' with h·sqrt(n/n') < gap, i.e. n' > n (h/gap)^2 (rounded first: 64.0000001 is 64)
    return max(interval.n + 1, math.floor(round(interval.n * (h / gap) ** 2, 9)) + 1)
