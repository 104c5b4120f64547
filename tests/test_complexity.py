"""Sparseness (Gini) and entropy: closed forms for uniform, one-hot and hand-computed maps."""

from __future__ import annotations

import math

import pytest
import torch

from smoothsal.metrics.complexity import entropy, sparseness


def test_uniform_and_one_hot():
    d = 3 * 8 * 8
    uniform = torch.full((2, 3, 8, 8), 0.7)
    uniform[1] *= -1  # magnitudes only
    one_hot = torch.zeros(2, 3, 8, 8)
    one_hot[0, 1, 2, 3] = 5.0
    one_hot[1, 0, 0, 0] = -0.01
    torch.testing.assert_close(sparseness(uniform), torch.zeros(2))
    torch.testing.assert_close(sparseness(one_hot), torch.full((2,), (d - 1) / d))
    torch.testing.assert_close(entropy(uniform), torch.full((2,), math.log(d)))
    torch.testing.assert_close(entropy(one_hot), torch.zeros(2))


def test_hand_computed():
    v = torch.tensor([[3.0, 0.0, -2.0, 1.0]])  # sorted |v| = 0, 1, 2, 3
    # Gini = Σ (2i − d − 1) v_(i) / (d Σ v) = (−3·0 − 1·1 + 1·2 + 3·3) / (4 · 6) = 10 / 24
    torch.testing.assert_close(sparseness(v), torch.tensor([10 / 24]))
    p = torch.tensor([1, 2, 3]) / 6
    torch.testing.assert_close(entropy(v), -(p * p.log()).sum()[None])


def test_zero_map_is_defined_and_sparser_maps_score_higher():
    zero = torch.zeros(1, 3, 4, 4)
    torch.testing.assert_close(sparseness(zero), torch.zeros(1))
    torch.testing.assert_close(entropy(zero), torch.tensor([math.log(48)]))
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(1, 3, 16, 16, generator=g) + 0.5
    sparse = dense * (torch.rand(1, 3, 16, 16, generator=g) < 0.1)
    assert sparseness(sparse) > sparseness(dense) and entropy(sparse) < entropy(dense)


def test_reduce_channels_scores_pixels():
    a = torch.zeros(1, 3, 2, 2)
    a[0, :, 0, 0] = 1.0  # one pixel, all channels
    torch.testing.assert_close(sparseness(a, reduce_channels=True), torch.tensor([3 / 4]))
    torch.testing.assert_close(entropy(a, reduce_channels=True), torch.zeros(1))
    with pytest.raises(ValueError, match="`reduce_channels=True` needs maps of shape"):
        entropy(torch.rand(2, 5), reduce_channels=True)
    with pytest.raises(ValueError, match="`attributions` must be finite"):
        sparseness(torch.tensor([[1.0, float("nan")]]))
