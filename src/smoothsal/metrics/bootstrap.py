r"""Bootstrap engines behind the report card's intervals: studentized, BCa and percentile, one level
(images) or two (seeds × images), vectorised in numpy over resamples *and* over datasets.

:mod:`smoothsal.metrics.intervals` states the rules (which interval, which verdict); this module
computes them. Units are the last axis of every array; leading axes are independent datasets
(so a coverage simulation runs thousands of datasets in one call).

**Resampling.** ``n_boot`` resamples of the ``n`` units, drawn with
``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))`` (seeded: the same data give the same
interval), held as counts :math:`w_{bi}` (how often unit :math:`i` is in resample :math:`b`). The two
statistics of the report card are *linear* in the counts, so every resample is one matrix product:

* mean :math:`\hat\theta = \frac1n\sum_i x_i`, resampled :math:`\theta^*_b = \frac1n\sum_i w_{bi} x_i`;
* ratio of means :math:`\hat R = \sum_i s_i / \sum_i r_i` (the sanity checks' retained similarity),
  resampled :math:`R^*_b = \sum_i w_{bi} s_i / \sum_i w_{bi} r_i`.

**Standard errors** (needed by the studentized interval, and kept as :attr:`Bounds.se`):

.. math:: \widehat{se}(\bar x) = \sqrt{\frac{1}{n(n-1)}\sum_i (x_i - \bar x)^2}, \qquad
          \widehat{se}(\hat R) = \frac{1}{\bar r}\sqrt{\frac{1}{n(n-1)}\sum_i (s_i - \hat R r_i)^2}

(the second is the delta-method / linearisation standard error of a ratio estimator, Cochran 1977,
*Sampling Techniques*, §6.3), computed on every resample from the same counts.

**Intervals** at level :math:`1 - \alpha` (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*,
ch. 12–14; Davison & Hinkley 1997, §5.2–5.3):

* ``"studentized"`` (bootstrap-t): :math:`t^*_b = (\theta^*_b - \hat\theta)/\widehat{se}^*_b`,
  interval :math:`[\hat\theta - t^*_{(1-\alpha/2)}\widehat{se},\ \hat\theta - t^*_{(\alpha/2)}\widehat{se}]`.
  A resample whose standard error is 0 (all its units equal) has :math:`t^* = \pm\infty` (0 if its
  statistic equals :math:`\hat\theta`): with very few units such resamples pass the
  :math:`\alpha/2` tail and the interval becomes infinite -- honestly so.
* ``"bca"`` (bias-corrected and accelerated): the percentile interval at the adjusted levels
  :math:`\Phi\big(z_0 + \frac{z_0 + z_q}{1 - a(z_0 + z_q)}\big)`, :math:`z_0 = \Phi^{-1}(\#\{\theta^* <
  \hat\theta\}/B + \tfrac12\#\{\theta^* = \hat\theta\}/B)`, and the acceleration from the jackknife,
  :math:`a = \sum_i d_i^3 / \big(6 (\sum_i d_i^2)^{3/2}\big)`, :math:`d_i = \bar\theta_{(\cdot)} - \theta_{(i)}`.
* ``"percentile"``: the :math:`\alpha/2` and :math:`1-\alpha/2` quantiles of :math:`\theta^*` (the
  report card's rule before the change of :mod:`~smoothsal.metrics.intervals`).

**Two levels** (:func:`two_level_bounds`, data ``[..., S, N]``: ``S`` randomization seeds or retrained
model pairs, ``N`` images):

* ``design="crossed"`` -- the same ``N`` images under every seed (the sanity checks and the
  stability study: every model explains the same test images). Seeds and images are resampled
  *independently* and the resample is the sub-array :math:`X[s^*, i^*]` (the "pigeonhole"
  bootstrap of McCullagh 2000, *Resampling and exchangeable arrays*, Bernoulli 6(2):285–301, and
  Owen 2007, *The pigeonhole bootstrap*, Ann. Appl. Stat. 1(2):386–411). Resampling images within
  each seed independently would break the pairing of an image across seeds and treat one image's
  effect as if it were a new image under each seed. No bootstrap of a crossed design is exactly
  unbiased for the variance (McCullagh 2000); the pigeonhole one errs on the conservative side
  (Owen 2007, §3).
* ``design="nested"`` -- each seed has its own images (row ``s`` holds seed ``s``'s ``N`` images):
  resample seeds, then images within each resampled seed (Davison & Hinkley 1997, §3.8).

The studentized two-level interval takes its standard error from the two-way random-effects
decomposition :math:`x_{si} = \mu + a_s + b_i + e_{si}` (crossed) with ANOVA mean squares
:math:`MS_A, MS_B, MS_E`:

.. math:: \widehat{\mathrm{Var}}(\bar x) = \frac{\max(MS_A, MS_E) + \max(MS_B, MS_E) - MS_E}{SN}

(each variance component clipped at 0), and for the nested design
:math:`\widehat{\mathrm{Var}}(\bar x) = s^2_{\bar x_s}/S` (the spread of the seeds' means). A ratio of
means uses the linearised values :math:`u_{si} = (s_{si} - \hat R r_{si})/\bar r` in the same formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "DESIGNS",
    "METHODS",
    "STATISTICS",
    "Bounds",
    "bootstrap_bounds",
    "normal_cdf",
    "normal_quantile",
    "resample_counts",
    "resample_indices",
    "studentized_pvalue",
    "t_quantile",
    "two_level_bounds",
]

#: interval methods, the report card's first
METHODS = ("studentized", "bca", "percentile")
#: statistics with a closed-form resample (and a standard error): the mean of one sample, the
#: ratio of the sums of two paired samples
STATISTICS = ("mean", "ratio")
#: two-level resampling designs
DESIGNS = ("crossed", "nested")


@dataclass(frozen=True)
class Bounds:
    """Estimates and interval bounds of a batch of datasets (arrays shaped like the leading axes).

    Attributes:
        estimate: the statistic on the data.
        low, high: the interval (``±inf`` where too few distinct resamples exist; NaN where
            undefined, e.g. a zero denominator).
        se: the estimate's standard error (:func:`bootstrap_bounds`'s formulas).
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    se: np.ndarray


