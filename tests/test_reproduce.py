"""``smoothsal reproduce``: tiny end-to-end runs write every promised figure and table; the maths has known answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_cnn

pytest.importorskip("typer")
pytest.importorskip("matplotlib")

from smoothsal.metrics.claims import table1  # noqa: E402
from smoothsal.studies.options import RunOptions  # noqa: E402
from smoothsal.studies.reproduce import SmoothGradReproConfig, StabilityReproConfig, run_smoothgrad, run_stability  # noqa: E402
from smoothsal.studies.reproduce.plots import grid_pixels  # noqa: E402
from smoothsal.studies.reproduce.report import convergence, correct_side_share  # noqa: E402
from smoothsal.studies.reproduce.smoothgrad import discriminativity_classes  # noqa: E402
from smoothsal.studies.reproduce.stability import bootstrap_power_law, fit_power_law  # noqa: E402


def tiny_a() -> torch.nn.Module:
    """A small CNN with 1,000 outputs (for ``--model test_reproduce:tiny_a``-style specs: ImageNet class targets)."""
    return small_cnn(seed=1, classes=1000)


def tiny_b() -> torch.nn.Module:
    return small_cnn(seed=2, classes=1000)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("reproduce_cache")


def _check_png(path, size):
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        assert im.size == size, f"{path.name}: {im.size} != {size}"
        arr = np.asarray(im.convert("RGB"), dtype=float)
    assert arr.std() > 0 and len(np.unique(arr.reshape(-1, 3), axis=0)) > 10, f"{path.name} is blank"


def _check_manifest(out, figures, tables):
    manifest = json.loads((out / "manifest.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert [f["file"] for f in manifest["figures"]] == list(figures)
    assert [f["file"] for f in summary["figures"]] == list(figures)
    for f in manifest["figures"]:
        assert f["caption"] and isinstance(f["settings"], dict)
        _check_png(out / f["file"], figures[f["file"]])
    assert [t["file"] for t in manifest["tables"]] == list(tables)
    for t in tables:
        assert (out / t).stat().st_size > 0
    quoted = json.loads((out / "results_numbers.json").read_text())
    assert quoted["command"].startswith("smoothsal reproduce") and quoted["numbers"]
    return manifest


def test_smoothgrad_tiny_run_writes_every_figure_and_table(tmp_path, cache):
    out = tmp_path / "sg"
    config = SmoothGradReproConfig.preset(
        True, model="conftest:small_cnn", image_size=16, n_samples=3, noise_levels=(0, 0.1, 0.3),
        sample_sizes=(1, 2, 4), max_sample_size=4, fig4_images=1, line_steps=5, methods=("grad", "guided"), line_samples=2, digit_epochs=1,
        digit_models=2, digit_inputs=8, digit_show=2, cache_dir=cache, tol=0.5, claims=False,
    )  # fmt: skip  (the claims need the MNIST models: tests/test_smoothgrad_claims.py checks their rules)
    options = RunOptions(out=out, progress=False)
    run_smoothgrad(config, options, echo=None)
    g = lambda r, c, rl=True: grid_pixels(r, c, rl, True, True)  # noqa: E731
    figures = {
        "fig2_jagged_line.png": (1200, 360),
        "fig3_noise_levels.png": g(4, 1 + 3),
        "fig4_sample_sizes.png": g(1, 1 + 3 + 1),
        "fig5_methods.png": g(4, 1 + 4 * 2),
        "fig6_discriminativity.png": g(2 * 2, 4),
        "fig7_combined.png": g(4, 1 + 2 * 1),  # Guided Backprop raw | + SmoothGrad
        "fig8_9_train_noise.png": g(2, 5, False),
        "visualization_lessons.png": g(2, 6),
    }
    tables = ["fig3_noise_levels.md", "fig4_sample_sizes.md", "fig5_6_methods.md", "fig8_9_train_noise.md"]
    manifest = _check_manifest(out, figures, tables)
    with (out / "fig3_noise_levels.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header == ["quantity", "0", "0.1", "0.3"]  # the config's noise levels are the columns
    numbers = manifest["numbers"]
    assert numbers["fig4_distance_to_largest_n"]["4"] == 0.0  # the largest n is the reference
    assert len(numbers["fig8_9"]) == 4 and numbers["quick"] is True
    # resume: a second run reads every unit back and computes nothing
    records = (out / "records.jsonl").read_text()
    run_smoothgrad(config, options, echo=None)
    assert (out / "records.jsonl").read_text() == records


def _fake_theory_pair(dataset="mnist", **_):
    """Two random ``smooth_mlp`` digits models with hand-set constants (the real pair trains 10 epochs)."""
    from smoothsal.studies.train import TheoryConstants, TrainedModel, build_model, theory_recipe

    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        consts = TheoryConstants(layers=2, input_dim=32 * 32, input_norm_bound=32.0, step_constant=1.0, step_offset=0,
                                 steps=10, n_train=100, batch_size=1, weight_norms=(2.0, 3.0),
                                 final_weight_norms=(2.0, 3.0), tracking_gap=0.0, lipschitz_estimate=1.0,
                                 gamma_estimate=1.0)  # fmt: skip
        out.append(TrainedModel(build_model("smooth_mlp", 1, 10, 32).eval(), theory_recipe("digits"), 0.1,
                                Path(f"theory_{seed}.pt"), theory=consts))  # fmt: skip
    return [out]


def test_stability_tiny_run_writes_every_figure_and_table(tmp_path, cache, monkeypatch):
    import smoothsal.studies.train as train

    monkeypatch.setattr(train, "theory_pairs", lambda *a, **k: _fake_theory_pair())
    out = tmp_path / "st"
    config = StabilityReproConfig.preset(
        True, settings=("DT",), methods=("grad", "gradcam"), noise_levels=(0, 0.1, 0.3), n_samples=4,
        n_inputs=6, n_pairs=1, dataset="digits", epochs=1, photo_models=("test_reproduce:tiny_a", "test_reproduce:tiny_b"),
        photo_names=("chelsea", "coffee"), photo_size=24, photo_noise_levels=(0, 0.15, 0.3), photo_samples=4,
        photo_max_samples=8, n_boot=100, cache_dir=cache, theory_methods=("grad",),
    )  # fmt: skip
    options = RunOptions(out=out, progress=False)
    run_stability(config, options, echo=None, publish=tmp_path / "published")
    n_settings = 2  # DT, DA-ImageNet
    figures = {
        "stability_vs_sigma.png": (400 * n_settings, 660),
        "fidelity_vs_sigma.png": (400 * n_settings, 660),
        "pareto.png": (400 * n_settings, 380),
        "ssim_topk_vs_sigma.png": (400 * n_settings, 620),
        "power_law_fits.png": (400 * n_settings, 660),
        "two_models_maps.png": grid_pixels(2 + 1, 5, True, True, True),
    }
    tables = ["results.csv", "models.md", "imagenet_photos.md", "imagenet_rse.md", "table1.md", "table1_side_by_side.md", "trend_tests.md",
              "theory_bounds.md", "power_law_fits.md"]  # fmt: skip
    manifest = _check_manifest(out, figures, tables)
    with (out / "table1.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["setting"], r["method"]) for r in table] == [("DT", "grad"), ("DT", "gradcam"), ("DA-ImageNet", "grad")]
    assert all(float(r["sigma"]) == (0.1 if r["setting"] != "DA-ImageNet" else 0.15) for r in table)  # nearest to 0.15
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {float(r["noise_level"]) for r in rows if r["setting"] == "DT"} == {0.0, 0.1, 0.3}
    for r in rows:
        if float(r["noise_level"]) == 0:  # σ = 0: the raw maps, fidelity 0 and no Monte-Carlo error
            assert float(r["fidelity_mean"]) == 0.0 and float(r["rse_max"]) == 0.0
        else:
            assert int(r["n_pairs"]) == 1 and float(r["rse_max"]) > 0
    photo = [r for r in rows if r["setting"] == "DA-ImageNet" and float(r["noise_level"]) > 0]
    assert all(4 <= float(r["n_samples_used_mean"]) <= 8 for r in photo)  # sampled to the precision, within the cap
    with (out / "imagenet_rse.csv").open() as fh:
        per_map = list(csv.DictReader(fh))
    assert len(per_map) == 2 * 2 * 2  # σ > 0 × models × photos, each map once
    assert all((float(m["relative_stderr"]) < 0.3) == (m["below_target"] == "True") for m in per_map)
    assert "imagenet_rse_max" in manifest["numbers"]
    with (out / "table1_side_by_side.csv").open() as fh:
        sbs = list(csv.DictReader(fh))
    assert {r.label for r in table1().rows} <= {line["paper_row"] for line in sbs}
    assert any(line["ours"] == "DT gradcam" and line["paper_row"] == "DT Grad-CAM (ResNet50)" for line in sbs)
    results = json.loads((out / "results.json").read_text())
    assert [p["class_index"] for p in results["photos"]] == [281, 967]
    assert {r["method"] for r in results["theory"]["rows"]} == {"grad"} and len(results["theory"]["constants"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cpu_seconds_rows"] > 0 and summary["command"] == "smoothsal reproduce stability --quick"
    assert (tmp_path / "published" / "table1_side_by_side.md").read_text() == (out / "table1_side_by_side.md").read_text()
    assert not (tmp_path / "published" / "records.jsonl").exists()  # the store stays behind
    records = (out / "records.jsonl").read_text()
    run_stability(config, options, echo=None)
    assert (out / "records.jsonl").read_text() == records


def test_dr_imagenet_row_runs_torchvision_resnet50_pair_with_random_weights(tmp_path):
    """The paper's DR row (ResNet50 V1 vs V2) where weights are given: here random ones, on small photos."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    from smoothsal.studies.reproduce.stability import compute_stability
    from smoothsal.studies.reproduce.stability_tables import table1_side_by_side

    config = StabilityReproConfig.preset(
        True, settings=(), photo_models=(), dr_weights=("random", "random"), photo_names=("chelsea", "coffee"),
        photo_size=32, photo_methods=("grad",), photo_noise_levels=(0, 0.15), photo_samples=2, photo_max_samples=2,
        n_boot=100, theory=False,
    )  # fmt: skip
    rows, extras, _ = compute_stability(config, RunOptions(out=tmp_path, progress=False))
    assert {r["setting"] for r in rows} == {"DR-ImageNet"} and "DR-ImageNet" not in extras.skipped
    assert [m["name"] for m in extras.models["DR-ImageNet"]] == ["resnet50_V1", "resnet50_V2"]
    sbs = table1_side_by_side(rows, 0.15, skipped=extras.skipped, n_boot=100)
    dr = [line for line in sbs if line["ours"] == "DR-ImageNet grad"]
    assert [line["paper_row"] for line in dr] == ["DR Simple-Grad (ResNet50)"]  # that row only, not the DA ones
    assert dr[0]["ssim_verdict"] in ("agrees", "disagrees", "inconclusive") and dr[0]["units"] == "1 pair(s) × 2 images"


