"""``smoothsal evaluate --maps STORE``: the report card on the maps of an explain-dataset map store.

A tiny random-weight CNN (a seeded factory in a temporary module) explains 6 generated 16×16 PNGs
into a map store (single process, no torchrun). The report card then reads that store: the
maps its sections use must be the stored maps bit for bit (the code that computes maps is
replaced by one that fails for the rows the store gives), the images and targets the store's, a
row whose settings differ from the store's is computed (and said so once), a wrong model or a
folder that is not a store is a clear error, and a changed store changes the results store's key.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import study_cli_app
from PIL import Image
from typer.testing import CliRunner

from smoothsal.metrics.complexity import entropy, sparseness
from smoothsal.metrics.faithfulness import auc, deletion_curve
from smoothsal.studies.evaluate import EvaluateConfig, register_cli, run_evaluate
from smoothsal.studies.evaluate import compute as comp
from smoothsal.studies.evaluate.config import store_model_of
from smoothsal.studies.explain_dataset import ExplainDatasetConfig, open_store, run_explain_dataset
from smoothsal.studies.options import RunOptions

TINYNET = """
import os

import torch
from torch import nn


def tiny_cnn(seed=None):
    # TINY_EV_SEED lets a test change the weights behind the same spec
    seed = int(os.environ.get("TINY_EV_SEED", "0")) if seed is None else seed
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    m.image_size = 16
    return m


def tiny_cnn_b():
    return tiny_cnn(1)
