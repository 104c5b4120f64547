"""The ``smoothsal`` command line: ``explain``, ``tradeoff``, ``train-noise``, ``evaluate``.

Each experiment module owns its command (``register_cli``); this module only assembles them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Sharp, stable and honest gradient saliency maps for PyTorch image classifiers.",
)


@app.command()
def explain(
    images: Optional[list[str]] = typer.Argument(None, help="Image files or bundled photo names (default: all bundled photos)."),
    model: str = typer.Option("lite0", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
    methods: str = typer.Option("grad,ig,guided,gradcam", help="Comma-separated: grad, gradxinput, ig, guided, deconvnet, deeplift, gradcam, gradcam++, occlusion."),
    noise_level: float = typer.Option(0.15, help="σ as a fraction of each image's value range."),
    samples: int = typer.Option(400, help="Most noisy samples per smoothed map."),
    tol: Optional[float] = typer.Option(
        0.35, help="Stop sampling once ‖standard error‖/‖map‖ ≤ TOL for every image (0 = always take --samples)."
    ),
    target: Optional[int] = typer.Option(None, help="Class to explain (default: each image's top-1)."),
    out: Path = typer.Option(Path("out/explain"), help="Output folder."),
    ig_steps: int = typer.Option(32, help="Integrated Gradients path points (raw)."),
    smooth_ig_steps: int = typer.Option(4, help="Path points per noisy sample for smoothed IG."),
    batch_size: int = typer.Option(16, help="Most noisy inputs per forward pass."),
    seed: int = typer.Option(0, help="Noise seed."),
    extras: bool = typer.Option(True, help="Also write the noise-level, sample-size, visualization and discriminativity figures."),
) -> None:
    """Explain images with each method, raw and smoothed; write grid.png, maps.npz, summary.json."""
    from smoothsal.experiments.explain import run_explain

    try:
        run_explain(
            images, model=model, methods=methods, noise_level=noise_level, n_samples=samples, tol=tol or None, target=target,
            out_dir=out, ig_steps=ig_steps, smooth_ig_steps=smooth_ig_steps, batch_size=batch_size, seed=seed,
            extras=extras, echo=typer.echo,
        )
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


def _register_experiments() -> None:
    from smoothsal.experiments import evaluate, tradeoff, train_noise

    for module in (tradeoff, train_noise, evaluate):
        module.register_cli(app)


_register_experiments()


def main() -> None:
    """Entry point of the ``smoothsal`` console script."""
    app()


if __name__ == "__main__":
    main()
