"""Tests of ``smoothsal explain-dataset`` (sharding, the Zarr map store, resume, torchrun, unreadable
files) and ``tradeoff --maps``.

A tiny random-weight CNN (seeded factory, written to a temporary module) explains 20 generated
16×16-ish PNGs in an ImageFolder layout. The maps are checked against the library called by hand,
a 2-process gloo job under torchrun against a single-process run (bit for bit), a job whose rank 1
is SIGKILLed in the middle of writing a unit against the same, once restarted (every map present,
nothing half-written counted), a one-process job SIGKILLed mid-unit against a clean run (the
resumed job recomputes exactly that unit), a store at ``memory://`` against the local one, and
the store read with plain zarr and xarray.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
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
from smoothsal.studies.explain_dataset.compute import DistContext, job_batch_size
from smoothsal.studies.options import RunOptions
from smoothsal.studies.explain_dataset.store import PAUSE_ENV, MapWriter, prepare_store, register_model

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


def tiny_cnn_logged():
    # tiny_cnn, recording that it was built (the strict test checks that no model is loaded)
    import os

    with open(os.environ["TINYNET_LOG"], "a") as fh:
        fh.write("built\\n")
    return tiny_cnn(0)
"""

MODEL = "tinynet_ds:tiny_cnn"
# CPU also on a GPU machine: the jobs use gloo, and the maps are compared with the library on CPU
SETTINGS = dict(methods=("grad", "ig", "gradcam"), noise_levels=(0.0, 0.2), n_samples=6, chunk_size=3)
RUN = dict(batch_size=4, progress=False, device="cpu")  # the run options of every job here
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


def config(data, **kw):
    return ExplainDatasetConfig(data[0], **{"model": MODEL, **SETTINGS, **kw})


def run_job(data, out, *, fresh=False, ctx=None, **kw):
    """``explain-dataset`` of :func:`config` (``kw``: its changes) into the map store ``out`` (a folder or a URL)."""
    return run_explain_dataset(config(data, **kw), RunOptions(out=out, fresh=fresh, **RUN), echo=None, ctx=ctx)


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """A single-process run (no process group) of the full settings."""
    out = tmp_path_factory.mktemp("single") / "store"
    result = run_job(data, out)
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


def units(out: Path, what: str = "committed") -> set[tuple[str, int]]:
    """``(group, chunk)`` of every object of ``what`` in a local store, read from the files themselves (not
    through the reader): ``committed`` = the commit markers, ``maps`` = the chunk objects of the maps."""
    found = set()
    for path in out.rglob(f"{what}/c/*"):
        if path.is_file() and path.name.isdigit():  # a marker: committed/c/<chunk>
            found.add((path.parent.parent.parent.relative_to(out).as_posix(), int(path.name)))
        elif path.is_dir() and path.name.isdigit():  # a maps chunk: maps/c/<chunk>/0/0/0
            found.add((path.parent.parent.parent.relative_to(out).as_posix(), int(path.name)))
    return found


