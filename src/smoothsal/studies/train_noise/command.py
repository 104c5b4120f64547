"""``smoothsal train-noise``: the typer command (builds a :class:`TrainNoiseConfig` and runs the study)."""

from __future__ import annotations

from typing import Any, Optional

from smoothsal.studies.options import RunOptions
from smoothsal.studies.train_noise.config import DEFAULT_OUT, TrainNoiseConfig

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal train-noise`` to a :class:`typer.Typer` app."""
    import typer

    from smoothsal.studies._options import with_run_options

    full = TrainNoiseConfig

    @app.command("train-noise")
    @with_run_options(DEFAULT_OUT)
    def train_noise_command(
        options: RunOptions,
        quick: bool = typer.Option(False, "--quick", help="Small run: a few minutes on 2 CPU cores."),
        train_noise: float = typer.Option(full.train_noise, "--train-noise", help="σ_train of the noisy training regime."),
        explain_noise: float = typer.Option(full.explain_noise, "--explain-noise", help="SmoothGrad noise level."),
        samples: Optional[int] = typer.Option(None, "--samples", help=f"SmoothGrad samples [default: {full.n_samples}]."),
        inputs: Optional[int] = typer.Option(None, "--inputs", help=f"Test inputs explained [default: {full.n_inputs}]."),
        models: Optional[int] = typer.Option(
            None, "--models", help=f"Models per regime, on disjoint splits (>= 2) [default: {full.n_models}]."
        ),
        epochs: Optional[int] = typer.Option(
            None, "--epochs", help="Training epochs of every model [default: TrainConfig's]."
        ),
    ) -> None:
        """Train with/without input noise x explain with/without SmoothGrad (SmoothGrad paper Figs. 8-9)."""
        from smoothsal.studies.train_noise.report import format_table
        from smoothsal.studies.train_noise.run import run_train_noise

        given = {"n_samples": samples, "n_inputs": inputs, "n_models": models, "epochs": epochs}
        changes = {k: v for k, v in given.items() if v is not None}
        try:
            make = TrainNoiseConfig.quick if quick else TrainNoiseConfig
            config = make(train_noise=train_noise, explain_noise=explain_noise, **changes)
            rows = run_train_noise(config, options)
        except (ValueError, FileNotFoundError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote results.csv, results.json, train_noise_grid.png to {options.out_dir(DEFAULT_OUT)}")
        for line in format_table(rows):
            typer.echo(line)
