"""Control methods: Sobel edges (must ignore the model) and a seeded random map."""

import pytest
import torch
from torch import nn

from conftest import small_cnn
from smoothsal.methods.controls import RandomAttribution, SobelEdges, keyed_gaussian, sobel_edges


def _step_image(height: int = 6, width: int = 8, col: int = 4, level: float = 0.5) -> torch.Tensor:
    """Vertical step edge: 0 left of ``col``, ``level`` from ``col`` on, in every channel."""
    x = torch.zeros(1, 3, height, width)
    x[..., col:] = level
    return x


def test_sobel_on_vertical_step_edge_is_four_times_the_step():
    x = _step_image(level=0.5)
    edges = SobelEdges(small_cnn()).attribute(x)
    expected = torch.zeros(1, 3, 6, 8)
    expected[..., 3:5] = 4 * 0.5  # the two columns either side of the step: |G_x| = (1 + 2 + 1) * 0.5
    torch.testing.assert_close(edges, expected)


def test_sobel_diagonal_and_constant_images():
    # a constant image has no edges (replicate padding: no border artefacts)
    torch.testing.assert_close(sobel_edges(torch.full((2, 1, 5, 5), 0.7)), torch.zeros(2, 1, 5, 5))
    # a horizontal step gives the same response transposed
    x = _step_image(8, 8, 4, 1.0)
    torch.testing.assert_close(sobel_edges(x.transpose(2, 3)), sobel_edges(x).transpose(2, 3))
    # x_ij = i + j: G_x = G_y = (1 + 2 + 1) * (x_{i,j+1} - x_{i,j-1}) = 8 inside, magnitude 8 * sqrt(2)
    ramp = (torch.arange(6.0)[:, None] + torch.arange(6.0)[None, :])[None, None]
    torch.testing.assert_close(sobel_edges(ramp)[0, 0, 1:-1, 1:-1], torch.full((4, 4), 8 * 2**0.5))


def test_sobel_ignores_the_model_weights():
    x = torch.rand(2, 3, 8, 8)
    a = SobelEdges(small_cnn(seed=0)).attribute(x, target=1)
    b = SobelEdges(small_cnn(seed=5)).attribute(x, target=[0, 2])
    torch.testing.assert_close(a, b)


def test_sobel_validates_target_and_shape():
    model = small_cnn(classes=3)
    with pytest.raises(ValueError, match="target"):
        SobelEdges(model).attribute(torch.rand(1, 3, 8, 8), target=7)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        SobelEdges(model).attribute(torch.rand(2, 12))


def test_random_map_is_seeded_and_independent_of_batch_and_model():
    x = torch.rand(5, 3, 8, 8)
    m = RandomAttribution(small_cnn(), seed=3)
    full = m.attribute(x)
    torch.testing.assert_close(full, RandomAttribution(small_cnn(seed=9), seed=3).attribute(x))
    # batch-size and position invariance: the map is keyed by the sample's content
    torch.testing.assert_close(m.attribute(x[2:3]), full[2:3])
    torch.testing.assert_close(m.attribute(x.flip(0)), full.flip(0))
    # another seed, another map; the same image twice in a batch gets the same map
    assert not torch.allclose(RandomAttribution(small_cnn(), seed=4).attribute(x), full)
    twice = m.attribute(torch.cat([x[:1], x[:1]]))
    torch.testing.assert_close(twice[0], twice[1])
    # a changed sample gets a fresh (uncorrelated) map
    y = x.clone()
    y[0, 0, 0, 0] += 1e-3
    other = m.attribute(y)[0].flatten()
    assert abs(torch.corrcoef(torch.stack([other, full[0].flatten()]))[0, 1]) < 0.3


def test_random_map_is_standard_normal_and_uncorrelated_with_the_input():
    x = torch.rand(16, 3, 32, 32)
    z = keyed_gaussian(x, seed=0)
    assert z.shape == x.shape
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
    # fraction within one standard deviation, 68.3% for a normal
    assert abs(float((z.abs() < 1).float().mean()) - 0.6827) < 0.01
    corr = torch.corrcoef(torch.stack([z.flatten(), x.flatten()]))[0, 1]
    assert abs(float(corr)) < 0.02


def test_random_attribution_seed_from_generator_and_errors():
    x = torch.rand(2, 4)
    model = nn.Linear(4, 2).eval()
    a = RandomAttribution(model, seed=torch.Generator().manual_seed(1)).attribute(x)
    b = RandomAttribution(model, seed=torch.Generator().manual_seed(1)).attribute(x)
    torch.testing.assert_close(a, b)
    with pytest.raises(TypeError, match="seed"):
        RandomAttribution(model, seed=1.5)
    with pytest.raises(ValueError, match="target"):
        RandomAttribution(model).attribute(x, target=[0, 1, 1])
