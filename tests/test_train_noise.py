"""Tests of the ``train_noise`` study: config checks, the 2 × 2 values, resuming, the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import study_cli_app
from typer.testing import CliRunner

from smoothsal.methods.gradient import VanillaGradient
from smoothsal.metrics.localization import relevance_mass
from smoothsal.metrics.tradeoff import stability_from_maps
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import stable_hash
from smoothsal.studies.train import TrainConfig, models_for_setting
from smoothsal.studies.train_noise import QUICK, TrainNoiseConfig, register_cli, run_train_noise
from smoothsal.studies.train_noise.compute import load_test_inputs

TINY = dict(n_inputs=6, n_samples=3, n_models=2, n_show=2, epochs=1)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoothsal_cache")


@pytest.fixture(autouse=True)
def _cache_env(model_cache, monkeypatch):
    monkeypatch.setenv("SMOOTHSAL_CACHE", str(model_cache))  # trained models shared by the tests here


@pytest.fixture
def cli_app():
    return study_cli_app(register_cli)


def _no_training(*args, **kwargs):
    raise AssertionError("a resumed run must not train or load a model")


def _records(out):
    return (out / "records.jsonl").read_text().splitlines()


# ---- config -----------------------------------------------------------------------------------------
def test_presets_and_defaults():
    full, quick = TrainNoiseConfig(), TrainNoiseConfig.quick()
    assert (full.n_inputs, full.n_samples, full.n_models, full.epochs) == (128, 50, 3, None)
    assert {k: getattr(quick, k) for k in QUICK} == QUICK
    assert TrainNoiseConfig.quick(epochs=1).epochs == 1
    plain, noisy = quick.train_config("plain"), quick.train_config("noisy")
    assert plain.dataset == noisy.dataset == "synthetic" and plain.epochs == 4
    assert plain.input_noise == 0.0 and noisy.input_noise == 0.2
    # a user's base keeps its recipe, but trains on the synthetic shapes
    base = TrainConfig(dataset="digits", lr=0.01, epochs=2)
    assert TrainNoiseConfig(base=base).train_config("noisy") == TrainConfig(dataset="synthetic", lr=0.01, epochs=2,
                                                                            input_noise=0.2)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "`epochs` must be >= 1, got 0"),
        ({"train_noise": 0.0}, ValueError, r"`train_noise` must be > 0 \(the noisy regime\), got 0.0"),
        ({"train_noise": -0.1}, ValueError, "`train_noise` must be a finite number >= 0, got -0.1"),
        ({"explain_noise": 0}, ValueError, "`explain_noise` must be > 0"),
        ({"n_models": 1}, ValueError, "`n_models` must be >= 2, got 1"),
        ({"n_samples": 0}, ValueError, "`n_samples` must be >= 1, got 0"),
        ({"n_inputs": 0}, ValueError, "`n_inputs` must be >= 1, got 0"),
        ({"n_show": 0}, ValueError, "`n_show` must be >= 1, got 0"),
        ({"base": {"epochs": 1}}, TypeError, "`base` must be a TrainConfig or None, got dict"),
    ],
)
def test_config_rejects_bad_arguments(changes, error, match):
    with pytest.raises(error, match=match):
        TrainNoiseConfig(**changes)


def test_config_hash_holds_only_settings_that_change_results(tmp_path):
    a = TrainNoiseConfig(**TINY)
    same = a.replace(cache_dir=tmp_path, n_show=1)
    assert stable_hash(same.to_hash(0)) == stable_hash(a.to_hash(0))
    assert stable_hash(a.to_hash(1)) != stable_hash(a.to_hash(0))  # the run's seed
    for changes in ({"epochs": 2}, {"explain_noise": 0.3}, {"train_noise": 0.1}, {"n_samples": 4},
                    {"n_models": 3}, {"n_inputs": 7}):  # fmt: skip
        assert stable_hash(a.replace(**changes).to_hash(0)) != stable_hash(a.to_hash(0)), changes


def test_too_many_inputs_fail_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOOTHSAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"`n_inputs` must be <= \d+ \(the synthetic test split\), got 100000"):
        run_train_noise(TrainNoiseConfig(**{**TINY, "n_inputs": 100000}), RunOptions(out=tmp_path / "o", progress=False))
    assert not (tmp_path / "o").exists() and not list(tmp_path.rglob("*.pt"))


# ---- the 2 × 2 ---------------------------------------------------------------------------------------
def test_run_train_noise_values_outputs_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "o"
    config, options = TrainNoiseConfig(**TINY), RunOptions(out=out, progress=False)
    rows = run_train_noise(config, options)
    assert [(r["train"], r["explain"]) for r in rows] == [
        ("plain", "gradient"), ("plain", "smoothgrad"), ("noisy", "gradient"), ("noisy", "smoothgrad")
    ]  # fmt: skip
    assert [r["train_noise"] for r in rows] == [0.0, 0.0, 0.2, 0.2]
    assert [r["explain_noise"] for r in rows] == [0.0, 0.15, 0.0, 0.15]
    assert [r["n_samples"] for r in rows] == [0, 3, 0, 3]

    # the plain/gradient cell, recomputed independently from the same (cached) models
    inputs, labels, masks = load_test_inputs(config)
    trained = models_for_setting("DT", dataset="synthetic", n_models=2, base=TrainConfig(dataset="synthetic", epochs=1),
                                 progress=False)  # fmt: skip
    maps = [VanillaGradient(t.model).attribute(inputs, labels) for t in trained]
    stab = stability_from_maps(maps)
    mass = torch.stack([relevance_mass(m, masks, relevance="abs") for m in maps]).mean(dim=1)  # [models]
    row = rows[0]
    assert row["stability_mean"] == pytest.approx(stab.mean, rel=1e-5)
    assert row["stability_norm_mean"] == pytest.approx(stab.mean_normalized, rel=1e-5)
    assert row["localization_mean"] == pytest.approx(float(mass.mean()), rel=1e-5)
    assert row["localization_std"] == pytest.approx(float(mass.std()), rel=1e-5)
    assert row["test_accuracy"] == pytest.approx(sum(t.test_accuracy for t in trained) / 2)
    assert row["mask_fraction"] == pytest.approx(float(masks.float().mean()))
    assert rows[1]["test_accuracy"] == row["test_accuracy"]  # same models, other explainer
    assert rows[1]["stability_mean"] != row["stability_mean"]

    # every output, and the CSV holds the rows' numbers
    for name in ("results.csv", "results.json", "train_noise_grid.png"):
        assert (out / name).stat().st_size > 0
    with (out / "results.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [float(r["stability_mean"]) for r in table] == [r["stability_mean"] for r in rows]
    assert json.loads((out / "results.json").read_text())["rows"] == rows

    # a rerun reads every unit back: identical rows, no new record, no model touched
    n_records = len(_records(out))
    assert n_records == 8  # 4 cells + 4 grid map sets
    grid_before = sorted(p.read_bytes() for p in (out / "arrays").glob("*.npy"))
    with monkeypatch.context() as m:
        m.setattr("smoothsal.studies.train.models_for_setting", _no_training)
        again = run_train_noise(config, options)
    assert again == rows and len(_records(out)) == n_records
    assert sorted(p.read_bytes() for p in (out / "arrays").glob("*.npy")) == grid_before

    # another explanation noise: nothing reused (gradient cells recomputed to the same numbers)
    other = run_train_noise(config.replace(explain_noise=0.3), options)
    assert len(_records(out)) == 2 * n_records
    assert other[0]["stability_mean"] == pytest.approx(rows[0]["stability_mean"], rel=1e-6)
    assert other[1]["stability_mean"] != rows[1]["stability_mean"] and other[1]["config_hash"] != rows[1]["config_hash"]


# ---- CLI --------------------------------------------------------------------------------------------
def test_cli_train_noise_on_a_tiny_config(tmp_path, cli_app):
    args = ["train-noise", "--out", str(tmp_path), "--inputs", "6", "--samples", "3", "--models", "2", "--epochs", "1",
            "--no-progress", "--batch-size", "3", "--max-memory", "1GB"]  # fmt: skip
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert "stability(norm)" in result.output
    for r in rows:  # the printed table holds the stored numbers
        assert f"{r['train']:<6} {r['explain']:<11} {r['stability_norm_mean']:.3f}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "error: `epochs` must be >= 1, got 0"),
        (["--quick", "--epochs", "0"], "error: `epochs` must be >= 1, got 0"),
        (["--train-noise", "-1"], "error: `train_noise` must be a finite number >= 0, got -1.0"),
        (["--explain-noise", "0"], "error: `explain_noise` must be > 0"),
        (["--models", "1"], "error: `n_models` must be >= 2, got 1"),
        (["--samples", "0"], "error: `n_samples` must be >= 1, got 0"),
        (["--max-memory", "lots"], "error: "),
    ],
)
def test_cli_train_noise_argument_errors(tmp_path, cli_app, args, message):
    result = CliRunner().invoke(cli_app, ["train-noise", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "o").exists()  # failed before any work
