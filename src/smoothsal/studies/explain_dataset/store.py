"""The map store of ``smoothsal explain-dataset``: Zarr v3 arrays on a path or an fsspec URL.

A store is one Zarr v3 hierarchy (zarr-python >= 3), on a local folder or at any fsspec URL
(``s3://bucket/maps`` with s3fs installed, ``memory://maps`` in tests)::

    STORE/zarr.json                      root group; attributes["smoothsal"]: format, version, the
                                         shared configuration and its hash, the image folder, the
                                         files skipped as unreadable (count and names), command, version
    STORE/image, STORE/label             [N] image ids (strings) and ImageFolder labels (-1: none)
    STORE/<model>/zarr.json              one group per model: attributes["smoothsal"] = spec, weights
                                         SHA-1, classes; attributes["runs"] = every finished job
    STORE/<model>/<method>/sigma_<σ>/    one group per (model, method, σ), opened alone by xarray:
        maps       float32 [N, C, H, W]  the maps, images along the first axis, chunks of
                                         ``chunk_size`` images; attributes: model spec, method and its
                                         settings, σ, n, tol, seed rule, image size, command, version
        image      [N] strings           the image ids (the ``image`` coordinate)
        target, seed, n_samples, rse     [N] the class explained, the noise seed, the samples drawn
                                         and ‖SE‖₂/‖map‖₂ of each map (NaN for σ = 0)
        committed  uint8 [n_chunks]      the commit markers, one chunk object per image chunk

``<model>`` is :func:`model_key` of the spec, ``<σ>`` :func:`sigma_name`. The maps carry a CRC32C
checksum per chunk (zarr's ``crc32c`` codec, after zstd), so a chunk object changed or cut short
is an error when read, never silently wrong numbers.

**The commit rule.** An image chunk ``c`` of a (model, method, σ) counts as done only when its
marker ``committed[c]`` is 1. A writer writes the chunk's rows of ``maps``, ``target``, ``seed``,
``n_samples`` and ``rse`` first and the marker last, and the marker is one object of one byte,
written by the store in one step (the local store writes every object to a temporary name and
renames it; an object store's PUT is atomic; ``memory://`` sets one key). A rank killed at any
point (SIGKILL included) therefore leaves each chunk either committed with all its rows written,
or uncommitted: rows of an uncommitted chunk may hold part of a write, are not counted by
:class:`MapStore`, and are recomputed and overwritten on resume (a chunk is a pure function of
its images, settings and seeds, so the rewrite is the same computation). Plain Zarr/xarray
readers see the same rule in the ``committed`` array; rows that were never written read as NaN.

**Several writers without locks.** Rank 0 creates every group and array of a model before any
rank writes (the arrays of one job never change shape); then each rank writes only the image
chunks it owns (chunk ``c`` goes to rank ``c mod world``), so no two processes write one object:
each image chunk of an array is one chunk object and each marker is its own object. Readers find
the committed chunks by listing the ``committed/c/`` prefix (one listing per group, not one read
per chunk), so opening a store of millions of maps costs a few listings and the per-image vectors.

**Lazy reads.** :func:`open_store` reads the headers, the markers and the small per-image vectors;
the maps are read when loaded, only the chunks that hold the selected rows. The same store opens
with ``zarr.open_group(STORE, mode="r")`` and, one (model, method, σ) group at a time, with
``xarray.open_zarr(STORE, group="<model>/<method>/sigma_<σ>", consolidated=False)``.

The store holds the maps of one **configuration** (images, methods, σ grid, samples, seed, image
size, ...: :meth:`~smoothsal.studies.explain_dataset.config.ExplainDatasetConfig.store_config`),
for any number of models: a run with another ``--model`` adds that model's maps; a run with
other settings is refused (``--fresh`` clears the store first).

The home-made format of earlier development versions (``.npy`` chunks + JSONL manifests) is not
read: it was never released, so no store of it exists outside this repository's history.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothsal._core.extras import require
from smoothsal.studies.store import stable_hash

__all__ = [
    "ATTRS",
    "FORMAT",
    "FORMAT_VERSION",
    "MapEntry",
    "MapSelection",
    "MapStore",
    "MapStoreError",
    "MapWriter",
    "as_location",
    "image_seed",
    "last_batch_size",
    "model_key",
    "open_store",
    "prepare_store",
    "register_model",
    "sigma_key",
    "sigma_name",
]

FORMAT = "smoothsal-map-store"
#: 2: the Zarr v3 store (1 was the unreleased folder of .npy chunks and JSONL manifests)
FORMAT_VERSION = 2
#: the key of smoothsal's metadata in a node's Zarr attributes
ATTRS = "smoothsal"
#: the per-image vectors of a (model, method, σ) group beside ``maps``: name -> dtype, fill value
VECTORS: dict[str, tuple[str, Any]] = {"target": ("int64", -1), "seed": ("int64", -1), "n_samples": ("int32", -1),
                                       "rse": ("float64", float("nan"))}  # fmt: skip
#: image ids per chunk of the ``image`` arrays (independent of ``chunk_size``: ids are small)
ID_CHUNK = 65536


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


def sigma_name(sigma: float) -> str:
    """The group name of noise level ``sigma``: ``sigma_0.15``, ``sigma_0`` for the raw maps."""
    return f"sigma_{sigma_key(sigma):g}"


def model_key(spec: str) -> str:
    """A key of a model spec safe as a file or object name: its readable tail and 8 hex digits of its SHA-1."""
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec).name if os.sep in spec else spec).strip("-.")[:40]
    return f"{tail or 'model'}-{_sha1(spec)[:8]}"


def group_path(model: str, method: str, sigma: float) -> str:
    """The path in the store of one (model key, method, σ) group."""
    return f"{model}/{method}/{sigma_name(sigma)}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- where the store lives -------------------------------------------------------------------------
def as_location(value: str | os.PathLike[str]) -> str | Path:
    """A store location as given: a URL with a scheme (``s3://...``, ``memory://...``) stays a
    string, anything else (``file://`` URLs included) is a local :class:`~pathlib.Path`."""
    text = os.fspath(value)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return text if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) else Path(text)


@dataclass(frozen=True)
class _Place:
    """A store's location with its fsspec file system (listings, deletes) and its Zarr store (arrays)."""

    location: str | Path
    fs: Any
    root: str

    @classmethod
    def of(cls, location: str | os.PathLike[str]) -> _Place:
        fsspec = require("fsspec", "the map store")
        loc = as_location(location)
        if isinstance(loc, Path):
            return cls(loc, fsspec.filesystem("file"), loc.resolve().as_posix())
        fs, root = fsspec.core.url_to_fs(loc)
        return cls(loc, fs, root.rstrip("/"))

    @property
    def local(self) -> bool:
        return isinstance(self.location, Path)

    def zarr_store(self, read_only: bool) -> Any:
        storage = require("zarr.storage", "the map store")
        FsspecStore, LocalStore = storage.FsspecStore, storage.LocalStore  # noqa: N806
        if self.local:
            return LocalStore(self.root, read_only=read_only)
        return FsspecStore.from_url(str(self.location), read_only=read_only)

    def key(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def exists(self, key: str = "") -> bool:
        return bool(self.fs.exists(self.key(key)))

    def is_empty(self) -> bool:
        try:
            return not self.fs.ls(self.root, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return True

    def names(self, key: str) -> list[str]:
        """The base names of the objects and prefixes directly under ``key`` (none when absent)."""
        try:
            return [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.key(key), detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def remove(self) -> None:
        self.fs.rm(self.root, recursive=True)

    def __str__(self) -> str:
        return str(self.location)


def _open_root(place: _Place, mode: str = "r") -> Any:
    """The root group, its smoothsal header checked (:class:`MapStoreError` when not a map store)."""
    zarr = require("zarr", "the map store")

    if not place.exists("zarr.json"):
        raise MapStoreError(f"{place} is not a smoothsal map store (no zarr.json)")
    try:
        root = zarr.open_group(place.zarr_store(read_only=mode == "r"), mode=mode)
        header = root.attrs.asdict().get(ATTRS)
    except (ValueError, TypeError, KeyError, OSError) as err:  # JSON errors are ValueErrors
        raise MapStoreError(f"{place}/zarr.json is not a readable Zarr group ({err}); the store is corrupted") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise MapStoreError(f"{place} is not a smoothsal map store (its zarr.json has no {ATTRS!r} attributes of format {FORMAT!r})")
    if header.get("version") != FORMAT_VERSION:
        raise MapStoreError(f"{place}: map store version {header.get('version')!r}, this smoothsal reads {FORMAT_VERSION}")
    if not isinstance(header.get("config"), dict) or not isinstance(header.get("config_hash"), str):
        raise MapStoreError(f"{place}/zarr.json lacks the store's configuration; the store is corrupted")
    return root


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ---- creating and checking a store (rank 0) --------------------------------------------------------
def prepare_store(
    location: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    images: Sequence[str],
    labels: Sequence[int | None],
    fresh: bool = False,
    code_version: str = "",
    data_dir: str | Path | None = None,
    skipped: Sequence[Mapping[str, str]] = (),
    command: str = "",
) -> dict[str, Any]:
    """Create the store at ``location`` for ``config``, or check that the one there holds ``config``.

    ``fresh`` deletes an existing store first (only a smoothsal map store: a foreign non-empty
    folder is never deleted). Raises :class:`MapStoreError` for a foreign folder, a corrupted
    header, or a store of another configuration (naming the settings that differ). ``images``
    and ``labels`` (the image ids in job order and their ImageFolder labels) become the root's
    ``image`` and ``label`` arrays; ``data_dir`` (the image folder, for readers that need the
    inputs), ``skipped`` (``{"image", "reason"}`` of each file left out), ``command`` and
    ``code_version`` are recorded but not compared. Returns the header.
    """
    zarr = require("zarr", "the map store")

    place = _Place.of(location)
    config = _json_ready(dict(config))
    config_hash = stable_hash(config)  # SHA-1 of the sorted JSON, 16 hex digits
    if place.local and Path(place.root).exists() and not Path(place.root).is_dir():
        raise MapStoreError(f"`out`: {place} exists and is not a folder")
    if place.exists("zarr.json"):
        header = _open_root(place).attrs[ATTRS]  # a corrupted or foreign header is never deleted, even with fresh
        if fresh:
            place.remove()
        elif header["config_hash"] != config_hash:
            raise MapStoreError(
                f"the store {place} holds maps of another configuration ({_diff(header['config'], config)}); "
                "rerun with --fresh to clear it, or choose another --out"
            )
        else:
            return dict(header)
    elif not place.is_empty():
        raise MapStoreError(f"`out`: {place} is not empty and is not a smoothsal map store (no zarr.json); use an empty or new folder")
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": config,
        "config_hash": config_hash,
        "created": _now(),
        "code_version": code_version,
        "command": command,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "n_images": len(images),
        "skipped": {"count": len(skipped), "files": [dict(s) for s in skipped]},
        "layout": "one group per (model, method, σ): <model>/<method>/sigma_<σ>/{maps,image,target,seed,n_samples,rse,committed}",
        "commit_rule": "image chunk c of a group counts once committed[c] == 1; the marker is written after the chunk's rows",
    }
    root = zarr.open_group(place.zarr_store(read_only=False), mode="w", attributes={ATTRS: header})
    _id_arrays(root, images, labels)
    return header


def _id_arrays(group: Any, images: Sequence[str], labels: Sequence[int | None] | None = None) -> None:
    """The ``image`` (and ``label``) arrays of ``group``: written whole, once, by the process that creates it."""
    n, chunk = len(images), max(1, min(len(images), ID_CHUNK))
    ids = group.create_array("image", shape=(n,), chunks=(chunk,), dtype=str, dimension_names=["image"])
    ids[:] = np.array(list(images), dtype=object)
    if labels is not None:
        lab = group.create_array("label", shape=(n,), chunks=(chunk,), dtype="int64", fill_value=-1, dimension_names=["image"])
        lab[:] = np.array([-1 if v is None else int(v) for v in labels], dtype=np.int64)


def register_model(
    location: str | os.PathLike[str],
    spec: str,
    info: Mapping[str, Any],
    *,
    groups: Mapping[tuple[str, float], Mapping[str, Any]] | None = None,
    map_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> str:
    """Record model ``spec`` (with ``info``: weights digest, classes, ...) in the store; its key.

    A model already recorded with other weights (``info["weights_sha1"]``) is refused: its old
    maps would not be those of the model now loaded under the same spec. ``groups`` maps each
    (method, σ) of the job to the attributes of its ``maps`` array; the groups and arrays missing
    are created (``map_shapes``: the ``[C, H, W]`` of each method's maps, needed only then).
    Run by one process (rank 0) before any rank writes.
    """
    place = _Place.of(location)
    root = _open_root(place, mode="r+")
    header = root.attrs[ATTRS]
    key = model_key(spec)
    record = {"spec": spec, "key": key, **_json_ready(dict(info))}
    if key in root:
        group = root[key]
        old = group.attrs.asdict().get(ATTRS, {})
        if old.get("weights_sha1") != record.get("weights_sha1"):
            raise MapStoreError(
                f"the store {place} holds maps of model {spec!r} with other weights (SHA-1 {old.get('weights_sha1')} "
                f"there, {record.get('weights_sha1')} now); rerun with --fresh, or use another --out"
            )
    else:
        group = root.create_group(key, attributes={ATTRS: record, "runs": []})
    n, chunk_size = int(header["n_images"]), int(header["config"]["chunk_size"])
    images = None
    for (method, sigma), attrs in (groups or {}).items():
        path = f"{method}/{sigma_name(sigma)}"
        if path in group and {"maps", "committed", "image", *VECTORS} <= set(group[path].array_keys()):
            continue
        if map_shapes is None or method not in map_shapes:
            raise ValueError(f"`map_shapes` must give the map shape of {method!r} to create its arrays")
        if images is None:
            images = [str(v) for v in root["image"][:]]
        _create_group(group.require_group(method).require_group(sigma_name(sigma)), n, chunk_size,
                      tuple(map_shapes[method]), images, attrs)  # fmt: skip
    return key


def last_batch_size(location: str | os.PathLike[str], spec: str) -> int | None:
    """The ``batch_size`` of the last finished job of model ``spec`` in the store (``None``: none yet).

    A resumed job runs its rows in calls of this size, so every map of the store is computed with
    the same grouping (:func:`smoothsal.studies.explain_dataset.compute.job_batch_size`).
    """
    root = _open_root(_Place.of(location))
    key = model_key(spec)
    if key not in root:
        return None
    for record in reversed(list(root[key].attrs.asdict().get("runs", []))):
        rows = record.get("batch_size") if isinstance(record, dict) else None
        if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 1:
            return rows
    return None


def _create_group(group: Any, n: int, chunk_size: int, shape: tuple[int, ...], images: Sequence[str], attrs: Mapping[str, Any]) -> None:
    """The arrays of one (model, method, σ) group (those missing: a killed creation is completed)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    have = set(group.array_keys())
    checked = [ZstdCodec(level=1), Crc32cCodec()]  # a chunk changed or cut short fails its checksum when read
    chunk = min(chunk_size, n)
    for name, (dtype, fill) in VECTORS.items():
        if name not in have:
            group.create_array(name, shape=(n,), chunks=(chunk,), dtype=dtype, fill_value=fill, compressors=checked,
                               dimension_names=["image"])  # fmt: skip
    if "image" not in have:
        _id_arrays(group, images)
    if "committed" not in have:
        n_chunks = -(-n // chunk_size)
        group.create_array("committed", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0, compressors=None,
                           dimension_names=["chunk"], attributes={ATTRS: {"commit_rule": "committed[c] == 1: image chunk c "
                           "of every array of this group is complete"}})  # fmt: skip
    if "maps" not in have:  # last: a group is complete when its maps array exists
        group.create_array("maps", shape=(n, *shape), chunks=(chunk, *shape), dtype="float32", fill_value=float("nan"),
                           compressors=checked, dimension_names=["image", *(["channel", "y", "x"][-len(shape):])],
                           attributes={ATTRS: _json_ready(dict(attrs))})  # fmt: skip


# ---- writing -----------------------------------------------------------------------------------------
def _committed_chunks(place: _Place, path: str) -> set[int]:
    """The committed image chunks of group ``path``: the marker objects under ``committed/c/``.

    Only names that are chunk indices count (the local store's temporary ``*.partial`` files of a
    killed write do not)."""
    return {int(name) for name in place.names(f"{path}/committed/c") if name.isdigit()}


class MapWriter:
    """One rank's writer of one model's maps (see the module docstring).

    Args:
        location: the store (prepared by :func:`prepare_store`, model registered with its groups).
        model: the model's key (:func:`register_model`).
        rank: this writer's rank (for the test hook :data:`PAUSE_ENV`).
    """

    def __init__(self, location: str | os.PathLike[str], model: str, rank: int) -> None:
        self.place = _Place.of(location)
        self.model = model
        self.rank = int(rank)
        self.root = _open_root(self.place, mode="r+")
        if model not in self.root:
            raise MapStoreError(f"model {model!r} is not registered in the store {self.place}")
        self.chunk_size = int(self.root.attrs[ATTRS]["config"]["chunk_size"])
        self._groups: dict[tuple[str, float], Any] = {}

    def group(self, method: str, sigma: float) -> Any:
        """The zarr group of (method, σ) of this model (opened once)."""
        k = (method, sigma_key(sigma))
        if k not in self._groups:
            self._groups[k] = self.root[group_path(self.model, method, sigma)]
        return self._groups[k]

    def committed(self, grid: Iterable[tuple[str, float]]) -> set[tuple[str, float, int]]:
        """The committed units ``(method, σ, chunk)`` of this model among the (method, σ) of ``grid``."""
        return {(m, sigma_key(s), c) for m, s in grid for c in _committed_chunks(self.place, group_path(self.model, m, s))}

    def committed_maps(self, grid: Iterable[tuple[str, float]], n_images: int) -> int:
        """The maps of this model committed so far (every rank), among the (method, σ) of ``grid``."""
        size = self.chunk_size
        return sum(min(size, n_images - c * size) for _, _, c in self.committed(grid))

    def write(self, method: str, sigma: float, chunk: int, maps: np.ndarray, vectors: Mapping[str, Sequence[Any]]) -> None:
        """Write one unit: the chunk's rows of ``maps`` and of the per-image ``vectors``, then its marker.

        ``vectors``: ``target``, ``seed``, ``n_samples`` and ``rse`` of each image of the chunk.
        """
        group = self.group(method, sigma)
        arr = np.ascontiguousarray(maps, dtype=np.float32)
        start = chunk * self.chunk_size
        rows = slice(start, start + arr.shape[0])
        if set(vectors) != set(VECTORS):
            raise ValueError(f"`vectors` must hold {sorted(VECTORS)}, got {sorted(vectors)}")
        if any(len(v) != arr.shape[0] for v in vectors.values()):
            raise ValueError(f"`maps` holds {arr.shape[0]} maps; every entry of `vectors` must have as many values")
        group["maps"][rows] = arr
        _pause_point(self.rank)  # tests: a rank stopped here has written part of the unit, not its marker
        for name, (dtype, _) in VECTORS.items():
            group[name][rows] = np.asarray(vectors[name], dtype=dtype)
        group["committed"][chunk] = 1  # the commit: one object, written in one step by the store

    def add_run(self, record: Mapping[str, Any]) -> None:
        """Append one finished job's summary to this model's ``runs`` attribute (rank 0, at the end)."""
        group = self.root[self.model]
        runs = list(group.attrs.asdict().get("runs", []))
        group.attrs["runs"] = [*runs, _json_ready(dict(record))]


#: tests: ``"RANK:UNITS:PATH"`` makes rank RANK, after committing UNITS units, stop in the middle of
#: the next one (its maps rows written, its other rows and its marker not): it writes its process
#: id to PATH and sleeps, so that the test can SIGKILL it there; it exits (code 18) after 120 s.
PAUSE_ENV = "SMOOTHSAL_TEST_PAUSE"
_pause_count = {"units": 0}


def _pause_point(rank: int) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    want_rank, units, path = spec.split(":", 2)
    if int(want_rank) != rank:
        return
    if _pause_count["units"] < int(units):
        _pause_count["units"] += 1
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    Path(tmp).write_text(str(os.getpid()))
    os.replace(tmp, path)
    time.sleep(120)
    os._exit(18)


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
        code_version: smoothsal's version that created the map's arrays.
        array, row: the ``maps`` array (its path in the store) and the map's row in it.
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
    array: str
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
    """A map store opened for reading (:func:`open_store`); the maps are read only when loaded.

    Attributes:
        path: the store (a local :class:`~pathlib.Path` or a URL). config: the store's
            configuration (images, methods, σ grid, ...); config_hash: its hash.
        header: everything the root records (command, version, skipped files, ...).
        skipped: ``{"image", "reason"}`` of each file of the folder left out as unreadable.
        model_info: ``{model spec: its record}``. entries: every committed map.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._place = _Place.of(path)
        self.path: str | Path = self._place.location
        if not self._place.exists():
            raise FileNotFoundError(f"`store`: no map store at {str(self.path)!r}")
        self._root = _open_root(self._place)
        header = dict(self._root.attrs[ATTRS])
        self.header: dict[str, Any] = header
        self.config: dict[str, Any] = header["config"]
        self.config_hash: str = header["config_hash"]
        self.data_dir: Path | None = Path(header["data_dir"]) if header.get("data_dir") else None
        self.skipped: list[dict[str, str]] = list((header.get("skipped") or {}).get("files", []))
        classes = list(self.config.get("dataset", {}).get("classes", []))
        try:
            ids = [str(v) for v in self._root["image"][:]]
            labels = [None if int(v) < 0 else int(v) for v in self._root["label"][:]]
        except (KeyError, ValueError, OSError) as err:
            raise MapStoreError(f"{self.path}: the image ids cannot be read ({err}); the store is corrupted") from err
        self.model_info: dict[str, dict[str, Any]] = {}
        self._runs: list[dict[str, Any]] = []
        self.entries: list[MapEntry] = []
        self._arrays: dict[str, Any] = {}
        self._groups: dict[str, list[int]] = {}  # maps array path -> committed chunks
        size = int(self.config["chunk_size"])
        for key in sorted(self._root.group_keys()):
            model_group = self._root[key]
            attrs = model_group.attrs.asdict()
            info = attrs.get(ATTRS)
            if not isinstance(info, dict) or "spec" not in info:
                raise MapStoreError(f"{self.path}/{key} is not a model group of a map store; the store is corrupted")
            self.model_info[info["spec"]] = info
            self._runs += [dict(r) for r in attrs.get("runs", [])]
            for method in sorted(model_group.group_keys()):
                for sname in sorted(model_group[method].group_keys()):
                    self._read_group(f"{key}/{method}/{sname}", info, ids, labels, classes, size)
        self.entries.sort(key=lambda e: (e.model, e.method, e.sigma, e.image))

    def _read_group(self, path: str, info: Mapping[str, Any], ids: list[str], labels: list[int | None],
                    classes: list[str], size: int) -> None:  # fmt: skip
        group = self._root[path]
        if "maps" not in set(group.array_keys()):
            return  # a creation killed before its maps array: no map was ever written there
        arr = group["maps"]
        meta = arr.attrs.asdict().get(ATTRS) or {}
        chunks = sorted(_committed_chunks(self._place, path))
        self._groups[f"{path}/maps"] = chunks
        if not chunks:
            return
        rows = np.concatenate([np.arange(c * size, min((c + 1) * size, len(ids))) for c in chunks])
        vec = {name: group[name].oindex[rows] for name in VECTORS}
        sigma = sigma_key(meta.get("sigma", 0.0))
        for i, row in enumerate(rows.tolist()):
            label = labels[row]
            rse = float(vec["rse"][i])
            self.entries.append(MapEntry(
                image=ids[row], label=label, class_name=classes[label] if label is not None and label < len(classes) else None,
                target=int(vec["target"][i]), model=info["spec"], model_key=info["key"], method=str(meta.get("method")),
                sigma=sigma, n_samples=int(vec["n_samples"][i]), rse=rse, seed=int(vec["seed"][i]),
                code_version=str(meta.get("code_version", "")), array=f"{path}/maps", row=row,
            ))  # fmt: skip

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
    def _array(self, path: str) -> Any:
        if path not in self._arrays:
            self._arrays[path] = self._root[path]
        return self._arrays[path]

    def _read_rows(self, path: str, rows: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self._array(path).oindex[rows])
        except (ValueError, RuntimeError, OSError) as err:  # a checksum mismatch or an undecodable chunk
            raise MapStoreError(f"{self.path}/{path}: a chunk cannot be read ({err}); the store is corrupted") from err

    def load(self, entries: Iterable[MapEntry]) -> Any:
        """The maps of ``entries`` as one float32 tensor ``[N, C, H, W]`` (only their chunks are read)."""
        import torch

        entries = list(entries)
        if not entries:
            raise ValueError("`entries` is empty: nothing to load")
        by_array: dict[str, list[int]] = {}
        for e in entries:
            by_array.setdefault(e.array, []).append(e.row)
        blocks: dict[str, tuple[dict[int, int], np.ndarray]] = {}
        for path, rows in by_array.items():
            unique = np.array(sorted(set(rows)), dtype=np.int64)
            blocks[path] = ({r: i for i, r in enumerate(unique.tolist())}, self._read_rows(path, unique))
        shapes = {blocks[p][1].shape[1:] for p in blocks}
        if len(shapes) > 1:
            raise ValueError(f"the selected maps have different shapes {sorted(shapes)}; select one method at a time")
        out = np.stack([blocks[e.array][1][blocks[e.array][0][e.row]] for e in entries])
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

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
        """Read every committed chunk of every ``maps`` array: each decodes with its checksum and holds
        finite maps (a chunk object missing reads as NaN). The number of maps; :class:`MapStoreError` else."""
        size = int(self.config["chunk_size"])
        n = int(self.header.get("n_images", 0))
        for path, chunks in self._groups.items():
            for c in chunks:
                block = self._read_rows(path, np.arange(c * size, min((c + 1) * size, n)))
                if not np.isfinite(block).all():
                    raise MapStoreError(f"{self.path}/{path}: committed chunk {c} is missing or holds non-finite values; "
                                        "the store is corrupted")  # fmt: skip
        return len(self.entries)

    def runs(self) -> list[dict[str, Any]]:
        """The summaries of the finished jobs (every model's), oldest first."""
        return sorted(self._runs, key=lambda r: str(r.get("time", "")))

    def iter_units(self) -> Iterator[tuple[str, str, float, MapSelection]]:
        """``(model, method, σ, selection)`` for every combination present."""
        for model in self.models():
            for method in self.methods():
                for sigma in self.sigmas():
                    sel = self.select(model=model, method=method, sigma=sigma)
                    if len(sel):
                        yield model, method, sigma, sel


def open_store(path: str | os.PathLike[str]) -> MapStore:
    """Open the map store at ``path`` (a folder or an fsspec URL) for reading (see :class:`MapStore`).

    Example:
        >>> store = open_store("out/dataset")  # doctest: +SKIP
        >>> maps = store.select(model="lite0", method="grad", sigma=0.15).load()  # doctest: +SKIP
    """
    return MapStore(path)
