"""Tests of the ``explain`` study (config, compute, store, figures, CLI) and the zoo/photo loaders it uses."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import small_cnn, study_cli_app
from typer.testing import CliRunner

from smoothsal.datasets.photos import BUNDLED, cat_and_coffee, load_image, load_photo, to_tensor
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.models.zoo import imagenet_classes, load_model
from smoothsal.registry import PRECISION, build_method
from smoothsal.studies.explain import ExplainConfig, register_cli, run_explain
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.explain.compute import sample_size_series
from smoothsal.studies.options import RunOptions

TINY = "conftest:small_cnn"  # an eager model from a package.module:factory spec (CAMs need hooks)


def _tiny_config(**kw):
    settings = dict(images=("chelsea", "coffee"), model=TINY, methods=("grad", "ig", "gradcam"), n_samples=3, tol=None,
                    ig_steps=8, smooth_ig_steps=2, noise_levels=(0.0, 0.2), sample_sizes=(1, 2))  # fmt: skip
    settings.update(kw)
    return ExplainConfig(**settings)


def _options(out, **kw):
    return RunOptions(out=out, progress=False, **kw)


def _records(out):
    return (out / "records.jsonl").read_text().splitlines()


@pytest.fixture
def scripted_model(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.script(small_cnn(classes=4)).save(str(path))
    return str(path)


@pytest.fixture
def cli_app():
    return study_cli_app(register_cli)


# ---- loaders ----------------------------------------------------------------------------------------
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


# ---- config -----------------------------------------------------------------------------------------
def test_config_defaults_come_from_the_registry():
    config = ExplainConfig()
    assert (config.n_samples, config.tol) == (PRECISION.n_samples, PRECISION.tol)
    assert config.ig_steps is None and config.smooth_ig_steps is None
    # no override: the registry's settings; an override replaces only its own (method, raw|smoothed)
    assert config.method_settings("ig", False)["steps"] == ExplainConfig.registry_default("ig_steps")
    assert config.method_settings("ig", True)["steps"] == ExplainConfig.registry_default("smooth_ig_steps")
    custom = ExplainConfig(ig_steps=7, methods="smoothgrad,integrated_gradients")
    assert custom.methods == ("grad", "ig")  # aliases resolved
    assert custom.overrides("ig", False) == {"steps": 7} and custom.overrides("ig", True) == {}
    assert custom.overrides("grad", False) == {}
    assert ExplainConfig(tol=0).tol is None  # 0 = always take n_samples


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"noise_level": -1.0}, ValueError, "`noise_level` must be a finite number >= 0, got -1.0"),
        ({"n_samples": 0}, ValueError, "`n_samples` must be >= 1, got 0"),
        ({"methods": "grad,nope"}, ValueError, "unknown method 'nope'"),
        ({"methods": "sobel"}, ValueError, "unknown method 'sobel'"),  # controls are not explained
        ({"tol": -0.1}, ValueError, "`tol` must be a finite number >= 0"),
        ({"target": -2}, ValueError, "`target` must be >= 0, got -2"),
        ({"ig_steps": 0}, ValueError, "`ig_steps` must be >= 1, got 0"),
        ({"noise_levels": (0.1, 0.2)}, ValueError, "`noise_levels` must include 0"),
        ({"sample_sizes": (0, 5)}, ValueError, "`sample_sizes` must be >= 1, got 0"),
        ({"images": ("dog.png",)}, FileNotFoundError, "no image file at 'dog.png'"),
        ({"model": ""}, ValueError, "`model` must be a non-empty"),
        ({"model": "lite9"}, ValueError, "`model` must be one of"),
        ({"model": "missing.pt"}, ValueError, "TorchScript file; got 'missing.pt'"),
        ({"extras": "yes"}, TypeError, "`extras` must be a bool"),
    ],
)
def test_config_rejects_bad_arguments(changes, error, match):
    with pytest.raises(error, match=match):
        ExplainConfig(**changes)


def test_config_rejects_a_file_that_is_not_an_image(tmp_path):
    bad = tmp_path / "notimage.jpg"
    bad.write_text("this is text, not a JPEG")
    with pytest.raises(ValueError, match="notimage.jpg' is not an image file"):
        ExplainConfig(images=(str(bad),))


def test_config_hash_holds_only_settings_that_change_results(tmp_path):
    from PIL import Image

    a = ExplainConfig(images=("chelsea",))
    # methods and extras do not change a stored unit (nor do the run options but the seed)
    same = replace(a, methods=("grad",), extras=False)
    assert same.to_hash(0) == a.to_hash(0)
    assert a.to_hash(1) != a.to_hash(0)  # the noise seed does
    for changed in (replace(a, noise_level=0.2), replace(a, n_samples=10), replace(a, target=3),
                    replace(a, model="lite1"), replace(a, images=("coffee",))):  # fmt: skip
        assert changed.to_hash(0) != a.to_hash(0)
    # an image file enters by its content: editing it changes the hash
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    before = ExplainConfig(images=(str(path),)).to_hash(0)
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(path)
    assert ExplainConfig(images=(str(path),)).to_hash(0) != before


def test_config_hash_of_a_setting_is_what_older_stores_were_keyed_by():
    """A results store written before the run options left the config is found again: the hashed
    settings are the same keys and values (the seed now comes from RunOptions)."""
    from smoothsal.studies.store import stable_hash

    hashed = ExplainConfig(images=("chelsea",), noise_level=0.2, n_samples=8, tol=None).to_hash(3)
    assert hashed == {"model": {"spec": "lite0"}, "images": [{"bundled": "chelsea"}], "target": None,
                      "noise_level": 0.2, "n_samples": 8, "tol": None, "seed": 3}  # fmt: skip
    assert stable_hash(hashed) == stable_hash(dict(reversed(list(hashed.items()))))


# ---- compute, store, outputs ----------------------------------------------------------------------
def test_run_explain_writes_every_output_with_the_right_values(tmp_path):
    out = tmp_path / "out"
    summary = run_explain(_tiny_config(), _options(out), echo=None)
    assert {"grid.png", "maps.npz", "summary.json", "noise_levels.png", "sample_sizes.png", "visualization.png"} <= {
        p.name for p in out.iterdir()
    }
    assert "discriminativity.png" not in summary["figures"]  # no ImageNet class names: no cat/coffee classes
    maps = np.load(out / "maps.npz")
    assert maps["grad"].shape == (2, 3, 224, 224) and maps["gradcam_smooth"].shape == (2, 1, 224, 224)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert [im["name"] for im in summary["images"]] == ["chelsea", "coffee"]

    model = small_cnn()  # the same weights as the TINY factory
    x, targets = torch.from_numpy(maps["images"]), torch.from_numpy(maps["targets"])
    torch.testing.assert_close(targets, model(x).argmax(dim=1))  # target=None: each image's top-1
    # the maps are the methods' maps: raw gradient, and SmoothGrad with the config's sampling rule
    torch.testing.assert_close(torch.from_numpy(maps["grad"]), VanillaGradient(model).attribute(x, targets))
    smooth = build_method("grad", model, SmoothSpec(noise_level=0.15, n_samples=3, seed=0))
    torch.testing.assert_close(torch.from_numpy(maps["grad_smooth"]), smooth.attribute(x, targets))
    assert summary["methods"]["grad"]["smooth"]["n_samples"] == [3, 3]

    # IG's convergence delta, recomputed independently: |sum(attr) - (F(x) - F(0))| (black baseline)
    delta = summary["methods"]["ig"]["raw"]["convergence_delta"]
    with torch.no_grad():
        expected = (model(x) - model(torch.zeros_like(x))).gather(1, targets[:, None]).squeeze(1)
    gap = (torch.from_numpy(maps["ig"]).flatten(1).sum(dim=1) - expected).abs()
    torch.testing.assert_close(torch.tensor(delta["absolute"]), gap, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.tensor(delta["relative"]), gap / expected.abs(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.tensor(delta["expected"]), expected, rtol=1e-5, atol=1e-6)
    assert delta["steps"] == [8, 8]  # the config's ig_steps, per image
    assert "convergence_delta" not in summary["methods"]["grad"]["raw"]  # asked of the method, not its name

    # smoothed IG: the gaps of its inner runs, recomputed from the same noisy inputs (same seed, same draws)
    inner = summary["methods"]["ig"]["smooth"]["convergence_delta"]
    seen = []

    class Recorder:
        def __init__(self, m):
            self.model = m

        def attribute(self, rows, target=None):
            seen.append((rows.clone(), torch.as_tensor(target)))
            return rows

    from smoothsal.smoothing import Smooth

    Smooth(Recorder(model), noise_level=0.15, n_samples=3, seed=0, batch_size=1).attribute(x, targets)
    noisy = torch.cat([r for r, _ in seen])  # [3 draws × 2 images, ...] in call order
    which = torch.cat([t.reshape(-1) for _, t in seen])
    with torch.no_grad():
        f = model(noisy).gather(1, which[:, None]).squeeze(1) - model(torch.zeros_like(noisy)).gather(1, which[:, None]).squeeze(1)
    per_image = [f[(noisy - x[i]).flatten(1).norm(dim=1) < (noisy - x[1 - i]).flatten(1).norm(dim=1)] for i in (0, 1)]
    assert [len(p) for p in per_image] == [3, 3] and inner["n_samples"] == [3, 3] and inner["steps_mean"] == [2.0, 2.0]
    mean_df = torch.stack([p.mean() for p in per_image])  # the smoothed map should sum to this
    own_gap = (torch.from_numpy(maps["ig_smooth"]).flatten(1).sum(1) - mean_df).abs() / mean_df.abs()
    torch.testing.assert_close(torch.tensor(inner["relative_of_mean"]), own_gap, rtol=1e-3, atol=1e-6)
    assert all(m <= mx + 1e-12 for m, mx in zip(inner["relative_mean"], inner["relative_max"]))
    assert any(line.startswith("completeness Integrated Gradients") for line in summary["completeness"])


def test_run_explain_resumes_and_never_mixes_configurations(tmp_path):
    out = tmp_path / "out"
    first = run_explain(_tiny_config(), _options(out), echo=None)
    maps1 = dict(np.load(out / "maps.npz"))
    n_records = len(_records(out))
    assert n_records == 6 + 2 + 1  # 3 methods × raw/smooth, 2 noise levels, 1 sample-size series

    again = run_explain(_tiny_config(), _options(out), echo=None)  # everything read back: no new record
    assert len(_records(out)) == n_records
    maps2 = dict(np.load(out / "maps.npz"))
    assert maps1.keys() == maps2.keys() and all(np.array_equal(maps1[k], maps2[k]) for k in maps1)
    assert again["methods"] == first["methods"]

    # another noise level: nothing of the old run is reused, and its records stay in the file
    other = run_explain(_tiny_config(noise_level=0.3), _options(out), echo=None)
    assert len(_records(out)) == 2 * n_records
    assert other["config_hash"] != first["config_hash"]
    maps3 = dict(np.load(out / "maps.npz"))
    assert not np.allclose(maps3["grad_smooth"], maps1["grad_smooth"])
    np.testing.assert_array_equal(maps3["grad"], maps1["grad"])  # recomputed: the raw map is unchanged

    # a user override of IG's raw steps changes one unit only: the raw IG maps
    run_explain(_tiny_config(ig_steps=4), _options(out), echo=None)
    assert len(_records(out)) == 2 * n_records + 1
    assert not np.allclose(np.load(out / "maps.npz")["ig"], maps1["ig"])
    # --fresh empties the store
    run_explain(_tiny_config(methods=("grad",), extras=False), _options(out, fresh=True), echo=None)
    assert len(_records(out)) == 2


def test_sample_size_series_is_the_running_mean_of_one_draw_sequence():
    net, x, t = small_cnn(), torch.rand(1, 3, 16, 16), torch.tensor([1])
    spec = SmoothSpec(noise_level=0.2, n_samples=10, seed=3)
    series = sample_size_series(net, x, t, [1, 4, 10], spec, batch_size=4)[0]
    for n, m in zip([1, 4, 10], series):
        direct = build_method("grad", net, spec.replace(n_samples=n), batch_size=4).attribute(x, t)[0]
        torch.testing.assert_close(m, direct, rtol=1e-5, atol=1e-6)


def test_the_sample_size_figure_is_kept_from_the_grids_smoothgrad(tmp_path):
    """Fig. 4's maps are snapshots of the grid's SmoothGrad of the first image (no second draw):
    equal to the separately drawn series, and its last panel is the grid's map."""
    from smoothsal.studies.explain.compute import compute_explain

    res = compute_explain(_tiny_config(methods=("grad",), n_samples=6, sample_sizes=(1, 3)), _options(tmp_path / "o"))
    rec = [json.loads(line) for line in _records(tmp_path / "o")]
    unit = next(r for r in rec if r["unit"].get("kind") == "sample_sizes")
    assert unit["values"]["source"] == "snapshots of the grid's SmoothGrad"
    net = small_cnn()
    drawn = sample_size_series(net, res.inputs[:1], res.targets[:1], [1, 3, 6], res.config.smooth_spec(0))[0]
    torch.testing.assert_close(torch.as_tensor(res.sample_size_maps), drawn, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.as_tensor(res.sample_size_maps[-1]), torch.as_tensor(res.maps["grad_smooth"][0]))


