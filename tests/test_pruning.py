"""Attribution pruning: confidence and mass kept by the top q% of a map."""

import math

import pytest
import torch
from torch import nn

from smoothsal.methods.controls import RandomAttribution
from smoothsal.metrics.pruning import PruningResult, attribution_pruning, smallest_q


class RegionModel(nn.Module):
    """Logits ``[a (m - c), 0]`` with ``m`` the mean of a 2×2 region: the model looks nowhere else."""

    def __init__(self, a: float = 40.0, c: float = 0.9) -> None:
        super().__init__()
        self.a, self.c = a, c
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, :, 5:7, 9:11].mean(dim=(1, 2, 3))
        s = self.a * (m - self.c)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _region_images(n: int = 4) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.rand(n, 3, 16, 16) * 0.5
    x[:, :, 5:7, 9:11] = 1.0
    return x


def test_mass_kept_is_one_at_100_and_increases_with_q():
    torch.manual_seed(0)
    x, a = torch.rand(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 4)).eval()
    res = attribution_pruning(model, x, a, q=(100, 5, 50, 10, 25))
    torch.testing.assert_close(res.q, torch.tensor([5.0, 10.0, 25.0, 50.0, 100.0]))
    torch.testing.assert_close(res.mass_kept[-1], torch.ones(3))
    torch.testing.assert_close(res.confidence_kept[-1], torch.ones(3))
    assert (res.mass_kept.diff(dim=0) >= 0).all()
    # q = 25% of 64 pixels keeps the 16 largest of |a| summed over channels
    scores = a.abs().sum(dim=1).flatten(1)
    top16 = scores.topk(16, dim=1).values.sum(dim=1) / scores.sum(dim=1)
    torch.testing.assert_close(res.mass_kept[2], top16)


def test_confidence_matches_a_hand_pruned_input():
    torch.manual_seed(1)
    x = torch.rand(2, 1, 4, 4)
    a = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(2, 1, 1, 1)  # the last 4 pixels are the top 25%
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    res = attribution_pruning(model, x, a, targets=[2, 1], q=(25,), baseline=0.3)
    pruned = torch.full_like(x, 0.3)
    pruned[:, :, 3, :] = x[:, :, 3, :]
    with torch.no_grad():
        p = model(x).softmax(1)[[0, 1], [2, 1]]
        p_pruned = model(pruned).softmax(1)[[0, 1], [2, 1]]
    torch.testing.assert_close(res.confidence_kept[0], p_pruned / p)
    torch.testing.assert_close(res.targets, torch.tensor([2, 1]))


def test_ideal_map_keeps_confidence_at_small_q_random_map_needs_more():
    x = _region_images()
    model = RegionModel()
    ideal = torch.zeros(4, 1, 16, 16)
    ideal[:, :, 5:7, 9:11] = 1.0  # the 4 pixels the model reads: 1.6% of the image
    random_map = RandomAttribution(model, seed=0).attribute(x)
    r_ideal = attribution_pruning(model, x, ideal)
    r_random = attribution_pruning(model, x, random_map)
    q_ideal, q_random = smallest_q(r_ideal), smallest_q(r_random)
    # q=1% keeps 3 of the 4 pixels: not enough; bisection finds the 4th pixel: 4/256 = 1.5625 %
    torch.testing.assert_close(q_ideal, torch.full((4,), 100 * 4 / 256))
    grid_only = attribution_pruning(model, x, ideal, share=None)
    assert grid_only.q_share is None
    torch.testing.assert_close(smallest_q(grid_only), torch.full((4,), 2.0))  # the grid's answer
    torch.testing.assert_close(r_ideal.confidence_kept[1:], torch.ones(6, 4))
    torch.testing.assert_close(r_ideal.mass_kept[1:], torch.ones(6, 4))
    assert (q_random >= 20).all(), q_random
    assert (r_random.mass_kept[:-1] < 1).all()


