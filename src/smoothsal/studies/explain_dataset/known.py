"""A map store of ``smoothsal explain-dataset``, as the report shows it (read from its ``zarr.json`` files).

The report reads files only: the store's root and group ``zarr.json`` (plain JSON) and the listing
of the commit markers; no chunk is opened and zarr is not imported. The store's chunk objects are
not listed as files of the study (a store may hold millions).
"""

import json
from pathlib import Path
from typing import Any

from smoothsal.studies.report import html as H
from smoothsal.studies.report.describe import KnownFile, KnownStudy, StudyKnowledge

#: the format marker of :mod:`smoothsal.studies.explain_dataset.store` (repeated: the report imports no zarr)
MAP_STORE_FORMAT = "smoothsal-map-store"


def _node(folder: Path) -> dict[str, Any] | None:
    """The ``zarr.json`` of a Zarr v3 node folder, or ``None``."""
    try:
        meta = json.loads((folder / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("zarr_format") == 3 else None


def _header(folder: Path) -> dict[str, Any] | None:
    header = (((_node(folder) or {}).get("attributes")) or {}).get("smoothsal")
    return header if isinstance(header, dict) and header.get("format") == MAP_STORE_FORMAT else None


def is_map_store(folder: Path) -> bool:
    """Whether ``folder`` is the root of a smoothsal map store."""
    return _header(folder) is not None


def _explain_dataset(folder: Path) -> KnownStudy:
    """A map store: its configuration, what each (model, method, σ) holds, the jobs that wrote it, the files left
    out. Read from the ``zarr.json`` files and the listing of the commit markers; no chunk is opened."""
    header = _header(folder) or {}
    config = header.get("config") or {}
    n = int(header.get("n_images") or 0)
    size = int(config.get("chunk_size") or 1)
    known = KnownStudy(
        title="Explain-dataset: a map store",
        command=str(header.get("command") or "smoothsal explain-dataset"),
        description=(
            "A Zarr v3 store of maps written by <code>smoothsal explain-dataset</code> (one array per model, method and "
            "σ, images along the first axis); <code>smoothsal tradeoff --maps</code> and <code>smoothsal evaluate "
            "--maps</code> read it, and so do <code>zarr.open_group</code> and <code>xarray.open_zarr</code>. "
            "A chunk of images counts once its commit marker is written."
        ),
        settings={**config, **{k: header[k] for k in ("created", "code_version", "data_dir") if header.get(k)}},
        list_files=False,
    )
    rows, runs = [], []
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        record = ((_node(model_dir) or {}).get("attributes")) or {}
        info = record.get("smoothsal")
        if not isinstance(info, dict) or "spec" not in info:
            continue
        runs += [r for r in record.get("runs", []) if isinstance(r, dict)]
        for group in sorted(p for p in model_dir.glob("*/sigma_*") if p.is_dir()):
            maps = _node(group / "maps") or {}
            meta = (maps.get("attributes") or {}).get("smoothsal") or {}
            markers = group / "committed" / "c"
            done = sorted(int(p.name) for p in markers.iterdir() if p.name.isdigit()) if markers.is_dir() else []
            smooth = meta.get("smooth") or {}
            rows.append([info["spec"], meta.get("method", group.parent.name), meta.get("sigma"),
                         smooth.get("n_samples", 0), "×".join(str(v) for v in (maps.get("shape") or [])[1:]),
                         sum(min(size, n - c * size) for c in done), n])  # fmt: skip
    if rows:
        known.numbers.append(
            "<p>Maps per model, method and σ: committed (their commit marker written) of the store's images.</p>"
            + H.table(["model", "method", "σ", "samples", "map shape", "maps committed", "images"], rows)
        )
    if runs:
        known.numbers.append(
            "<h3>Jobs</h3>" + H.table(
                ["time", "model", "ranks", "backend", "maps computed", "seconds", "maps/s", "files skipped"],
                [[r.get("time"), r.get("model"), r.get("world_size"), r.get("backend") or "none", r.get("maps"),
                  r.get("seconds"), (r.get("maps") or 0) / r["seconds"] if r.get("seconds") else "",
                  r.get("skipped", 0)] for r in sorted(runs, key=lambda r: str(r.get("time")))],
            )
        )  # fmt: skip
    skipped = (header.get("skipped") or {}).get("files") or []
    if skipped:
        known.numbers.append(
            f"<h3>Files left out ({len(skipped)})</h3><p>Files of the image folder that cannot be read as images.</p>"
            + H.table(["file", "why"], [[s.get("image"), s.get("reason")] for s in skipped[:200]])
        )
    known.files["zarr.json"] = KnownFile("raw", "The store's root: its configuration, command and version (Zarr v3 JSON).")
    return known


#: the report's knowledge of this study's folders: a map store says so in its zarr.json
KNOWN = StudyKnowledge(signature=("zarr.json",), store_names=(), describe=_explain_dataset, recognise=is_map_store)
