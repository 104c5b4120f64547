"""Tests of ``smoothsal explain-dataset`` (sharding, the map store, resume, torchrun) and ``tradeoff --maps``.

A tiny random-weight CNN (seeded factory, written to a temporary module) explains 20 generated
16×16-ish PNGs in an ImageFolder layout. The maps are checked against the library called by hand,
a 2-process gloo job under torchrun against a single-process run (bit for bit), a job whose rank 1
is killed midway against the same, once restarted (every map present exactly once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import study_cli_app
from PIL import Image
from typer.testing import CliRunner

from smoothsal.datasets.photos import load_image
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.smoothing import Smooth
from smoothsal.studies.explain_dataset import (
    ExplainDatasetConfig,
    MapStoreError,
    image_seed,
    open_store,
    register_cli,
    run_explain_dataset,
    scan_images,
)
from smoothsal.studies.explain_dataset.compute import DistContext, job_rows, rows_for
from smoothsal.studies.explain_dataset.store import CRASH_ENV, MapWriter

TINYNET = """
import torch
from torch import nn


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    m.image_size = 16
    return m


def tiny_cnn_b():
    return tiny_cnn(1)


def tiny_cnn_copy():
    return tiny_cnn(0)
"""

MODEL = "tinynet_ds:tiny_cnn"
# CPU also on a GPU machine: the jobs use gloo, and the maps are compared with the library on CPU
SETTINGS = dict(methods=("grad", "ig", "gradcam"), noise_levels=(0.0, 0.2), n_samples=6, chunk_size=3, batch_size=4,
                progress=False, device="cpu")  # fmt: skip
CLI_ARGS = ["--model", MODEL, "--methods", "grad,ig,gradcam", "--noise-levels", "0,0.2", "--samples", "6",
            "--chunk-size", "3", "--batch-size", "4", "--no-progress", "--device", "cpu"]  # fmt: skip
N_IMAGES, N_UNITS_PER_CHUNK = 20, 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``(images folder, module folder)``: an ImageFolder of 2 classes × 10 PNGs, and tinynet_ds.py."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "mod").mkdir()
    (root / "mod" / "tinynet_ds.py").write_text(textwrap.dedent(TINYNET))
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / "images" / name).mkdir(parents=True)
        for i in range(N_IMAGES // 2):
            h, w = (18, 20) if i % 2 else (16, 16)  # resized and centre-cropped to 16×16
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / name / f"{i:02d}.png")
    sys.path.insert(0, str(root / "mod"))
    yield root / "images", root / "mod"
    sys.path.remove(str(root / "mod"))
    sys.modules.pop("tinynet_ds", None)


def config(data, out, **kw):
    return ExplainDatasetConfig(data[0], out_dir=out, **{"model": MODEL, **SETTINGS, **kw})


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """A single-process run (no process group) of the full settings."""
    out = tmp_path_factory.mktemp("single") / "store"
    result = run_explain_dataset(config(data, out), echo=None)
    assert result.maps == N_IMAGES * N_UNITS_PER_CHUNK and result.total_maps == N_IMAGES * N_UNITS_PER_CHUNK
    return out


def _maps_by_key(store):
    entries = {(e.model, e.method, e.sigma, e.image): e for e in store.entries}
    keys = sorted(entries)
    return keys, {k: np.asarray(store.load([entries[k]])[0]) for k in keys}, entries


def assert_same_maps(a: Path, b: Path) -> None:
    keys_a, maps_a, ent_a = _maps_by_key(open_store(a))
    keys_b, maps_b, ent_b = _maps_by_key(open_store(b))
    assert keys_a == keys_b
    for k in keys_a:
        assert np.array_equal(maps_a[k], maps_b[k]), k  # bit for bit
        ea, eb = ent_a[k], ent_b[k]
        assert (ea.target, ea.seed, ea.n_samples) == (eb.target, eb.seed, eb.n_samples)
        assert ea.rse == eb.rse or (np.isnan(ea.rse) and np.isnan(eb.rse))


def manifest_units(out: Path) -> Counter:
    """How often each unit is recorded, over every manifest line (not the reader's de-duplicated view)."""
    counts: Counter = Counter()
    for path in (out / "manifest").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                counts[json.loads(line)["unit"]] += 1
    return counts


def torchrun(data, out, *extra, env=None, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "smoothsal.cli", "explain-dataset", str(data[0]), "--out", str(out), *CLI_ARGS, *extra]  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    full_env.update(PYTHONPATH=os.pathsep.join([str(data[1]), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    full_env.update(env or {})
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=240)


# ---- the folder ------------------------------------------------------------------------------------
def test_scan_images_reads_imagefolder_and_plain_folders(data, tmp_path):
    index = scan_images(data[0])
    assert index.layout == "imagefolder" and index.classes == ("cat", "dog")
    assert index.ids[:2] == ("cat/00.png", "cat/01.png") and len(index.ids) == N_IMAGES
    assert index.labels == (0,) * 10 + (1,) * 10
    assert scan_images(data[0], max_images=3).ids == ("cat/00.png", "cat/01.png", "cat/02.png")
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("b.png", "a.png"):
        shutil.copy(data[0] / "dog" / "00.png", plain / name)
    (plain / "notes.txt").write_text("not an image")
    index = scan_images(plain)
    assert index.layout == "plain" and index.ids == ("a.png", "b.png") and index.labels == (None, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        scan_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        scan_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="'label' needs an ImageFolder"):
        ExplainDatasetConfig(plain, out_dir=tmp_path / "o", model=MODEL, target="label")


def test_image_seeds_depend_on_the_global_seed_and_the_image_id_only():
    assert image_seed(0, "cat/00.png") == image_seed(0, "cat/00.png")
    assert len({image_seed(0, "cat/00.png"), image_seed(0, "cat/01.png"), image_seed(1, "cat/00.png")}) == 3
    assert 0 <= image_seed(7, "x") < 2**63


def test_rows_per_call_are_fixed_for_the_job_and_capped_by_max_memory(data):
    import tinynet_ds

    from smoothsal.execution.memory import set_max_memory

    model, x = tinynet_ds.tiny_cnn(), torch.rand(3, 16, 16)
    assert job_rows(model, x, 4) == 4  # --batch-size is obeyed
    assert job_rows(model, x, None) == 2**22 // (3 * 16 * 16)  # the element budget, no timing involved
    set_max_memory("200KB")
    try:
        capped = job_rows(model, x, None)
        assert 1 <= capped < 2**22 // (3 * 16 * 16) and job_rows(model, x, None) == capped
    finally:
        set_max_memory(None)


# ---- values ------------------------------------------------------------------------------------------
def test_stored_maps_equal_the_library_called_by_hand(data, single):
    import tinynet_ds

    store = open_store(single)
    assert len(store) == N_IMAGES * N_UNITS_PER_CHUNK and store.verify() == len(store)
    assert store.models() == [MODEL] and store.methods() == ["grad", "gradcam", "ig"]
    assert store.sigmas() == [0.0, 0.2] and len(store.images()) == N_IMAGES
    model = tinynet_ds.tiny_cnn()
    for image_id in ("cat/01.png", "dog/09.png"):  # first chunk / the last, short chunk (20 = 6×3 + 2)
        x = load_image(data[0] / image_id, 16).tensor
        assert torch.equal(store.load_inputs([image_id]), x)  # the inputs, for metrics that need them
        target = int(model(x).argmax())
        raw = store.select(method="grad", sigma=0, images=[image_id])
        assert len(raw) == 1 and raw[0].target == target and raw[0].n_samples == 0 and np.isnan(raw[0].rse)
        assert raw[0].label == (0 if image_id.startswith("cat") else 1) and raw[0].class_name == image_id[:3]
        # the raw maps of a chunk come from one batch (3 images): equal up to float rounding
        torch.testing.assert_close(raw.load(), VanillaGradient(model).attribute(x, target=target), rtol=1e-5, atol=1e-9)
        seed = image_seed(0, image_id)
        smooth = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=6, seed=seed, batch_size=rows_for(x[0], 4))
        est = smooth.estimate(x, target=target)
        sm = store.select(method="grad", sigma=0.2, images=[image_id])
        assert sm[0].seed == seed and sm[0].n_samples == 6
        assert torch.equal(sm.load(), est.attributions)  # bit for bit: the image's own seed
        assert sm[0].rse == pytest.approx(float(est.relative_stderr()[0]), rel=1e-6) and 0 < sm[0].rse < 10
        assert not torch.equal(sm.load(), raw.load())
    cams = store.select(method="gradcam", sigma=0.2).load()
    assert cams.shape == (N_IMAGES, 1, 16, 16) and cams.dtype == torch.float32
    seeds = {e.seed for e in store.select(method="grad", sigma=0.2)}
    assert len(seeds) == N_IMAGES  # one seed per image
    # one chunk file per (chunk, method, σ): 7 chunks × 6; every map once
    assert len(list((single / "maps").rglob("*.npy"))) == 7 * N_UNITS_PER_CHUNK
    assert set(manifest_units(single).values()) == {1} and len(manifest_units(single)) == 7 * N_UNITS_PER_CHUNK


def test_rank_shares_run_one_after_the_other_equal_a_single_run(data, single, tmp_path):
    out = tmp_path / "shared"
    for rank in (1, 0):  # any order; three ranks' shares fill the same store
        run_explain_dataset(config(data, out), echo=None, ctx=DistContext(rank=rank, world=3))
    run_explain_dataset(config(data, out), echo=None, ctx=DistContext(rank=2, world=3))
    assert sorted(p.name for p in (out / "manifest").iterdir()) == [
        f"{open_store(out).entries[0].model_key}.rank-{r:05d}.jsonl" for r in range(3)
    ]
    assert_same_maps(single, out)


# ---- torchrun ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed_and_resumed(data, tmp_path_factory):
    """A 2-process gloo job under torchrun whose rank 1 dies while writing its 3rd unit (its chunk
    file renamed into place, its manifest line not written), then the same command again.

    Two launches instead of three (a clean run, a killed run, its restart): the restarted job is a
    2-process run too, and every map of the final store was computed by one of the two 2-process jobs.
    """
    out = tmp_path_factory.mktemp("ddp") / "store"
    crashed = torchrun(data, out, env={CRASH_ENV: "1:2"})
    recorded = {json.loads(line)["file"] for p in (out / "manifest").glob("*.jsonl") for line in p.read_text().splitlines()}
    state = {
        "returncode": crashed.returncode,
        "rank1_lines": [len(p.read_text().splitlines()) for p in (out / "manifest").glob("*.rank-00001.jsonl")],
        "orphans": {p.relative_to(out).as_posix() for p in (out / "maps").rglob("*.npy")} - recorded,
        "maps": len(open_store(out)),
        "units": manifest_units(out),
    }
    resumed = torchrun(data, out)  # the same command
    return out, state, resumed


def test_two_process_torchrun_job_equals_a_single_process_run(single, killed_and_resumed):
    out, state, resumed = killed_and_resumed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "rank 0 (" in resumed.stdout and "rank 1 (" in resumed.stdout and "overall (2 ranks)" in resumed.stdout
    runs = open_store(out).runs()
    assert runs[-1]["world_size"] == 2 and runs[-1]["backend"] == "gloo"
    assert runs[-1]["maps"] == N_IMAGES * N_UNITS_PER_CHUNK - state["maps"]
    assert_same_maps(single, out)  # bit for bit, the same seeds whatever rank computed a map


def test_a_killed_rank_resumes_with_every_map_exactly_once(single, killed_and_resumed):
    out, state, resumed = killed_and_resumed
    assert state["returncode"] != 0
    assert state["rank1_lines"] == [2]  # rank 1 committed 2 units, not the 3rd
    assert len(state["orphans"]) >= 1  # the 3rd unit's chunk file was there, unrecorded: not part of the store
    assert 0 < state["maps"] < N_IMAGES * N_UNITS_PER_CHUNK and set(state["units"].values()) == {1}
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{state['maps']} already in" in resumed.stdout
    counts = manifest_units(out)
    assert len(counts) == 7 * N_UNITS_PER_CHUNK and set(counts.values()) == {1}  # every unit exactly once
    store = open_store(out)
    assert len(store) == N_IMAGES * N_UNITS_PER_CHUNK and store.verify() == len(store)
    recorded = {json.loads(line)["file"] for p in (out / "manifest").glob("*.jsonl") for line in p.read_text().splitlines()}
    assert {p.relative_to(out).as_posix() for p in (out / "maps").rglob("*.npy")} == recorded  # no orphan left


# ---- errors -----------------------------------------------------------------------------------------
def _small(data, out, **kw):
    return config(data, out, **{"methods": ("grad",), "max_images": 4, "chunk_size": 2, **kw})


def test_a_changed_configuration_refuses_to_mix_unless_fresh(data, tmp_path):
    out = tmp_path / "store"
    run_explain_dataset(_small(data, out), echo=None)
    before = open_store(out).select(sigma=0.2).load()
    with pytest.raises(MapStoreError, match=r"another configuration \(n_samples: 6 -> 7\).*--fresh"):
        run_explain_dataset(_small(data, out, n_samples=7), echo=None)
    assert torch.equal(open_store(out).select(sigma=0.2).load(), before)  # untouched
    again = run_explain_dataset(_small(data, out), echo=None)  # the same settings resume: nothing to do
    assert again.maps == 0 and again.total_maps == 8
    run_explain_dataset(_small(data, out, n_samples=7, fresh=True), echo=None)
    store = open_store(out)
    assert store.config["n_samples"] == 7 and {e.n_samples for e in store.select(sigma=0.2)} == {7} and len(store) == 8
    # a second model joins the store; the same spec with other weights is refused
    run_explain_dataset(_small(data, out, n_samples=7, model="tinynet_ds:tiny_cnn_b"), echo=None)
    assert open_store(out).models() == ["tinynet_ds:tiny_cnn", "tinynet_ds:tiny_cnn_b"]
    ts = tmp_path / "net.pt"
    import tinynet_ds

    torch.jit.script(tinynet_ds.tiny_cnn()).save(str(ts))
    run_explain_dataset(_small(data, out, n_samples=7, model=str(ts), image_size=16), echo=None)
    torch.jit.script(tinynet_ds.tiny_cnn(5)).save(str(ts))
    with pytest.raises(MapStoreError, match="other weights"):
        run_explain_dataset(_small(data, out, n_samples=7, model=str(ts), image_size=16), echo=None)


def test_corrupted_or_foreign_stores_give_clear_errors(data, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for fresh in (False, True):  # --fresh never deletes a folder that is not a store
        with pytest.raises(MapStoreError, match="not a smoothsal map store"):
            run_explain_dataset(_small(data, foreign, fresh=fresh), echo=None)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(FileNotFoundError, match="no map store"):
        open_store(tmp_path / "missing")
    with pytest.raises(MapStoreError, match="no store.json"):
        open_store(foreign)

    out = tmp_path / "store"
    run_explain_dataset(_small(data, out), echo=None)
    good = tmp_path / "good"
    shutil.copytree(out, good)
    # a chunk file changed after it was recorded
    chunk = sorted((out / "maps").rglob("*.npy"))[0]
    raw = bytearray(chunk.read_bytes())
    raw[-1] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    store = open_store(out)
    with pytest.raises(MapStoreError, match="does not match its manifest"):
        store.verify()
    chunk.unlink()
    with pytest.raises(MapStoreError, match="missing"):
        open_store(out).verify()
    # a manifest line that is not a record
    manifest = next((out / "manifest").glob("*.jsonl"))
    manifest.write_text("{not json\n" + manifest.read_text())
    with pytest.raises(MapStoreError, match="line 1 is not a manifest record"):
        open_store(out)
    with pytest.raises(MapStoreError, match="line 1 is not a manifest record"):
        run_explain_dataset(_small(data, out), echo=None)
    # a header that is not ours, or not JSON
    (out / "store.json").write_text(json.dumps({"format": "zarr"}))
    with pytest.raises(MapStoreError, match="not a smoothsal map store"):
        open_store(out)
    (out / "store.json").write_text("\x00\x01")
    with pytest.raises(MapStoreError, match="corrupted"):
        run_explain_dataset(_small(data, out, fresh=True), echo=None)

    # a manifest line cut short by a kill: ignored by readers, cut by the next writer of that manifest
    manifest = next((good / "manifest").glob("*.jsonl"))
    complete = manifest.read_text()
    manifest.write_text(complete + '{"unit": "c000009-grad')
    assert len(open_store(good)) == 8
    MapWriter(good, open_store(good).entries[0].model_key, 0)
    assert manifest.read_text() == complete


def test_cli_explains_a_folder_and_reports_bad_arguments(data, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(data[1]))
    app = study_cli_app(register_cli)
    out = tmp_path / "cli"
    args = ["explain-dataset", str(data[0]), "--out", str(out), "--model", MODEL, "--methods", "grad",
            "--noise-levels", "0.2,0", "--samples", "3", "--no-progress", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--quick"])
    assert result.exit_code == 0, result.output
    assert "16 images (imagefolder) × 1 methods × 2 σ = 32 maps" in result.output
    assert "overall (1 rank): 16 images, 32 maps" in result.output and "images/s" in result.output
    assert {e.n_samples for e in open_store(out).select(sigma=0.2)} == {3}
    for bad, message in (
        (["explain-dataset", str(tmp_path / "nope"), "--model", MODEL], "no folder"),
        ([*args[:6], "--methods", "grad,nosuch"], "unknown method 'nosuch'"),
        ([*args, "--samples", "0"], "n_samples"),
        ([*args, "--device", "cuda:7"] if not torch.cuda.is_available() else [*args, "--device", "tpu"], "device"),
        ([*args, "--samples", "4"], "another configuration"),
    ):
        result = CliRunner().invoke(app, bad)
        assert result.exit_code == 2 and "error:" in result.output and message in result.output, (bad, result.output)


# ---- tradeoff from a store ---------------------------------------------------------------------------------
def test_tradeoff_reads_stability_and_fidelity_from_a_store(data, tmp_path):
    from smoothsal.studies.tradeoff import TradeoffConfig, register_cli as tradeoff_cli, run_tradeoff

    out = tmp_path / "maps"
    run_explain_dataset(_small(data, out, max_images=6), echo=None)
    with pytest.raises(ValueError, match="stability needs >= 2"):
        TradeoffConfig.preset("quick", maps=out, out_dir=tmp_path / "t_one")
    run_explain_dataset(_small(data, out, model="tinynet_ds:tiny_cnn_copy", max_images=6), echo=None)  # the same network
    run_explain_dataset(_small(data, out, model="tinynet_ds:tiny_cnn_b", max_images=6), echo=None)
    with pytest.warns(UserWarning, match="different classes"):
        run = run_tradeoff(TradeoffConfig.preset("full", maps=out, out_dir=tmp_path / "t", progress=False, device="cpu"))
    assert [(r["setting"], r["method"], r["noise_level"]) for r in run.rows] == [("store", "grad", 0.0), ("store", "grad", 0.2)]
    store = open_store(out)
    images = store.images()
    models = store.models()
    assert run.config.n_models == 3 and run.config.settings == ("store",) and run.config.noise_levels == (0.0, 0.2)
    for row in run.rows:
        maps = [store.select(model=m, method="grad", sigma=row["noise_level"], images=images).load() for m in models]
        pairs = [(0, 1), (0, 2), (1, 2)]
        by_hand = [float((maps[i] - maps[j]).flatten(1).norm(dim=1).mean()) for i, j in pairs]
        assert row["pair_stability"] == pytest.approx(by_hand, rel=1e-5) and row["n_inputs"] == 6
        # models sorted: tiny_cnn, tiny_cnn_b, tiny_cnn_copy: the same network and the same per-image noise
        assert row["pair_stability"][1] == 0.0 and row["pair_ssim"][1] == pytest.approx(1.0)
        assert min(row["pair_stability"][0], row["pair_stability"][2]) > 0
        raw = [store.select(model=m, method="grad", sigma=0.0, images=images).load() for m in models]
        fid = torch.cat([(a - b).flatten(1).norm(dim=1) for a, b in zip(maps, raw)]).mean()
        assert row["fidelity_mean"] == pytest.approx(float(fid), rel=1e-5, abs=1e-12)
        assert (row["fidelity_mean"] == 0.0) == (row["noise_level"] == 0.0)
    assert (tmp_path / "t" / "table1.md").exists() and "| store |" in (tmp_path / "t" / "table1.md").read_text()

    app = study_cli_app(tradeoff_cli)  # the options reach the config (a full CLI run would only redraw the figures)
    result = CliRunner().invoke(app, ["tradeoff", "--maps", str(out), "--methods", "ig", "--device", "cpu",
                                      "--out", str(tmp_path / "t2")])  # fmt: skip
    assert result.exit_code == 2 and "['ig'] have no maps" in result.output
    result = CliRunner().invoke(app, ["tradeoff", "--maps", str(out), "--noise-levels", "0.3", "--out", str(tmp_path / "t2")])
    assert result.exit_code == 2 and "σ [0.3] have no maps" in result.output
