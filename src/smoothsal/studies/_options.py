"""The command-line run options every study command shares, written once, and the one place that
turns them into a :class:`~smoothsal.studies.options.RunOptions`.

A command declares a parameter ``options: RunOptions`` and is wrapped by
:func:`with_run_options`; the wrapper gives typer the shared options (same names, same help) in
its place, builds the ``RunOptions`` once from them before the command runs (a bad
``--max-memory`` or ``--device`` prints ``error: ...`` and exits with code 2 before any work),
and calls the command with it. ``--precision`` is shared by the commands that have it
(:data:`PRECISION`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Optional, TypeVar

import typer

from smoothsal.studies.options import RunOptions

__all__ = ["PRECISION", "RUN_OPTIONS", "with_run_options"]

_F = TypeVar("_F", bound=Callable[..., None])

PRECISION = typer.Option(
    "float32", "--precision",
    help="Forward-pass precision: float32, or bf16/fp16 under autocast (faster on some hardware; see smoothsal.execution.precision).",
)


def _run_parameters(default_out: Path, urls: bool) -> list[inspect.Parameter]:
    """The shared typer parameters, with this command's default output folder."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    out_help = ("Output: a folder or an fsspec URL, e.g. s3://bucket/maps (results resume from it)." if urls
                else "Output folder (results resume from it).")  # fmt: skip
    options: list[tuple[str, object, object]] = [
        ("out", str, typer.Option(str(default_out), "--out", help=out_help)),
        ("device", str, typer.Option(
            "auto", "--device", help="Where the model runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N, mps.")),
        ("max_memory", Optional[str], typer.Option(
            None, "--max-memory",
            help='Memory budget of the automatic batch size, e.g. "4GB" or "25%" (default: the library\'s budget).')),
        ("batch_size", Optional[int], typer.Option(
            None, "--batch-size", help="Most model rows (noisy inputs x path points, masked copies, images) per call "
                                       "(default: automatic). Never changes a number.")),
        ("seed", int, typer.Option(0, "--seed", help="Seed of the run: noise draws, the inputs picked, randomized weights.")),
        ("progress", bool, typer.Option(True, "--progress/--no-progress", help="Show progress bars.")),
        ("fresh", bool, typer.Option(False, "--fresh", help="Delete the results store in --out first.")),
    ]  # fmt: skip
    return [inspect.Parameter(name, keyword, default=default, annotation=kind) for name, kind, default in options]


#: the names of the shared options (the fields of RunOptions)
RUN_OPTIONS: tuple[str, ...] = ("out", "device", "max_memory", "batch_size", "seed", "progress", "fresh")


def with_run_options(default_out: str | Path, *, urls: bool = False) -> Callable[[_F], _F]:
    """Decorate a command taking ``options: RunOptions``: typer sees the shared run options instead.

    Args:
        default_out: the command's default ``--out`` folder.
        urls: whether ``--out`` may be a URL (``s3://...``; the map store of ``explain-dataset``);
            otherwise a URL is an error before any work.
    """

    def decorate(command: _F) -> _F:
        own = inspect.signature(command, eval_str=True, locals={"RunOptions": RunOptions})
        if "options" not in own.parameters:
            raise TypeError(f"{command.__name__} must take a parameter `options: RunOptions`")
        params = [p for p in own.parameters.values() if p.name != "options"]
        shared = _run_parameters(Path(default_out), urls)

        @functools.wraps(command)
        def run(**given: object) -> None:
            values = {name: given.pop(name) for name in RUN_OPTIONS}
            try:
                options = RunOptions(**values)  # type: ignore[arg-type]
                if not urls:
                    options.out_dir(default_out)  # a URL fails here, before any work
            except (ValueError, TypeError) as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=2) from err
            command(**given, options=options)

        del run.__wrapped__  # typer reads the signature below, not the command's
        run.__signature__ = own.replace(parameters=[*params, *shared])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*params, *shared]}
        return run  # type: ignore[return-value]

    return decorate
