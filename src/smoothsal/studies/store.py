"""The one results store every study writes to and resumes from.

A study computes units of work (a map, a (setting, method, σ) point, a report-card cell) and
records each one as soon as it is finished. A store is a folder:

* ``records.jsonl``: one JSON object per finished unit, appended and flushed at once. Each line
  holds the study name, the configuration hash, the unit (a small dict naming the piece of
  work) and the values. JSON round-trips floats exactly (shortest ``repr``), so a resumed run
  reads back the same numbers it would have computed;
* ``arrays/<key>.npy``: tensors (maps) too large for a JSON line, written to a temporary file
  and renamed before their record line is appended, so the record is the commit point: a
  unit is either complete (record present) or absent, never half written;
* ``config.json``: the configuration of the latest run, for people reading the folder.

**One hashing rule** (:func:`stable_hash`): SHA-1 of the canonical JSON (sorted keys, tuples as
lists, anything else as ``str``). A unit's key is the hash of ``(study, config hash, unit)``.

**One behaviour for a changed configuration**: records are always looked up under the current
configuration's hash, so a rerun with other settings never mixes with old results. It reuses
nothing of theirs and recomputes what it needs; the old records stay in the file, untouched, and
are used again if the old configuration is run again. ``fresh=True`` (``--fresh`` on the CLI)
deletes the store first. The settings that go into the hash are the ones that change results;
a study leaves out the ones that do not (output folder, progress bars, batch size).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Union

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

from smoothsal._core.jsontypes import JSON, JSONObject

__all__ = ["Record", "ResultsStore", "stable_hash", "write_json", "to_jsonable"]

RECORDS = "records.jsonl"
ARRAYS = "arrays"


class Record(TypedDict):
    """One line of ``records.jsonl``: a finished unit of one study under one configuration."""

    study: str
    config_hash: str
    key: str
    unit: JSONObject
    values: JSONObject


def to_jsonable(value: object) -> JSON:
    """``value`` with tuples as lists, numpy/torch scalars and arrays as Python numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array or torch tensor
        return value.tolist()
    return value


def stable_hash(obj: object, length: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj`` (key order and tuple/list do not matter)."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def write_json(path: str | Path, payload: object) -> Path:
    """Write ``payload`` as indented JSON through a temporary file; returns ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2, default=str))
    tmp.replace(path)
    return path


class ResultsStore:
    """A resumable store of one study's results under one configuration (see the module docstring).

    Args:
        folder: the store's folder (created).
        study: the study's name (``"explain"``, ``"tradeoff"``, ...), part of every key.
        config: the settings that change results; JSON-serialisable.
        fresh: delete whatever the folder's store holds first.

    Example:
        >>> import tempfile
        >>> store = ResultsStore(tempfile.mkdtemp(), "demo", {"sigma": 0.15})
        >>> store.put({"method": "grad"}, {"error": 0.5})["error"]
        0.5
        >>> store.get({"method": "grad"})["error"]
        0.5
    """

    def __init__(self, folder: str | Path, study: str, config: Mapping[str, object], *, fresh: bool = False) -> None:
        self.folder = Path(folder)
        self.study = study
        self.config = to_jsonable(dict(config))
        self.config_hash = stable_hash(self.config, 12)
        if fresh:
            self.clear()
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / "config.json", {"study": study, "config_hash": self.config_hash, "config": self.config})
        self._records: dict[str, Record] = {}
        self._order: list[str] = []
        self._drop_partial_line()
        for record in self._read_lines():
            if record.get("study") == study and record.get("config_hash") == self.config_hash:
                if record["key"] not in self._records:
                    self._order.append(record["key"])
                self._records[record["key"]] = record

    # ---- keys and lookup ---------------------------------------------------------------------
    def key(self, unit: Mapping[str, object]) -> str:
        """The key of ``unit`` under this study and configuration."""
        return stable_hash({"study": self.study, "config": self.config_hash, "unit": unit})

    def get(self, unit: Mapping[str, object]) -> JSONObject | None:
        """The values recorded for ``unit`` by a run of this configuration, or ``None``."""
        record = self._records.get(self.key(unit))
        return None if record is None else dict(record["values"])

    def __contains__(self, unit: Mapping[str, object]) -> bool:
        return self.key(unit) in self._records

    def records(self) -> list[JSONObject]:
        """``{**unit, **values}`` of every unit of this configuration, in the order first recorded."""
        return [{**self._records[k]["unit"], **self._records[k]["values"]} for k in self._order]

    # ---- writing -----------------------------------------------------------------------------
    def put(self, unit: Mapping[str, object], values: Mapping[str, object]) -> JSONObject:
        """Record ``values`` for ``unit`` at once; returns them as a resumed run will read them."""
        key = self.key(unit)
        record: Record = {
            "study": self.study,
            "config_hash": self.config_hash,
            "key": key,
            "unit": to_jsonable(dict(unit)),
            "values": to_jsonable(dict(values)),
        }
        line = json.dumps(record, default=str)
        path = self.folder / RECORDS
        with path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        record = json.loads(line)
        if key not in self._records:
            self._order.append(key)
        self._records[key] = record
        return dict(record["values"])

    def get_or_compute(
        self, unit: Mapping[str, object], compute: Callable[[], Mapping[str, object]]
    ) -> JSONObject:
        """The recorded values of ``unit``, or ``compute()``'s, recorded first."""
        found = self.get(unit)
        return found if found is not None else self.put(unit, compute())

    def array(
        self, unit: Mapping[str, object], compute: Callable[[], tuple[Union[Tensor, np.ndarray], Mapping[str, object]]]
    ) -> tuple[np.ndarray, JSONObject]:
        """An array and its metadata for ``unit``: read back, or ``compute() -> (array, meta)`` and store.

        The array (numpy or torch) is saved to ``arrays/<key>.npy`` before the record is appended.
        """
        key = self.key(unit)
        path = self.folder / ARRAYS / f"{key}.npy"
        found = self.get(unit)
        if found is not None and path.exists():
            return np.load(path), found
        value, meta = compute()
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
        return arr, self.put(unit, {**dict(meta), "array": f"{ARRAYS}/{key}.npy"})

    def clear(self) -> None:
        """Delete the records and arrays of every configuration in this folder."""
        (self.folder / RECORDS).unlink(missing_ok=True)
        shutil.rmtree(self.folder / ARRAYS, ignore_errors=True)
        if hasattr(self, "_records"):
            self._records.clear()
            self._order.clear()

    # ---- reading -----------------------------------------------------------------------------
    def _drop_partial_line(self) -> None:
        """Cut a last line left without its newline by a run killed mid-write (it was never committed)."""
        path = self.folder / RECORDS
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def _read_lines(self) -> Iterator[Record]:
        path = self.folder / RECORDS
        if not path.exists():
            return
        with path.open() as fh:
            lines = fh.read().split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {i + 1} is not a results record ({err}); use another folder") from err
            if not isinstance(record, dict) or not {"study", "config_hash", "key", "unit", "values"} <= record.keys():
                raise ValueError(f"{path} line {i + 1} is not a smoothsal results record; use another folder")
            yield record