# ---- small numerical helpers -----------------------------------------------------------------------
def normal_quantile(p: Any) -> np.ndarray:
    r""":math:`\Phi^{-1}(p)`, elementwise (float64; ``±inf`` at 0 and 1)."""
    return torch.special.ndtri(torch.as_tensor(np.asarray(p, dtype=np.float64))).numpy()


def normal_cdf(z: Any) -> np.ndarray:
    r""":math:`\Phi(z)`, elementwise (float64)."""
    return torch.special.ndtr(torch.as_tensor(np.asarray(z, dtype=np.float64))).numpy()


def _t_cdf(t: float, df: int) -> float:
    """Student's t CDF for an integer ``df``, exact (Abramowitz & Stegun 1964, 26.7.3–26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    c2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:  # odd: A = (2/π)(θ + sin θ cos θ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        a = 2 / math.pi * (theta + sin * math.cos(theta) * total)
    else:  # even: A = sin θ (1 + cos²θ/2 + 1·3/(2·4) cos⁴θ + ...)
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        a = sin * total
    return 0.5 + a / 2


def t_quantile(p: float, df: float) -> float:
    r"""Quantile of Student's t with ``df`` degrees of freedom.

    Integer ``df`` up to 1,000: Newton's method on the exact CDF, started from the Cornish–Fisher
    expansion in :math:`1/\nu` (Abramowitz & Stegun 1964, 26.7.5), which is used alone beyond
    (error < 10⁻⁶ there). ``df = inf`` gives the normal quantile.
    """
    z = float(normal_quantile(p))
    if not math.isfinite(df):
        return z
    if df <= 0:
        raise ValueError(f"`df` must be > 0, got {df}")
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    t = z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    if df != int(df) or df > 1000:
        return t
    nu = int(df)
    log_c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    for _ in range(50):
        pdf = math.exp(log_c - (nu + 1) / 2 * math.log1p(t * t / nu))
        step = (_t_cdf(t, nu) - p) / pdf
        t -= step
        if abs(step) < 1e-12 * max(1.0, abs(t)):
            break
    return t


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` unit indices drawn with replacement (``default_rng(seed)``)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` float counts: how often each unit is in each resample of :func:`resample_indices`."""
    idx = resample_indices(n, n_boot, seed)
    flat = idx + n * np.arange(n_boot)[:, None]  # [n_boot, n], unique per resample
    return np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _check_common(method: str, level: float, n_boot: int) -> None:
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"`n_boot` must be an int >= 100, got {n_boot!r}")


