"""Resumable results files for experiments.

An experiment appends one CSV row per finished unit of work (a cell, a (setting, method, σ)
point, ...) to ``results.csv`` as soon as it is done, tagged with the hash of the run's
configuration (:func:`config_hash`). A rerun with the same configuration reads the rows back
(:meth:`ResultsFile.load`) and computes only the missing ones; a rerun with another
configuration is refused (:func:`check_config`) unless ``fresh`` discards the file.

Values are written so that they read back exactly: floats as ``repr`` (shortest round-trip
form), lists of floats as space-separated ``repr``\\ s, everything else as ``str``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ResultsFile", "check_config", "config_hash", "write_json"]


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable id of a JSON-serialisable configuration (12 hex digits of the SHA-1).

    Key order does not matter (keys are sorted); tuples hash like lists.
    """
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def check_config(rows: Iterable[Mapping[str, Any]], expected: str, path: Path) -> None:
    """Raise a :class:`ValueError` naming ``path`` if any row's ``config_hash`` is not ``expected``."""
    stale = sorted({r["config_hash"] for r in rows} - {expected})
    if stale:
        raise ValueError(
            f"{path} holds rows of another configuration ({', '.join(stale)}; this run is {expected}); "
            "pass `fresh=True` (--fresh) or choose another `out_dir`"
        )


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (tuples and other iterables as lists) and return ``path``."""
    path.write_text(json.dumps(payload, indent=2, default=list))
    return path


class ResultsFile:
    """A CSV file of result rows with fixed columns, appended to one row at a time.

    Args:
        path: the CSV file (its folder must exist).
        fields: the columns, in order; every row must hold them all, one of them ``"config_hash"``.
        owner: the function that writes the file, named in the error for a file with other columns.
        str_fields, int_fields, list_fields: columns read back as ``str``, ``int`` and
            ``list[float]``; every other column is read back as ``float``.
    """

    def __init__(
        self,
        path: Path,
        fields: Sequence[str],
        owner: str,
        *,
        str_fields: Sequence[str] = (),
        int_fields: Sequence[str] = (),
        list_fields: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.fields = tuple(fields)
        self.owner = owner
        self._str, self._int, self._list = set(str_fields), set(int_fields), set(list_fields)

    def format(self, row: Mapping[str, Any]) -> dict[str, str]:
        """The CSV text of each column of ``row``."""
        return {k: _format(row[k]) for k in self.fields}

    def parse(self, row: Mapping[str, str]) -> dict[str, Any]:
        """A row read from the CSV with its values converted to the column types."""
        out: dict[str, Any] = {}
        for key, text in row.items():
            if key in self._str:
                out[key] = text
            elif key in self._int:
                out[key] = int(text)
            elif key in self._list:
                out[key] = [float(v) for v in text.split()]
            else:
                out[key] = float(text)
        return out

    def read(self) -> list[dict[str, Any]]:
        """Every row of the file, parsed (``[]`` if the file is missing or empty).

        Raises:
            ValueError: the file's columns are not :attr:`fields`.
        """
        if not self.path.exists():
            return []
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return []
            if tuple(reader.fieldnames) != self.fields:
                raise ValueError(
                    f"{self.path} was not written by this version of `{self.owner}` (columns differ); "
                    "use a new `out_dir`"
                )
            return [self.parse(r) for r in reader]

    def load(self, config_hash: str, fresh: bool = False) -> list[dict[str, Any]]:
        """The rows already finished by a run of configuration ``config_hash``.

        ``fresh`` deletes the file first. Raises a :class:`ValueError` if the file holds rows of
        another configuration (:func:`check_config`) or other columns (:meth:`read`).
        """
        if fresh and self.path.exists():
            self.path.unlink()
        rows = self.read()
        check_config(rows, config_hash, self.path)
        return rows

    def append(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``row`` to the file at once (with the header if the file is new or empty).

        Returns:
            the row as :meth:`read` will give it back (values converted through their CSV text).
        """
        text = self.format(row)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow(text)
            fh.flush()
        return self.parse(text)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(repr(float(v)) for v in value)
    return str(value)