def test_zero_map_mass_is_the_pixel_share():
    x = torch.rand(2, 3, 10, 10)
    model = RegionModel()
    res = attribution_pruning(model, x, torch.zeros(2, 1, 10, 10), q=(1, 10, 55))
    torch.testing.assert_close(res.mass_kept, torch.tensor([[0.01, 0.01], [0.10, 0.10], [0.55, 0.55]]))


def test_a_map_without_channel_axis_prunes_the_same_pixels_of_every_channel():
    torch.manual_seed(2)
    x = torch.rand(2, 3, 4, 4)
    a = torch.arange(16.0).reshape(1, 4, 4).repeat(2, 1, 1)  # [B, H, W]: the last row is the top 25 %
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3)).eval()
    res = attribution_pruning(model, x, a, targets=[0, 2], q=(25,), baseline=0.3)
    pruned = torch.full_like(x, 0.3)
    pruned[:, :, 3, :] = x[:, :, 3, :]  # every channel of the kept pixels
    with torch.no_grad():
        p, p_pruned = (model(v).softmax(1)[[0, 1], [0, 2]] for v in (x, pruned))
    torch.testing.assert_close(res.confidence_kept[0], p_pruned / p)
    torch.testing.assert_close(res.mass_kept[0], torch.full((2,), (12 + 13 + 14 + 15) / 120.0))
    cam = attribution_pruning(model, x, a[:, None], targets=[0, 2], q=(25,), baseline=0.3)  # [B, 1, H, W]: the same
    torch.testing.assert_close(cam.confidence_kept, res.confidence_kept)


def test_smallest_q_sentinel_is_inf_when_never_reached():
    res = PruningResult(
        q=torch.tensor([10.0, 50.0]),
        confidence_kept=torch.tensor([[0.1, 0.95], [0.5, 0.8]]),
        mass_kept=torch.zeros(2, 2),
        targets=torch.zeros(2, dtype=torch.long),
    )
    out = smallest_q(res, share=0.9)
    assert math.isinf(out[0]) and out[1] == 10.0
    torch.testing.assert_close(smallest_q(res, share=0.4), torch.tensor([50.0, 10.0]))
    with pytest.raises(ValueError, match="share"):
        smallest_q(res, share=0)


def test_errors_name_the_argument():
    x = torch.rand(2, 3, 8, 8)
    model = RegionModel()
    for bad in (0, -5, 100.5, float("nan")):
        with pytest.raises(ValueError, match=r"`q` values must be percentages in \(0, 100\]"):
            attribution_pruning(model, x, torch.rand(2, 3, 8, 8), q=(bad, 50))
    with pytest.raises(ValueError, match="attributions"):
        attribution_pruning(model, x, torch.rand(2, 3, 7, 8))
    with pytest.raises(ValueError, match="attributions"):
        attribution_pruning(model, x, torch.rand(3, 3, 8, 8))
    with pytest.raises(ValueError, match="inputs"):
        attribution_pruning(model, torch.rand(2, 192), torch.rand(2, 192))
    with pytest.raises(ValueError, match="baseline"):
        attribution_pruning(model, x, torch.rand(2, 3, 8, 8), baseline="grey")
    with pytest.raises(ValueError, match="`share` must be a number > 0, got 0"):
        attribution_pruning(model, x, torch.rand(2, 3, 8, 8), share=0)
    with pytest.raises(ValueError, match=r"`resolution` must be a number of percentage points in \(0, 100\]"):
        attribution_pruning(model, x, torch.rand(2, 3, 8, 8), resolution=0.0)


