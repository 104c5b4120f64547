"""End-to-end tests of the trade-off and train-noise experiments on tiny configurations."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from smoothsal.experiments import tradeoff as tradeoff_exp
from smoothsal.experiments import train_noise as train_noise_exp
from smoothsal.experiments.tradeoff import run_tradeoff
from smoothsal.experiments.train_noise import run_train_noise
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.tradeoff import stability_error
from smoothsal.train import TrainConfig, load_split, models_for_setting

torch.set_num_threads(1)

TINY_BASE = TrainConfig(dataset="digits", epochs=1)
TINY = dict(
    methods=("grad", "gradcam"),
    noise_levels=(0.0, 0.15, 0.3),
    settings=("DT", "DA"),
    n_inputs=6,
    n_samples=3,
    n_models=3,
    base=TINY_BASE,
    progress=False,
)
FILES = (
    "results.csv",
    "results.json",
    "stability_vs_sigma.png",
    "fidelity_vs_sigma.png",
    "pareto.png",
    "table1.md",
    "recommendation.json",
)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoothsal_cache")


@pytest.fixture(autouse=True)
def _cache_env(model_cache, monkeypatch):
    monkeypatch.setenv("SMOOTHSAL_CACHE", str(model_cache))


class Interrupted(RuntimeError):
    pass


def _csv_rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---- run_tradeoff -------------------------------------------------------------------------------
def test_run_tradeoff_writes_every_output(tmp_path):
    run = run_tradeoff(tmp_path, **TINY)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    for name in ("stability_vs_sigma.png", "fidelity_vs_sigma.png", "pareto.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.computed == 12 and len(run.rows) == 12 and len(_csv_rows(tmp_path / "results.csv")) == 12

    rows = {(r["setting"], r["method"], r["noise_level"]): r for r in run.rows}
    for (setting, method, sigma), r in rows.items():
        assert r["stability_mean"] > 0 and 0 <= r["topk_iou_mean"] <= 1
        assert r["n_pairs"] == r["n_models"] * (r["n_models"] - 1) // 2
        if sigma == 0:
            assert r["fidelity_mean"] == 0 and r["n_samples"] == 0
        else:
            assert r["fidelity_mean"] > 0 and r["n_samples"] == 3
    # DA trains cnn, cnn_wide, mlp: Grad-CAM needs a conv layer, so the MLP is left out of its pairs
    assert rows[("DA", "grad", 0.0)]["n_models"] == 3 and rows[("DA", "gradcam", 0.0)]["n_models"] == 2
    assert "mlp" not in rows[("DA", "gradcam", 0.0)]["models"]

    # the σ = 0 row is the plain stability error on the fixed inputs with their true labels
    _, test = load_split("digits")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:6]
    models = [t.model for t in models_for_setting("DT", n_models=3, base=TINY_BASE, progress=False)]
    direct = stability_error(VanillaGradient, models, test.images[idx], targets=test.labels[idx])
    assert rows[("DT", "grad", 0.0)]["stability_mean"] == pytest.approx(direct.mean, rel=1e-5)
    assert rows[("DT", "grad", 0.0)]["stability_norm_mean"] == pytest.approx(direct.mean_normalized, rel=1e-5)

    table = (tmp_path / "table1.md").read_text()
    assert "| Simple-Grad | DT |" in table and "| Grad-CAM | DA |" in table and "σ = 0.15" in table
    assert table.count("**") >= 2  # the better score of a pair is bold
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert rec["overall"]["noise_level"] in (0.0, 0.15, 0.3) and rec["overall"]["reason"]
    assert set(rec["per_curve"]) == {"DT/grad", "DT/gradcam", "DA/grad", "DA/gradcam"}
    payload = json.loads((tmp_path / "results.json").read_text())
    assert len(payload["rows"]) == 12 and set(payload["models"]) == {"DT", "DA"}
    assert all(0 <= m["test_accuracy"] <= 1 for m in payload["models"]["DT"])


def test_run_tradeoff_resumes_after_an_interruption(tmp_path):
    seen = []

    def stop_after_three(row):
        seen.append((row["setting"], row["method"], row["noise_level"]))
        if len(seen) == 3:
            raise Interrupted("simulated interruption")

    with pytest.raises(Interrupted):
        run_tradeoff(tmp_path / "a", on_row=stop_after_three, **TINY)
    assert len(_csv_rows(tmp_path / "a" / "results.csv")) == 3
    first = list(seen)

    seen.clear()
    run = run_tradeoff(tmp_path / "a", on_row=lambda row: seen.append(
        (row["setting"], row["method"], row["noise_level"])), **TINY)
    assert run.computed == 9 and len(seen) == 9 and not set(first) & set(seen)  # nothing recomputed

    run_tradeoff(tmp_path / "b", **TINY)  # uninterrupted
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    assert (tmp_path / "a" / "table1.md").read_text() == (tmp_path / "b" / "table1.md").read_text()

    # a finished run recomputes nothing
    assert run_tradeoff(tmp_path / "a", **TINY).computed == 0


def test_run_tradeoff_refuses_rows_of_another_configuration(tmp_path):
    small = dict(TINY, settings=("DT",), methods=("grad",), noise_levels=(0.0, 0.1))
    run_tradeoff(tmp_path, **small)
    with pytest.raises(ValueError, match="another configuration"):
        run_tradeoff(tmp_path, **dict(small, n_samples=4))
    assert run_tradeoff(tmp_path, fresh=True, **dict(small, n_samples=4)).computed == 2


def test_run_tradeoff_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="negative values"):
        run_tradeoff(tmp_path, **dict(TINY, noise_levels=(0.0, -0.1)))
    with pytest.raises(ValueError, match="`methods` must be one of"):
        run_tradeoff(tmp_path, **dict(TINY, methods=("sobel",)))
    with pytest.raises(ValueError, match="`n_models` must be >= 2"):
        run_tradeoff(tmp_path, **dict(TINY, n_models=1))
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        run_tradeoff(tmp_path, **dict(TINY, dataset="mnist"))


# ---- CLI ------------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()
    tradeoff_exp.register_cli(app)
    train_noise_exp.register_cli(app)
    return app


def test_tradeoff_cli_on_a_tiny_config(tmp_path):
    args = ["tradeoff", "--out", str(tmp_path), "--settings", "DT", "--methods", "grad,gradcam",
            "--noise-levels", "0,0.15,0.3", "--inputs", "6", "--samples", "3", "--models", "3",
            "--epochs", "1", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "recommended noise level:" in result.output and "DT/grad: σ =" in result.output
    for name in FILES:
        assert (tmp_path / name).exists(), name
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert f"recommended noise level: {rec['overall']['noise_level']:g}" in result.output

    bad = CliRunner().invoke(_app(), ["tradeoff", "--out", str(tmp_path / "bad"), "--noise-levels", "0,-0.1"])
    assert bad.exit_code == 2 and "negative" in bad.output


# ---- train noise × SmoothGrad ------------------------------------------------------------------------
def test_run_train_noise_writes_the_two_by_two(tmp_path):
    kw = dict(n_inputs=6, n_samples=3, n_models=2, n_show=2, progress=False,
              base=TrainConfig(dataset="synthetic", epochs=1))  # fmt: skip
    rows = run_train_noise(tmp_path, **kw)
    assert [(r["train"], r["explain"]) for r in rows] == [
        ("plain", "gradient"), ("plain", "smoothgrad"), ("noisy", "gradient"), ("noisy", "smoothgrad")
    ]  # fmt: skip
    for r in rows:
        assert 0 <= r["localization_mean"] <= 1 and 0 < r["mask_fraction"] < 1
        assert r["stability_mean"] > 0 and 0 <= r["test_accuracy"] <= 1
    assert rows[0]["train_noise"] == 0.0 and rows[2]["train_noise"] == 0.2
    assert rows[1]["n_samples"] == 3 and rows[0]["n_samples"] == 0
    for name in ("results.csv", "results.json", "train_noise_grid.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(_csv_rows(tmp_path / "results.csv")) == 4
    # a rerun reads the rows back instead of appending new ones
    again = run_train_noise(tmp_path, **kw)
    assert again == rows and len(_csv_rows(tmp_path / "results.csv")) == 4
    with pytest.raises(ValueError, match="must be > 0"):
        run_train_noise(tmp_path / "x", train_noise=0.0, **kw)


def test_photos_need_the_da_setting(tmp_path):
    with pytest.raises(ValueError, match=r"settings.*DA"):
        run_tradeoff(tmp_path, dataset="photos", settings=("DT",), progress=False)


@pytest.mark.slow
def test_photos_compare_the_pretrained_lite_models(tmp_path):
    run = run_tradeoff(tmp_path, dataset="photos", settings=("DA",), methods=("grad",), noise_levels=(0.0, 0.15),
                       n_inputs=1, n_samples=2, progress=False)
    assert [r["noise_level"] for r in run.rows] == [0.0, 0.15]
    models = json.loads((tmp_path / "models.json").read_text())["DA"]
    assert [m["name"] for m in models] == ["m0:lite0", "m1:lite1", "m2:lite2"]
    # three different networks explain the same photo differently, smoothed or not
    assert all(r["n_pairs"] == 3 and r["stability_norm_mean"] > 0.1 for r in run.rows)
    assert run.rows[0]["fidelity_norm_mean"] == 0.0 and run.rows[1]["fidelity_norm_mean"] > 0
