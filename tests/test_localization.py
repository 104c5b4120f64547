"""Localization metrics: the mask as its own map scores 1, the inverted mask 0, a random map chance."""

from __future__ import annotations

import pytest
import torch

from smoothsal.metrics.localization import mask_topk_iou, pointing_game, relevance_mass, relevance_rank


def _box_masks(b: int = 64, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Random axis-aligned boxes, bool [B, 1, H, W], each 4..8 pixels a side."""
    g = torch.Generator().manual_seed(seed)
    side = torch.randint(4, 9, (b, 2), generator=g)
    top = (torch.rand(b, generator=g) * (size - side[:, 0] + 1)).long()
    left = (torch.rand(b, generator=g) * (size - side[:, 1] + 1)).long()
    rows = torch.arange(size)[None, :, None]
    cols = torch.arange(size)[None, None, :]
    inside = (rows >= top[:, None, None]) & (rows < (top + side[:, 0])[:, None, None])
    inside = inside & (cols >= left[:, None, None]) & (cols < (left + side[:, 1])[:, None, None])
    return inside[:, None]


def test_mask_as_map_scores_one_and_inverted_mask_zero():
    masks = _box_masks()
    perfect = masks.float().expand(-1, 3, -1, -1)  # [B, 3, H, W]
    inverted = (~masks).float()
    ones = torch.ones(masks.shape[0])
    assert pointing_game(perfect, masks).all()
    torch.testing.assert_close(relevance_mass(perfect, masks), ones)
    torch.testing.assert_close(relevance_rank(perfect, masks), ones)
    torch.testing.assert_close(mask_topk_iou(perfect, masks), ones)
    assert not pointing_game(inverted, masks).any()
    torch.testing.assert_close(relevance_mass(inverted, masks), torch.zeros_like(ones))
    torch.testing.assert_close(relevance_rank(inverted, masks), torch.zeros_like(ones))
    torch.testing.assert_close(mask_topk_iou(inverted, masks), torch.zeros_like(ones))


def test_random_map_scores_at_chance():
    masks = _box_masks(b=512, seed=1)
    area = masks.flatten(1).float().mean(dim=1)  # [B] mask fraction p
    rnd = torch.rand(512, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    p = area.mean()
    # pointing game: hit with probability p (std of the mean ≈ 0.015 here)
    assert abs(pointing_game(rnd, masks).float().mean() - p) < 0.05
    assert abs(relevance_mass(rnd, masks).mean() - p) < 0.02
    assert abs(relevance_rank(rnd, masks).mean() - p) < 0.02
    assert abs(mask_topk_iou(rnd, masks).mean() - (area / (2 - area)).mean()) < 0.02


def test_pointing_game_tolerance_and_ties():
    masks = torch.zeros(1, 9, 9, dtype=torch.bool)
    masks[0, 4, 4] = True
    attr = torch.zeros(1, 9, 9)
    attr[0, 4, 6] = 1.0  # two pixels right of the mask
    assert not pointing_game(attr, masks)[0]
    assert not pointing_game(attr, masks, tolerance=1)[0]
    assert pointing_game(attr, masks, tolerance=2)[0]
    attr[0, 5, 6] = 1.0  # (5, 6) is sqrt(5) > 2 away from (4, 4): disk, not square dilation
    assert not pointing_game(attr, masks, tolerance=2)[0]
    # a flat map points nowhere
    assert not pointing_game(torch.zeros(1, 9, 9), masks)[0]


def test_relevance_mass_positive_vs_abs():
    masks = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    masks[0, 0, 0, 0] = True
    attr = torch.tensor([[[[3.0, -1.0], [1.0, 0.0]]]])
    torch.testing.assert_close(relevance_mass(attr, masks), torch.tensor([0.75]))
    torch.testing.assert_close(relevance_mass(attr, masks, relevance="abs"), torch.tensor([0.6]))
    torch.testing.assert_close(relevance_mass(-attr.abs(), masks), torch.tensor([0.0]))  # no positive relevance


def test_topk_iou_with_explicit_k():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, :2] = True  # 2 pixels
    attr = torch.arange(16.0).flip(0).reshape(1, 4, 4)  # top-4 = first row
    torch.testing.assert_close(mask_topk_iou(attr, masks, k=4), torch.tensor([0.5]))
    torch.testing.assert_close(relevance_rank(attr, masks), torch.tensor([1.0]))


def test_errors_name_the_argument():
    masks = _box_masks(b=4)
    attr = torch.rand(4, 3, 16, 16)
    with pytest.raises(ValueError, match="`masks` must have shape"):
        pointing_game(attr, masks[:, :, :8])
    with pytest.raises(ValueError, match="`masks` must have shape"):
        relevance_mass(attr, masks[:3])
    empty = masks.clone()
    empty[2] = False
    with pytest.raises(ValueError, match=r"sample\(s\) \[2\] is empty"):
        relevance_rank(attr, empty)
    with pytest.raises(ValueError, match="`masks` must be boolean"):
        mask_topk_iou(attr, masks.float() * 2)
    with pytest.raises(ValueError, match="`k` must be <= H \\* W = 256"):
        mask_topk_iou(attr, masks, k=257)
    with pytest.raises(ValueError, match="`tolerance` must be >= 0"):
        pointing_game(attr, masks, tolerance=-1)
    with pytest.raises(ValueError, match="`relevance` must be one of"):
        relevance_mass(attr, masks, relevance="neg")