def test_power_law_fit_recovers_known_exponents():
    sigmas = [0.05, 0.1, 0.2, 0.4]
    p, c = fit_power_law(sigmas, [3.0 * s**-0.7 for s in sigmas])
    assert p == pytest.approx(-0.7) and c == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    per_input = np.array([[2.0 * s**1.0 * np.exp(rng.normal(0, 0.05)) for _ in range(40)] for s in sigmas])
    fit = bootstrap_power_law(sigmas, per_input, n_boot=200, seed=0)
    assert fit["low"] < 1.0 < fit["high"] and fit["high"] - fit["low"] < 0.2
    assert np.isnan(fit_power_law([0.0, 0.1], [1.0, 2.0])[0])  # one usable point: no fit


def test_map_numbers_have_known_values():
    left = np.zeros((1, 4, 4))
    left[0, :, :2] = 1.0
    right = np.zeros((1, 4, 4))
    right[0, :, 2:] = 1.0
    assert correct_side_share(left, right) == pytest.approx(1.0)  # first class on its own half
    assert correct_side_share(right, left) == pytest.approx(0.0)
    maps = np.stack([np.full(3, 2.0), np.full(3, 1.0)])
    assert convergence(maps) == pytest.approx([1.0, 0.0])
    assert discriminativity_classes(torch.tensor([[0.0, 5.0, 1.0], [0.0, 4.0, 3.0]])) == [1, 2]


