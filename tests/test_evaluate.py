"""The ``smoothsal evaluate`` report card, built on a tiny CNN and tiny synthetic images."""

import csv
import json

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from smoothsal.datasets.synthetic import make_synthetic
from smoothsal.experiments.evaluate import COLUMNS, register_cli, run_evaluate

QUICK_TINY = {"steps": 6, "fc_runs": 8, "mprt_checkpoints": 3, "roughness_pairs": 2, "ig_steps": 4,
              "smooth_ig_steps": 2, "line_steps": 5}  # fmt: skip


class LogitScale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A random ReLU CNN whose logits are scaled up so the class probabilities react to the input."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4),
        LogitScale(20.0),
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return make_synthetic(8, size=24, seed=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("evaluate")
    model = tiny_cnn()
    rep = run_evaluate(
        out, methods="grad,gradcam", quick=True, model=model, images=data.images[:4], progress=False,
        localization=(model, data), overrides=QUICK_TINY,
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


def test_random_map_scores_at_chance(report):
    _, _, rep = report
    rnd, grad = rep.row("random"), rep.row("grad")
    # same baseline for deletion and insertion: a random order gives equal areas in expectation
    assert abs(rnd["ins_minus_del"]) < 0.1
    assert abs(rnd["deletion_auc"] - rnd["insertion_auc"]) < 0.1
    assert abs(rnd["faithfulness_corr"]) < 0.35
    assert grad["ins_minus_del"] > rnd["ins_minus_del"]
    assert 0.0 <= rnd["loc_mass"] <= 1.0 and 0.0 <= rnd["loc_pointing"] <= 1.0


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
        unmasked = make_synthetic(4, size=24)
        unmasked.masks = None
        run_evaluate(tmp_path, methods="grad", model=model, images=data.images[:2], progress=False,
                     localization=(model, unmasked), overrides=QUICK_TINY)  # fmt: skip


def test_cli_runs_on_a_user_model(tmp_path, monkeypatch, data):
    import sys
    import types

    module = types.ModuleType("tiny_user_models")
    module.factory = tiny_cnn
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
