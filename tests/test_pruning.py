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
    torch.testing.assert_close(q_ideal, torch.full((4,), 2.0))  # q=1% keeps 3 of the 4 pixels: not enough
    torch.testing.assert_close(r_ideal.confidence_kept[1:], torch.ones(6, 4))
    torch.testing.assert_close(r_ideal.mass_kept[1:], torch.ones(6, 4))
    assert (q_random >= 20).all(), q_random
    assert (r_random.mass_kept[:-1] < 1).all()


def test_zero_map_mass_is_the_pixel_share_and_cam_maps_work():
    x = torch.rand(2, 3, 10, 10)
    model = RegionModel()
    res = attribution_pruning(model, x, torch.zeros(2, 1, 10, 10), q=(1, 10, 55))
    torch.testing.assert_close(res.mass_kept, torch.tensor([[0.01, 0.01], [0.10, 0.10], [0.55, 0.55]]))
    res3 = attribution_pruning(model, x, torch.rand(2, 10, 10), q=(50,))  # [B, H, W] maps
    assert res3.confidence_kept.shape == (1, 2)


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
