"""``smoothsal report``: the typer command (gathers the study folders into one static HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal report`` to a :class:`typer.Typer` app."""
    import typer

    @app.command("report")
    def report_command(
        out_dirs: Optional[list[Path]] = typer.Argument(
            None, help="Study output folders, or folders holding them (searched 3 levels down; default: out)."
        ),
        out: Path = typer.Option(
            Path("out/report"), "--out", help="Report folder: index.html and one page per study (skipped when scanning)."
        ),
        title: str = typer.Option("smoothsal report", "--title", help="Title of the index page."),
        max_copy_mb: float = typer.Option(
            50.0, "--max-copy-mb", help="Files larger than this are linked relatively instead of copied."
        ),
    ) -> None:
        """Write a static HTML report of every figure and table the studies wrote (works opened from disk)."""
        from smoothsal.studies.report.build import build_report

        try:
            if not max_copy_mb >= 0:
                raise ValueError(f"`--max-copy-mb` must be >= 0, got {max_copy_mb}")
            result = build_report(out_dirs or [Path("out")], out, title=title, max_copy_bytes=int(max_copy_mb * 2**20))
        except (ValueError, FileNotFoundError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        for s in result.studies:
            typer.echo(f"  {s.slug}.html: {s.title} ({len(s.figures)} figures, {len(s.tables)} tables) <- {s.folder}")
            for note in s.notes:
                typer.echo(f"    note: {note}")
        typer.echo(
            f"report: {len(result.studies)} studies, {result.n_figures} figures, "
            f"{len(result.broken)} broken links, {result.seconds:.1f} s"
        )
        for b in result.broken:
            typer.echo(f"broken link: {b}", err=True)
        typer.echo(f"wrote {result.index}")
        if result.broken:
            raise typer.Exit(code=1)
