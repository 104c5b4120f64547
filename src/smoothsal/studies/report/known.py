"""What ``smoothsal report`` knows about the existing studies' output folders: a registry.

For a folder written by ``smoothsal explain``, ``tradeoff``, ``train-noise`` or ``evaluate``
(recognised by the results store's ``config.json``, else by its file names), or a map store of
``smoothsal explain-dataset`` (recognised by what its ``zarr.json`` says), the study's own
knowledge (``smoothsal.studies.<study>.known``, a
:class:`~smoothsal.studies.report.describe.StudyKnowledge`) gives each known file a caption, its
settings, and the numbers behind it, read from the study's own JSON/CSV files only. A file that is
missing or unreadable is skipped with a note; the generic listing still shows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from smoothsal.studies.evaluate.known import KNOWN as EVALUATE
from smoothsal.studies.explain.known import KNOWN as EXPLAIN
from smoothsal.studies.explain_dataset.known import KNOWN as EXPLAIN_DATASET
from smoothsal.studies.report.describe import KnownFile, KnownStudy, StudyKnowledge
from smoothsal.studies.tradeoff.known import KNOWN as TRADEOFF
from smoothsal.studies.train_noise.known import KNOWN as TRAIN_NOISE

__all__ = ["KNOWN", "STUDIES", "KnownFile", "KnownStudy", "identify"]

#: every study the report knows, in the order of the report's pages
STUDIES: dict[str, StudyKnowledge] = {
    "explain": EXPLAIN,
    "tradeoff": TRADEOFF,
    "train_noise": TRAIN_NOISE,
    "evaluate": EVALUATE,
    "explain_dataset": EXPLAIN_DATASET,
}
#: study -> what the report shows of its folder
KNOWN: dict[str, Callable[[Path], KnownStudy]] = {name: study.describe for name, study in STUDIES.items()}
#: file names that identify a study when ``config.json`` does not
SIGNATURES: dict[str, tuple[str, ...]] = {name: study.signature for name, study in STUDIES.items() if study.recognise is None}
_STORE_NAMES = {store: name for name, study in STUDIES.items() for store in study.store_names}


def identify(folder: Path) -> str | None:
    """The known study that wrote ``folder`` (``"explain"``, ``"tradeoff"``, ``"train_noise"``, ``"evaluate"``,
    ``"explain_dataset"``), else ``None``."""
    for name, study in STUDIES.items():
        if study.recognise is not None and study.recognise(folder):
            return name
    try:
        study = json.loads((folder / "config.json").read_text()).get("study")
        if study in _STORE_NAMES:
            return _STORE_NAMES[study]
    except (OSError, ValueError, AttributeError):
        pass
    for name, files in SIGNATURES.items():
        if all((folder / f).is_file() for f in files):
            return name
    return None

