"""Bootstrap intervals over images, verdicts and the images an inconclusive entry would need."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smoothsal.metrics.intervals import (
    Interval,
    bootstrap_interval,
    images_needed,
    ratio_of_means,
    verdict,
)


def test_interval_of_a_mean_matches_the_normal_approximation():
    # 400 draws of N(2, 1): the percentile interval ≈ mean ± 1.96·s/√n
    x = np.random.default_rng(0).normal(2.0, 1.0, 400)
    iv = bootstrap_interval(x, seed=0)
    half = 1.96 * x.std(ddof=1) / math.sqrt(400)
    assert iv.estimate == pytest.approx(x.mean())
    assert iv.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert iv.n == 400 and iv.level == 0.95


def test_seeded_constant_and_degenerate_cases():
    x = [0.3, 0.1, 0.4, 0.2, 0.9]
    assert bootstrap_interval(x, seed=3) == bootstrap_interval(x, seed=3)
    assert bootstrap_interval(x, seed=3) != bootstrap_interval(x, seed=4)
    const = bootstrap_interval(torch.full((7,), 0.25))
    assert (const.estimate, const.low, const.high) == (0.25, 0.25, 0.25)
    one = bootstrap_interval([0.4])  # one image: no interval
    assert one.estimate == 0.4 and math.isnan(one.low) and not one.defined
    # NaN units are dropped (paired: a NaN in either sample drops the unit)
    iv = bootstrap_interval([1.0, float("nan"), 3.0, 1.0], [1.0, 1.0, float("nan"), 1.0], statistic=ratio_of_means)
    assert iv.n == 2 and iv.estimate == 1.0


def test_ratio_of_means_resamples_pairs_together():
    s = np.array([0.1, 0.2, 0.3, 0.4])
    iv = bootstrap_interval(s, 2 * s, statistic=ratio_of_means)  # every resample: Σs / Σ2s = 0.5 exactly
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_interval(s, s)
    with pytest.raises(ValueError, match="one value per unit"):
        bootstrap_interval(s, s[:3], statistic=ratio_of_means)


def test_verdict_needs_the_whole_interval_on_one_side():
    assert verdict(Interval(0.3, 0.2, 0.45, 16), 0.5, "below") == "pass"
    assert verdict(Interval(0.7, 0.55, 0.9, 16), 0.5, "below") == "fail"
    assert verdict(Interval(0.5, 0.5, 0.5, 16), 0.5, "below") == "fail"  # on the line: not crossed
    assert verdict(Interval(0.45, 0.3, 0.6, 16), 0.5, "below") == "inconclusive"
    assert verdict(Interval(1.2, 1.1, 1.3, 16), 1.0, "above") == "pass"
    assert verdict(Interval(1.0, 1.0, 1.0, 16), 1.0, "above") == "fail"
    assert verdict(Interval(0.3, float("nan"), float("nan"), 1), 0.5) == "inconclusive"
    with pytest.raises(ValueError, match="pass_if"):
        verdict(Interval(0.3, 0.2, 0.4, 4), 0.5, "under")


def test_images_needed_from_the_half_width():
    # estimate 0.45, upper half-width 0.10 at n = 16, gap 0.05 to the threshold: n' > 16 · (0.10/0.05)² = 64
    assert images_needed(Interval(0.45, 0.40, 0.55, 16), 0.5) == 65
    # from the lower side: estimate 0.6, lower half-width 0.3, gap 0.1 -> n' > 16 · 9 = 144
    assert images_needed(Interval(0.6, 0.3, 0.7, 16), 0.5) == 145
    assert images_needed(Interval(0.3, 0.2, 0.4, 16), 0.5) == 16  # already excludes it
    assert images_needed(Interval(0.5, 0.4, 0.6, 16), 0.5) is None  # on the threshold: no n helps
    # the rule is what the 1/√n scaling predicts: quadrupling n halves the interval
    x = np.random.default_rng(1).normal(0.45, 0.2, 64)
    small, big = bootstrap_interval(x[:16], seed=0), bootstrap_interval(np.tile(x[:16], 4), seed=0)
    assert (big.high - big.low) == pytest.approx((small.high - small.low) / 2, rel=0.2)
