"""``smoothsal tradeoff``: the typer command of the stability–fidelity study.

The command builds a :class:`~smoothsal.studies.tradeoff.config.TradeoffConfig` from the
options (quick or full preset, then the options given) inside the error handling, so a bad
option (``--epochs 0``, ``--noise-levels 0,-0.1``, an unknown method) prints ``error: ...`` and
exits with code 2 before any work.

``--models`` is a number (models per setting, trained) or a comma-separated list of >= 2 model
specs with ``--images DIR``: your own models on your images
(:mod:`smoothsal.studies.tradeoff.own_models`), e.g. ``--models a.pt,b.pt --images photos/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

__all__ = ["register_cli"]


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [float(v) for v in items]
    except ValueError as err:
        raise ValueError(f"`{name}` must be comma-separated numbers, got {text!r}") from err


def _own_models(models: str | None, images: str | None, weights: str | None, random_weights: bool) -> tuple[int | None, Any]:
    """``--models`` as ``(models per setting, None)`` or ``(None, OwnModels)`` (specs with ``--images``)."""
    from smoothsal.studies.tradeoff.own_models import OwnModels, parse_model_list

    text = (models or "").strip()
    if not text or text.isdigit():
        if images is not None or weights is not None or random_weights:
            raise ValueError("`--images`, `--weights` and `--random-weights` need `--models A,B[,...]` (model specs)")
        return (int(text) if text else None), None
    if images is None:
        raise ValueError(f"`--models {text}` names models: give the images they explain with `--images DIR`")
    specs, files = parse_model_list(text, weights)
    return None, OwnModels(specs, Path(images), files, random_weights=random_weights)


def register_cli(app: Any) -> None:
    """Add ``smoothsal tradeoff`` to a :class:`typer.Typer` app."""
    import typer
    from PIL import UnidentifiedImageError

    from smoothsal.studies._options import with_run_options
    from smoothsal.studies.options import RunOptions
    from smoothsal.studies.tradeoff.config import DEFAULT_OUT

    @app.command("tradeoff")
    @with_run_options(DEFAULT_OUT)
    def tradeoff_command(
        options: RunOptions,
        quick: bool = typer.Option(False, "--quick", help="Small run: minutes on 2 CPU cores, training included."),
        dataset: str = typer.Option(
            "digits", "--dataset", help="digits | synthetic | mnist | photos (pretrained Lite0/1/2 on the bundled photos; setting DA)"
        ),
        methods: Optional[str] = typer.Option(
            None, "--methods", help="Comma-separated method names (default: grad,ig,gradcam,gradcam++; with --maps: the store's)."
        ),
        noise_levels: Optional[str] = typer.Option(
            None, "--noise-levels", help="Comma-separated σ grid, e.g. 0,0.1,0.2 (σ = 0 is added if missing)."
        ),
        settings: Optional[str] = typer.Option(None, "--settings", help="Comma-separated: DT, DR, DA (default: all; DA for photos)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map."),
        weight_noise: Optional[float] = typer.Option(
            None, "--weight-noise", help="σ_w of multiplicative weight noise in every smoothed map (FusionGrad; NoiseGrad at σ = 0)."
        ),
        inputs: Optional[int] = typer.Option(None, "--inputs", help="Test inputs explained."),
        models: Optional[str] = typer.Option(
            None, "--models", help="Models per setting (>= 2, trained), or >= 2 comma-separated model specs of yours "
            "(TorchScript file, package.module:factory, lite0, torchvision:/timm:/hf: NAME) explained on --images."
        ),
        images: Optional[str] = typer.Option(None, "--images", help="With --models SPECS: the folder of images they explain."),
        weights: Optional[str] = typer.Option(
            None, "--weights", help="With --models SPECS: one state-dict file per hub model, comma-separated (empty: none)."
        ),
        random_weights: bool = typer.Option(False, "--random-weights", help="With --models SPECS: hub models untrained (seeded)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs of every model."),
        ig_steps: Optional[int] = typer.Option(None, "--ig-steps", help="Integrated Gradients path points (default: the registry's)."),
        stability_target: Optional[float] = typer.Option(None, "--stability-target", help="Norm-scaled stability target."),
        fidelity_bound: Optional[float] = typer.Option(None, "--fidelity-bound", help="Norm-scaled fidelity bound."),
        maps: Optional[str] = typer.Option(
            None, "--maps", help="Read the maps from this store of `smoothsal explain-dataset` (a folder or a URL; its models) "
            "instead of training."
        ),
    ) -> None:
        """Stability vs fidelity of smoothed maps (Ye & Farnia 2025, Table 1, Figs. 2-5) and a recommended σ."""
        from smoothsal.studies.tradeoff.config import TradeoffConfig
        from smoothsal.studies.tradeoff.run import run_tradeoff, zero_note

        try:
            n_models, own = _own_models(models, images, weights, random_weights)
            if own is not None and (maps is not None or settings is not None or epochs is not None or dataset != "digits"):
                raise ValueError("`--models SPECS --images DIR` takes no --maps, --settings, --epochs or --dataset")
            config = TradeoffConfig.preset(
                "quick" if quick else "full", dataset=dataset, methods=methods,
                noise_levels=_floats(noise_levels, "--noise-levels"), settings=settings, n_samples=samples,
                n_inputs=inputs, n_models=n_models, epochs=epochs, ig_steps=ig_steps,
                stability_target=stability_target, fidelity_bound=fidelity_bound, maps=maps, own_models=own,
                weight_noise=weight_noise,
            )  # fmt: skip
            note = zero_note(config)
            if note:
                typer.echo(f"note: {note}")
            run = run_tradeoff(config, options)
        except (ValueError, FileNotFoundError, OSError, UnidentifiedImageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(f"wrote {', '.join(sorted(run.paths))} to {options.out_dir(DEFAULT_OUT)} ({run.computed} rows computed)")
        typer.echo(f"recommended noise level: {run.recommendation.noise_level:g}")
        typer.echo(f"  {run.recommendation.reason}")
        for key, rec in run.recommendations.items():
            typer.echo(f"  {key}: σ = {rec.noise_level:g}")
