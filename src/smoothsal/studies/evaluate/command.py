"""``smoothsal evaluate``: the typer command of the report card.

The command builds an :class:`~smoothsal.studies.evaluate.config.EvaluateConfig` from the
options (quick or full preset, then the options given) inside the error handling, so a bad
option (an unknown method, a negative noise level, a missing image, a ``--maps`` folder that is
not a map store or lacks the model) prints ``error: ...`` and exits with code 2 before any work.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["register_cli"]


def _parse_baseline(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def register_cli(app: Any) -> None:
    """Add ``smoothsal evaluate`` to a :class:`typer.Typer` app."""
    import typer
    from PIL import UnidentifiedImageError

    from smoothsal.studies._options import with_run_options
    from smoothsal.studies.evaluate.config import DEFAULT_METHODS, DEFAULT_OUT
    from smoothsal.studies.options import RunOptions

    @app.command("evaluate")
    @with_run_options(DEFAULT_OUT)
    def evaluate_command(
        options: RunOptions,
        images: Optional[list[str]] = typer.Argument(None, help="Image files or bundled photo names (default: bundled photos)."),
        methods: str = typer.Option(",".join(DEFAULT_METHODS), "--methods", help="Comma-separated method names."),
        noise_level: float = typer.Option(0.15, "--noise-level", help="σ of the smoothed rows, fraction of the value range."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map (default 8 quick, 50 full)."),
        quick: bool = typer.Option(False, "--quick", help="Small settings: a few minutes on 2 CPU cores."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        localization: Optional[bool] = typer.Option(
            None, "--localization/--no-localization", help="Synthetic-mask section (default: on for bundled models)."
        ),
        baseline: str = typer.Option("blur", "--baseline", help="Removed pixels become: blur | black | a number."),
        ig_steps: Optional[int] = typer.Option(None, "--ig-steps", help="Integrated Gradients path points (default: the registry's)."),
        randomization: str = typer.Option(
            "scaled", "--randomization",
            help="Re-initialisation of the randomization tests: scaled (each layer's own scale) | default | permute.",
        ),
        data_rand: Optional[bool] = typer.Option(
            None, "--data-randomization/--no-data-randomization",
            help="MNIST LeNet-5 trained on true vs permuted labels, 3 permutations fitted to >= 95 % (default: on for bundled models).",
        ),
        sections: Optional[str] = typer.Option(
            None, "--sections", help="Comma-separated sections to compute (default: all); records are shared."
        ),
        maps: Optional[str] = typer.Option(
            None, "--maps", metavar="STORE",
            help="Map store of `smoothsal explain-dataset` (a folder or a URL): its images, targets and original-model maps "
            "(no IMAGES).",
        ),
        store_images: Optional[int] = typer.Option(
            None, "--store-images", help="With --maps: the first N images of the store (default: all; 4 with --quick)."
        ),
    ) -> None:
        """Report card: sanity, faithfulness, ROAD, localization, complexity, roughness, pruning per method, raw and smoothed."""
        from smoothsal.studies.evaluate.config import EvaluateConfig
        from smoothsal.studies.evaluate.run import run_evaluate

        try:
            config = EvaluateConfig.preset(
                "quick" if quick else "full", methods=methods, noise_level=noise_level, n_samples=samples,
                model=model, images=images or None, localization=localization, baseline=_parse_baseline(baseline),
                ig_steps=ig_steps, randomization=randomization, data_randomization=data_rand, sections=sections,
                maps=maps, store_images=store_images,
            )  # fmt: skip
            report = run_evaluate(config, options)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(report.table)
        passed = [r["label"] for r in report.rows if r.get("sanity") == "PASS"]
        failed = [r["label"] for r in report.rows if r.get("sanity") == "FAIL"]
        unsure = [r["label"] for r in report.rows if str(r.get("sanity", "")).startswith("inconclusive")]
        typer.echo(f"\nsanity check passed: {', '.join(passed) or 'none'}")
        typer.echo(f"sanity check failed: {', '.join(failed) or 'none'}")
        typer.echo(f"sanity check inconclusive: {', '.join(unsure) or 'none'}")
        typer.echo(f"wrote {', '.join(sorted(report.paths))} to {options.out_dir(DEFAULT_OUT)}/ in {report.seconds:.1f} s "
                   f"({report.computed} results computed)")  # fmt: skip