def test_natural_photos_are_the_named_offline_images_in_order():
    """The ImageNet setting's photos are the bundled photos then the natural ones, each the image
    its source package ships (checked against scikit-image and scikit-learn directly), grey photos
    as three equal channels."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    from smoothsal.datasets.photos import BUNDLED, load_photo, natural_photos, to_tensor

    from smoothsal.datasets.photos import NATURAL_PHOTO_NAMES

    names = list(NATURAL_PHOTO_NAMES)
    photos = dict(zip(names, natural_photos(names, size=16)))
    assert [p.name for p in photos.values()] == names and names[: len(BUNDLED)] == list(BUNDLED)
    samples = load_sample_images()
    china = samples.images[[f.endswith("china.jpg") for f in samples.filenames].index(True)]
    direct = {
        "chelsea": load_photo("chelsea", 16).tensor,
        "china": to_tensor(china, 16),
        "camera": to_tensor(skimage.data.camera(), 16),
        "motorcycle_right": to_tensor(skimage.data.stereo_motorcycle()[1], 16),
    }
    for name, expected in direct.items():
        assert torch.equal(photos[name].tensor, expected), name
    grey = photos["camera"].tensor[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert not torch.equal(photos["china"].tensor[0, 0], photos["china"].tensor[0, 1])
    assert not torch.equal(photos["motorcycle_left"].tensor, photos["motorcycle_right"].tensor)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(images=("chelsea", "coffee")), "at least 4 images"),
        (dict(noise_level=0), "`noise_level` must be > 0"),
        (dict(tol=1.5), "`tol` must lie in"),
    ],
)
def test_smoothgrad_config_rejects_bad_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        SmoothGradReproConfig(**changes)


def test_stability_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="`photo_names` must be photos of ImageNet classes"):
        StabilityReproConfig(photo_names=("chelsea", "brick"))  # a texture shows no ImageNet class
    with pytest.raises(ValueError, match="unknown"):
        StabilityReproConfig(settings=("DX",))
    with pytest.raises(ValueError, match="`n_samples` must be even"):
        StabilityReproConfig(n_samples=5)
    with pytest.raises(ValueError, match="`dr_weights` must give 2"):
        StabilityReproConfig(dr_weights=("IMAGENET1K_V1",))
    assert StabilityReproConfig().n_samples == 100 and StabilityReproConfig.preset(True).n_samples == 16


def test_imagenet_photos_name_real_imagenet_classes():
    """Each photo's class index names the class the photo is listed as showing."""
    from smoothsal.models.zoo import imagenet_classes
    from smoothsal.studies.reproduce.config import IMAGENET_PHOTOS

    classes = imagenet_classes()
    expected = {"chelsea": "tabby", "coffee": "espresso", "rocket": "missile", "china": "palace",
                "motorcycle_left": "moped", "camera": "tripod", "clock": "wall clock"}  # fmt: skip
    assert {n: classes[i].split(",")[0] for n, (i, _) in IMAGENET_PHOTOS.items()} == expected
    assert set(StabilityReproConfig().photo_names) <= set(IMAGENET_PHOTOS)


def test_cli_has_both_commands_and_reports_bad_options(tmp_path):
    from typer.testing import CliRunner

    from smoothsal.cli import build_app

    runner = CliRunner()
    result = runner.invoke(build_app(), ["reproduce", "--help"])
    assert result.exit_code == 0 and "smoothgrad" in result.output and "stability" in result.output
    bad = runner.invoke(build_app(), ["reproduce", "stability", "--quick", "--photos", "grass,coffee", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "photo_names" in bad.output
