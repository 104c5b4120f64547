import pytest
import torch
from torch import nn

from conftest import Linear, small_cnn
from smoothsal.methods.baselines import gaussian_blur
from smoothsal.methods.occlusion import Occlusion, occlusion, window_starts


def _linear(c: int, h: int, w: int, classes: int = 2, seed: int = 0) -> tuple[Linear, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, c * h * w, generator=g, dtype=torch.float64)
    return Linear(weight).double(), weight.view(classes, c, h, w)


def test_pixel_occlusion_of_linear_model_is_channel_sum_of_w_times_x():
    model, w = _linear(3, 4, 5)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    attr = Occlusion(model, window=1, stride=1, baseline=0.0).attribute(x, target=[1, 0])
    # the 1x1 window hides all channels of one pixel: drop = Σ_c w_c x_c, broadcast over channels
    per_pixel = torch.stack([(w[1] * x[0]).sum(0), (w[0] * x[1]).sum(0)])  # [B, H, W]
    torch.testing.assert_close(attr, per_pixel[:, None].expand(2, 3, 4, 5))


@pytest.mark.parametrize("spec", ["mean", "blur", "tensor"])
def test_baselines_mean_blur_and_tensor(spec):
    model, w = _linear(2, 5, 5)
    x = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    if spec == "mean":
        base = x.mean(dim=(2, 3), keepdim=True)
    elif spec == "blur":
        base = gaussian_blur(x, 0.5)  # σ = max(H, W) / 10
    else:
        base = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    attr = Occlusion(model, window=1, stride=1, baseline=base if spec == "tensor" else spec).attribute(x, target=0)
    torch.testing.assert_close(attr, (w[0] * (x - base)).sum(1, keepdim=True).expand_as(x))


def _reference(model, x, target, window, stride):
    """Slow reference with explicit loops over the (few) window positions, baseline 0."""
    (wh, ww), (sh, sw) = window, stride
    _, _, h, w = x.shape
    total, count = torch.zeros(h, w, dtype=x.dtype), torch.zeros(h, w, dtype=x.dtype)
    clean = model(x)[0, target]
    for r in window_starts(h, wh, sh).tolist():
        for c in window_starts(w, ww, sw).tolist():
            occluded = x.clone()
            occluded[..., r : r + wh, c : c + ww] = 0.0
            total[r : r + wh, c : c + ww] += clean - model(occluded)[0, target]
            count[r : r + wh, c : c + ww] += 1
    return total / count


def test_overlapping_windows_average_and_border_is_covered():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(7, 3, 2).tolist() == [0, 2, 4]
    assert window_starts(9, 4, 3).tolist() == [0, 3, 5]  # last window flush with the border
    assert window_starts(5, 5, 2).tolist() == [0]
    model, _ = _linear(2, 7, 9, seed=1)
    x = torch.rand(1, 2, 7, 9, dtype=torch.float64)
    attr = Occlusion(model, window=(3, 4), stride=(2, 3)).attribute(x, target=1)
    expected = _reference(model, x, 1, (3, 4), (2, 3))
    torch.testing.assert_close(attr, expected[None, None].expand_as(x))


class _Region(nn.Module):
    """Logits [Σ x² over rows 2..4, cols 3..5 (all channels), 0]: only that region matters."""

    def forward(self, x):
        s = x[:, :, 2:5, 3:6].pow(2).sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_pixels_outside_known_region_get_zero():
    x = torch.rand(2, 3, 10, 10, dtype=torch.float64) + 0.1
    attr = Occlusion(_Region().eval(), window=2, stride=2).attribute(x, target=0)
    # 2x2 windows tile the image; those touching the region cover rows 2..5 and cols 2..5
    touched = torch.zeros(10, 10, dtype=torch.bool)
    touched[2:6, 2:6] = True
    assert (attr[..., ~touched] == 0).all()
    assert (attr[..., 2:5, 3:6] > 0).all()
    # each tile's drop is Σ x² over its part of the region, shared by the tile's 4 pixels
    sq = x.pow(2).sum(1)  # [B, H, W]
    for r0, c0 in [(2, 2), (2, 4), (4, 2), (4, 4)]:
        tile = torch.zeros(10, 10, dtype=torch.bool)
        tile[r0 : r0 + 2, c0 : c0 + 2] = True
        inside = torch.zeros(10, 10, dtype=torch.bool)
        inside[2:5, 3:6] = True
        drop = (sq * (tile & inside)).sum(dim=(1, 2))  # [B]
        torch.testing.assert_close(attr[:, 0, r0, c0], drop)