def _quantiles(values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-row linear-interpolation quantiles: ``values [..., B]``, ``probs [...]`` -> ``[...]``.

    The same positions as ``np.quantile(method="linear")``: :math:`(B-1)p`. ``NaN`` sorts last.
    """
    b = values.shape[-1]
    ordered = np.sort(values, axis=-1)
    pos = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0) * (b - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, b - 1)
    frac = pos - lo
    v_lo = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):  # inf - inf where a neighbour is infinite: decided below
        out = v_lo + frac * (v_hi - v_lo)
    out = np.where(np.isposinf(v_hi) & (frac > 0), np.inf, out)  # an infinite neighbour wins
    out = np.where(np.isneginf(v_lo), -np.inf, out)
    return np.where(frac == 0, v_lo, out)


def _t_star(est: np.ndarray, se: np.ndarray, theta: np.ndarray, se_star: np.ndarray) -> np.ndarray:
    """Bootstrap t statistics ``(theta* - est) / se*`` ``[..., B]``, ±inf for resamples without spread."""
    diff = theta - est[..., None]
    # a resample of equal units has se* = 0 up to rounding: its sum of squares is ~1e-16 of the
    # sample's, so its se* ~1e-8 of se (the square root); 1e-6 separates it from any real spread
    spread = se_star > 1e-6 * se[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / se_star
        t = np.where(spread, t, np.where(np.abs(diff) <= 1e-12 * np.abs(est[..., None]), 0.0,
                                         np.copysign(np.inf, diff)))
    return np.where(np.isnan(t), np.inf, t)  # an undefined resample (zero denominator) is extreme


def _studentized(est: np.ndarray, se: np.ndarray, theta: np.ndarray, se_star: np.ndarray,
                 level: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Bootstrap-t bounds from ``theta``/``se_star`` ``[..., B]`` around ``est``/``se`` ``[...]``."""
    t = _t_star(est, se, theta, se_star)
    alpha = (1.0 - level) / 2.0
    t_lo = _quantiles(t, np.full(est.shape, alpha))
    t_hi = _quantiles(t, np.full(est.shape, 1.0 - alpha))
    with np.errstate(invalid="ignore"):
        low = np.where(se > 0, est - t_hi * se, est)
        high = np.where(se > 0, est - t_lo * se, est)
    return low, high


def _percentile(theta: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - level) / 2.0
    shape = theta.shape[:-1]
    return _quantiles(theta, np.full(shape, alpha)), _quantiles(theta, np.full(shape, 1.0 - alpha))


def _bca(est: np.ndarray, theta: np.ndarray, jack: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa bounds: ``theta [..., B]`` resamples, ``jack [..., n]`` leave-one-out values."""
    b = theta.shape[-1]
    below = (theta < est[..., None]).sum(axis=-1) + 0.5 * (theta == est[..., None]).sum(axis=-1)
    z0 = normal_quantile(np.clip(below / b, 0.5 / b, 1.0 - 0.5 / b))
    d = jack.mean(axis=-1, keepdims=True) - jack
    num, den = (d**3).sum(axis=-1), 6.0 * (d**2).sum(axis=-1) ** 1.5
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(den > 0, num / den, 0.0)
    alpha = (1.0 - level) / 2.0
    bounds = []
    for q in (alpha, 1.0 - alpha):
        zq = float(normal_quantile(q))
        with np.errstate(divide="ignore", invalid="ignore"):
            adj = z0 + (z0 + zq) / (1.0 - acc * (z0 + zq))
        bounds.append(_quantiles(theta, normal_cdf(adj)))
    return bounds[0], bounds[1]


# ---- one level -------------------------------------------------------------------------------------
def _linear_parts(x: np.ndarray, y: np.ndarray | None, counts: np.ndarray,
                  statistic: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(estimate, se, theta*, se*)`` of a mean (``y`` None) or ratio ``Σx/Σy`` over the last axis.

    ``x, y [..., n]``; ``counts [B, n]``; returns ``[...]``, ``[...]``, ``[..., B]``, ``[..., B]``.
    """
    n = x.shape[-1]
    if statistic == "mean":
        est = x.mean(axis=-1)
        u = x - est[..., None]  # centred: no cancellation in the sums of squares
        su = u @ counts.T  # [..., B] Σ w u
        suu = (u * u) @ counts.T
        theta = est[..., None] + su / n
        ss_star = np.maximum(suu - su * su / n, 0.0)  # Σ w (x - θ*)²
        se = np.sqrt((u * u).sum(axis=-1) / (n * (n - 1)))
        se_star = np.sqrt(ss_star / (n * (n - 1)))
        return est, se, theta, se_star
    with np.errstate(divide="ignore", invalid="ignore"):
        sx, sy = x.sum(axis=-1), y.sum(axis=-1)
        est = sx / sy
        safe = np.where(np.isfinite(est), est, 0.0)
        u = x - safe[..., None] * y  # [..., n] residuals at R̂
        sxw, syw = x @ counts.T, y @ counts.T  # [..., B]
        theta = sxw / syw
        dr = theta - safe[..., None]  # R* − R̂
        # Σ w (x − R* y)² = Σ w u² − 2 (R*−R̂) Σ w u y + (R*−R̂)² Σ w y²
        ss_star = (u * u) @ counts.T - 2 * dr * ((u * y) @ counts.T) + dr * dr * ((y * y) @ counts.T)
        se = np.sqrt((u * u).sum(axis=-1) / (n * (n - 1))) / np.abs(sy / n)
        se_star = np.sqrt(np.maximum(ss_star, 0.0) / (n * (n - 1))) / np.abs(syw / n)
    return est, se, theta, se_star


def _jackknife_linear(x: np.ndarray, y: np.ndarray | None, statistic: str) -> np.ndarray:
    """Leave-one-out statistics ``[..., n]`` of a mean or ratio."""
    n = x.shape[-1]
    if statistic == "mean":
        return (x.sum(axis=-1, keepdims=True) - x) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x.sum(axis=-1, keepdims=True) - x) / (y.sum(axis=-1, keepdims=True) - y)


def bootstrap_bounds(
    x: Any,
    y: Any = None,
    *,
    statistic: str | Callable[..., np.ndarray] = "mean",
    method: str = "studentized",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Bounds:
    r"""Bootstrap intervals of a mean or a ratio of means, for a batch of datasets at once.

    Args:
        x: ``[..., n]`` finite values, units on the last axis (leading axes: independent datasets).
        y: ``[..., n]`` the denominators for ``statistic="ratio"`` (:math:`\sum x / \sum y`), paired
            with ``x`` unit by unit; ``None`` for a mean.
        statistic: ``"mean"``, ``"ratio"``, or a callable ``f(x[, y]) -> [...]`` reducing the last
            axis, vectorised over leading axes (``"bca"`` and ``"percentile"`` only: a callable has
            no standard-error formula; it is called on ``[n_boot, n]`` resampled arrays of a single
            dataset and ``[n, n-1]`` leave-one-out arrays).
        method: one of :data:`METHODS`.
        level: coverage in (0, 1).
        n_boot: resamples (>= 100).
        seed: seed of the resampling.
    Returns:
        :class:`Bounds`, each array shaped like the leading axes of ``x``.
    """
    _check_common(method, level, n_boot)
    x = np.asarray(x, dtype=np.float64)
    y = None if y is None else np.asarray(y, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"`x` must hold at least 2 units on its last axis, got shape {x.shape}")
    if y is not None and y.shape != x.shape:
        raise ValueError(f"`y` must have the shape of `x` {x.shape}, got {y.shape}")
    if not np.isfinite(x).all() or (y is not None and not np.isfinite(y).all()):
        raise ValueError("`x` and `y` must be finite (drop the units with NaN first)")
    n = x.shape[-1]
    if callable(statistic):
        if method == "studentized":
            raise ValueError("`method='studentized'` needs a standard error: use statistic='mean' or 'ratio', "
                             "or method='bca' / 'percentile' for a callable statistic")  # fmt: skip
        if x.ndim != 1:
            raise ValueError(f"a callable `statistic` takes one dataset (1-D `x`), got shape {x.shape}")
        args = [x] if y is None else [x, y]
        est = np.asarray(statistic(*args), dtype=np.float64)
        idx = resample_indices(n, n_boot, seed)
        theta = np.asarray(statistic(*[a[idx] for a in args]), dtype=np.float64)
        theta = np.where(np.isnan(theta), np.inf, theta)
        if method == "percentile":
            low, high = _percentile(theta, level)
        else:
            keep = ~np.eye(n, dtype=bool)
            loo = np.arange(n)[None, :].repeat(n, axis=0)[keep].reshape(n, n - 1)  # [n, n-1]
            jack = np.asarray(statistic(*[a[loo] for a in args]), dtype=np.float64)
            low, high = _bca(est, theta, jack, level)
        return Bounds(est, np.asarray(low), np.asarray(high), np.full(est.shape, np.nan))
    if statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {STATISTICS} or a callable, got {statistic!r}")
    if (statistic == "ratio") != (y is not None):
        raise ValueError("give `y` (the denominators) exactly when statistic='ratio'")
    counts = resample_counts(n, n_boot, seed)
    est, se, theta, se_star = _linear_parts(x, y, counts, statistic)
    theta = np.where(np.isnan(theta), np.inf, theta)
    if method == "studentized":
        low, high = _studentized(est, se, theta, se_star, level)
    elif method == "percentile":
        low, high = _percentile(theta, level)
    else:
        low, high = _bca(est, theta, _jackknife_linear(x, y, statistic), level)
    undefined = ~np.isfinite(est)
    low, high = np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)
    return Bounds(est, low, high, se)


# ---- two levels ------------------------------------------------------------------------------------
def _two_way_variance(u: np.ndarray, design: str) -> np.ndarray:
    """Variance of the grand mean of ``u [..., S, N]`` (module docstring): ANOVA (crossed) or the
    seeds' means (nested)."""
    s, n = u.shape[-2:]
    g = u.mean(axis=(-2, -1), keepdims=True)
    rows = u.mean(axis=-1, keepdims=True)  # [..., S, 1]
    ms_a = n * ((rows - g) ** 2).sum(axis=(-2, -1)) / (s - 1)
    if design == "nested":
        return ms_a / (s * n)  # = s²(seed means) / S
    cols = u.mean(axis=-2, keepdims=True)  # [..., 1, N]
    ms_b = s * ((cols - g) ** 2).sum(axis=(-2, -1)) / (n - 1)
    ms_e = ((u - rows - cols + g) ** 2).sum(axis=(-2, -1)) / ((s - 1) * (n - 1))
    return (np.maximum(ms_a, ms_e) + np.maximum(ms_b, ms_e) - ms_e) / (s * n)


def _two_level_parts(x: np.ndarray, y: np.ndarray | None, design: str) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and standard error of the grand mean (or Σx/Σy) over the last two axes."""
    if y is None:
        return x.mean(axis=(-2, -1)), np.sqrt(_two_way_variance(x, design))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = x.sum(axis=(-2, -1)) / y.sum(axis=(-2, -1))
        ybar = y.mean(axis=(-2, -1))
        safe = np.where(np.isfinite(est), est, 0.0)
        u = (x - safe[..., None, None] * y) / ybar[..., None, None]
        # a resample whose denominators are all 0 (a map no estimate reproduces) has no standard
        # error: NaN, which the studentized interval drops, as the one-level bootstrap does
        return est, np.sqrt(_two_way_variance(u, design))


def _two_level_resamples(x: np.ndarray, y: np.ndarray | None, design: str, n_boot: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(estimate, se, theta* [B], se* [B])`` of ``[S, N]`` data resampled by ``design``."""
    s, n = x.shape
    rng = np.random.default_rng(seed)
    i_s = rng.integers(0, s, size=(n_boot, s))  # [B, S]
    if design == "crossed":
        i_n = rng.integers(0, n, size=(n_boot, 1, n))  # [B, 1, N]: one image draw for all seeds
    else:
        i_n = rng.integers(0, n, size=(n_boot, s, n))  # [B, S, N]: images drawn within each seed
    xs = x[i_s[:, :, None], i_n]  # [B, S, N]
    ys = None if y is None else y[i_s[:, :, None], i_n]
    est, se = _two_level_parts(x, y, design)
    theta, se_star = _two_level_parts(xs, ys, design)  # [B] each
    return np.asarray(est), np.asarray(se), np.where(np.isnan(theta), np.inf, theta), se_star


def two_level_bounds(
    x: Any,
    y: Any = None,
    *,
    statistic: str = "mean",
    design: str = "crossed",
    method: str = "studentized",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Bounds:
    r"""Two-level bootstrap of the grand mean (or :math:`\sum x / \sum y`) of ``[S, N]`` data
    (seeds × images): see the module docstring for the designs and the standard error.

    Args:
        x: ``[S, N]`` (``S >= 2`` seeds or model pairs, ``N >= 2`` images), finite.
        y: ``[S, N]`` denominators for ``statistic="ratio"``; ``None`` for a mean.
        statistic: ``"mean"`` or ``"ratio"``.
        design: ``"crossed"`` (the same images under every seed) or ``"nested"`` (each seed its own).
        method: ``"studentized"`` or ``"percentile"`` (no jackknife of a two-level design here).
        level, n_boot, seed: as :func:`bootstrap_bounds` (one generator draws the seeds' then the
            images' indices).
    Returns:
        :class:`Bounds` of 0-d arrays.
    """
    _check_common(method, level, n_boot)
    if method == "bca":
        raise ValueError("`method` must be 'studentized' or 'percentile' for two levels, got 'bca'")
    if design not in DESIGNS:
        raise ValueError(f"`design` must be one of {DESIGNS}, got {design!r}")
    if statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {STATISTICS}, got {statistic!r}")
    x = np.asarray(x, dtype=np.float64)
    y = None if y is None else np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"`x` must be [S, N] with S >= 2 seeds and N >= 2 images, got shape {x.shape}")
    if (statistic == "ratio") != (y is not None):
        raise ValueError("give `y` (the denominators) exactly when statistic='ratio'")
    if y is not None and y.shape != x.shape:
        raise ValueError(f"`y` must have the shape of `x` {x.shape}, got {y.shape}")
    if not np.isfinite(x).all() or (y is not None and not np.isfinite(y).all()):
        raise ValueError("`x` and `y` must be finite")
    est, se, theta, se_star = _two_level_resamples(x, y, design, n_boot, seed)
    if method == "studentized":
        low, high = _studentized(est, se, theta, se_star, level)
    else:
        low, high = _percentile(theta, level)
    return Bounds(est, np.asarray(low), np.asarray(high), se)


def studentized_pvalue(
    x: Any, *, alternative: str = "greater", design: str | None = None, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    r"""One-sided bootstrap-t p-value of "the mean is 0" against ``alternative`` (``"greater"``: > 0).

    .. math:: p = \frac{1 + \#\{b: t^*_b \ge \hat t\}}{B + 1}, \qquad \hat t = \hat\theta / \widehat{se},
              \quad t^*_b = (\theta^*_b - \hat\theta)/\widehat{se}^*_b

    (``"less"``: :math:`t^*_b \le \hat t`). It rejects at level :math:`\alpha` exactly when the
    one-sided studentized :math:`1-\alpha` interval excludes 0 (Davison & Hinkley 1997, §4.4), so a
    test and an interval of this module never disagree.

    Args:
        x: ``[..., n]`` (one level, units on the last axis) or, with ``design``, ``[S, N]``.
        alternative: ``"greater"`` or ``"less"``.
        design: ``None`` (one level) or ``"crossed"`` / ``"nested"`` (:func:`two_level_bounds`).
        n_boot, seed: as :func:`bootstrap_bounds`.
    Returns:
        p-values shaped like the leading axes (0-d for two levels).
    """
    _check_common("studentized", 0.95, n_boot)
    if alternative not in ("greater", "less"):
        raise ValueError(f"`alternative` must be 'greater' or 'less', got {alternative!r}")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("`x` must be finite")
    if design is None:
        if x.ndim < 1 or x.shape[-1] < 2:
            raise ValueError(f"`x` must hold at least 2 units on its last axis, got shape {x.shape}")
        est, se, theta, se_star = _linear_parts(x, None, resample_counts(x.shape[-1], n_boot, seed), "mean")
    else:
        if design not in DESIGNS:
            raise ValueError(f"`design` must be one of {DESIGNS} or None, got {design!r}")
        if x.ndim != 2 or min(x.shape) < 2:
            raise ValueError(f"`x` must be [S, N] with S, N >= 2 for a two-level test, got shape {x.shape}")
        est, se, theta, se_star = _two_level_resamples(x, None, design, n_boot, seed)
    t = _t_star(est, se, theta, se_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hat = np.where(se > 0, est / se, np.where(est == 0, 0.0, np.copysign(np.inf, est)))
    if alternative == "greater":
        count = (t >= t_hat[..., None]).sum(axis=-1)
    else:
        count = (t <= t_hat[..., None]).sum(axis=-1)
    return (1.0 + count) / (n_boot + 1.0)