# ---- CLI --------------------------------------------------------------------------------------------
def test_cli_explain_runs_and_prints_predictions(tmp_path, scripted_model, cli_app):
    result = CliRunner().invoke(cli_app, ["explain", "chelsea", "--model", scripted_model, "--methods", "grad",
                                          "--samples", "2", "--no-extras", "--no-progress", "--batch-size", "2",
                                          "--max-memory", "1GB", "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "chelsea:" in result.output and (tmp_path / "o" / "grid.png").exists()
    settings = json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]
    assert settings["n_samples"] == 2 and settings["batch_size"] == 2 and settings["tol"] == PRECISION.tol


def test_cli_explain_errors_come_before_any_work(tmp_path, scripted_model, cli_app):
    runner = CliRunner()
    notimage = tmp_path / "notimage.jpg"
    notimage.write_text("hello")
    cases = [
        (["--noise-level", "-1"], "`noise_level` must be a finite number >= 0, got -1.0"),
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--samples", "0"], "`n_samples` must be >= 1, got 0"),
        (["--ig-steps", "0"], "`ig_steps` must be >= 1, got 0"),
        (["--max-memory", "lots"], "error: "),
    ]
    for extra, message in cases:
        out = tmp_path / f"o{len(extra[1])}"
        result = runner.invoke(cli_app, ["explain", "chelsea", "--model", scripted_model, "--out", str(out), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert "error: " in result.output and message in result.output, (extra, result.output)
        assert "chelsea:" not in result.output and not out.exists(), extra  # no prediction printed, nothing written
    bad_file = runner.invoke(
        cli_app, ["explain", str(notimage), "--model", scripted_model, "--out", str(tmp_path / "x")]
    )
    assert bad_file.exit_code == 2 and "error: " in bad_file.output and "is not an image file" in bad_file.output
    missing = runner.invoke(cli_app, ["explain", "nosuch.png", "--model", scripted_model, "--out", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "no image file at 'nosuch.png'" in missing.output
    # a target the model does not have: after loading it, before any map or prediction line
    target = runner.invoke(cli_app, ["explain", "chelsea", "--model", scripted_model, "--target", "9",
                                     "--out", str(tmp_path / "z")])  # fmt: skip
    assert target.exit_code == 2 and "`target` must lie in [0, 3]" in target.output and "chelsea:" not in target.output


@pytest.mark.slow
def test_explain_on_bundled_model_end_to_end(tmp_path, cli_app):
    result = CliRunner().invoke(cli_app, ["explain", "chelsea", "--methods", "grad,ig", "--samples", "2",
                                          "--no-extras", "--no-progress", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Egyptian cat" in result.output or "tabby" in result.output or "tiger cat" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"][0]["top5"][0]["prob"] > 0.2
    delta = summary["methods"]["ig"]["raw"]["convergence_delta"]
    # the gap recomputed from the saved map and two forward passes of the model
    maps = np.load(tmp_path / "maps.npz")
    model, x = load_model("lite0").model, torch.from_numpy(maps["images"])
    t = int(maps["targets"][0])
    with torch.no_grad():
        expected = float(model(x)[0, t] - model(torch.zeros_like(x))[0, t])
    total = float(maps["ig"][0].astype(np.float64).sum())
    assert delta["expected"][0] == pytest.approx(expected, rel=1e-4)
    assert delta["relative"][0] == pytest.approx(abs(total - expected) / abs(expected), rel=1e-3)
    assert delta["steps"] == [32]
    # 32 Gauss–Legendre points leave ≈ 10 % of the cat's score change unexplained on Lite0 (ReLU6 paths;
    # benchmarks/bench_ig_auto.py: 0.98 % at 8, 133 % at 16, 9.8 % at 32, 20 % at 64, 0.63 % at 128 points)
    assert 0.05 < delta["relative"][0] < 0.2
    # smoothed IG runs 4 points per noisy sample: its inner runs are far from complete (mean ≈ 136 % at n = 8)
    inner = summary["methods"]["ig"]["smooth"]["convergence_delta"]
    assert inner["n_samples"] == [2] and inner["relative_mean"][0] > 0.3


@pytest.mark.slow
def test_zoo_model_runs_channels_last_with_the_same_predictions_and_maps():
    """The pretrained zoo model runs its network channels-last (faster on CPU); its logits match the
    plain layout to float precision, and so does its gradient, within what float32 rounding moves it.

    As given (Lite0's convolutions have no bias), the two layouts give bit-identical gradients. With
    BatchNorm folded (the default, :mod:`smoothsal.execution.folding`), every convolution gets the
    BatchNorm's shift as a bias (the folded weights are bit-identical in both layouts), and CPU
    convolution kernels round a biased convolution differently in channels-last and contiguous
    layouts (Lite0's stem: 1e-5 apart; without the bias: identical). The gradient of Lite0 amplifies
    that rounding: its max relative difference reaches 0.065 on a few pixels (relative L2 0.006,
    correlation 0.99998), less than moving the input by 1e-6 changes it (relative L2 0.013). So the
    folded maps are compared by relative L2 against that float32 sensitivity, measured here, not by
    their largest pixel difference.
    """
    from smoothsal.execution.folding import folding
    from smoothsal.models.zoo import efficientnet_lite0

    def rel_l2(a, b):
        return float((a - b).norm() / b.norm())

    fast = efficientnet_lite0()
    assert fast.channels_last
    plain = efficientnet_lite0()
    plain.net = plain.net.to(memory_format=torch.contiguous_format)
    plain.channels_last = False
    x = load_photo("chelsea").tensor
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-3, atol=1e-3)
    with folding(False):
        g_fast, g_plain = VanillaGradient(fast).attribute(x, 281), VanillaGradient(plain).attribute(x, 281)
    assert float((g_fast - g_plain).abs().max() / g_plain.abs().max()) < 0.01
    g_fast, g_plain = VanillaGradient(fast).attribute(x, 281), VanillaGradient(plain).attribute(x, 281)
    nudge = 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    sensitivity = rel_l2(VanillaGradient(plain).attribute(x + nudge, 281), g_plain)  # measured 0.013
    assert 0.0 < sensitivity < 0.05
    assert rel_l2(g_fast, g_plain) < sensitivity  # measured 0.006
    assert float(torch.corrcoef(torch.stack([g_fast.flatten(), g_plain.flatten()]))[0, 1]) > 0.9999


def test_the_run_states_its_settings(tmp_path):
    from smoothsal.studies.explain.report import settings_line

    config = _tiny_config(tol=0.3, n_samples=64, noise_level=0.2)
    assert settings_line(config, _options(tmp_path, seed=5), 3 * 2**30) == (
        f"settings: model {TINY}, methods grad,ig,gradcam, noise level 20%, n ≤ 64, stop at relative SE 0.3, "
        "seed 5, automatic batch (memory budget 3.0 GiB), device auto, float32"
    )
    assert settings_line(_tiny_config(), _options(tmp_path, batch_size=4)).endswith(
        "n = 3, seed 0, 4 rows per call, device auto, float32"
    )
