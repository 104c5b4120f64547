"""``smoothsal reproduce``: a typer sub-app with ``smoothgrad`` and ``stability``.

Each command builds its config (quick or full preset, then the options given) inside the error
handling, so a bad option prints ``error: ...`` and exits with code 2 before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal reproduce smoothgrad|stability`` to a :class:`typer.Typer` app."""
    import typer
    from PIL import UnidentifiedImageError

    from smoothsal.studies._options import with_run_options
    from smoothsal.studies.options import RunOptions
    from smoothsal.studies.reproduce.config import SG_DEFAULT_OUT, ST_DEFAULT_OUT

    sub = typer.Typer(no_args_is_help=True, help="Reproduce the papers smoothsal implements, one command each.")

    def _run(build: Callable[[], Any], run: Callable[..., object], options: RunOptions) -> None:
        try:
            run(build(), options, echo=typer.echo)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err

    @sub.command("smoothgrad")
    @with_run_options(SG_DEFAULT_OUT)
    def smoothgrad_command(
        options: RunOptions,
        quick: bool = typer.Option(False, "--quick", help="Minutes on 2 CPU cores: fewer noise samples (said in the outputs)."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        images: Optional[str] = typer.Option(None, "--images", help="Comma-separated photo names or files (>= 4)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noise samples per smoothed map [full: 50]."),
        noise_level: Optional[float] = typer.Option(None, "--noise-level", help="σ / value range of the smoothed maps [0.15]."),
    ) -> None:
        """SmoothGrad (Smilkov et al. 2017): Figs. 2-9 and the visualization lessons."""
        from smoothsal.studies.reproduce.config import SmoothGradReproConfig
        from smoothsal.studies.reproduce.run import run_smoothgrad

        _run(lambda: SmoothGradReproConfig.preset(
            quick, model=model, images=images, n_samples=samples, noise_level=noise_level,
        ), run_smoothgrad, options)  # fmt: skip

    @sub.command("stability")
    @with_run_options(ST_DEFAULT_OUT)
    def stability_command(
        options: RunOptions,
        quick: bool = typer.Option(False, "--quick", help="Minutes on 2 CPU cores: 16 noise samples, not 100, 12 digits (said in the outputs)."),
        settings: Optional[str] = typer.Option(None, "--settings", help="MNIST settings, comma-separated: DT, DR, DA."),
        methods: Optional[str] = typer.Option(None, "--methods", help="Methods of the MNIST settings."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noise samples per smoothed map (MNIST; even) [full: 100]."),
        inputs: Optional[int] = typer.Option(None, "--inputs", help="Held-out test digits [full: 32]."),
        pairs: Optional[int] = typer.Option(None, "--pairs", help="Trained model pairs per setting [3]."),
        photo_samples: Optional[int] = typer.Option(None, "--photo-samples", help="Noise samples per smoothed ImageNet map, at least [full: 32]."),
        photos: Optional[str] = typer.Option(None, "--photos", help="Photos of ImageNet classes, comma-separated."),
        no_imagenet: bool = typer.Option(False, "--no-imagenet", help="Skip the ImageNet-scale DA setting."),
        no_theory: bool = typer.Option(False, "--no-theory", help="Skip the theory pair (Proposition 7, Theorems 5-6)."),
        publish: Optional[str] = typer.Option(None, "--publish", help="Also copy the tables, figures and JSON (not the results store) to this folder."),
        dr_weights: Optional[str] = typer.Option(None, "--dr-weights", help="V1,V2 weights of torchvision ResNet50 (weight names in the torch hub cache, or state-dict files) for the paper's DR row."),
    ) -> None:
        """Stability-fidelity trade-off (Ye & Farnia 2025): Table 1 beside the paper's, trend tests, bounds."""
        from smoothsal.studies.reproduce.config import StabilityReproConfig
        from smoothsal.studies.reproduce.run import run_stability

        _run(lambda: StabilityReproConfig.preset(
            quick, settings=settings, methods=methods, n_samples=samples, n_inputs=inputs, n_pairs=pairs,
            photo_samples=photo_samples, photo_names=photos, photo_models=() if no_imagenet else None,
            theory=False if no_theory else None, dr_weights=dr_weights,
        ), lambda c, o, echo: run_stability(c, o, echo=echo, publish=publish), options)  # fmt: skip

    app.add_typer(sub, name="reproduce")
