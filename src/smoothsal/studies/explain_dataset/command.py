"""``smoothsal explain-dataset``: the typer command (builds an :class:`ExplainDatasetConfig`, runs the job).

Run it as one process, or under torchrun for several (one machine or many)::

    smoothsal explain-dataset images/ --model lite0 --methods grad,ig --noise-levels 0,0.15 --out maps/
    smoothsal explain-dataset images/ --model lite0 --out s3://bucket/maps   # any fsspec URL (s3fs installed)
    torchrun --nproc_per_node 2 -m smoothsal.cli explain-dataset images/ --model lite0 ... --out maps/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

__all__ = ["register_cli"]


def register_cli(app: Any) -> None:
    """Add ``smoothsal explain-dataset`` to a :class:`typer.Typer` app."""
    import typer
    from PIL import UnidentifiedImageError

    from smoothsal.studies._options import BATCH_SIZE, DEVICE, FRESH, MAX_MEMORY

    @app.command("explain-dataset")
    def explain_dataset_command(
        data_dir: Path = typer.Argument(..., help="A folder of images, or an ImageFolder layout (class subfolders)."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        methods: str = typer.Option("grad", "--methods", help="Comma-separated method names."),
        noise_levels: str = typer.Option("0,0.15", "--noise-levels", help="Comma-separated σ grid (0 = the raw method)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map (default 50; 8 with --quick)."),
        tol: Optional[float] = typer.Option(None, "--tol", help="Stop sampling a map once ‖SE‖/‖map‖ ≤ TOL (default: always --samples)."),
        out: str = typer.Option(
            "out/dataset", "--out", help="The Zarr map store: a folder or an fsspec URL, e.g. s3://bucket/maps (resumes; "
            "several models may share it)."
        ),
        seed: int = typer.Option(0, "--seed", help="Global seed; each image's seed derives from it and the image id."),
        target: str = typer.Option("predicted", "--target", help="predicted (top-1) | label (ImageFolder class index)."),
        image_size: Optional[int] = typer.Option(None, "--image-size", help="Model input side (default: the model's, else 224)."),
        chunk_size: int = typer.Option(16, "--chunk-size", help="Images per chunk: the unit of work and of storage."),
        quick: bool = typer.Option(False, "--quick", help="The first 16 images and 8 samples (unless --samples)."),
        batch_size: Optional[int] = BATCH_SIZE,
        max_memory: Optional[str] = MAX_MEMORY,
        device: str = DEVICE,
        fresh: bool = FRESH,
        strict: bool = typer.Option(
            False, "--strict", help="A file that cannot be read as an image is an error before any compute (default: skipped, listed)."
        ),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Explain every image of a folder into a resumable map store; shards over torchrun ranks."""
        from smoothsal.execution.memory import set_max_memory
        from smoothsal.studies.explain_dataset.config import ExplainDatasetConfig
        from smoothsal.studies.explain_dataset.run import run_explain_dataset

        try:
            set_max_memory(max_memory)
            settings = dict(
                data_dir=data_dir, out_dir=out, model=model, methods=methods, noise_levels=noise_levels,
                n_samples=samples, tol=tol, seed=seed, target=target, image_size=image_size, chunk_size=chunk_size,
                batch_size=batch_size, device=device, progress=not no_progress, fresh=fresh, strict=strict,
            )  # fmt: skip
            if quick:
                config = ExplainDatasetConfig.quick(**settings)
            else:
                config = ExplainDatasetConfig(**{k: v for k, v in settings.items() if k != "n_samples" or v is not None})
            run_explain_dataset(config, echo=typer.echo)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
