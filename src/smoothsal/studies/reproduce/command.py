"""``smoothsal reproduce``: a typer sub-app with ``smoothgrad`` and ``stability``.

Each command builds its config (quick or full preset, then the options given) inside the error
handling, so a bad option prints ``error: ...`` and exits with code 2 before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal reproduce smoothgrad|stability`` to a :class:`typer.Typer` app."""
    import typer

    from smoothsal.studies._options import BATCH_SIZE, DEVICE, FRESH, MAX_MEMORY

    sub = typer.Typer(no_args_is_help=True, help="Reproduce the papers smoothsal implements, one command each.")

    def _run(build: Any, run: Any, max_memory: Optional[str]) -> None:
        from PIL import UnidentifiedImageError

        from smoothsal.execution.memory import set_max_memory

        try:
            set_max_memory(max_memory)
            config = build()
            run(config, echo=typer.echo)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err

    @sub.command("smoothgrad")
    def smoothgrad_command(
        quick: bool = typer.Option(False, "--quick", help="Minutes on 2 CPU cores: fewer noise samples (said in the outputs)."),
        out: Path = typer.Option(Path("out/reproduce/smoothgrad"), "--out", help="Output folder (results resume from it)."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        images: Optional[str] = typer.Option(None, "--images", help="Comma-separated photo names or files (>= 4)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noise samples per smoothed map [full: 50]."),
        noise_level: Optional[float] = typer.Option(None, "--noise-level", help="σ / value range of the smoothed maps [0.15]."),
        seed: int = typer.Option(0, "--seed", help="Noise seed."),
        device: str = DEVICE,
        batch_size: Optional[int] = BATCH_SIZE,
        max_memory: Optional[str] = MAX_MEMORY,
        fresh: bool = FRESH,
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    ) -> None:
        """SmoothGrad (Smilkov et al. 2017): Figs. 2-9 and the visualization lessons."""
        from smoothsal.studies.reproduce.config import SmoothGradReproConfig
        from smoothsal.studies.reproduce.run import run_smoothgrad

        _run(lambda: SmoothGradReproConfig.preset(
            quick, out_dir=out, model=model, images=images, n_samples=samples, noise_level=noise_level, seed=seed,
            device=device, batch_size=batch_size, fresh=fresh, progress=not no_progress,
        ), run_smoothgrad, max_memory)  # fmt: skip

    @sub.command("stability")
    def stability_command(
        quick: bool = typer.Option(False, "--quick", help="Minutes on 2 CPU cores: 10 noise samples, not 100 (said in the outputs)."),
        out: Path = typer.Option(Path("out/reproduce/stability"), "--out", help="Output folder (results resume from it)."),
        settings: Optional[str] = typer.Option(None, "--settings", help="Digits settings, comma-separated: DT, DR, DA."),
        methods: Optional[str] = typer.Option(None, "--methods", help="Methods of the digits settings."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noise samples per smoothed map (digits) [full: 100]."),
        photo_samples: Optional[int] = typer.Option(None, "--photo-samples", help="Noise samples per smoothed map (ImageNet) [full: 100]."),
        photos: Optional[int] = typer.Option(None, "--photos", help="Natural photos of the ImageNet DA setting [full: 18]."),
        no_imagenet: bool = typer.Option(False, "--no-imagenet", help="Skip the ImageNet-scale DA setting."),
        seed: int = typer.Option(0, "--seed", help="Picks the digit inputs; seeds the noise."),
        device: str = DEVICE,
        batch_size: Optional[int] = BATCH_SIZE,
        max_memory: Optional[str] = MAX_MEMORY,
        fresh: bool = FRESH,
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    ) -> None:
        """Stability-fidelity trade-off (Ye & Farnia 2025): curves, Pareto, Table 1 beside the paper, theory fits."""
        from smoothsal.studies.reproduce.config import StabilityReproConfig
        from smoothsal.studies.reproduce.run import run_stability

        _run(lambda: StabilityReproConfig.preset(
            quick, out_dir=out, settings=settings, methods=methods, n_samples=samples, photo_samples=photo_samples,
            photo_inputs=photos, photo_models=() if no_imagenet else None, seed=seed, device=device,
            batch_size=batch_size, fresh=fresh, progress=not no_progress,
        ), run_stability, max_memory)  # fmt: skip

    app.add_typer(sub, name="reproduce")
