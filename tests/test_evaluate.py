"""The ``smoothsal evaluate`` report card, built on a tiny CNN and tiny synthetic images."""

import csv
import json

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from smoothsal.datasets.base import ImageDataset
from smoothsal.experiments.evaluate import COLUMNS, register_cli, run_evaluate

QUICK_TINY = {"steps": 12, "fc_runs": 32, "mprt_checkpoints": 3, "roughness_pairs": 2, "ig_steps": 4,
              "smooth_ig_steps": 2, "line_steps": 5}  # fmt: skip


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4),
    ).eval()  # fmt: skip


def blobs(n: int, size: int = 24, seed: int = 0, with_empty: bool = False) -> ImageDataset:
    """Dark noise with one 6×6 square whose colour (red, green, blue) is the class; mask = the square.

    With ``with_empty`` a quarter of the images have no square (class 3, "none"), so a model trained on
    them answers "none" once the square is removed.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 0.3
    labels = torch.randint(0, 4 if with_empty else 3, (n,), generator=g)
    corner = torch.randint(0, size - 6, (n, 2), generator=g)
    rows = torch.arange(size)[None, :, None]  # [1, H, 1]
    cols = torch.arange(size)[None, None, :]  # [1, 1, W]
    top, left = corner[:, 0, None, None], corner[:, 1, None, None]
    inside = (rows >= top) & (rows < top + 6) & (cols >= left) & (cols < left + 6)  # [N, H, W]
    inside &= (labels < 3)[:, None, None]
    colour = torch.full((n, 4), 0.15)
    colour[torch.arange(n), labels] = 0.9
    images = torch.where(inside[:, None], colour[:, :3, None, None], x)
    return ImageDataset(images, labels, inside[:, None], 4, ["red", "green", "blue", "none"])


def trained_cnn() -> nn.Module:
    """``tiny_cnn`` trained for 80 Adam steps on :func:`blobs` (100 % test accuracy, ~1 s)."""
    data = blobs(256, seed=1, with_empty=True)
    model = tiny_cnn().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        idx = torch.randint(0, 256, (32,), generator=g)
        loss = nn.functional.cross_entropy(model(data.images[idx]), data.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions gain nothing from intra-op threads; on a busy 2-core machine they lose a lot."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> ImageDataset:
    return blobs(8, seed=2)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_cnn()


@pytest.fixture(scope="module")
def report(tmp_path_factory, data, model):
    out = tmp_path_factory.mktemp("evaluate")
    rep = run_evaluate(
        out, methods="grad,gradcam", quick=True, model=model, images=data.images, progress=False,
        localization=(model, data), overrides=QUICK_TINY, baseline="black",
    )  # fmt: skip
    return out, model, rep


def test_report_has_method_rows_raw_and_smoothed_and_both_controls(report):
    _, _, rep = report
    assert [r["row"] for r in rep.rows] == ["grad", "grad_smooth", "gradcam", "gradcam_smooth", "sobel", "random"]
    assert rep.row("sobel")["kind"] == "control" and rep.row("random")["kind"] == "control"
    assert rep.row("grad_smooth")["smoothed"] and rep.row("grad_smooth")["label"] == "SmoothGrad"
    for r in rep.rows:  # every column filled in
        for col in COLUMNS:
            assert col in r, (r["row"], col)


def test_sobel_fails_sanity_and_the_gradient_passes(report):
    _, _, rep = report
    sobel, grad = rep.row("sobel"), rep.row("grad")
    assert sobel["sanity"] == "FAIL" and sobel["mprt_spearman_abs"] == pytest.approx(1.0)
    assert sobel["mprt_ssim"] == pytest.approx(1.0)
    assert grad["sanity"] == "PASS" and grad["mprt_spearman_abs"] < 0.5
    assert "fails" in sobel["sanity_reason"] and "passes" in grad["sanity_reason"]
    # the random map ignores the model too: it cannot pass a model-randomization test
    assert rep.row("random")["sanity"] == "FAIL"


def test_random_map_scores_at_chance_and_the_methods_above_it(report):
    _, _, rep = report
    rnd = rep.row("random")
    # same baseline for deletion and insertion: a random order gives equal areas in expectation
    assert abs(rnd["ins_minus_del"]) < 0.15, rnd
    assert abs(rnd["faithfulness_corr"]) < 0.3 and abs(rnd["monotonicity"]) < 0.3
    assert abs(rnd["loc_mass"] - rep.settings["loc_chance_mass"]) < 0.05  # relevance mass ≈ mask area
    for key in ("grad", "grad_smooth", "gradcam"):
        row = rep.row(key)
        assert row["ins_minus_del"] > 0.5 and row["deletion_auc"] < rnd["deletion_auc"]
        assert row["prune_q90"] < rnd["prune_q90"]
        assert row["loc_pointing"] > 0.5 and row["loc_topk_iou"] > 2 * rnd["loc_topk_iou"]
    # SmoothGrad calms the gradient's roughness; the random map is the roughest of all
    assert rep.row("grad_smooth")["roughness"] < rep.row("grad")["roughness"] < rnd["roughness"]


def test_files_written_and_consistent(report):
    out, _, rep = report
    for name in ("report.csv", "report.json", "report.md", "deletion_insertion.png", "randomization.png",
                 "jaggedness.png"):  # fmt: skip
        assert (out / name).exists(), name
        assert rep.paths[name] == out / name
    with (out / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [r["row"] for r in rep.rows]
    assert rows[-2]["sanity"] == "FAIL"
    data = json.loads((out / "report.json").read_text())
    assert len(data["rows"]) == 6 and data["settings"]["n_samples"] == 8
    assert len(data["rows"][0]["_mprt"]["spearman_abs"]) == 3  # one value per cascade checkpoint
    md = (out / "report.md").read_text()
    assert "| Sobel edges (control) | FAIL |" in md and "| Gradient | PASS |" in md
    assert "pointing game" in md


def test_rerun_resumes_and_skips_finished_work(tmp_path, data):
    model = tiny_cnn()
    kwargs = dict(methods="grad", quick=True, model=model, images=data.images[:2], progress=False,
                  localization=False, overrides=QUICK_TINY)  # fmt: skip
    first = run_evaluate(tmp_path, **kwargs)
    assert first.computed == 5 * 4 + 1  # 5 sections × (grad, SmoothGrad, Sobel, random) + the jaggedness lines
    second = run_evaluate(tmp_path, **kwargs)
    assert second.computed == 0
    assert second.rows == first.rows
    # one more method: only its rows are computed
    third = run_evaluate(tmp_path, **{**kwargs, "methods": "grad,guided"})
    assert third.computed == 5 * 2
    # other settings: nothing is reused
    with pytest.warns(UserWarning, match="other settings"):
        fourth = run_evaluate(tmp_path, **{**kwargs, "noise_level": 0.3})
    assert fourth.computed == first.computed


def test_bad_arguments(tmp_path, data):
    model = tiny_cnn()
    with pytest.raises(ValueError, match="unknown method"):
        run_evaluate(tmp_path, methods="grad,nope", model=model, images=data.images[:2], progress=False)
    with pytest.raises(ValueError, match="overrides"):
        run_evaluate(tmp_path, model=model, images=data.images[:2], overrides={"stepz": 3}, progress=False)
    with pytest.raises(ValueError, match="masks"):
        unmasked = ImageDataset(data.images, data.labels, None, 4, data.class_names)
        run_evaluate(tmp_path, methods="grad", model=model, images=data.images[:2], progress=False,
                     localization=(model, unmasked), overrides=QUICK_TINY)  # fmt: skip


def test_cli_runs_on_a_user_model(tmp_path, monkeypatch, data):
    import sys
    import types

    module = types.ModuleType("tiny_user_models")
    def factory() -> nn.Module:
        model = tiny_cnn()
        model.image_size = 24  # read by smoothsal.zoo.load_model: images are loaded at 24 px
        return model

    module.factory = factory
    monkeypatch.setitem(sys.modules, "tiny_user_models", module)
    image = tmp_path / "shape.png"
    from PIL import Image

    Image.fromarray((data.images[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(image)
    app = typer.Typer()
    register_cli(app)

    @app.command("noop")
    def noop() -> None:  # a second command, so typer keeps "evaluate" as a subcommand
        pass

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["evaluate", str(image), "--methods", "grad", "--quick", "--samples", "4", "--out", str(out),
         "--model", "tiny_user_models:factory", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Sobel edges (control) | FAIL" in result.output
    assert "sanity check failed:" in result.output
    assert (out / "report.md").exists()
    bad = CliRunner().invoke(app, ["evaluate", "--methods", "nope", "--out", str(out), "--model", "tiny_user_models:factory"])
    assert bad.exit_code == 2 and "unknown method" in bad.output