"""

MODEL = "tinynet_ev:tiny_cnn"
N_IMAGES, N_SAMPLES, SIGMA = 6, 4, 0.2
STORE_SETTINGS = dict(methods=("grad", "gradcam"), noise_levels=(0.0, SIGMA), n_samples=N_SAMPLES, chunk_size=4)
#: the quick preset, shrunk; the store's σ and samples, so that every method row reads the store
TINY = dict(model=MODEL, methods="grad,gradcam", noise_level=SIGMA, n_samples=N_SAMPLES, steps=8, fc_runs=8,
            line_steps=5, localization=False, data_randomization=False)  # fmt: skip


def run_options(out, **kw):
    """The run options of these tests: CPU, no progress bar (the store's job: 8 rows per call)."""
    return RunOptions(out=out, device="cpu", progress=False, **kw)


def make_store(data_dir, out, model=MODEL, **changes):
    """``explain-dataset`` of ``model`` on ``data_dir`` into the map store ``out``."""
    config = ExplainDatasetConfig(data_dir, model=model, **{**STORE_SETTINGS, **changes})
    run_explain_dataset(config, run_options(out, batch_size=8), echo=None)
METHOD_ROWS = ["grad", "grad_smooth", "gradcam", "gradcam_smooth"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A map store of ``tiny_cnn``: 6 images × (grad, gradcam) × σ (0, 0.2)."""
    root = tmp_path_factory.mktemp("evaluate_store")
    (root / "mod").mkdir()
    (root / "mod" / "tinynet_ev.py").write_text(textwrap.dedent(TINYNET))
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "images" / f"img{i}.png")
    sys.path.insert(0, str(root / "mod"))
    out = root / "store"
    make_store(root / "images", out)
    yield out
    sys.path.remove(str(root / "mod"))
    sys.modules.pop("tinynet_ev", None)


def no_compute_for(rows):
    """A ``compute_row_maps`` that fails for ``rows`` (they must come from the store) and records the others."""
    called = []
    original = comp.compute_row_maps

    def compute(ctx, row):
        assert row.key not in rows, f"{row.key}: computed, but its maps are in the store"
        called.append(row.key)
        return original(ctx, row)

    return compute, called


def test_sections_use_the_stored_maps_images_and_targets_bit_for_bit(store, tmp_path, monkeypatch):
    compute, called = no_compute_for(METHOD_ROWS)
    monkeypatch.setattr(comp, "compute_row_maps", compute)
    seen = {}  # the maps the complexity section measured, by identity of the row's maps
    real_sparseness = sparseness

    def spy(maps, **kw):
        seen.setdefault("maps", []).append(maps.clone())
        return real_sparseness(maps, **kw)

    monkeypatch.setattr("smoothsal.metrics.complexity.sparseness", spy)
    rep = run_evaluate(EvaluateConfig.preset("quick", maps=store, sections="complexity,faithfulness", **TINY),
                       run_options(tmp_path))  # fmt: skip
    ms = open_store(store)
    ids = ms.images()[:4]  # the quick preset: the store's first 4 images in id order
    assert rep.settings["images"] == ids and rep.settings["n_images"] == 4
    stored_targets = [ms.select(model=MODEL, method="grad", sigma=0.0, images=[i])[0].target for i in ids]
    assert rep.settings["targets"] == stored_targets
    assert sorted(called) == ["random", "sobel"]  # only the controls were computed
    assert rep.settings["map_store"]["rows_from_store"] == METHOD_ROWS
    assert rep.settings["map_store"]["rows_computed"] == {}
    assert rep.settings["map_store"]["config_hash"] == ms.config_hash
    # the complexity section saw exactly the stored maps, row by row (report order: the method rows first)
    x = ms.load_inputs(ids)
    for k, key in enumerate(METHOD_ROWS):
        method, sigma = key.removesuffix("_smooth"), SIGMA if key.endswith("_smooth") else 0.0
        stored = ms.select(model=MODEL, method=method, sigma=sigma, images=ids).load()
        assert torch.equal(seen["maps"][k], stored), key  # bit for bit
        per = rep.row(key)["_per_image"]
        assert per["sparseness"] == sparseness(stored, reduce_channels=True).double().tolist()
        assert per["entropy"] == entropy(stored, reduce_channels=True).double().tolist()
        # faithfulness: deletion AUC of the stored maps on the stored inputs and targets, by hand
        net = sys.modules["tinynet_ev"].tiny_cnn()
        dele = deletion_curve(net, x, stored, torch.tensor(stored_targets), steps=8, patch=1, baseline="blur")
        assert per["deletion_auc"] == pytest.approx(auc(dele).double().tolist(), abs=1e-6)
        assert rep.row(key)["convergence_delta"] is None  # a stored map has none
    # a smoothed stored map is not the raw one (the test would not tell them apart otherwise)
    assert not torch.equal(seen["maps"][0], seen["maps"][1])
    md = (tmp_path / "report.md").read_text()
    assert f"map store `{store}`" in md and "rows read from it: grad, grad_smooth, gradcam, gradcam_smooth" in md


def test_rows_with_other_settings_are_computed_and_said_so_once(store, tmp_path, monkeypatch):
    compute, called = no_compute_for(["grad", "gradcam"])  # the raw rows still come from the store
    monkeypatch.setattr(comp, "compute_row_maps", compute)
    with pytest.warns(UserWarning, match="n_samples 5 here, 4 in the store") as record:
        rep = run_evaluate(EvaluateConfig.preset("quick", maps=store, sections="complexity", **{**TINY, "n_samples": 5}),
                           run_options(tmp_path / "a"))  # fmt: skip
    assert len([w for w in record if "map store" in str(w.message)]) == 1
    assert sorted(called) == ["grad_smooth", "gradcam_smooth", "random", "sobel"]
    assert rep.settings["map_store"]["rows_from_store"] == ["grad", "gradcam"]
    called.clear()
    with pytest.warns(UserWarning, match=r"holds 0 of the 4 maps of \(grad, σ = 0.1\)"):
        rep = run_evaluate(EvaluateConfig.preset("quick", maps=store, sections="complexity", **{**TINY, "noise_level": 0.1}),
                           run_options(tmp_path / "b"))  # fmt: skip
    assert sorted(called) == ["grad_smooth", "gradcam_smooth", "random", "sobel"]
    # a rerun on the same store reads everything back from the results store
    with pytest.warns(UserWarning, match="map store"):
        rep = run_evaluate(EvaluateConfig.preset("quick", maps=store, sections="complexity", **{**TINY, "noise_level": 0.1}),
                           run_options(tmp_path / "b"))  # fmt: skip
    assert rep.computed == 0


def test_wrong_model_is_a_clear_error(store, tmp_path, monkeypatch):
    tinynet = sys.modules["tinynet_ev"]
    with pytest.raises(ValueError, match=r"`model` 'tinynet_ev:tiny_cnn_b' has no maps in the map store"):
        EvaluateConfig.preset("quick", maps=store, **{**TINY, "model": "tinynet_ev:tiny_cnn_b"})
    with pytest.raises(ValueError, match="no model of the map store .* has these weights"):
        EvaluateConfig.preset("quick", maps=store, **{**TINY, "model": tinynet.tiny_cnn(1)})
    # a module with the store's weights is that model of the store
    assert store_model_of(open_store(store), tinynet.tiny_cnn(0)) == MODEL
    EvaluateConfig.preset("quick", maps=store, **{**TINY, "model": tinynet.tiny_cnn(0)})
    # the same spec now loads other weights: refused before any map is used
    monkeypatch.setenv("TINY_EV_SEED", "1")
    config = EvaluateConfig.preset("quick", maps=store, sections="complexity", **TINY)
    with pytest.raises(ValueError, match=r"`model` 'tinynet_ev:tiny_cnn' loads other weights .* than the map store"):
        run_evaluate(config, run_options(tmp_path))
    app = study_cli_app(register_cli)
    bad = CliRunner().invoke(app, ["evaluate", "--maps", str(store), "--model", MODEL, "--quick", "--out",
                                   str(tmp_path / "cli"), "--no-progress", "--device", "cpu"])  # fmt: skip
    assert bad.exit_code == 2 and "error: `model` 'tinynet_ev:tiny_cnn' loads other weights" in bad.output


def test_a_folder_that_is_not_a_store_is_a_clear_error(store, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"`maps`: .*plain is not a smoothsal map store"):
        EvaluateConfig.preset("quick", maps=tmp_path / "plain", **TINY)
    with pytest.raises(FileNotFoundError, match="`maps`: no map store at"):
        EvaluateConfig.preset("quick", maps=tmp_path / "missing", **TINY)
    with pytest.raises(ValueError, match="`maps` and `images`/`photos` exclude each other"):
        EvaluateConfig.preset("quick", maps=store, images=["astronaut"], **TINY)
    app = study_cli_app(register_cli)
    bad = CliRunner().invoke(app, ["evaluate", "--maps", str(tmp_path / "plain"), "--model", MODEL, "--quick",
                                   "--out", str(tmp_path / "out")])  # fmt: skip
    assert bad.exit_code == 2 and "error: `maps`:" in bad.output and "is not a smoothsal map store" in bad.output


def test_a_changed_store_changes_the_key_and_the_cli_reads_the_store(store, tmp_path):
    base = EvaluateConfig.preset("quick", maps=store, **TINY)
    key = base.to_hash(0)
    ms = open_store(store)
    assert key["maps"] == {"store_config": ms.config_hash, "n_maps": N_IMAGES * 4, "store_images": 4}
    assert "maps" not in EvaluateConfig.preset("quick", model=MODEL).to_hash(0)  # old keys unchanged
    assert EvaluateConfig.preset("full", maps=store, **TINY).store_images is None  # full: all images
    # the store grows (a second model's maps): another key
    grown = tmp_path / "grown"
    shutil.copytree(store, grown)
    header = {"data_dir": str(ms.data_dir)}
    make_store(header["data_dir"], grown, model="tinynet_ev:tiny_cnn_b")
    grown_key = EvaluateConfig.preset("quick", maps=grown, **TINY).to_hash(0)
    assert grown_key["maps"]["n_maps"] == 2 * N_IMAGES * 4 and grown_key != key
    # a store of another configuration (3 samples): another key
    other = tmp_path / "other"
    make_store(header["data_dir"], other, n_samples=3)
    other_key = EvaluateConfig.preset("quick", maps=other, **TINY).to_hash(0)
    assert other_key["maps"]["store_config"] != ms.config_hash and other_key != key
    # the CLI: --maps and --store-images reach the report
    app = study_cli_app(register_cli)
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["evaluate", "--maps", str(store), "--model", MODEL, "--quick", "--store-images",
                                      "5", "--methods", "grad", "--noise-level", str(SIGMA), "--samples", "4",
                                      "--sections", "complexity", "--out", str(out), "--no-progress", "--device",
                                      "cpu", "--no-localization", "--no-data-randomization"])  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "report.json").read_text())["settings"]
    assert settings["images"] == ms.images()[:5] and settings["maps"] == str(store)
    assert settings["map_store"]["rows_from_store"] == ["grad", "grad_smooth"]