class EvidenceCount(nn.Module):
    """Two logits ``[a · (evidence pixels kept) / E − c, 0]``: the model counts how many of the E
    evidence pixels (value 1; the baseline is 0) are still there, and looks nowhere else."""

    def __init__(self, mask: torch.Tensor, a: float = 20.0, c: float = 10.0) -> None:
        super().__init__()
        self.mask, self.a, self.c = mask, a, c
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = (x[:, 0] * self.mask).flatten(1).sum(1) / self.mask.sum()
        s = self.a * kept - self.c
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_bisection_resolves_two_maps_that_the_grid_cannot_tell_apart():
    """16×16 image, 40 evidence pixels. p(k evidence kept) = σ(20 k/40 − 10), p(all) = σ(10):
    keeping 90 % of the confidence needs σ(k/2 − 10) ≥ 0.9 σ(10), i.e. k ≥ 25 evidence pixels.

    Map A ranks 40 distractors first, then the evidence: it needs 40 + 25 = 65 pixels (25.39 %).
    Map B ranks 40 distractors, then alternates evidence and distractor: the 25th evidence pixel
    is its (40 + 2·24 + 1) = 89th pixel (34.77 %). Both lie in the grid's (20, 50] bracket: the
    grid reads 50 % for both.
    """
    h = w = 16
    n_pix = h * w
    order = torch.randperm(n_pix, generator=torch.Generator().manual_seed(0))
    distract, evidence, rest = order[:40], order[40:80], order[80:]
    mask = torch.zeros(n_pix)
    mask[evidence] = 1.0
    model = EvidenceCount(mask.view(h, w))
    x = torch.full((1, 1, h, w), 0.5).flatten(2)
    x[..., evidence] = 1.0
    x = x.view(1, 1, h, w)
    assert 0.9 * torch.sigmoid(torch.tensor(10.0)) <= torch.sigmoid(torch.tensor(2.5))  # k = 25 passes
    assert 0.9 * torch.sigmoid(torch.tensor(10.0)) > torch.sigmoid(torch.tensor(2.0))  # k = 24 fails

    def map_from_ranking(ranking: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(n_pix)
        scores[ranking] = torch.arange(n_pix, 0, -1, dtype=torch.float32)  # first ranked = largest
        return scores.view(1, 1, h, w)

    more = rest[:40]
    interleaved = torch.stack([evidence, more], dim=1).flatten()  # e0, d0, e1, d1, ...
    map_a = map_from_ranking(torch.cat([distract, evidence, rest]))
    map_b = map_from_ranking(torch.cat([distract, interleaved, rest[40:]]))
    both_maps = torch.cat([map_a, map_b])
    both_x = x.expand(2, -1, -1, -1)

    grid = attribution_pruning(model, both_x, both_maps, share=None)
    torch.testing.assert_close(smallest_q(grid), torch.tensor([50.0, 50.0]))  # the grid cannot tell them apart
    exact = attribution_pruning(model, both_x, both_maps, resolution=None)  # to one pixel
    torch.testing.assert_close(exact.q_share, torch.tensor([100 * 65 / n_pix, 100 * 89 / n_pix]))
    torch.testing.assert_close(smallest_q(exact, 0.9), exact.q_share)
    assert (exact.confidence_at_share >= 0.9).all()
    # the default resolution (0.25 points = 0 pixels here, so one pixel) and a coarse one (5 points):
    # the answer lies within the resolution above the exact one and keeps the share
    coarse = attribution_pruning(model, both_x, both_maps, resolution=5.0)
    assert ((coarse.q_share - exact.q_share) >= 0).all() and ((coarse.q_share - exact.q_share) <= 5.0).all()
    assert (coarse.confidence_at_share >= 0.9).all()
    # another share: bisected for it, not read from the 0.9 one
    half = attribution_pruning(model, both_x, both_maps, share=0.5, resolution=None)
    # σ(k/2 − 10) ≥ 0.5 σ(10) ⇔ k ≥ 20: A needs 60 pixels, B 40 + 2·19 + 1 = 79
    torch.testing.assert_close(half.q_share, torch.tensor([100 * 60 / n_pix, 100 * 79 / n_pix]))
    torch.testing.assert_close(smallest_q(half, 0.9), torch.tensor([50.0, 50.0]))  # 0.9 from the grid of `half`
