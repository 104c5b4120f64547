"""``smoothsal tradeoff --models A.pt,B.pt --images DIR``: the study on the user's own saved models.

Two tiny TorchScript CNNs (16 × 16 inputs, 4 classes) and three small PNGs plus a text file. The
truths compared with:

* the stability error at σ = 0 (Ye & Farnia 2025, eq. 12) of the gradient is, for two models,
  the mean over images of ‖∇_x f_A(x)_t − ∇_x f_B(x)_t‖₂, computed here with autograd, with t the
  first model's top-1 class (the class both models explain);
* two files holding the same model give stability error 0 at every σ, smoothed included (both
  models get the same noise draws), while smoothing moves the maps (fidelity error > 0);
* rows are reused on a rerun, and recomputed when a model file's weights change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

typer = pytest.importorskip("typer")
from typer.testing import CliRunner

from smoothsal.studies.tradeoff.own_models import OwnModels, parse_model_list

SIZE = 16
ARGS = ["--methods", "grad", "--noise-levels", "0,0.2", "--samples", "4", "--no-progress", "--batch-size", "8"]


class _Net(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.image_size = SIZE
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, Path, Path]:
    from PIL import Image

    for seed in (0, 1):
        torch.jit.script(_Net(seed).eval()).save(str(tmp_path / f"m{seed}.pt"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((SIZE, SIZE, 3)) * 255).astype("uint8")).save(images / f"im{i}.png")
    (images / "notes.txt").write_text("not an image")
    return tmp_path / "m0.pt", tmp_path / "m1.pt", images


def _run(*args: str) -> typer.testing.Result:
    from smoothsal.cli import build_app

    return CliRunner().invoke(build_app(), ["tradeoff", *args])


def _rows(out: Path) -> dict[float, dict]:
    return {r["noise_level"]: r for r in json.loads((out / "results.json").read_text())["rows"]}


def test_own_models_write_the_study_and_match_the_direct_gradient_distance(saved, tmp_path):
    from smoothsal.datasets.photos import load_image

    a, b, images = saved
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="notes.txt"):
        result = _run("--models", f"{a},{b}", "--images", str(images), "--out", str(out), *ARGS)
    assert result.exit_code == 0, result.output
    assert "recommended noise level:" in result.output and "models/grad: σ =" in result.output
    for name in ("results.csv", "results.json", "table1.md", "recommendation.json", "stability_vs_sigma.png",
                 "fidelity_vs_sigma.png", "pareto.png"):  # fmt: skip
        assert (out / name).is_file(), name
    rows = _rows(out)
    assert sorted(rows) == [0.0, 0.2] and {r["setting"] for r in rows.values()} == {"models"}
    assert rows[0.0]["n_models"] == 2 and rows[0.0]["n_inputs"] == 3  # the text file is left out
    assert "Gradient | models" in (out / "table1.md").read_text()

    # eq. 12 at σ = 0, by hand: the two models' input gradients for the first model's class
    x = torch.cat([load_image(images / f"im{i}.png", SIZE).tensor for i in range(3)]).requires_grad_(True)
    ma, mb = torch.jit.load(str(a)), torch.jit.load(str(b))
    t = ma(x).argmax(1)
    ga = torch.autograd.grad(ma(x).gather(1, t[:, None]).sum(), x)[0]
    gb = torch.autograd.grad(mb(x).gather(1, t[:, None]).sum(), x)[0]
    expected = (ga - gb).flatten(1).norm(dim=1).mean().item()
    assert expected > 0
    assert rows[0.0]["stability_mean"] == pytest.approx(expected, rel=1e-4)
    assert rows[0.0]["fidelity_mean"] == 0.0 and rows[0.2]["fidelity_mean"] > 0


def test_the_same_model_twice_is_perfectly_stable_at_every_sigma(saved, tmp_path):
    a, _, images = saved
    twin = tmp_path / "twin.pt"
    shutil.copy(a, twin)
    out = tmp_path / "out"
    result = _run("--models", f"{a},{twin}", "--images", str(images), "--out", str(out), *ARGS)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert rows[0.0]["stability_mean"] == 0.0 and rows[0.2]["stability_mean"] == 0.0  # the same noise draws
    assert rows[0.2]["fidelity_mean"] > 0  # smoothing did move the maps


def test_rerun_reuses_rows_and_changed_weights_recompute_them(saved, tmp_path):
    a, b, images = saved
    out = tmp_path / "out"
    args = ["--models", f"{a},{b}", "--images", str(images), "--out", str(out), *ARGS]
    first = _run(*args)
    assert first.exit_code == 0 and "(2 rows computed)" in first.output, first.output
    again = _run(*args)
    assert again.exit_code == 0 and "(0 rows computed)" in again.output, again.output
    before = _rows(out)[0.0]["stability_mean"]
    torch.jit.script(_Net(7).eval()).save(str(b))  # same file name, other weights
    changed = _run(*args)
    assert changed.exit_code == 0 and "(2 rows computed)" in changed.output, changed.output
    assert _rows(out)[0.0]["stability_mean"] != before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "A,B"], "--images DIR"),
        (["--models", "3", "--images", "."], "need `--models A,B"),
        (["--models", "only.pt", "--images", "."], ">= 2 comma-separated"),
        (["--models", "timm:x,timm:x", "--images", ".", "--weights", "w.pt"], "one entry per model"),
        (["--models", "a.pt,b.pt", "--images", ".", "--settings", "DT"], "takes no --maps, --settings"),
    ],
)
def test_bad_model_lists_are_refused_before_any_work(tmp_path, extra, message):
    out = tmp_path / "bad"
    result = _run("--out", str(out), *extra)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert not out.exists()


def test_a_missing_model_file_is_named(saved, tmp_path):
    a, _, images = saved
    result = _run("--models", f"{a},{tmp_path / 'absent.pt'}", "--images", str(images), "--out", str(tmp_path / "o"), *ARGS)
    assert result.exit_code == 2 and "absent.pt" in result.output, result.output


def test_parse_model_list_pairs_weights_with_models():
    assert parse_model_list("a.pt,b.pt") == (("a.pt", "b.pt"), (None, None))
    assert parse_model_list("timm:r,timm:r", "x.safetensors,") == (("timm:r", "timm:r"), ("x.safetensors", None))


def test_the_same_spec_and_weights_twice_is_refused(saved):
    a, _, images = saved
    with pytest.raises(ValueError, match="named twice"):
        OwnModels((str(a), str(a)), images)
