"""``smoothsal report``: one static HTML report of every figure and table the studies wrote.

Reads study output folders (``out/explain``, ``out/tradeoff``, ..., or their parent ``out``) and
writes ``index.html`` plus one page per study: each figure with a caption of what it shows and
the settings it was made with, the numbers behind it, and links to the raw files (CSV, JSON,
NPZ). Captions come from a study's ``manifest.json`` when it has one, else from what
:mod:`~smoothsal.studies.report.known` knows of the existing studies, else from the file names.
The report card (``smoothsal evaluate``) is shown on the index when present. The pages are
static: inline CSS, no script, relative links only, files copied beside them, so the folder
works opened from disk and can be moved or zipped as a whole.

Example:
    >>> from smoothsal.studies.report import build_report
    >>> result = build_report(["out"], "out/report")  # doctest: +SKIP
    >>> result.index, result.broken                    # doctest: +SKIP
    (PosixPath('out/report/index.html'), [])
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportResult", "broken_links", "build_report", "register_cli"]

#: names of :mod:`.build`, imported when first read: each study's ``known`` module imports this
#: package's :mod:`.describe` and :mod:`.html`, and the builder imports every study's ``known``
_BUILD = ("ReportResult", "broken_links", "build_report")


def __getattr__(name: str) -> Any:
    if name in _BUILD:
        from smoothsal.studies.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_cli(app: Any) -> None:
    """Add ``smoothsal report`` to a :class:`typer.Typer` app."""
    from smoothsal.studies.report.command import register_cli as _register

    _register(app)
