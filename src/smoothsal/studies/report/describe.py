"""What the report's knowledge of a study is made of, and the readers every study's knowledge uses.

Each study that ``smoothsal report`` knows keeps its knowledge with itself
(``smoothsal.studies.<study>.known``: a :class:`StudyKnowledge`): the file names that identify
its folder and a function that gives each known file of the folder a caption (what it shows,
after the paper figure it follows), its settings, and the numbers behind it, read from the
study's own JSON/CSV files. The readers here read files only: a file that is missing or
unreadable is skipped with a note; the generic listing still shows it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.report import html as H

__all__ = [
    "SG",
    "YF",
    "KnownFile",
    "KnownStudy",
    "StudyKnowledge",
    "drop",
    "json_and_rows",
    "joined",
    "pct",
    "read_csv_rows",
    "read_json",
    "rows_table",
    "study_results",
]

SG = "SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825)"
YF = "Ye & Farnia 2025 (arXiv:2411.05837)"


@dataclass
class KnownFile:
    """Caption, settings and numbers of one known file (see :class:`~smoothsal.studies.report.build.Item`)."""

    kind: str
    caption: str
    settings: JSONObject = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)


@dataclass
class KnownStudy:
    """What the report shows of a known study folder."""

    title: str
    command: str
    description: str = ""
    settings: JSONObject = field(default_factory=dict)
    files: dict[str, KnownFile] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    report_card: str = ""
    notes: list[str] = field(default_factory=list)
    #: one-line conclusions (plain text), shown first on the report's index (e.g. the recommended σ)
    verdicts: list[str] = field(default_factory=list)
    #: list the folder's other files too (off for a map store: its chunk objects are not report material)
    list_files: bool = True



@dataclass(frozen=True)
class StudyKnowledge:
    """What the report knows of one study's output folders.

    Attributes:
        signature: file names that identify the study's folder when its ``config.json`` does not.
        store_names: the names the study's results store writes as ``study`` in ``config.json``.
        describe: the folder's :class:`KnownStudy` (captions, settings and numbers of its files).
        recognise: whether a folder is the study's, when file names alone cannot tell (a map store's
            ``zarr.json`` says so inside); checked before ``config.json`` and the signatures.
    """

    signature: tuple[str, ...]
    store_names: tuple[str, ...]
    describe: Callable[[Path], KnownStudy]
    recognise: Callable[[Path], bool] | None = None


def read_json(folder: Path, name: str, notes: list[str]) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        notes.append(f"{name} could not be read ({err}); shown as a raw file only.")
        return None


def read_csv_rows(folder: Path, name: str, notes: list[str]) -> list[dict[str, str]] | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error) as err:
        notes.append(f"{name} could not be read ({err}).")
        return None


def json_and_rows(folder: Path, stem: str, notes: list[str]) -> tuple[JSONObject, list[JSONObject]]:
    """A study's ``{stem}.json`` (``{}`` when absent) and its rows: the JSON's ``rows``, else those of ``{stem}.csv``."""
    data = read_json(folder, f"{stem}.json", notes) or {}
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        rows = read_csv_rows(folder, f"{stem}.csv", notes) or []
    return (data if isinstance(data, dict) else {}), rows


#: settings a study writes that change no number: not shown with its figures
RUN_ONLY: tuple[str, ...] = ("out_dir", "out", "progress", "fresh")


def study_results(
    folder: Path, stem: str, settings_key: str, *, title: str, command: str, description: str
) -> tuple[KnownStudy, JSONObject, list[JSONObject]]:
    """The :class:`KnownStudy` of a folder whose results are ``{stem}.json`` (rows: its ``rows``, else
    ``{stem}.csv``), with the settings stored under ``settings_key`` less :data:`RUN_ONLY`; and
    those results and rows, for the study's captions and numbers."""
    notes: list[str] = []
    data, rows = json_and_rows(folder, stem, notes)
    settings = data.get(settings_key)
    known = KnownStudy(
        title=title, command=command, description=description,
        settings=drop(settings, *RUN_ONLY) if isinstance(settings, dict) else {}, notes=notes,
    )  # fmt: skip
    return known, data, rows


def joined(values: object, show: Callable[[object], str] = str, missing: str = "…") -> str:
    """``"a, b, c"`` of a list of values (each through ``show``), or ``missing`` when it is not a list."""
    return ", ".join(show(v) for v in values) if isinstance(values, list) else missing


def rows_table(rows: list[JSONObject], columns: list[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    return H.table(cols, [[r.get(c, "") for c in cols] for r in rows])


def drop(settings: JSONObject, *keys: str) -> JSONObject:
    return {k: v for k, v in settings.items() if k not in keys}


def pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else str(value)

