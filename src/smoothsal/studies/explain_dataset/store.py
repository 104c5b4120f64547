"""The map store of ``smoothsal explain-dataset``: chunked, several writers at once, read lazily.

A store is a folder::

    STORE/
      store.json                          format marker, version, the shared configuration and its hash
      models/<model_key>.json             one per model explained into the store (spec, weights digest)
      maps/<model_key>/<unit>.npy         one chunk: the maps of up to ``chunk_size`` images for one
                                          (model, method, σ), float32 ``[K, C, H, W]``
      manifest/<model_key>.rank-<r>.jsonl one append-only manifest per (model, writer rank)
      runs.jsonl                          one line per finished job (throughput of every rank)

**Why this design and not Zarr or HDF5.** Zarr is not installed and HDF5 (h5py) is not either;
both would add a dependency to the ``cli`` extra for what plain files do here. What the job needs
is (1) many writers at once without locks, (2) an atomic commit per unit of work, so that a killed
job leaves every map either complete and recorded or absent, and (3) lazy reads. Files give all
three on any POSIX file system, local or shared between machines:

* a chunk file is written to a temporary name, flushed and ``os.replace``-d into place (atomic);
  its *manifest line* is appended after that and is the commit point. A chunk file without a line
  (a writer killed between the two) is not part of the store and is overwritten on resume; a line
  cut short by a kill has no trailing newline and is ignored by readers and truncated by the
  next writer of that manifest. Nothing is ever half recorded;
* every writer appends only to its own manifest (one per model and rank), so no two processes
  write the same file and no locking is needed, even across machines; a chunk file's name is
  derived from what it holds, so a recomputed unit lands on the same name;
* a reader (:func:`open_store`) merges the manifests (small JSON, one line per chunk) into an
  index of maps and opens chunk files only when a map is loaded (``numpy`` memory map of the
  ``.npy``, its SHA-1 checked once against the manifest), so opening a store of millions of maps
  costs the manifests only;
* a ``.npy`` chunk per (model, method, σ, image chunk) keeps the files few (one per
  ``chunk_size`` maps) and each one readable by anything that reads NumPy.

The store holds the maps of one **configuration** (images, methods, σ grid, samples, seed, image
size, ...: :meth:`~smoothsal.studies.explain_dataset.config.ExplainDatasetConfig.store_config`),
for any number of models: a run with another ``--model`` adds that model's maps; a run with
other settings is refused (``--fresh`` clears the store first).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothsal.studies.store import stable_hash, write_json

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MapEntry",
    "MapSelection",
    "MapStore",
    "MapStoreError",
    "MapWriter",
    "image_seed",
    "model_key",
    "open_store",
    "prepare_store",
    "register_model",
    "sigma_key",
]

FORMAT = "smoothsal-map-store"
FORMAT_VERSION = 1
STORE_JSON = "store.json"
MODELS = "models"
MAPS = "maps"
MANIFEST = "manifest"
RUNS = "runs.jsonl"
_MANIFEST_FIELDS = {"unit", "model", "chunk", "method", "sigma", "file", "sha1", "bytes", "shape", "maps"}


class MapStoreError(ValueError):
    """A store that cannot be used: not a store, corrupted, or written with other settings."""


# ---- keys and seeds --------------------------------------------------------------------------------
def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def image_seed(seed: int, image_id: str) -> int:
    """The noise seed of one image: 63 bits of SHA-256 of ``"<seed>:<image id>"``.

    Derived from the global seed and the image's id only, so an image's smoothed maps are the
    same whatever the number of ranks, the shard or the batch it was computed in.
    """
    digest = hashlib.sha256(f"{int(seed)}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def sigma_key(sigma: float) -> float:
    """σ as stored and matched: rounded to 10 decimals (``0.1 + 0.05`` and ``0.15`` are one σ)."""
    return round(float(sigma), 10)


def model_key(spec: str) -> str:
    """A file-name-safe key of a model spec: its readable tail and 8 hex digits of its SHA-1."""
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec).name if os.sep in spec else spec).strip("-.")[:40]
    return f"{tail or 'model'}-{_sha1(spec)[:8]}"


def unit_key(model: str, chunk: int, method: str, sigma: float) -> str:
    """The name of one unit of work (and of its chunk file)."""
    return f"c{int(chunk):06d}-{re.sub(r'[^A-Za-z0-9]+', '_', method)}-s{sigma_key(sigma):g}-{_sha1(f'{model}|{chunk}|{method}|{sigma_key(sigma)!r}')[:8]}"


def _file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, payload: Any) -> None:
    """:func:`~smoothsal.studies.store.write_json` through a per-process name, then renamed: writers
    without a process group (each rank its own process) may write the same header at once, and
    ``write_json``'s fixed temporary name would let one rename the other's half-written file."""
    write_json(path.with_name(f"{path.name}.tmp-{os.getpid()}"), payload).replace(path)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MapStoreError(f"{path} is not a readable {what} ({err}); the store is corrupted") from err
    if not isinstance(data, dict):
        raise MapStoreError(f"{path} is not a {what}; the store is corrupted")
    return data


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")


# ---- creating and checking a store (rank 0) --------------------------------------------------------
def _check_header(folder: Path) -> dict[str, Any]:
    path = folder / STORE_JSON
    header = _read_json(path, "map store header")
    if header.get("format") != FORMAT:
        raise MapStoreError(f"{folder} is not a smoothsal map store ({STORE_JSON} has format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise MapStoreError(f"{folder}: map store version {header.get('version')!r}, this smoothsal reads {FORMAT_VERSION}")
    if not isinstance(header.get("config"), dict) or not isinstance(header.get("config_hash"), str):
        raise MapStoreError(f"{path} lacks the store's configuration; the store is corrupted")
    return header


def prepare_store(
    folder: str | Path,
    config: Mapping[str, Any],
    *,
    fresh: bool = False,
    code_version: str = "",
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Create the store in ``folder`` for ``config``, or check that the one there holds ``config``.

    ``fresh`` deletes an existing store first (only a smoothsal map store: a foreign non-empty
    folder is never deleted). Raises :class:`MapStoreError` for a foreign folder, a corrupted
    header, or a store of another configuration (naming the settings that differ). ``data_dir``
    (the image folder, for readers that need the inputs) is recorded but not compared: a moved
    folder holds the same images. Returns the header.
    """
    folder = Path(folder)
    config = json.loads(json.dumps(dict(config), sort_keys=True))
    config_hash = stable_hash(config)  # = SHA-1 of the sorted JSON, 16 hex digits (the format's hash)
    header_path = folder / STORE_JSON
    if folder.exists() and not folder.is_dir():
        raise MapStoreError(f"`out`: {folder} exists and is not a folder")
    if folder.is_dir() and not header_path.exists() and any(folder.iterdir()):
        raise MapStoreError(
            f"`out`: {folder} is not empty and is not a smoothsal map store (no {STORE_JSON}); use an empty or new folder"
        )
    if header_path.exists():
        header = _check_header(folder)  # a corrupted or foreign header is never deleted, even with fresh
        if fresh:
            shutil.rmtree(folder)
        elif header["config_hash"] != config_hash:
            raise MapStoreError(
                f"the store {folder} holds maps of another configuration ({_diff(header['config'], config)}); "
                "rerun with --fresh to clear it, or choose another --out"
            )
        else:
            return header
    folder.mkdir(parents=True, exist_ok=True)
    for sub in (MODELS, MAPS, MANIFEST):
        (folder / sub).mkdir(exist_ok=True)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": config,
        "config_hash": config_hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code_version": code_version,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
    }
    _write_json(header_path, header)
    return header


