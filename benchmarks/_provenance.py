"""Paths and command lines as the result files record them: relative to the repository root.

A committed result file must not name a path of the machine that made it (a workspace or home
folder, a temporary folder): every benchmark records its output path and its command line through :func:`rel`
and :func:`command_line`, so the same run on another checkout writes the same text. Each result
file is listed with its command in ``results/INDEX.md``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rel(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root (``/``-separated) when it lies inside it; else as given."""
    p = Path(path)
    try:
        return (p if p.is_absolute() else Path.cwd() / p).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def command_line(argv: list[str] | None = None) -> str:
    """The command that runs this script, as typed from the repository root: ``python <script> <args>``,
    the script and every argument that names an existing path inside the repository made relative to it."""
    argv = list(sys.argv if argv is None else argv)
    parts = ["python", rel(argv[0])]
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if eq and value and (os.sep in value or Path(value).exists()):
            parts.append(f"{name}={rel(value)}")
        elif os.sep in arg and not arg.startswith("-"):
            parts.append(rel(arg))
        else:
            parts.append(arg)
    return shlex.join(parts)


def write_json(path: str | os.PathLike[str], data: object, *, indent: int = 1) -> str:
    """Write ``data`` as JSON to ``path`` (its folder made if need be); returns the line to print,
    ``wrote <path relative to the repository>``."""
    import json

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=indent))
    return f"wrote {rel(out)}"
