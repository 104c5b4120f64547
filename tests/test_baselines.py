"""Tests for smoothsal.methods.baselines: baseline specs and the separable Gaussian blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from smoothsal.methods.baselines import BASELINE_NAMES, gaussian_blur, make_baseline


def _images(b: int = 2, c: int = 3, h: int = 12, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec", ["black", "zeros"])
def test_black_and_zeros_are_zero(spec):
    x = _images()
    base = make_baseline(spec, x)
    assert base.shape == x.shape and base.dtype == x.dtype
    assert torch.count_nonzero(base) == 0


@pytest.mark.parametrize("value", [0.25, -1, 3])
def test_constant_fills_every_entry(value):
    x = _images()
    torch.testing.assert_close(make_baseline(value, x), torch.full_like(x, float(value)))


def test_tensor_broadcasts_and_is_a_copy():
    x = _images()
    mean_image = torch.linspace(0, 1, 3 * 12 * 16).view(3, 12, 16)
    base = make_baseline(mean_image, x)
    assert base.shape == x.shape
    torch.testing.assert_close(base[1], mean_image)
    base += 1.0  # writable copy, not a view of the spec
    assert float(mean_image.max()) == 1.0


def test_callable_spec_is_applied_to_inputs():
    x = _images()
    torch.testing.assert_close(make_baseline(lambda t: 0.5 * t, x), 0.5 * x)


def test_blur_matches_scipy_mirror_filter():
    # torch "reflect" padding (d c b | a b c d) is scipy's "mirror" mode; radius ceil(3σ) = int(3σ + 0.5) for σ = 2.
    x = _images(b=1, c=2, h=20, w=24)
    ours = gaussian_blur(x, 2.0)
    channels = [x[0, c].double().numpy() for c in range(2)]
    ref = np.stack([ndimage.gaussian_filter(ch, 2.0, mode="mirror", truncate=3.0) for ch in channels])
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-6)


def test_blur_default_sigma_is_a_tenth_of_the_larger_side():
    x = _images(h=12, w=30)
    torch.testing.assert_close(make_baseline("blur", x), gaussian_blur(x, 3.0))
    torch.testing.assert_close(make_baseline("blur", x, blur_sigma=1.0), gaussian_blur(x, 1.0))


def test_blur_keeps_constants_and_smooths():
    flat = torch.full((1, 3, 9, 7), 0.7)
    torch.testing.assert_close(gaussian_blur(flat, 2.5), flat)
    x = _images()
    blurred = gaussian_blur(x, 2.0)
    assert blurred.var() < 0.5 * x.var()  # noise variance drops a lot
    torch.testing.assert_close(gaussian_blur(x, 0.0), x)
    # a kernel wider than the image is clipped to what reflect padding allows
    tiny = _images(h=3, w=2)
    assert torch.isfinite(gaussian_blur(tiny, 50.0)).all()


def test_uniform_is_seeded_and_within_each_samples_range():
    x = _images(b=3)
    x[1] = x[1] * 0.1 + 5.0  # sample 1 lives in [5, 5.1]
    a, b = make_baseline("uniform", x, seed=3), make_baseline("uniform", x, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, make_baseline("uniform", x, seed=4))
    lo = x.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = x.flatten(1).max(1).values.view(-1, 1, 1, 1)
    assert bool(((a >= lo) & (a <= hi)).all())
    gen = torch.Generator().manual_seed(3)
    torch.testing.assert_close(make_baseline("uniform", x, seed=gen), a)


def test_inputs_are_not_modified():
    x = _images()
    before = x.clone()
    for spec in (*BASELINE_NAMES, 0.5, lambda t: t.mul_(1.0)):
        make_baseline(spec, x)
    torch.testing.assert_close(x, before)


def test_unknown_string_names_baseline_and_choices():
    with pytest.raises(ValueError, match=r"`baseline` must be one of \['black', 'zeros', 'blur', 'uniform'\]"):
        make_baseline("white", _images())


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (torch.zeros(5), ValueError, r"broadcastable to the inputs' shape \(2, 3, 12, 16\)"),
        (torch.full((3, 1, 1), float("nan")), ValueError, "must be finite"),
        (float("inf"), ValueError, "constant must be finite"),
        (True, TypeError, "got a bool"),
        ([0.0, 1.0], TypeError, "got list"),
        (lambda t: t[..., :5], ValueError, "callable result must be broadcastable"),
    ],
)
def test_bad_specs_raise(spec, error, match):
    with pytest.raises(error, match=match):
        make_baseline(spec, _images())


def test_blur_needs_images():
    with pytest.raises(ValueError, match=r'`baseline="blur"` needs images of shape \[B, C, H, W\]'):
        make_baseline("blur", torch.rand(2, 5))
    with pytest.raises(ValueError, match=r"`images` must be a tensor of shape \[B, C, H, W\]"):
        gaussian_blur(torch.rand(3, 8, 8), 1.0)
    with pytest.raises(ValueError, match="`sigma` must be a finite number >= 0"):
        gaussian_blur(_images(), -1.0)


def test_seed_type_is_checked():
    with pytest.raises(TypeError, match="`seed` must be an int, a torch.Generator"):
        make_baseline("uniform", _images(), seed=1.5)