def register_model(folder: str | Path, spec: str, info: Mapping[str, Any]) -> str:
    """Record model ``spec`` (with ``info``: weights digest, classes, ...) in the store; its key.

    A model already recorded with other weights (``info["weights_sha1"]``) is refused: its old
    maps would not be those of the model now loaded under the same spec.
    """
    folder = Path(folder)
    key = model_key(spec)
    path = folder / MODELS / f"{key}.json"
    record = {"spec": spec, "key": key, **dict(info)}
    if path.exists():
        old = _read_json(path, "model record")
        if old.get("weights_sha1") != record.get("weights_sha1"):
            raise MapStoreError(
                f"the store {folder} holds maps of model {spec!r} with other weights (SHA-1 {old.get('weights_sha1')} "
                f"there, {record.get('weights_sha1')} now); rerun with --fresh, or use another --out"
            )
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, record)
    return key


# ---- writing -----------------------------------------------------------------------------------------
def _complete_lines(path: Path, start: int = 0) -> tuple[list[str], int]:
    """The complete (newline-terminated) lines of ``path`` from byte ``start``, and the end offset."""
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", errors="replace")
    return [ln for ln in text.split("\n") if ln.strip()], start + end


def _parse_manifest_line(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise MapStoreError(f"{path} line {number} is not a manifest record ({err}); the store is corrupted") from err
    if not isinstance(record, dict) or not _MANIFEST_FIELDS <= record.keys() or not isinstance(record["maps"], list):
        raise MapStoreError(f"{path} line {number} is not a smoothsal manifest record; the store is corrupted")
    return record


class MapWriter:
    """One rank's writer of one model's maps (see the module docstring).

    Args:
        folder: the store (prepared by :func:`prepare_store`, model registered).
        model: the model's key (:func:`register_model`).
        rank: this writer's rank; the manifest it appends to is its own.
    """

    def __init__(self, folder: str | Path, model: str, rank: int) -> None:
        self.folder = Path(folder)
        self.model = model
        self.rank = int(rank)
        self.manifest = self.folder / MANIFEST / f"{model}.rank-{self.rank:05d}.jsonl"
        self.chunk_dir = self.folder / MAPS / model
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        self._cut_partial_line()
        for stale in self.chunk_dir.glob(f"*.tmp-r{self.rank}-*"):  # left by a killed run of this rank
            stale.unlink(missing_ok=True)

    def _cut_partial_line(self) -> None:
        if not self.manifest.exists():
            return
        data = self.manifest.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.manifest.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def committed(self) -> set[str]:
        """The units of this model committed by any writer (every rank's manifest)."""
        done: set[str] = set()
        for path in sorted((self.folder / MANIFEST).glob(f"{self.model}.rank-*.jsonl")):
            lines, _ = _complete_lines(path)
            for i, line in enumerate(lines):
                done.add(_parse_manifest_line(line, path, i + 1)["unit"])
        return done

    def write(self, unit: str, maps: np.ndarray, record: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
        """Write one unit: the chunk file (temporary name, then renamed), then its manifest line (the commit)."""
        arr = np.ascontiguousarray(maps, dtype=np.float32)
        if arr.shape[0] != len(entries):
            raise ValueError(f"`maps` holds {arr.shape[0]} maps but `entries` describes {len(entries)}")
        final = self.chunk_dir / f"{unit}.npy"
        tmp = self.chunk_dir / f"{unit}.npy.tmp-r{self.rank}-{os.getpid()}"
        with tmp.open("wb") as fh:
            np.save(fh, arr)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        _crash_point(self.rank)  # tests: die between the chunk file and its manifest line
        line = {
            **dict(record),
            "unit": unit,
            "model": self.model,
            "file": final.relative_to(self.folder).as_posix(),
            "sha1": _file_sha1(final),
            "bytes": final.stat().st_size,
            "shape": list(arr.shape),
            "dtype": "float32",
            "rank": self.rank,
            "maps": [dict(e) for e in entries],
        }
        with self.manifest.open("a") as fh:
            fh.write(json.dumps(line, sort_keys=True, allow_nan=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


#: tests: ``"RANK:UNITS"`` makes rank RANK exit (code 17) after committing UNITS units, while
#: writing the next one: its chunk file renamed into place, its manifest line not yet written.
CRASH_ENV = "SMOOTHSAL_TEST_CRASH"
_crash_count = {"units": 0}


def _crash_point(rank: int) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    want_rank, _, units = spec.partition(":")
    if int(want_rank) != rank:
        return
    if _crash_count["units"] >= int(units):
        os._exit(17)
    _crash_count["units"] += 1


class ManifestTail:
    """Counts the maps committed to one model's manifests since it was made (rank 0's job progress bar)."""

    def __init__(self, folder: str | Path, model: str) -> None:
        self.folder, self.model = Path(folder), model
        self.offsets: dict[Path, int] = {p: p.stat().st_size for p in self._paths()}
        self.maps = 0

    def _paths(self) -> list[Path]:
        return sorted((self.folder / MANIFEST).glob(f"{self.model}.rank-*.jsonl"))

    def poll(self) -> int:
        """Maps committed since creation, by every rank."""
        for path in self._paths():
            lines, end = _complete_lines(path, self.offsets.get(path, 0))
            self.offsets[path] = end
            for line in lines:
                try:
                    self.maps += len(json.loads(line).get("maps", []))
                except (json.JSONDecodeError, AttributeError):
                    pass
        return self.maps


def append_run(folder: str | Path, record: Mapping[str, Any]) -> None:
    """Append one finished job's summary (throughput per rank) to ``runs.jsonl``."""
    with (Path(folder) / RUNS).open("a") as fh:
        fh.write(json.dumps(dict(record), sort_keys=True) + "\n")


# ---- reading -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MapEntry:
    """One map of the store and its metadata.

    Attributes:
        image: the image's id (its path relative to the dataset folder, ``/``-separated).
        label, class_name: the ImageFolder class (index into the sorted class folders, and the
            folder's name); ``None`` for a plain folder.
        target: the class the map explains.
        model: the model spec (``--model``); model_key: its key in the store.
        method: the registered method name; sigma: the noise level (0 = the raw method).
        n_samples: noisy samples used (0 for σ = 0); rse: the map's relative standard error
            ‖SE‖₂/‖map‖₂ (NaN for σ = 0).
        seed: the image's noise seed (:func:`image_seed`).
        code_version: smoothsal's version that computed it.
        file, row: the chunk file (relative to the store) and the map's row in it.
    """

    image: str
    label: int | None
    class_name: str | None
    target: int
    model: str
    model_key: str
    method: str
    sigma: float
    n_samples: int
    rse: float
    seed: int
    code_version: str
    file: str
    row: int


class MapSelection(Sequence[MapEntry]):
    """A list of :class:`MapEntry` of one store, loadable as one tensor."""

    def __init__(self, store: MapStore, entries: Sequence[MapEntry]) -> None:
        self.store = store
        self.entries = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: Any) -> Any:
        return MapSelection(self.store, self.entries[i]) if isinstance(i, slice) else self.entries[i]

    def __repr__(self) -> str:
        return f"MapSelection({len(self)} maps of {self.store.path})"

    def images(self) -> list[str]:
        return [e.image for e in self.entries]

    def load(self) -> Any:
        """The maps as one float32 tensor ``[N, C, H, W]``, in selection order."""
        return self.store.load(self.entries)


class MapStore:
    """A map store opened for reading (:func:`open_store`); chunk files are read only when loaded.

    Attributes:
        path: the store folder. config: the store's configuration (images, methods, σ grid, ...).
        model_info: ``{model spec: its record}``. entries: every committed map.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"`store`: no map store folder at {str(self.path)!r}")
        if not (self.path / STORE_JSON).exists():
            raise MapStoreError(f"{self.path} is not a smoothsal map store (no {STORE_JSON})")
        header = _check_header(self.path)
        self.config: dict[str, Any] = header["config"]
        self.config_hash: str = header["config_hash"]
        self.data_dir: Path | None = Path(header["data_dir"]) if header.get("data_dir") else None
        self.model_info: dict[str, dict[str, Any]] = {}
        by_key: dict[str, str] = {}
        for p in sorted((self.path / MODELS).glob("*.json")):
            info = _read_json(p, "model record")
            if "spec" not in info or "key" not in info:
                raise MapStoreError(f"{p} is not a model record; the store is corrupted")
            self.model_info[info["spec"]] = info
            by_key[info["key"]] = info["spec"]
        self._chunks: dict[str, dict[str, Any]] = {}  # file -> {sha1, bytes, shape}
        seen: dict[tuple[str, str], MapEntry] = {}
        for p in sorted((self.path / MANIFEST).glob("*.jsonl")):
            lines, _ = _complete_lines(p)  # a last line without newline is being (or was never) written
            for i, line in enumerate(lines):
                rec = _parse_manifest_line(line, p, i + 1)
                if rec["model"] not in by_key:
                    raise MapStoreError(f"{p} line {i + 1}: model {rec['model']!r} has no record in {MODELS}/; the store is corrupted")
                self._chunks[rec["file"]] = {"sha1": rec["sha1"], "bytes": rec["bytes"], "shape": rec["shape"]}
                for row, m in enumerate(rec["maps"]):
                    rse = m.get("rse")
                    entry = MapEntry(
                        image=m["image"], label=m.get("label"), class_name=m.get("class_name"), target=int(m["target"]),
                        model=by_key[rec["model"]], model_key=rec["model"], method=rec["method"],
                        sigma=sigma_key(rec["sigma"]), n_samples=int(m.get("n_samples", 0)),
                        rse=float("nan") if rse is None else float(rse), seed=int(m["seed"]),
                        code_version=str(rec.get("code_version", "")), file=rec["file"], row=row,
                    )  # fmt: skip
                    seen[(rec["unit"], m["image"])] = entry  # a unit recorded twice is one unit
        self.entries: list[MapEntry] = sorted(seen.values(), key=lambda e: (e.model, e.method, e.sigma, e.image))
        self._verified: set[str] = set()

    def __repr__(self) -> str:
        return f"MapStore({str(self.path)!r}: {len(self.entries)} maps, models {self.models()})"

    def __len__(self) -> int:
        return len(self.entries)

    # ---- what is there ------------------------------------------------------------------------------
    def models(self) -> list[str]:
        return sorted({e.model for e in self.entries})

    def methods(self) -> list[str]:
        return sorted({e.method for e in self.entries})

    def sigmas(self) -> list[float]:
        return sorted({e.sigma for e in self.entries})

    def images(self) -> list[str]:
        return sorted({e.image for e in self.entries})

    def select(
        self,
        *,
        model: str | Iterable[str] | None = None,
        method: str | Iterable[str] | None = None,
        sigma: float | Iterable[float] | None = None,
        images: Sequence[str] | None = None,
    ) -> MapSelection:
        """The maps matching every given filter (``None`` = any).

        With ``images`` the selection follows its order (per model, method and σ, in that
        order); a map missing for one of them is simply not selected.
        """

        def as_set(v: Any, norm: Any = lambda x: x) -> set[Any] | None:
            if v is None:
                return None
            return {norm(v)} if isinstance(v, (str, int, float)) else {norm(x) for x in v}

        models, methods, sigmas = as_set(model), as_set(method), as_set(sigma, sigma_key)
        chosen = [
            e for e in self.entries
            if (models is None or e.model in models) and (methods is None or e.method in methods)
            and (sigmas is None or e.sigma in sigmas)
        ]  # fmt: skip
        if images is not None:
            order = {img: i for i, img in enumerate(images)}
            chosen = [e for e in chosen if e.image in order]
            chosen.sort(key=lambda e: (e.model, e.method, e.sigma, order[e.image]))
        return MapSelection(self, chosen)

    # ---- loading -------------------------------------------------------------------------------------
    def _chunk(self, file: str) -> np.ndarray:
        path = self.path / file
        info = self._chunks[file]
        if file not in self._verified:
            if not path.is_file():
                raise MapStoreError(f"{path} is recorded in the manifest but missing; the store is corrupted")
            size = path.stat().st_size
            if size != info["bytes"] or _file_sha1(path) != info["sha1"]:
                raise MapStoreError(
                    f"{path} does not match its manifest record ({size} bytes, expected {info['bytes']}, or another "
                    "SHA-1); the store is corrupted"
                )
            self._verified.add(file)
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise MapStoreError(f"{path} is not a readable chunk ({err}); the store is corrupted") from err
        if list(arr.shape) != list(info["shape"]):
            raise MapStoreError(f"{path} has shape {arr.shape}, its manifest says {info['shape']}; the store is corrupted")
        return arr

    def load(self, entries: Iterable[MapEntry]) -> Any:
        """The maps of ``entries`` as one float32 tensor ``[N, C, H, W]`` (chunk files memory-mapped)."""
        import torch

        entries = list(entries)
        if not entries:
            raise ValueError("`entries` is empty: nothing to load")
        chunks = {file: self._chunk(file) for file in dict.fromkeys(e.file for e in entries)}  # each file once
        rows = [np.array(chunks[e.file][e.row]) for e in entries]
        shapes = {r.shape for r in rows}
        if len(shapes) > 1:
            raise ValueError(f"the selected maps have different shapes {sorted(shapes)}; select one method at a time")
        return torch.from_numpy(np.stack(rows))

    def load_inputs(self, images: Sequence[str], data_dir: str | Path | None = None) -> Any:
        """The model inputs of ``images`` (ids), ``[N, 3, S, S]`` in [0, 1], read as the job read them
        (:func:`smoothsal.datasets.photos.load_image` at the store's image size) from ``data_dir``
        (default: the folder the store was made from)."""
        import torch

        from smoothsal.datasets.photos import load_image

        root = Path(data_dir) if data_dir is not None else self.data_dir
        if root is None:
            raise ValueError("`data_dir` must be given: the store does not record its image folder")
        size = int(self.config["image_size"])
        return torch.cat([load_image(root / image_id, size).tensor for image_id in images])

    def verify(self) -> int:
        """Check every chunk file against its manifest record (size and SHA-1); the number of maps."""
        for file in self._chunks:
            self._chunk(file)
        return len(self.entries)

    def runs(self) -> list[dict[str, Any]]:
        """The summaries of the finished jobs (``runs.jsonl``), oldest first."""
        path = self.path / RUNS
        if not path.exists():
            return []
        lines, _ = _complete_lines(path)
        return [json.loads(line) for line in lines]

    def iter_units(self) -> Iterator[tuple[str, str, float, MapSelection]]:
        """``(model, method, σ, selection)`` for every combination present."""
        for model in self.models():
            for method in self.methods():
                for sigma in self.sigmas():
                    sel = self.select(model=model, method=method, sigma=sigma)
                    if len(sel):
                        yield model, method, sigma, sel


def open_store(path: str | Path) -> MapStore:
    """Open the map store at ``path`` for reading (see :class:`MapStore`).

    Example:
        >>> store = open_store("out/dataset")  # doctest: +SKIP
        >>> maps = store.select(model="lite0", method="grad", sigma=0.15).load()  # doctest: +SKIP
    """
    return MapStore(path)