def _env(data, **extra):
    full = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    full.update(PYTHONPATH=os.pathsep.join([str(data[1]), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    full.update(extra)
    return full


def torchrun_cmd(data, out, *extra, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "smoothsal.cli", "explain-dataset", str(data[0]), "--out", str(out), *CLI_ARGS, *extra]  # fmt: skip


def torchrun(data, out, *extra, env=None, nproc=2):
    return subprocess.run(torchrun_cmd(data, out, *extra, nproc=nproc), env=_env(data, **(env or {})),
                          capture_output=True, text=True, timeout=240)  # fmt: skip


def run_and_sigkill(cmd, env, pause_file: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Start ``cmd``; once the rank named in ``env[PAUSE_ENV]`` writes its pid to ``pause_file`` (it stopped
    in the middle of a unit), SIGKILL that process and wait for ``cmd`` to end. Returns it and its output."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while not pause_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the job never paused: {proc.communicate()[0][-3000:]}")
        time.sleep(0.05)
    os.kill(int(pause_file.read_text()), signal.SIGKILL)
    output, _ = proc.communicate(timeout=120)
    return proc, output


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
        ExplainDatasetConfig(plain, model=MODEL, target="label")


def test_image_seeds_depend_on_the_global_seed_and_the_image_id_only():
    assert image_seed(0, "cat/00.png") == image_seed(0, "cat/00.png")
    assert len({image_seed(0, "cat/00.png"), image_seed(0, "cat/01.png"), image_seed(1, "cat/00.png")}) == 3
    assert 0 <= image_seed(7, "x") < 2**63


def test_batch_size_is_fixed_for_the_job_by_the_learned_rule_before_it(data, tmp_path):
    import json

    import tinynet_ds

    from smoothsal.execution.measure import row_memory
    from smoothsal.execution.policy import clear_learned

    model, x = tinynet_ds.tiny_cnn(), torch.rand(3, 16, 16)
    store = tmp_path / "store"
    prepare_store(store, {"chunk_size": 2}, images=["a.png"], labels=[0])
    assert job_batch_size(model, x, 4, store, "m") == 4  # --batch-size is obeyed
    clear_learned()
    rows = job_batch_size(model, x, None, store, "m", "1MB")  # settled before the job
    assert rows >= 1 and job_batch_size(model, x, None, store, "m", "1MB") == rows  # kept
    clear_learned()
    capped = job_batch_size(model, x, None, store, "m", "200KB")

    def forward_backward(rows):
        rows = rows.detach().requires_grad_(True)
        return torch.autograd.grad(model(rows)[:, 0].sum(), rows)[0]

    per_row = row_memory(forward_backward, x.unsqueeze(0).repeat(4, 1, 1, 1))  # the learned cap's row is larger
    assert 1 <= capped and capped * per_row <= 200_000
    for spec, runs in (("m", (5, 3)), ("other", (9,))):
        key = register_model(store, spec, {"weights_sha1": "0"})
        for r in runs:
            MapWriter(store, key, 0).add_run({"model": spec, "batch_size": r})
    assert job_batch_size(model, x, None, store, "m") == 3  # a resumed job keeps the last job's grouping
    assert job_batch_size(model, x, None, store, "other") == 9


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
        smooth = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=6, seed=seed, batch_size=4)
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
    # one chunk object per (chunk, method, σ) of each maps array, and one marker each: 7 chunks × 6
    assert units(single, "maps") == units(single) and len(units(single)) == 7 * N_UNITS_PER_CHUNK
    assert {g.rsplit("/", 2)[-2:][1] for g, _ in units(single)} == {"sigma_0", "sigma_0.2"}


def test_the_store_opens_with_zarr_and_xarray(single):
    """The store is plain Zarr v3: the arrays, their attributes and the commit markers read without smoothsal."""
    import zarr

    store = open_store(single)
    entry = store.select(method="ig", sigma=0.2)[0]
    group = entry.array.rsplit("/", 1)[0]
    root = zarr.open_group(str(single), mode="r")
    assert root.attrs["smoothsal"]["format"] == "smoothsal-map-store" and root.metadata.zarr_format == 3
    maps = root[f"{group}/maps"]
    meta = maps.attrs["smoothsal"]
    assert meta["method"] == "ig" and meta["sigma"] == 0.2 and meta["model"] == MODEL and meta["smooth"]["n_samples"] == 6
    assert meta["chunk_size"] == 3 and maps.chunks == (3, 3, 16, 16) and maps.shape == (N_IMAGES, 3, 16, 16)
    from smoothsal.registry import method_spec

    assert meta["method_settings"] == method_spec("ig").settings(smoothed=True, image_size=16)
    assert list(root[f"{group}/committed"][:]) == [1] * 7
    assert [str(v) for v in root["image"][:]] == sorted(store.images())
    sel = store.select(method="ig", sigma=0.2, images=sorted(store.images()))
    assert np.array_equal(maps[:], sel.load().numpy())
    assert [int(v) for v in root[f"{group}/target"][:]] == [e.target for e in sel]

    xr = pytest.importorskip("xarray", reason="xarray is in the dev extra; the zarr check above ran without it")
    ds = xr.open_zarr(str(single), group=group, consolidated=False)
    assert ds["maps"].dims == ("image", "channel", "y", "x") and list(ds["image"].values) == sorted(store.images())
    assert np.array_equal(ds["maps"].sel(image="dog/09.png").values, sel.load()[-1].numpy())
    assert np.allclose(ds["rse"].values, [e.rse for e in sel]) and int(ds["committed"].sum()) == 7


def test_a_store_at_an_fsspec_url_equals_the_local_one(data, single):
    """``memory://`` (fsspec): the same maps as the local folder, written and read through the URL."""
    import fsspec

    url = f"memory://smoothsal-test-{uuid.uuid4().hex[:8]}/store"
    try:
        result = run_job(data, url)
        assert result.total_maps == N_IMAGES * N_UNITS_PER_CHUNK
        assert not Path(url).exists() and not Path("memory:").exists()  # nothing written locally
        store = open_store(url)
        assert store.path == url and store.verify() == N_IMAGES * N_UNITS_PER_CHUNK
        assert_same_maps(single, url)
        again = run_job(data, url)  # resumes through the URL too
        assert again.maps == 0 and again.total_maps == N_IMAGES * N_UNITS_PER_CHUNK
        with pytest.raises(ValueError, match="one process's memory"):  # ranks of a torchrun job cannot share it
            run_job(data, url, ctx=DistContext(rank=0, world=2, initialized=True))
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)


def test_rank_shares_run_one_after_the_other_equal_a_single_run(data, single, tmp_path):
    out = tmp_path / "shared"
    for rank in (1, 0):  # any order; three ranks' shares fill the same store
        run_job(data, out, ctx=DistContext(rank=rank, world=3))
    run_job(data, out, ctx=DistContext(rank=2, world=3))
    assert units(out) == units(single)
    assert_same_maps(single, out)


# ---- torchrun ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def killed_and_resumed(data, tmp_path_factory):
    """A 2-process gloo job under torchrun whose rank 1 is SIGKILLed while writing its 3rd unit (the
    unit's maps rows written, its other rows and its commit marker not), then the same command again.

    Two launches instead of three (a clean run, a killed run, its restart): the restarted job is a
    2-process run too, and every map of the final store was computed by one of the two 2-process jobs.
    """
    tmp = tmp_path_factory.mktemp("ddp")
    out, pause = tmp / "store", tmp / "rank1.pid"
    crashed, output = run_and_sigkill(torchrun_cmd(data, out), _env(data, **{PAUSE_ENV: f"1:2:{pause}"}), pause)
    store = open_store(out)
    state = {
        "returncode": crashed.returncode,
        "output": output,
        "rank1_units": len([c for _, c in units(out) if c % 2 == 1]),  # rank 1 owns the odd chunks
        "orphans": units(out, "maps") - units(out),  # maps chunks written without their marker
        "maps": len(store),
        "committed": units(out),
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


def test_a_sigkilled_rank_resumes_with_nothing_half_written_counted(single, killed_and_resumed):
    out, state, resumed = killed_and_resumed
    assert state["returncode"] != 0, state["output"][-3000:]
    assert state["rank1_units"] == 2  # rank 1 committed 2 units, not the 3rd
    assert len(state["orphans"]) >= 1  # the 3rd unit's maps rows were there, without a marker: not counted
    assert 0 < state["maps"] < N_IMAGES * N_UNITS_PER_CHUNK
    assert state["maps"] == sum(min(3, N_IMAGES - 3 * c) for _, c in state["committed"])  # the reader counts markers only
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{state['maps']} already in" in resumed.stdout
    assert len(units(out)) == 7 * N_UNITS_PER_CHUNK and units(out, "maps") == units(out)
    store = open_store(out)
    assert len(store) == N_IMAGES * N_UNITS_PER_CHUNK and store.verify() == len(store)


def test_a_job_sigkilled_mid_write_recomputes_exactly_that_unit(data, single, tmp_path):
    """One process, SIGKILLed in the middle of its 14th and last unit (chunk 6 of grad at σ = 0.2: its maps rows
    written, then torn by hand as a kill in the middle of the write would leave them; its marker not written).
    The resumed job computes that unit and nothing else, and the store then equals a clean run."""
    out, pause = tmp_path / "store", tmp_path / "rank0.pid"
    args = [*CLI_ARGS[:2], "--methods", "grad", "--noise-levels", "0,0.2", "--samples", "6", "--chunk-size", "3",
            "--batch-size", "4", "--no-progress", "--device", "cpu"]  # fmt: skip
    cmd = [sys.executable, "-m", "smoothsal.cli", "explain-dataset", str(data[0]), "--out", str(out), *args]
    killed, output = run_and_sigkill([*cmd], _env(data, **{PAUSE_ENV: f"0:13:{pause}"}), pause)
    assert killed.returncode != 0 and "overall" not in output
    orphans = units(out, "maps") - units(out)
    assert len(orphans) == 1 and len(units(out)) == 13  # 7 chunks × 2 σ = 14 units: 13 committed, 1 half-written
    (group, chunk), = orphans
    torn = next((out / group / "maps" / "c" / str(chunk)).rglob("*"))  # the chunk object as a kill mid-write leaves it
    while torn.is_dir():
        torn = next(torn.iterdir())
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    assert len(open_store(out)) == sum(min(3, N_IMAGES - 3 * c) for _, c in units(out))  # the 13 committed units only

    resumed = run_job(data, out, methods=("grad",))
    assert resumed.ranks[0]["units"] == 1 and resumed.maps == len(range(chunk * 3, min(chunk * 3 + 3, N_IMAGES)))
    clean = tmp_path / "clean"
    run_job(data, clean, methods=("grad",))
    assert_same_maps(clean, out)  # bit for bit, the torn chunk overwritten
    assert open_store(out).verify() == N_IMAGES * 2


# ---- errors -----------------------------------------------------------------------------------------
def _small(data, out, **kw):
    """:func:`run_job` of a small job: the gradient of 4 images, chunks of 2."""
    return run_job(data, out, **{"methods": ("grad",), "max_images": 4, "chunk_size": 2, **kw})


def test_a_changed_configuration_refuses_to_mix_unless_fresh(data, tmp_path):
    out = tmp_path / "store"
    _small(data, out)
    before = open_store(out).select(sigma=0.2).load()
    with pytest.raises(MapStoreError, match=r"another configuration \(n_samples: 6 -> 7\).*--fresh"):
        _small(data, out, n_samples=7)
    assert torch.equal(open_store(out).select(sigma=0.2).load(), before)  # untouched
    again = _small(data, out)  # the same settings resume: nothing to do
    assert again.maps == 0 and again.total_maps == 8
    _small(data, out, n_samples=7, fresh=True)
    store = open_store(out)
    assert store.config["n_samples"] == 7 and {e.n_samples for e in store.select(sigma=0.2)} == {7} and len(store) == 8
    # a second model joins the store; the same spec with other weights is refused
    _small(data, out, n_samples=7, model="tinynet_ds:tiny_cnn_b")
    assert open_store(out).models() == ["tinynet_ds:tiny_cnn", "tinynet_ds:tiny_cnn_b"]
    ts = tmp_path / "net.pt"
    import tinynet_ds

    torch.jit.script(tinynet_ds.tiny_cnn()).save(str(ts))
    _small(data, out, n_samples=7, model=str(ts), image_size=16)
    torch.jit.script(tinynet_ds.tiny_cnn(5)).save(str(ts))
    with pytest.raises(MapStoreError, match="other weights"):
        _small(data, out, n_samples=7, model=str(ts), image_size=16)


def test_corrupted_or_foreign_stores_give_clear_errors(data, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for fresh in (False, True):  # --fresh never deletes a folder that is not a store
        with pytest.raises(MapStoreError, match="not a smoothsal map store"):
            _small(data, foreign, fresh=fresh)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(FileNotFoundError, match="no map store"):
        open_store(tmp_path / "missing")
    with pytest.raises(MapStoreError, match="no zarr.json"):
        open_store(foreign)

    out = tmp_path / "store"
    _small(data, out)
    assert len(open_store(out)) == 8
    # a leftover of a killed local write beside a marker (the local store writes <key>.<uuid>.partial, then
    # renames): not a marker
    group, _ = sorted(units(out))[0]
    (out / group / "committed" / "c" / "1.3f2a.partial").write_bytes(b"\x01")
    (out / group / "committed" / "c" / "1").unlink()
    assert len(open_store(out)) == 6 and not any(e.row in (2, 3) for e in open_store(out).select(sigma=0))
    _small(data, out)  # recomputed
    assert len(open_store(out)) == 8
    # a chunk object changed after it was committed: its checksum fails
    chunk = next(p for p in sorted((out / group / "maps" / "c").rglob("*")) if p.is_file())
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    store = open_store(out)
    with pytest.raises(MapStoreError, match="cannot be read"):
        store.verify()
    with pytest.raises(MapStoreError, match="cannot be read"):
        store.select(sigma=0).load()
    chunk.unlink()  # a committed chunk whose object is gone
    with pytest.raises(MapStoreError, match="missing"):
        open_store(out).verify()
    # a root that is Zarr but not ours, or not JSON
    (out / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    with pytest.raises(MapStoreError, match="not a smoothsal map store"):
        open_store(out)
    with pytest.raises(MapStoreError, match="not a smoothsal map store"):
        _small(data, out, fresh=True)  # never deleted
    (out / "zarr.json").write_text("\x00\x01")
    with pytest.raises(MapStoreError, match="corrupted"):
        _small(data, out, fresh=True)


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


def test_the_report_summarises_a_store_without_listing_its_chunks(data, single, tmp_path):
    from smoothsal.studies.report import build_report

    parent = tmp_path / "out"
    shutil.copytree(single, parent / "dataset")
    result = build_report([parent], tmp_path / "report")
    (study,) = result.studies
    assert study.name == "explain_dataset" and not result.broken
    assert [i.file for i in study.raw] == ["zarr.json"] and not study.figures  # no chunk object listed or copied
    page = (tmp_path / "report" / f"{study.slug}.html").read_text()
    store = open_store(single)
    for method in ("grad", "ig", "gradcam"):
        for sigma in ("0", "0.2"):
            n = len(store.select(method=method, sigma=float(sigma)))
            cells = [re.escape(MODEL), method, re.escape(sigma), "6" if sigma != "0" else "0", r"\d+×16×16", str(n), str(N_IMAGES)]
            assert re.search("".join(rf"<td[^>]*>{c}</td>" for c in cells), page), (method, sigma)
    assert "smoothsal explain-dataset" in page and "maps committed" in page
    assert not list((tmp_path / "report").rglob("c/0"))


def test_without_zarr_the_store_says_which_extra_to_install(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "zarr":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Blocker())
        from smoothsal.studies.explain_dataset import open_store
        try:
            open_store({str(tmp_path)!r})
        except ImportError as err:
            print(type(err).__name__, err)
        """)  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == ('MissingExtraError zarr is not installed: pip install "smoothsal[store]" '
                                   "(or pip install zarr) (needed by the map store)"), proc.stdout + proc.stderr


# ---- unreadable files ----------------------------------------------------------------------------------
def test_check_image_rejects_what_pil_cannot_read(tmp_path):
    from smoothsal.studies.explain_dataset.validate import check_image

    rgb = np.random.default_rng(1).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    for fmt in ("png", "jpeg", "bmp", "gif", "webp", "tiff"):
        good = tmp_path / f"good.{fmt}"
        Image.fromarray(rgb).save(good, format=fmt.upper())
        assert check_image(good) is None, fmt
        cut = tmp_path / f"cut.{fmt}"
        cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
        reason = check_image(cut)
        assert reason is not None and "truncated" in reason, (fmt, reason)
        with pytest.raises(OSError), Image.open(cut) as im:  # the same verdict as a full decode
            im.load()
    padded = tmp_path / "padded.jpg"  # some writers pad after the end-of-image marker
    padded.write_bytes((tmp_path / "good.jpeg").read_bytes() + b"\x00" * 16)
    assert check_image(padded) is None
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert check_image(tmp_path / "text.png") == check_image(tmp_path / "empty.jpg") == "not an image PIL can read"


@pytest.fixture
def mixed_folder(data, tmp_path):
    """A plain folder of 5 good images (4 PNG, 1 JPEG) with a truncated PNG, a text file and text named .jpg."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, src in enumerate(sorted((data[0] / "cat").iterdir())[:4]):
        shutil.copy(src, folder / f"good{i}.png")
    Image.open(data[0] / "dog" / "00.png").convert("RGB").save(folder / "good4.jpg", quality=95)
    raw = (data[0] / "dog" / "01.png").read_bytes()
    (folder / "broken.png").write_bytes(raw[: len(raw) // 2])  # a truncated download
    (folder / "notes.txt").write_text("labels are in the file names\n")
    (folder / "fake.jpg").write_text("<html>403 Forbidden</html>")
    good = tmp_path / "good_only"
    good.mkdir()
    for p in folder.glob("good*"):
        shutil.copy(p, good / p.name)
    return folder, good


def test_unreadable_files_are_skipped_listed_and_the_job_finishes(data, mixed_folder, tmp_path, monkeypatch):
    folder, good = mixed_folder
    monkeypatch.syspath_prepend(str(data[1]))
    app = study_cli_app(register_cli)
    out = tmp_path / "store"
    args = ["explain-dataset", str(folder), "--out", str(out), "--model", MODEL, "--methods", "grad",
            "--noise-levels", "0,0.2", "--samples", "3", "--chunk-size", "2", "--no-progress", "--device", "cpu"]  # fmt: skip
    with pytest.warns(UserWarning, match="skipped 3 of 8 files that cannot be read as images"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "5 images (plain) × 1 methods × 2 σ = 10 maps" in result.output and "overall (1 rank): 5 images" in result.output
    summary = result.output[result.output.index("overall"):]  # the run summary lists them after the throughput
    assert "skipped 3 of 8 files" in summary and all(n in summary for n in ("broken.png", "fake.jpg", "notes.txt"))
    store = open_store(out)
    assert [s["image"] for s in store.skipped] == ["broken.png", "fake.jpg", "notes.txt"]
    assert "truncated" in store.skipped[0]["reason"] and "not an image PIL can read" in store.skipped[1]["reason"]
    assert store.header["skipped"]["count"] == 3 and store.config["dataset"]["skipped"] == ["broken.png", "fake.jpg", "notes.txt"]
    assert store.images() == [f"good{i}.{'jpg' if i == 4 else 'png'}" for i in range(5)] and store.verify() == 10
    assert open_store(out).runs()[-1]["skipped"] == 3
    # the good images' maps are those of a folder without the bad files (chunks are made of readable images only)
    clean = tmp_path / "clean"
    result = CliRunner().invoke(app, [*args[:1], str(good), "--out", str(clean), *args[4:]])
    assert result.exit_code == 0 and "skipped" not in result.output
    assert_same_maps(clean, out)
    with pytest.warns(UserWarning, match="skipped 3"):
        again = CliRunner().invoke(app, args)  # the same folder resumes: the skipped files are part of the configuration
    assert again.exit_code == 0 and "10 already in" in again.output


def test_strict_makes_an_unreadable_file_an_error_before_any_compute(data, mixed_folder, tmp_path, monkeypatch):
    folder, good = mixed_folder
    monkeypatch.syspath_prepend(str(data[1]))
    log = tmp_path / "built.log"
    monkeypatch.setenv("TINYNET_LOG", str(log))
    app = study_cli_app(register_cli)
    out = tmp_path / "store"
    args = ["explain-dataset", "--out", str(out), "--model", "tinynet_ds:tiny_cnn_logged", "--methods", "grad",
            "--samples", "3", "--no-progress", "--device", "cpu", "--strict"]  # fmt: skip
    result = CliRunner().invoke(app, [args[0], str(folder), *args[1:]])
    assert result.exit_code == 2 and "--strict" in result.output, result.output
    assert all(n in result.output for n in ("broken.png (damaged or truncated", "fake.jpg (not an image", "notes.txt (not an image file"))
    assert not out.exists() and not log.exists()  # nothing written, no model built
    result = CliRunner().invoke(app, [args[0], str(good), *args[1:]])  # a clean folder passes --strict
    assert result.exit_code == 0, result.output
    assert log.read_text() == "built\n" and len(open_store(out)) == 10


# ---- tradeoff from a store ---------------------------------------------------------------------------------
def test_tradeoff_reads_stability_and_fidelity_from_a_store(data, tmp_path):
    from smoothsal.studies.tradeoff import TradeoffConfig, register_cli as tradeoff_cli, run_tradeoff

    out = tmp_path / "maps"
    _small(data, out, max_images=6)
    with pytest.raises(ValueError, match="stability needs >= 2"):
        TradeoffConfig.preset("quick", maps=out)
    _small(data, out, model="tinynet_ds:tiny_cnn_copy", max_images=6)  # the same network
    _small(data, out, model="tinynet_ds:tiny_cnn_b", max_images=6)
    with pytest.warns(UserWarning, match="different classes"):
        run = run_tradeoff(TradeoffConfig.preset("full", maps=out), RunOptions(out=tmp_path / "t", progress=False, device="cpu"))
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