class _Counting(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.model(x)


def test_batch_size_invariance_and_chunking():
    cnn = small_cnn(seed=3)
    x = torch.rand(3, 3, 8, 8)
    results = []
    for batch_size in (1, 7, 64):
        counting = _Counting(cnn).eval()
        results.append(Occlusion(counting, window=4, stride=2, batch_size=batch_size).attribute(x, target=[0, 1, 2]))
        n_occluded = 3 * 3 * 3  # B * P with P = 3 x 3 positions
        assert counting.sizes[0] == 3 and sum(counting.sizes[1:]) == n_occluded
        assert max(counting.sizes[1:]) <= batch_size
        assert len(counting.sizes) == 1 + -(-n_occluded // batch_size)
    torch.testing.assert_close(results[0], results[1])
    torch.testing.assert_close(results[0], results[2])
    assert results[0].shape == x.shape and results[0].abs().sum() > 0


def test_batched_equals_per_sample_and_functional_form():
    cnn = small_cnn(seed=4)
    x = torch.rand(2, 3, 6, 6)
    batched = occlusion(cnn, x, [2, 1], window=3, stride=2, baseline="mean")
    single = torch.cat([occlusion(cnn, x[i : i + 1], t, window=3, stride=2, baseline="mean") for i, t in enumerate([2, 1])])
    torch.testing.assert_close(batched, single)


def test_stride_larger_than_window_leaves_zeros_and_warns():
    model, w = _linear(1, 5, 5)
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    with pytest.warns(UserWarning, match="`stride`"):
        method = Occlusion(model, window=1, stride=3)
    attr = method.attribute(x, target=0)
    rows = torch.tensor([0, 3, 4])  # starts 0, 3 and the flush one at 4
    covered = torch.zeros(5, 5, dtype=torch.bool)
    covered[rows[:, None], rows[None, :]] = True
    torch.testing.assert_close(attr[0, 0][covered], (w[0, 0] * x[0, 0])[covered])
    assert (attr[0, 0][~covered] == 0).all()


def test_errors_name_the_argument():
    model, _ = _linear(1, 4, 4)
    with pytest.raises(ValueError, match="`window` must be >= 1"):
        Occlusion(model, window=0)
    with pytest.raises(ValueError, match="`stride` must be >= 1"):
        Occlusion(model, window=2, stride=(1, 0))
    with pytest.raises(ValueError, match="`window` must be an int or a pair"):
        Occlusion(model, window=(1, 2, 3))
    with pytest.raises(TypeError, match="`window` must be an int"):
        Occlusion(model, window=2.5)
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        Occlusion(model, window=2, stride=2, batch_size=0)
    with pytest.raises(ValueError, match="`baseline` must be one of"):
        Occlusion(model, window=2, stride=2, baseline="gray")
    with pytest.raises(ValueError, match=r"`window` \(5, 5\) is larger than the image \(4, 4\)"):
        Occlusion(model, window=5, stride=1).attribute(torch.rand(1, 1, 4, 4, dtype=torch.float64), target=0)
    with pytest.raises(ValueError, match="shape"):
        Occlusion(model, window=2, stride=2).attribute(torch.rand(2, 16, dtype=torch.float64))
