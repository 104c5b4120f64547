"""End-to-end tests of ``smoothsal explain`` (CLI) and the zoo/photo loaders it uses."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import small_cnn
from smoothsal.cli import app
from smoothsal.datasets.photos import BUNDLED, cat_and_coffee, load_image, load_photo, to_tensor
from smoothsal.experiments.explain import run_explain
from smoothsal.zoo import imagenet_classes, load_model


@pytest.fixture
def scripted_model(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.script(small_cnn(classes=4)).save(str(path))
    return str(path)


def test_to_tensor_resizes_and_center_crops():
    img = np.zeros((40, 80, 3), dtype=np.uint8)
    img[:, 20:60] = 255  # the centre square is white
    t = to_tensor(img, size=32)
    assert t.shape == (1, 3, 32, 32) and t.dtype == torch.float32
    assert t.min() >= 0 and t.max() <= 1
    assert torch.allclose(t[..., :, 2:30], torch.ones(1, 3, 32, 28), atol=1e-3)
    with pytest.raises(ValueError, match="image"):
        to_tensor(np.zeros((4, 4, 5)))


def test_bundled_photos_and_files(tmp_path):
    photo = load_photo("chelsea", size=64)
    assert photo.tensor.shape == (1, 3, 64, 64) and photo.display.shape == (64, 64, 3)
    from PIL import Image

    Image.fromarray((photo.display * 255).astype(np.uint8)).save(tmp_path / "cat.png")
    again = load_image(tmp_path / "cat.png", size=64)
    assert (again.tensor - photo.tensor).abs().max() < 2 / 255
    assert cat_and_coffee(64).tensor.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="name"):
        load_photo("dog")
    with pytest.raises(FileNotFoundError, match="path"):
        load_image(tmp_path / "missing.png")
    assert set(BUNDLED) >= {"chelsea", "coffee"}


def test_imagenet_class_names():
    names = imagenet_classes()
    assert len(names) == 1000 and names[281].startswith("tabby") and names[967].startswith("espresso")


def test_load_model_specs(scripted_model):
    loaded = load_model(scripted_model, image_size=32)
    assert loaded.image_size == 32 and loaded.class_names is None
    assert loaded.model(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    factory = load_model("conftest:small_cnn", image_size=16)
    assert isinstance(factory.model, torch.nn.Module) and not factory.model.training
    with pytest.raises(ValueError, match="model"):
        load_model("no_such_module_xyz:factory")
    with pytest.raises(ValueError, match="model"):
        load_model("lite9")
    from smoothsal.methods.grad_cam import GradCAM

    with pytest.raises(TypeError, match="TorchScript"):
        GradCAM(loaded.model)


def test_run_explain_writes_grid_maps_and_summary(tmp_path):
    out = tmp_path / "out"
    tiny = "conftest:small_cnn"  # an eager model from a package.module:factory spec (CAMs need hooks)
    summary = run_explain(["chelsea", "coffee"], model=tiny, methods="grad,ig,gradcam", n_samples=3,
                          out_dir=out, ig_steps=8, smooth_ig_steps=2, progress=False, echo=lambda s: None)
    assert {"grid.png", "maps.npz", "summary.json", "noise_levels.png", "sample_sizes.png", "visualization.png"} <= {
        p.name for p in out.iterdir()
    }
    maps = np.load(out / "maps.npz")
    assert maps["grad"].shape == (2, 3, 224, 224) and maps["gradcam_smooth"].shape == (2, 1, 224, 224)
    assert json.loads((out / "summary.json").read_text())["images"][0]["name"] == "chelsea"
    # IG on a ReLU net with 8 Gauss-Legendre points: completeness gap is reported and small
    gaps = summary["methods"]["ig"]["raw"]["completeness_gap"]
    assert len(gaps) == 2 and all(g >= 0 for g in gaps)
    # a second run resumes from the cached maps: the same numbers, no recomputation
    cached = sorted(p.name for p in (out / "cache").glob("*.npy"))
    again = run_explain(["chelsea", "coffee"], model=tiny, methods="grad,ig,gradcam", n_samples=3,
                        out_dir=out, ig_steps=8, smooth_ig_steps=2, progress=False, echo=lambda s: None)
    assert sorted(p.name for p in (out / "cache").glob("*.npy")) == cached
    assert again["methods"]["ig"] == summary["methods"]["ig"]


def test_cli_explain_and_errors(tmp_path, scripted_model):
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "chelsea", "--model", scripted_model, "--methods", "grad",
                                 "--samples", "2", "--no-extras", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "chelsea:" in result.output and (tmp_path / "o" / "grid.png").exists()
    bad = runner.invoke(app, ["explain", "chelsea", "--model", scripted_model, "--methods", "nope",
                              "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "unknown method" in bad.output


@pytest.mark.slow
def test_explain_on_bundled_model_end_to_end(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "chelsea", "--methods", "grad,gradcam", "--samples", "2",
                                 "--no-extras", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Egyptian cat" in result.output or "tabby" in result.output or "tiger cat" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"][0]["top5"][0]["prob"] > 0.2


def test_sample_size_series_is_the_running_mean_of_one_draw_sequence():
    from smoothsal.experiments.explain import _sample_size_series
    from smoothsal.smoothing import SmoothGrad

    net, x, t = small_cnn(), torch.rand(1, 3, 16, 16), torch.tensor([1])
    kw = {"noise_level": 0.2, "n_samples": 10, "batch_size": 4, "seed": 3, "tol": None}
    series = _sample_size_series(net, x, t, [1, 4, 10], kw, progress=False)
    for n, m in zip([1, 4, 10], series):
        direct = SmoothGrad(net, noise_level=0.2, n_samples=n, batch_size=4, seed=3).attribute(x, t)[0]
        torch.testing.assert_close(m, direct, rtol=1e-5, atol=1e-6)
