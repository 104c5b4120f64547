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

    from smoothsal.studies._options import with_run_options
    from smoothsal.studies.explain_dataset.config import DEFAULT_OUT
    from smoothsal.studies.options import RunOptions

    @app.command("explain-dataset")
    @with_run_options(DEFAULT_OUT, urls=True)
    def explain_dataset_command(
        options: RunOptions,
        data_dir: Path = typer.Argument(..., help="A folder of images, or an ImageFolder layout (class subfolders)."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        methods: str = typer.Option("grad", "--methods", help="Comma-separated method names."),
        noise_levels: str = typer.Option("0,0.15", "--noise-levels", help="Comma-separated σ grid (0 = the raw method)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map (default 50; 8 with --quick)."),
        tol: Optional[float] = typer.Option(None, "--tol", help="Stop sampling a map once ‖SE‖/‖map‖ ≤ TOL (default: always --samples)."),
        target: str = typer.Option("predicted", "--target", help="predicted (top-1) | label (ImageFolder class index)."),
        image_size: Optional[int] = typer.Option(None, "--image-size", help="Model input side (default: the model's, else 224)."),
        chunk_size: int = typer.Option(16, "--chunk-size", help="Images per chunk: the unit of work and of storage."),
        quick: bool = typer.Option(False, "--quick", help="The first 16 images and 8 samples (unless --samples)."),
        strict: bool = typer.Option(
            False, "--strict", help="A file that cannot be read as an image is an error before any compute (default: skipped, listed)."
        ),
    ) -> None:
        """Explain every image of a folder into a resumable map store; shards over torchrun ranks.

        ``--out`` is the Zarr map store: a folder or an fsspec URL, e.g. s3://bucket/maps (resumes;
        several models may share it); ``--seed`` the global seed (each image's seed derives from it
        and the image id).
        """
        from smoothsal.studies.explain_dataset.config import ExplainDatasetConfig
        from smoothsal.studies.explain_dataset.run import run_explain_dataset

        try:
            make = ExplainDatasetConfig.quick if quick else ExplainDatasetConfig
            config = make(data_dir=data_dir, model=model, methods=methods, noise_levels=noise_levels, tol=tol, target=target,
                          image_size=image_size, chunk_size=chunk_size, strict=strict,
                          **({} if samples is None else {"n_samples": samples}))  # fmt: skip
            run_explain_dataset(config, options, echo=typer.echo)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
