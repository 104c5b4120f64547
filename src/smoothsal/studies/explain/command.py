"""``smoothsal explain``: the typer command (builds an :class:`ExplainConfig` and runs the study)."""

from __future__ import annotations

from typing import Any, Optional

from smoothsal.studies.explain.config import DEFAULT_OUT, ExplainConfig
from smoothsal.studies.options import RunOptions

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal explain`` to a :class:`typer.Typer` app."""
    import typer
    from PIL import UnidentifiedImageError

    from smoothsal.registry import METHODS
    from smoothsal.studies._options import PRECISION, with_run_options

    method_names = ", ".join(n for n, s in METHODS.items() if s.kind == "method")
    ig_raw, ig_smoothed = ExplainConfig.registry_default("ig_steps"), ExplainConfig.registry_default("smooth_ig_steps")
    default = ExplainConfig()

    @app.command("explain")
    @with_run_options(DEFAULT_OUT)
    def explain_command(
        options: RunOptions,
        images: Optional[list[str]] = typer.Argument(
            None, help="Image files or bundled photo names (default: all bundled photos)."
        ),
        model: str = typer.Option(
            default.model,
            help="lite0 | lite1 | lite2 | torchvision:NAME | timm:NAME | hf:REPO_OR_FOLDER | package.module:factory "
            "| TorchScript file.",
        ),
        weights: Optional[str] = typer.Option(
            None, help="Hub models: a state-dict file (.pth/.safetensors) instead of the hub's local cache."
        ),
        random_weights: bool = typer.Option(False, help="Hub models: the untrained architecture (no weights needed)."),
        methods: str = typer.Option(",".join(default.methods), help=f"Comma-separated: {method_names}."),
        noise_level: float = typer.Option(default.noise_level, help="σ as a fraction of each image's value range."),
        weight_noise: float = typer.Option(
            default.weight_noise,
            help="σ_w of multiplicative noise on the model's weights, θ ⊙ (1 + ε) (NoiseGrad; with --noise-level "
            "> 0, FusionGrad).",
        ),
        samples: int = typer.Option(default.n_samples, help="Most noisy samples per smoothed map."),
        tol: Optional[float] = typer.Option(
            default.tol,
            help="Stop sampling once ‖standard error‖/‖map‖ ≤ TOL for every image (0 = always take --samples).",
        ),
        target: Optional[int] = typer.Option(None, help="Class to explain (default: each image's top-1)."),
        ig_steps: Optional[int] = typer.Option(
            None, help=f"Integrated Gradients path points, raw (default: the registry's, {ig_raw})."
        ),
        smooth_ig_steps: Optional[int] = typer.Option(
            None, help=f"Integrated Gradients path points per noisy sample (default: the registry's, {ig_smoothed})."
        ),
        precision: str = PRECISION,
        extras: bool = typer.Option(
            default.extras,
            help="Also write the noise-level, sample-size, visualization and discriminativity figures.",
        ),
    ) -> None:
        """Explain images with each method, raw and smoothed; write grid.png, maps.npz, summary.json."""
        from smoothsal.studies.explain.run import run_explain

        try:
            config = ExplainConfig(
                images=tuple(images or ()), model=model, weights=weights, random_weights=random_weights, methods=methods,
                noise_level=noise_level, weight_noise=weight_noise, n_samples=samples, tol=tol, target=target, ig_steps=ig_steps,
                smooth_ig_steps=smooth_ig_steps, precision=precision, extras=extras,
            )  # fmt: skip
            run_explain(config, options, echo=typer.echo)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
