"""``smoothsal train-noise``: the typer command (builds a :class:`TrainNoiseConfig` and runs the study)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from smoothsal.studies.train_noise.config import DEFAULTS

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal train-noise`` to a :class:`typer.Typer` app."""
    import typer

    from smoothsal.studies._options import BATCH_SIZE, DEVICE, FRESH, MAX_MEMORY

    @app.command("train-noise")
    def train_noise_command(
        quick: bool = typer.Option(False, "--quick", help="Small run: a few minutes on 2 CPU cores."),
        out: Path = typer.Option(DEFAULTS["out_dir"], "--out", help="Output folder (results resume from it)."),
        train_noise: float = typer.Option(
            DEFAULTS["train_noise"], "--train-noise", help="σ_train of the noisy training regime."
        ),
        explain_noise: float = typer.Option(
            DEFAULTS["explain_noise"], "--explain-noise", help="SmoothGrad noise level."
        ),
        samples: Optional[int] = typer.Option(
            None, "--samples", help=f"SmoothGrad samples [default: {DEFAULTS['n_samples']}]."
        ),
        inputs: Optional[int] = typer.Option(
            None, "--inputs", help=f"Test inputs explained [default: {DEFAULTS['n_inputs']}]."
        ),
        models: Optional[int] = typer.Option(
            None, "--models", help=f"Models per regime, on disjoint splits (>= 2) [default: {DEFAULTS['n_models']}]."
        ),
        epochs: Optional[int] = typer.Option(
            None, "--epochs", help="Training epochs of every model [default: TrainConfig's]."
        ),
        seed: int = typer.Option(DEFAULTS["seed"], "--seed", help="Picks the test inputs; seeds SmoothGrad."),
        batch_size: Optional[int] = BATCH_SIZE,
        max_memory: Optional[str] = MAX_MEMORY,
        device: str = DEVICE,
        fresh: bool = FRESH,
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    ) -> None:
        """Train with/without input noise x explain with/without SmoothGrad (SmoothGrad paper Figs. 8-9)."""
        from smoothsal.execution.memory import set_max_memory
        from smoothsal.studies.train_noise.config import TrainNoiseConfig
        from smoothsal.studies.train_noise.run import run_train_noise
        from smoothsal.studies.train_noise.report import format_table

        given = {
            "n_samples": samples,
            "n_inputs": inputs,
            "n_models": models,
            "epochs": epochs,
            "batch_size": batch_size,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        changes.update(out_dir=out, train_noise=train_noise, explain_noise=explain_noise, seed=seed, fresh=fresh,
                       device=device, progress=not no_progress)  # fmt: skip
        try:
            set_max_memory(max_memory)
            config = TrainNoiseConfig.quick(**changes) if quick else TrainNoiseConfig(**changes)
            rows = run_train_noise(config)
        except (ValueError, FileNotFoundError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote results.csv, results.json, train_noise_grid.png to {config.out_dir}")
        for line in format_table(rows):
            typer.echo(line)
