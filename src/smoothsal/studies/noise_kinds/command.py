"""``smoothsal noise-kinds``: the typer command of the noise-kinds study (:mod:`smoothsal.studies.noise_kinds`)."""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal noise-kinds`` to a :class:`typer.Typer` app."""
    import typer

    from smoothsal.studies._options import with_run_options
    from smoothsal.studies.noise_kinds.config import DEFAULT_OUT
    from smoothsal.studies.options import RunOptions

    @app.command("noise-kinds")
    @with_run_options(DEFAULT_OUT)
    def noise_kinds_command(
        options: RunOptions,
        quick: bool = typer.Option(False, "--quick", help="Small run (a few CPU minutes): 2 levels, 8 samples, 64-px photos."),
        groups: Optional[str] = typer.Option(None, "--groups", help="Comma-separated: mnist:DT, mnist:DR, mnist:DA, photos:DA."),
        levels: Optional[str] = typer.Option(None, "--levels", help="Comma-separated noise levels > 0 of every kind."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Draws per smoothed map (even)."),
    ) -> None:
        """Input vs weight vs both noises: stability-fidelity fronts and a matched-fidelity verdict."""
        from smoothsal.studies.noise_kinds.config import NoiseKindsConfig
        from smoothsal.studies.noise_kinds.run import run_noise_kinds

        try:
            config = NoiseKindsConfig.preset(
                "quick" if quick else "full",
                groups=tuple(g.strip() for g in groups.split(",") if g.strip()) if groups else None,
                levels=tuple(float(v) for v in levels.split(",") if v.strip()) if levels else None,
                n_samples=samples,
            )
            run = run_noise_kinds(config, options)
        except (ValueError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote {', '.join(sorted(run.paths))} to {options.out_dir(DEFAULT_OUT)} ({run.computed} units computed)")
        typer.echo(f"conclusion: {run.answer}: {run.sentence}")
