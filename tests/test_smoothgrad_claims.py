"""SmoothGrad's claims: the smoothness-matched blur control, the own-half share on an analytic model, and
the verdict rules on hand-made numbers (smoothsal.metrics.smoothness, smoothsal.metrics.smoothgrad_claims,
smoothsal.studies.reproduce.sg_claims)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.intervals import Interval
from smoothsal.metrics.smoothgrad_claims import (
    argmax_interval,
    combine_verdicts,
    direction_verdict,
    median_interval,
    n_reaching,
    range_verdict,
)
from smoothsal.metrics.smoothness import blur_to_smoothness, half_share, total_variation
from smoothsal.studies.reproduce.config import SmoothGradReproConfig
from smoothsal.studies.reproduce.sg_claims import claim_rows, mnist_composites, photo_composites, write_claims


def test_total_variation_hand_computed_and_scale_free():
    m = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 3.0, 0.0]]])  # rows: |1-0|+|0-1| + |3-0|+|0-3| = 8; cols: |3-1| = 2
    assert float(total_variation(m)[0]) == pytest.approx(10 / 4)
    assert float(total_variation(5 * m)[0]) == pytest.approx(10 / 4)
    assert float(total_variation(-m)[0]) == pytest.approx(10 / 4)  # magnitudes
    assert math.isnan(float(total_variation(torch.zeros(1, 3, 3))[0]))


def test_blur_control_matches_the_smoothness_target():
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(4, 3, 28, 28, generator=gen)
    tv0 = total_variation(grad)
    target = tv0 * torch.tensor([0.2, 0.4, 0.7, 1.5])  # the last is rougher than the map: no blur
    match = blur_to_smoothness(grad, target, tol=1e-3)
    assert match.matched.tolist() == [True, True, True, False]
    torch.testing.assert_close(match.tv[:3], target[:3], rtol=1.1e-3, atol=0)
    assert float(match.sigmas[3]) == 0.0 and match.tv[3] == pytest.approx(float(tv0[3]))
    assert bool((match.sigmas[:3].diff() < 0).all())  # a smoother target needs a wider blur
    # the blur keeps the mass: it only moves it
    torch.testing.assert_close(match.maps.sum(dim=(1, 2, 3)), grad.abs().sum(dim=1).double().sum(dim=(1, 2)), rtol=0.02, atol=0)
    with pytest.raises(ValueError, match="`target` must hold one value per map"):
        blur_to_smoothness(grad, target[:2])


class _HalfLinear(nn.Module):
    """Logit k = <w_k, x>: class 0 reads the left half with weight 1 and the right with ``leak``;
    class 1 the mirror image. The gradient of class k is w_k, so its own-half share is 1 / (1 + leak)."""

    def __init__(self, leak: float, size: int = 8) -> None:
        super().__init__()
        w = torch.zeros(2, 1, size, size)
        w[0, :, :, : size // 2], w[0, :, :, size // 2 :] = 1.0, leak
        w[1, :, :, size // 2 :], w[1, :, :, : size // 2] = 1.0, leak
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) * self.w).flatten(2).sum(-1)


@pytest.mark.parametrize("leak", [0.0, 1 / 3, 1.0])
def test_own_half_share_on_an_analytic_model(leak):
    model = _HalfLinear(leak).eval()
    x = torch.rand(3, 1, 8, 8)
    for k in (0, 1):
        maps = VanillaGradient(model).attribute(x, torch.full((3,), k))
        share = half_share(maps, torch.full((3,), k))
        torch.testing.assert_close(share, torch.full((3,), 1 / (1 + leak), dtype=torch.float64))
    with pytest.raises(ValueError, match="`side` must hold 0"):
        half_share(maps, torch.tensor([0, 2, 1]))


def test_composites_put_each_object_on_its_half():
    x = torch.zeros(4, 1, 28, 28)
    for i in range(4):
        x[i, 0, 10:18, 10:18] = 1.0  # a centred square "digit"
    comp, cls = mnist_composites(x, torch.tensor([0, 1, 2, 3]), 6, seed=0)
    assert comp.shape == (6, 1, 28, 28) and bool((cls[:, 0] != cls[:, 1]).all())
    assert float(comp[:, :, :, :14].sum()) == pytest.approx(float(comp[:, :, :, 14:].sum()))  # one object per half
    assert float(comp[0, 0, 12, 7]) == 1.0 and float(comp[0, 0, 12, 20]) == 1.0 and float(comp[0, 0, 2, 7]) == 0.0
    photos = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 8, 8)
    pc, pcls = photo_composites(photos, torch.tensor([5, 5, 7, 9]), 10)
    assert pcls.tolist() == [[5, 7], [5, 9], [5, 7], [5, 9], [7, 9]]  # (0, 1) share a class: skipped
    assert pc.shape == (5, 3, 8, 8) and float(pc[0, 0, 0, 0]) == 0.0 and float(pc[0, 0, 0, -1]) == 2.0


def test_verdict_rules_on_hand_made_numbers():
    assert direction_verdict(Interval(0.02, 0.001, 0.04, 10)) == "agrees"
    assert direction_verdict(Interval(-0.02, -0.04, -0.001, 10)) == "disagrees"
    assert direction_verdict(Interval(0.02, -0.001, 0.04, 10)) == "inconclusive"
    assert direction_verdict(Interval(-0.02, -0.04, -0.001, 10), "down") == "agrees"
    assert direction_verdict(Interval(0.02, 0.01, 0.04, 3)) == "inconclusive"  # below MIN_IMAGES
    assert range_verdict(Interval(0.1, 0.1, 0.2, 10), 0.1, 0.2) == "agrees"
    assert range_verdict(Interval(0.05, 0.025, 0.05, 10), 0.1, 0.2) == "disagrees"
    assert range_verdict(Interval(0.1, 0.05, 0.1, 10), 0.1, 0.2) == "inconclusive"
    assert combine_verdicts(["agrees", "inconclusive", "disagrees"]) == "disagrees"
    with pytest.raises(ValueError, match="`verdicts`"):
        combine_verdicts(["maybe"])
    # argmax: every image peaks at 0.15 -> [0.15, 0.15]; half at 0.05, half at 0.3 with a tie in the mean
    peaks = np.array([[0.1] * 8, [0.2] * 8, [0.9] * 8, [0.3] * 8])
    iv = argmax_interval(peaks, [0.0, 0.1, 0.15, 0.3])
    assert (iv.estimate, iv.low, iv.high, iv.n) == (0.15, 0.15, 0.15, 8)
    split = np.array([[1.0, 0.0] * 6, [0.0, 1.05] * 6])
    wide = argmax_interval(split, [0.05, 0.3], seed=1)
    assert wide.estimate == 0.3 and (wide.low, wide.high) == (0.05, 0.3)
    assert range_verdict(wide, 0.1, 0.2) == "inconclusive"
    assert n_reaching([[0.95, 0.99], [0.1, 0.2]], [10, 50]).tolist() == [10.0, 100.0]
    med = median_interval([10.0] * 9 + [100.0])
    assert med.estimate == 10.0 and med.se == pytest.approx(np.std([10.0] * 9 + [100.0], ddof=1) / math.sqrt(10))


def test_claim_rows_apply_the_rules_to_the_scores(tmp_path):
    """Hand-made scores with known answers: SmoothGrad beats the blur on both data sets (claim 1
    agrees), the argmax sits at 50 % (claim 2 disagrees), n = 10 everywhere (claim 3 agrees)."""
    c = SmoothGradReproConfig.preset(quick=True)
    levels = list(c.claim_noise_levels)
    n = 12
    gen = np.random.default_rng(0)

    def sigma(best: int) -> dict:
        s = np.zeros((len(levels) + 1, 2, n))
        for i in range(len(levels)):
            s[i, 0] = 0.3 + (0.2 if i == best else 0.0) + 0.01 * gen.standard_normal(n)
        s[levels.index(c.noise_level), 0] += 0.0  # SmoothGrad at the run's σ
        s[-1, 0] = s[levels.index(c.noise_level), 0] - 0.05 - 0.005 * gen.random(n)  # blur below it
        return {"scores": s.tolist(), "blur_sigma_mean": 1.0, "blur_matched": n, "n_images": n}

    ssim = {"ssim": [[0.5, 0.8, 0.95, 0.97, 0.99]] * n, "sizes": [1, 5, 10, 20, 50], "ref_n": 400}
    disc = {"shares": [[0.5] * n, [0.5 + 0.1 * (i % 2) for i in range(n)]], "n_pairs": n}
    noise = {"scores": np.stack([np.stack([np.full(2 * n, 0.4), np.full(2 * n, 0.4) - 0.01 * gen.random(2 * n)])] * 2).tolist(),
             "n_images": n, "noise_level": 0.2}  # noise-trained lower: disagrees
    top = len(levels) - 1
    results = {"sigma/synthetic": sigma(top), "sigma/mnist": sigma(top), "ssim_n/mnist": ssim, "ssim_n/photos": ssim,
               "disc/mnist": disc, "disc/photos": disc, "noise_training": noise}
    rows = claim_rows(results, c)
    combined = {r.claim: r.verdict for r in rows if r.quantity == "combined"}
    assert combined == {"1 sharpens beyond blurring": "agrees", "2 best noise level": "disagrees",
                        "3 n ≈ 50 is enough": "agrees", "4 discriminativity": "agrees", "5 training with noise": "disagrees"}
    two = next(r for r in rows if r.claim.startswith("2") and r.data == "mnist")
    assert two.interval.estimate == levels[top] == 0.5
    one = next(r for r in rows if r.claim.startswith("1") and r.data == "synthetic")
    assert one.interval.estimate == pytest.approx(0.05 + 0.0025, abs=0.002)
    # the files: every row, its verdict, the command and the quick label
    paths = write_claims(tmp_path, rows, "smoothsal reproduce smoothgrad --quick", 12.0, True)
    md = paths["claims.md"].read_text()
    assert "(quick)" in md and "smoothsal reproduce smoothgrad --quick" in md and "**disagrees**" in md
    with paths["claims.csv"].open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["verdict"] for r in table] == [r.verdict for r in rows] and len(table) == 15
