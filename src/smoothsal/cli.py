"""The ``smoothsal`` command line: one command (or sub-app) per study in :data:`smoothsal.studies.STUDIES`.

Each study owns its command (``smoothsal.studies.<study>.command.register_cli``); this module
only assembles them. The command line needs the ``cli`` extra; a missing package is reported in
one line that says what to install, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from smoothsal._core.extras import PACKAGES, MissingExtraError, install_hint
from smoothsal.studies import STUDIES  # each study's command module defines register_cli(app)


def build_app() -> Any:
    """The typer application with every study's command registered."""
    typer = importlib.import_module("typer")
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="Sharp, stable and honest gradient saliency maps for PyTorch image classifiers.",
    )
    for study in STUDIES:
        importlib.import_module(f"smoothsal.studies.{study}.command").register_cli(app)
    return app


def _missing_extra(err: ImportError) -> str | None:
    """The one-line message for an optional package that is not installed, else ``None``."""
    if isinstance(err, MissingExtraError):
        return str(err)
    name = (getattr(err, "name", None) or "").split(".")[0]
    if isinstance(err, ModuleNotFoundError) and name in PACKAGES:
        return install_hint(name)
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``smoothsal`` console script."""
    try:
        app = build_app()
        app(args=argv, prog_name="smoothsal")
    except ImportError as err:
        message = _missing_extra(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
