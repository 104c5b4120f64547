r"""``smoothsal evaluate``: a report card for every method, raw and smoothed, with two controls.

One row per method (each raw and smoothed by :class:`~smoothsal.smoothing.Smooth`), plus two
control rows that ignore the model -- the Sobel edge detector and a seeded random map -- so a
reader sees that the checks can fail. Columns (means over the images):

* **sanity** -- cascading model parameter randomization (Adebayo et al. 2018, arXiv:1810.03292):
  :math:`|\rho_{\text{Spearman}}|` of ``|map|``, SSIM and top-k IoU between the original map and
  the map after randomizing every layer from the top down to the lowest checkpoint (checkpoints
  evenly spaced over the depth, :func:`~smoothsal.metrics.sanity.spaced_layers`), and the verdict
  PASS (:math:`|\bar\rho| < 0.5`, the mean over the cascade) or FAIL (:func:`~smoothsal.metrics.sanity.sanity_verdict`);
* **faithfulness** -- deletion and insertion AUC (most relevant first, probability of the target,
  patches of 16 px at 224², the *same* baseline for both -- blurred by default -- so a random map gives
  :math:`\text{AUC}_{ins} \approx \text{AUC}_{del}` and ``ins − del`` measures faithfulness above
  chance), faithfulness correlation (Bhatt et al. 2020) and monotonicity (Nguyen & Martínez 2020);
* **complexity** -- sparseness (Gini) and entropy of the pixel map;
* **roughness** -- :func:`~smoothsal.metrics.jaggedness.gradient_roughness`, the mean relative
  change of the map between :math:`x` and points 1 % of the range away;
* **pruning** -- the smallest :math:`q` (%) whose top-:math:`q` pixels (rest set to the baseline) keep 90 % of
  the target probability (:func:`~smoothsal.metrics.pruning.smallest_q`);
* **localization** (where masks exist) -- on synthetic scenes with ground-truth object masks and a
  small CNN trained on them with :mod:`smoothsal.train`: pointing game, relevance mass (of
  ``|map|``) and top-k IoU with the mask. The bundled photos have no masks.

Outputs in ``out_dir``: ``report.csv``, ``report.json``, ``report.md`` (Markdown tables),
``deletion_insertion.png``, ``randomization.png`` (similarity vs cascade depth per method) and
``jaggedness.png`` (the SmoothGrad paper's Fig. 2 on the first image, gradient vs SmoothGrad).
Every finished (section, method) result is written at once to ``cache.json`` (maps to
``cache/*.npy``), keyed by a hash of the settings, so a rerun skips finished work.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from smoothsal._validation import check_choice, check_inputs, check_logits, check_nonnegative, check_positive_int
from smoothsal.methods.base import preserve_model

__all__ = [
    "CONTROLS",
    "DEFAULT_METHODS",
    "EvaluateReport",
    "FULL",
    "QUICK",
    "SECTIONS",
    "markdown_tables",
    "register_cli",
    "run_evaluate",
]

DEFAULT_METHODS: tuple[str, ...] = ("grad", "ig", "guided", "gradcam", "gradcam++")
#: accepted aliases for registry names (``smoothgrad`` is the smoothed row of ``grad``).
ALIASES = {"smoothgrad": "grad", "gradient": "grad", "integrated_gradients": "ig", "guided_backprop": "guided"}
CONTROLS: dict[str, str] = {"sobel": "Sobel edges (control)", "random": "Random map (control)"}
SECTIONS: tuple[str, ...] = ("sanity", "faithfulness", "complexity", "roughness", "pruning", "localization")

#: quick / full settings. ``patch`` sizes are for 224 px images and scale with the image size.
#: Quick explains one photo: its correlations are single-image numbers (a random map's faithfulness
#: correlation then has a spread of about ±1/sqrt(fc_runs - 1) around 0). Full takes about an hour
#: on a 2-core CPU with the default methods (smoothed IG dominates).
QUICK: dict[str, Any] = {
    "photos": ("chelsea",),
    "n_samples": 8,
    "steps": 10,
    "patch": 16,
    "monotonicity_patch": 32,
    "fc_runs": 16,
    "mprt_checkpoints": 4,
    "roughness_pairs": 2,
    "ig_steps": 8,
    "smooth_ig_steps": 4,
    "line_steps": 21,
    "loc_images": 32,
    "loc_epochs": 4,
}
FULL: dict[str, Any] = {
    "photos": None,
    "n_samples": 50,
    "steps": 20,
    "patch": 16,
    "monotonicity_patch": 16,
    "fc_runs": 50,
    "mprt_checkpoints": 6,
    "roughness_pairs": 4,
    "ig_steps": 32,
    "smooth_ig_steps": 4,
    "line_steps": 101,
    "loc_images": 128,
    "loc_epochs": None,
}
SANITY_THRESHOLD = 0.5
PRUNE_SHARE = 0.9
BASELINES = ("blur", "black")

#: CSV columns, in order (JSON rows carry the same keys plus the curves).
COLUMNS: tuple[str, ...] = (
    "row", "method", "label", "kind", "smoothed",
    "sanity", "sanity_score", "mprt_spearman_abs", "mprt_ssim", "mprt_topk_iou",
    "deletion_auc", "insertion_auc", "ins_minus_del", "faithfulness_corr", "monotonicity",
    "sparseness", "entropy", "roughness", "prune_q90", "prune_conf_q10",
    "loc_pointing", "loc_mass", "loc_topk_iou", "sanity_reason",
)  # fmt: skip


@dataclass(frozen=True)
class _Row:
    """One report row: a method factory ``model -> attribution method``."""

    key: str
    method: str
    label: str
    kind: str  # "method" | "control"
    smoothed: bool
    factory: Callable[[nn.Module], Any] = field(compare=False)


@dataclass
class _Context:
    model: nn.Module
    inputs: Tensor  # [B, C, H, W]
    targets: Tensor  # [B]
    settings: dict[str, Any]
    loc: tuple[nn.Module, Tensor, Tensor, Tensor] | None  # model, images, masks, labels
    maps_dir: Path
    config_hash: str


@dataclass
class EvaluateReport:
    """What :func:`run_evaluate` returns.

    Attributes:
        rows: one dict per report row (keys :data:`COLUMNS`).
        table: the Markdown tables printed by the CLI.
        paths: ``{file name: path}`` of every file written.
        computed: number of (section, row) results computed in this run (the rest came from the cache).
        settings: the settings used.
        seconds: wall time of this run.
    """

    rows: list[dict[str, Any]]
    table: str
    paths: dict[str, Path]
    computed: int
    settings: dict[str, Any]
    seconds: float

    def row(self, key: str) -> dict[str, Any]:
        """The row named ``key`` (e.g. ``"grad"``, ``"grad_smooth"``, ``"sobel"``, ``"random"``)."""
        for r in self.rows:
            if r["row"] == key:
                return r
        raise KeyError(f"no row {key!r}; rows are {[r['row'] for r in self.rows]}")


# ---- rows ---------------------------------------------------------------------------------------
def _parse_methods(methods: Sequence[str] | str) -> list[str]:
    from smoothsal.methods.registry import METHODS

    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names: list[str] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        name = ALIASES.get(item, item)
        if name not in METHODS:
            raise ValueError(f"unknown method {item!r} in `methods`; expected names from {sorted(METHODS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("`methods` must name at least one method")
    return names


def _method_kwargs(name: str, smoothed: bool, settings: dict[str, Any], size: int) -> dict[str, Any]:
    if name == "ig":
        return {"steps": settings["smooth_ig_steps"] if smoothed else settings["ig_steps"]}
    if name == "occlusion":
        window = max(2, round(32 * size / 224))
        return {"window": window, "stride": max(1, window // 2)}
    return {}


def _build_rows(names: list[str], settings: dict[str, Any], size: int, seed: int) -> list[_Row]:
    from smoothsal.methods.controls import RandomAttribution, SobelEdges
    from smoothsal.methods.registry import build_method, method_label

    smooth_kw = {"noise_level": settings["noise_level"], "n_samples": settings["n_samples"], "batch_size": 16, "seed": seed}
    rows = []
    for name in names:
        for smoothed in (False, True):
            kw = _method_kwargs(name, smoothed, settings, size)

            def factory(m: nn.Module, name: str = name, kw: dict = kw, smoothed: bool = smoothed) -> Any:
                method = build_method(name, m, **kw)
                if not smoothed:
                    return method
                from smoothsal.smoothing import Smooth

                return Smooth(method, **smooth_kw)

            key = f"{name}_smooth" if smoothed else name
            rows.append(_Row(key, name, method_label(name, smoothed), "method", smoothed, factory))
    rows.append(_Row("sobel", "sobel", CONTROLS["sobel"], "control", False, SobelEdges))
    rows.append(
        _Row("random", "random", CONTROLS["random"], "control", False, lambda m: RandomAttribution(m, seed=seed))
    )
    return rows


# ---- sections -----------------------------------------------------------------------------------
def _maps(ctx: _Context, row: _Row) -> Tensor:
    """The row's maps of the report images (cached as ``.npy``)."""
    path = ctx.maps_dir / f"{ctx.config_hash}-{row.key}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    maps = row.factory(ctx.model).attribute(ctx.inputs, ctx.targets).detach().float()
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, maps.numpy())
    tmp.replace(path)
    return maps


def _mean(t: Tensor) -> float:
    return float(t.float().nanmean())


def _section_sanity(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.sanity import model_parameter_randomization, sanity_verdict, spaced_layers

    layers = spaced_layers(ctx.model, ctx.settings["mprt_checkpoints"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="a map is constant")
        res = model_parameter_randomization(
            row.factory, ctx.model, ctx.inputs, ctx.targets, order="cascading", layers=layers, seed=ctx.settings["seed"]
        )
    verdict = sanity_verdict(res, threshold=SANITY_THRESHOLD)
    means = res.summary()
    return {
        "sanity": "PASS" if verdict.passed else "FAIL",
        "sanity_score": verdict.score,
        "sanity_reason": verdict.reason,
        "mprt_spearman_abs": abs(means["spearman_abs"][-1]),
        "mprt_ssim": means["ssim"][-1],
        "mprt_topk_iou": means["topk_iou"][-1],
        "_mprt": {"layers": res.layers, **means},
    }


def _section_faithfulness(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.faithfulness import auc, deletion_curve, faithfulness_correlation, insertion_curve, monotonicity

    s, x, t = ctx.settings, ctx.inputs, ctx.targets
    maps = _maps(ctx, row)
    patch, mono_patch = _scaled_patch(s["patch"], x), _scaled_patch(s["monotonicity_patch"], x)
    steps = min(s["steps"], _n_units(x, patch))
    dele = deletion_curve(ctx.model, x, maps, t, steps=steps, patch=patch, baseline=s["baseline"])
    ins = insertion_curve(ctx.model, x, maps, t, steps=steps, patch=patch, baseline=s["baseline"])
    fc = faithfulness_correlation(ctx.model, x, maps, t, n_runs=s["fc_runs"], patch=patch, seed=s["seed"], batch_size=32)
    mono = monotonicity(ctx.model, x, maps, t, patch=mono_patch, batch_size=32)
    d_auc, i_auc = auc(dele), auc(ins)
    return {
        "deletion_auc": _mean(d_auc),
        "insertion_auc": _mean(i_auc),
        "ins_minus_del": _mean(i_auc - d_auc),
        "faithfulness_corr": _mean(fc),
        "monotonicity": _mean(mono),
        "_curves": {
            "fractions": dele.fractions.tolist(),
            "deletion": dele.scores.mean(dim=0).tolist(),
            "insertion": ins.scores.mean(dim=0).tolist(),
        },
    }


def _section_complexity(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.complexity import entropy, sparseness

    maps = _maps(ctx, row)
    return {
        "sparseness": _mean(sparseness(maps, reduce_channels=True)),
        "entropy": _mean(entropy(maps, reduce_channels=True)),
    }


def _section_roughness(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.jaggedness import gradient_roughness

    r = gradient_roughness(
        row.factory(ctx.model), ctx.inputs, ctx.targets, radius=0.01, n_pairs=ctx.settings["roughness_pairs"],
        seed=ctx.settings["seed"], reference=_maps(ctx, row),
    )  # fmt: skip
    return {"roughness": _mean(r[torch.isfinite(r)]) if torch.isfinite(r).any() else math.inf}


def _section_pruning(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.pruning import attribution_pruning, smallest_q

    res = attribution_pruning(ctx.model, ctx.inputs, _maps(ctx, row), ctx.targets, baseline=ctx.settings["baseline"])
    q10 = int((res.q == 10).nonzero()[0]) if bool((res.q == 10).any()) else 0
    return {
        "prune_q90": _mean(smallest_q(res, PRUNE_SHARE)),
        "prune_conf_q10": _mean(res.confidence_kept[q10]),
        "_pruning": {"q": res.q.tolist(), "confidence_kept": res.confidence_kept.mean(dim=1).tolist()},
    }


def _section_localization(ctx: _Context, row: _Row) -> dict[str, Any]:
    from smoothsal.metrics.localization import mask_topk_iou, pointing_game, relevance_mass

    if ctx.loc is None:
        return {}
    model, images, masks, labels = ctx.loc
    maps = row.factory(model).attribute(images, labels).detach()
    return {
        "loc_pointing": _mean(pointing_game(maps, masks)),
        "loc_mass": _mean(relevance_mass(maps, masks, relevance="abs")),
        "loc_topk_iou": _mean(mask_topk_iou(maps, masks)),
    }


_SECTION_FUNCS: dict[str, Callable[[_Context, _Row], dict[str, Any]]] = {
    "sanity": _section_sanity,
    "faithfulness": _section_faithfulness,
    "complexity": _section_complexity,
    "roughness": _section_roughness,
    "pruning": _section_pruning,
    "localization": _section_localization,
}


def _scaled_patch(patch_224: int, x: Tensor) -> int:
    """``patch_224`` pixels at 224 px, scaled to the images' size (at least 1)."""
    return max(1, round(patch_224 * max(x.shape[-2:]) / 224))


def _n_units(x: Tensor, patch: int) -> int:
    h, w = x.shape[-2:]
    return math.ceil(h / patch) * math.ceil(w / patch)


# ---- cache --------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class _Cache:
    """``cache.json``: ``{"config": hash, "results": {"section/row": {...}}}``, rewritten after each result."""

    def __init__(self, path: Path, config_hash: str, fresh: bool) -> None:
        self.path, self.config_hash = path, config_hash
        self.results: dict[str, dict[str, Any]] = {}
        if path.exists() and not fresh:
            data = json.loads(path.read_text())
            if data.get("config") == config_hash:
                self.results = data.get("results", {})
            else:
                warnings.warn(
                    f"{path} holds results for other settings; starting afresh", UserWarning, stacklevel=3
                )

    def get(self, section: str, row: str) -> dict[str, Any] | None:
        return self.results.get(f"{section}/{row}")

    def put(self, section: str, row: str, value: dict[str, Any]) -> None:
        self.results[f"{section}/{row}"] = _clean(value)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"config": self.config_hash, "results": self.results}))
        tmp.replace(self.path)


def _tensor_digest(t: Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _model_digest(model: nn.Module) -> str:
    h = hashlib.sha1(type(model).__name__.encode())
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ---- inputs -------------------------------------------------------------------------------------
def _load_model(model: str | nn.Module) -> tuple[nn.Module, int | None, list[str] | None, str]:
    if isinstance(model, nn.Module):
        return model, None, None, f"module:{_model_digest(model)}"
    if not isinstance(model, str):
        raise TypeError(f"`model` must be a model spec string or an nn.Module, got {type(model).__name__}")
    from smoothsal.zoo import load_model

    loaded = load_model(model)
    return loaded.model, loaded.image_size, loaded.class_names, model


def _load_images(images: Sequence[str] | Tensor | None, size: int, settings: dict[str, Any]) -> tuple[Tensor, list[str]]:
    if isinstance(images, Tensor):
        check_inputs(images, name="images", ndim=4)
        return images.detach().float(), [f"image{i}" for i in range(images.shape[0])]
    if images is None or len(images) == 0:
        from smoothsal.datasets.photos import bundled_photos

        names = settings["photos"]
        photos = bundled_photos(list(names) if names else None, size=size)
    else:
        from smoothsal.experiments.explain import load_images

        photos = load_images(list(images), size)
    return torch.cat([p.tensor for p in photos]), [p.name for p in photos]


def _localization_data(
    localization: bool | tuple[nn.Module, Any] | None, bundled: bool, settings: dict[str, Any], progress: bool
) -> tuple[nn.Module, Tensor, Tensor, Tensor] | None:
    """(model, images, masks, labels) for the localization section, or ``None`` to skip it."""
    if localization is None:
        localization = bundled
    if localization is False:
        return None
    if localization is True:
        from smoothsal.train import TrainConfig, load_split, train_model

        kw = {} if settings["loc_epochs"] is None else {"epochs": settings["loc_epochs"]}
        trained = train_model(TrainConfig(dataset="synthetic", arch="cnn", **kw), progress=progress)
        _, test = load_split("synthetic")
        model, data = trained.model, test.subset(list(range(min(settings["loc_images"], len(test)))))
    else:
        if not (isinstance(localization, tuple) and len(localization) == 2 and isinstance(localization[0], nn.Module)):
            raise TypeError("`localization` must be None, a bool, or a (model, ImageDataset with masks) pair")
        model, data = localization
    if getattr(data, "masks", None) is None:
        raise ValueError("`localization` dataset has no masks; localization needs ground-truth object masks")
    return model, data.images.float(), data.masks, data.labels


# ---- main ---------------------------------------------------------------------------------------
def run_evaluate(
    out_dir: str | Path = "out/evaluate",
    methods: Sequence[str] | str = DEFAULT_METHODS,
    noise_level: float = 0.15,
    n_samples: int | None = None,
    quick: bool = False,
    model: str | nn.Module = "lite0",
    images: Sequence[str] | Tensor | None = None,
    progress: bool = True,
    *,
    localization: bool | tuple[nn.Module, Any] | None = None,
    seed: int = 0,
    baseline: str | float = "blur",
    fresh: bool = False,
    overrides: dict[str, Any] | None = None,
) -> EvaluateReport:
    """Build the report card (module docstring) and write it to ``out_dir``.

    Args:
        out_dir: output folder; results resume from its ``cache.json``.
        methods: registry names (:data:`smoothsal.methods.registry.METHODS`; ``"smoothgrad"`` is an
            alias of ``"grad"``), comma-separated or a list. Each gives a raw and a smoothed row.
        noise_level: σ of the smoothed rows as a fraction of each image's value range.
        n_samples: noisy samples per smoothed map (default: 8 quick, 50 full).
        quick: small settings (:data:`QUICK`): minutes on 2 CPU cores.
        model: ``"lite0"``/``"lite1"``/``"lite2"``, ``"package.module:factory"``, a TorchScript file,
            or an ``nn.Module`` taking ``[B, C, H, W]`` images in [0, 1].
        images: bundled photo names / image files, or a tensor ``[N, C, H, W]``; ``None`` = the
            bundled photos (only ``chelsea`` in quick mode).
        progress: show a progress bar.
        localization: ``None`` = on for the bundled models (train a small CNN on synthetic scenes),
            off for user models; ``True``/``False``; or ``(model, ImageDataset with masks)``.
        seed: seed of the noise, the randomized weights and the random control.
        baseline: what removed pixels become in deletion, insertion and pruning: ``"blur"``
            (default, RISE's insertion start and in-distribution for photos), ``"black"`` or a number.
        fresh: ignore finished results in ``out_dir``.
        overrides: replace entries of :data:`QUICK` / :data:`FULL` (e.g. ``{"steps": 5}``).
    Returns:
        :class:`EvaluateReport`.
    """
    t_start = time.perf_counter()
    settings = dict(QUICK if quick else FULL)
    if overrides:
        unknown = sorted(set(overrides) - set(settings))
        if unknown:
            raise ValueError(f"`overrides` has unknown keys {unknown}; expected keys from {sorted(settings)}")
        settings.update(overrides)
    if n_samples is not None:
        settings["n_samples"] = check_positive_int(n_samples, "n_samples")
    settings["noise_level"] = check_nonnegative(noise_level, "noise_level")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}")
    settings["seed"] = seed
    if isinstance(baseline, str):
        check_choice(baseline, "baseline", BASELINES)
    elif isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not math.isfinite(baseline):
        raise ValueError(f"`baseline` must be one of {list(BASELINES)} or a finite number, got {baseline!r}")
    settings["baseline"] = baseline
    names = _parse_methods(methods)

    net, size, class_names, model_id = _load_model(model)
    if size is None:
        size = int(images.shape[-1]) if isinstance(images, Tensor) else int(getattr(net, "image_size", 224))
    x, image_names = _load_images(images, size, settings)
    with preserve_model(net), torch.no_grad():
        targets = check_logits(net(x), x.shape[0]).argmax(dim=1)
    config = {"model": model_id, "images": _tensor_digest(x), "targets": targets.tolist(),
              **{k: v for k, v in settings.items() if k not in ("photos", "loc_images", "loc_epochs")}}  # fmt: skip
    config_hash = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]

    out = Path(out_dir)
    maps_dir = out / "cache"
    maps_dir.mkdir(parents=True, exist_ok=True)
    cache = _Cache(out / "cache.json", config_hash, fresh)
    rows = _build_rows(names, settings, size, seed)
    bundled = isinstance(model, str) and model in ("lite0", "lite1", "lite2")
    sections = [s for s in SECTIONS if s != "localization"]
    loc_wanted = localization if localization is not None else bundled
    if loc_wanted is not False:
        sections.append("localization")
    # localization results are keyed by their own data (not by the photos' settings)
    keys = {s: s for s in sections}
    if isinstance(localization, tuple) and len(localization) == 2 and isinstance(localization[0], nn.Module):
        keys["localization"] = f"localization@{_model_digest(localization[0])}-{_tensor_digest(localization[1].images)}"
    elif loc_wanted is not False:
        keys["localization"] = f"localization@synthetic-{settings['loc_epochs']}-{settings['loc_images']}"
    pending = [(s, r) for s in sections for r in rows if cache.get(keys[s], r.key) is None]

    loc = None
    if any(s == "localization" for s, _ in pending):
        loc = _localization_data(localization, bundled, settings, progress)
    ctx = _Context(net, x, targets, settings, loc, maps_dir, config_hash)

    from tqdm.auto import tqdm

    computed = 0
    with tqdm(total=len(pending), desc="evaluate", unit="result", disable=not progress) as bar:
        for section, row in pending:
            bar.set_postfix_str(f"{section}: {row.label}")
            cache.put(keys[section], row.key, _SECTION_FUNCS[section](ctx, row))
            computed += 1
            bar.update(1)
    line_key = f"{noise_level}-{settings['n_samples']}-{settings['line_steps']}"
    if cache.get("jaggedness", line_key) is None:
        cache.put("jaggedness", line_key, _jaggedness(ctx))
        computed += 1

    report_rows = []
    for row in rows:
        merged: dict[str, Any] = {"row": row.key, "method": row.method, "label": row.label, "kind": row.kind,
                                  "smoothed": row.smoothed}  # fmt: skip
        for section in sections:
            merged.update(cache.get(keys[section], row.key) or {})
        report_rows.append(merged)
    settings_out = {**settings, "model": model_id, "images": image_names, "targets": targets.tolist(),
                    "sanity_threshold": SANITY_THRESHOLD, "prune_share": PRUNE_SHARE,
                    "image_size": size}  # fmt: skip
    if class_names:
        settings_out["target_names"] = [class_names[int(t)] for t in targets]
    if loc is not None:
        settings_out["loc_chance_mass"] = _mean(loc[2].flatten(1).float().mean(dim=1))
        settings_out["loc_source"] = (
            "the model and masked dataset passed in" if isinstance(localization, tuple)
            else "a small CNN trained on synthetic scenes with smoothsal.train"
        )  # fmt: skip
    table = markdown_tables(report_rows, settings_out)
    paths = _write_outputs(out, report_rows, settings_out, table, cache.get("jaggedness", line_key) or {})
    seconds = round(time.perf_counter() - t_start, 2)
    return EvaluateReport(report_rows, table, paths, computed, settings_out, seconds)


def _jaggedness(ctx: _Context) -> dict[str, Any]:
    """Fig. 2 lines of the first image: vanilla gradient and SmoothGrad at the report's noise level."""
    from smoothsal.methods.gradient import VanillaGradient
    from smoothsal.metrics.jaggedness import gradient_along_line
    from smoothsal.smoothing import Smooth

    s, x0, t0 = ctx.settings, ctx.inputs[:1], int(ctx.targets[0])
    smooth = Smooth(VanillaGradient(ctx.model), noise_level=s["noise_level"], n_samples=s["n_samples"],
                    batch_size=16, seed=s["seed"])  # fmt: skip
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*change the predicted class")
        for label, method in (("gradient", None), (f"SmoothGrad {s['noise_level']:.0%}", smooth)):
            line = gradient_along_line(ctx.model, x0, t_steps=s["line_steps"], seed=s["seed"], target=t0, method=method)
            out[label] = {
                "t": line.t.tolist(), "partials": line.partials.tolist(), "keeps_class": line.keeps_class.tolist(),
                "raw_partials": line.raw_partials.tolist(), "scale": line.scale.tolist(), "pixel": list(line.pixel),
                "target": line.target, "predicted": line.predicted, "tv_per_step": line.roughness,
            }  # fmt: skip
    return out


# ---- outputs ------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_tables(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The report card as Markdown: the main table, then the localization table (if computed)."""
    head = (
        "| method | sanity | mean \\|ρ\\| ↓ | final \\|ρ\\| | final SSIM | del AUC ↓ | ins AUC ↑ | ins−del ↑ "
        "| faith corr ↑ | monotonic ↑ | sparseness | entropy | roughness ↓ | q90 % ↓ |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            "| " + " | ".join([
                r["label"], r.get("sanity", "–"), _fmt(r.get("sanity_score")), _fmt(r.get("mprt_spearman_abs")),
                _fmt(r.get("mprt_ssim")),
                _fmt(r.get("deletion_auc")), _fmt(r.get("insertion_auc")), _fmt(r.get("ins_minus_del")),
                _fmt(r.get("faithfulness_corr")), _fmt(r.get("monotonicity")), _fmt(r.get("sparseness")),
                _fmt(r.get("entropy"), 2), _fmt(r.get("roughness")), _fmt(r.get("prune_q90"), 1),
            ]) + " |"
        )  # fmt: skip
    text = "\n".join(lines)
    if any("loc_pointing" in r for r in rows):
        chance = settings.get("loc_chance_mass")
        loc = [
            "",
            f"Localization against ground-truth object masks ({settings.get('loc_source', 'masked data')}; "
            f"chance ≈ mask area {_fmt(chance)}):",
            "",
            "| method | pointing game ↑ | relevance mass ↑ | top-k IoU ↑ |",
            "|---|---|---|---|",
        ]
        loc += [
            f"| {r['label']} | {_fmt(r.get('loc_pointing'))} | {_fmt(r.get('loc_mass'))} | {_fmt(r.get('loc_topk_iou'))} |"
            for r in rows
        ]
        text += "\n" + "\n".join(loc)
    return text


def _write_outputs(out: Path, rows: list[dict[str, Any]], settings: dict[str, Any], table: str,
                   lines: dict[str, Any]) -> dict[str, Path]:  # fmt: skip
    paths: dict[str, Path] = {}
    paths["report.csv"] = out / "report.csv"
    with paths["report.csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    paths["report.json"] = out / "report.json"
    paths["report.json"].write_text(
        json.dumps(_clean({"settings": settings, "rows": rows, "jaggedness": lines}), indent=2, default=str)
    )
    paths["report.md"] = out / "report.md"
    imgs = ", ".join(settings["images"])
    paths["report.md"].write_text(
        f"# smoothsal report card\n\nModel `{settings['model']}`, images: {imgs}; noise level "
        f"{settings['noise_level']:.0%}, {settings['n_samples']} samples per smoothed map. Sanity: cascading "
        f"model-parameter randomization, PASS when the mean |Spearman| over the cascade < {settings['sanity_threshold']} (mean |ρ|; the final columns are at the fully randomized end). "
        f"Faithfulness: {settings['baseline']} baseline for deletion and insertion (a random map gives ins−del ≈ 0). "
        f"q90: smallest kept % of pixels that keeps {settings['prune_share']:.0%} of the target probability.\n\n"
        + table + "\n"
    )
    paths["deletion_insertion.png"] = _plot_curves(out / "deletion_insertion.png", rows)
    paths["randomization.png"] = _plot_randomization(out / "randomization.png", rows)
    if lines:
        paths["jaggedness.png"] = _plot_lines(out / "jaggedness.png", lines)
    return paths


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(row: dict[str, Any], i: int) -> dict[str, Any]:
    import matplotlib

    colour = matplotlib.colormaps["tab20"](i % 20)
    return {"color": colour, "ls": ":" if row["kind"] == "control" else ("--" if row["smoothed"] else "-"), "lw": 1.4}


def _plot_curves(path: Path, rows: list[dict[str, Any]]) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, r in enumerate(rows):
        c = r.get("_curves")
        if not c:
            continue
        for ax, kind in zip(axes, ("deletion", "insertion")):
            ax.plot(c["fractions"], c[kind], label=r["label"], **_style(r, i))
    for ax, kind, better in zip(axes, ("deletion", "insertion"), ("lower", "higher")):
        ax.set_title(f"{kind} (most relevant first; {better} AUC is better)")
        ax.set_xlabel(f"fraction of patches {'removed' if kind == 'deletion' else 'inserted'}")
    axes[0].set_ylabel("target probability")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_randomization(path: Path, rows: list[dict[str, Any]]) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    layers: list[str] = []
    for i, r in enumerate(rows):
        m = r.get("_mprt")
        if not m:
            continue
        layers = m["layers"]
        depth = list(range(1, len(layers) + 1))
        for ax, metric in zip(axes, ("spearman_abs", "ssim")):
            vals = [abs(v) if (v is not None and metric == "spearman_abs") else v for v in m[metric]]
            ax.plot(depth, [np.nan if v is None else v for v in vals], marker="o", ms=3, label=r["label"], **_style(r, i))
    for ax, title in zip(axes, ("|Spearman| of |map| vs original", "SSIM vs original")):
        ax.set_title(f"cascading randomization: {title}", fontsize=10)
        ax.set_xticks(range(1, len(layers) + 1))
        ax.set_xticklabels([name.split(".")[-1] or "model" for name in layers], rotation=45, ha="right", fontsize=7)
        ax.axhline(SANITY_THRESHOLD, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("randomized from the top down to")
    axes[0].set_ylabel("similarity")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_lines(path: Path, lines: dict[str, Any]) -> Path:
    from smoothsal.metrics.jaggedness import JaggedLine, plot_jaggedness

    built = {
        label: JaggedLine(
            t=torch.tensor(d["t"]), partials=torch.tensor(d["partials"]), keeps_class=torch.tensor(d["keeps_class"]),
            raw_partials=torch.tensor(d["raw_partials"]), scale=torch.tensor(d["scale"]), pixel=tuple(d["pixel"]),
            target=d["target"], predicted=d["predicted"], direction=torch.empty(0),
        )  # fmt: skip
        for label, d in lines.items()
    }
    return plot_jaggedness(built, path)


# ---- CLI ----------------------------------------------------------------------------------------
def _parse_baseline(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def register_cli(app: Any) -> None:
    """Add ``smoothsal evaluate`` to a :class:`typer.Typer` app."""
    import typer

    @app.command("evaluate")
    def evaluate_command(
        images: Optional[list[str]] = typer.Argument(None, help="Image files or bundled photo names (default: bundled photos)."),
        methods: str = typer.Option(",".join(DEFAULT_METHODS), "--methods", help="Comma-separated method names."),
        noise_level: float = typer.Option(0.15, "--noise-level", help="σ of the smoothed rows, fraction of the value range."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Noisy samples per smoothed map (default 8 quick, 50 full)."),
        quick: bool = typer.Option(False, "--quick", help="Small settings: a few minutes on 2 CPU cores."),
        out: Path = typer.Option(Path("out/evaluate"), "--out", help="Output folder (results resume from it)."),
        model: str = typer.Option("lite0", "--model", help="lite0 | lite1 | lite2 | package.module:factory | TorchScript file."),
        localization: Optional[bool] = typer.Option(
            None, "--localization/--no-localization", help="Synthetic-mask section (default: on for bundled models)."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of noise, randomized weights and the random control."),
        baseline: str = typer.Option("blur", "--baseline", help="Removed pixels become: blur | black | a number."),
        fresh: bool = typer.Option(False, "--fresh", help="Ignore finished results in --out."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Report card: sanity, faithfulness, localization, complexity, roughness, pruning per method, raw and smoothed."""
        try:
            report = run_evaluate(
                out, methods=methods, noise_level=noise_level, n_samples=samples, quick=quick, model=model,
                images=images or None, progress=not no_progress, localization=localization, seed=seed, fresh=fresh,
                baseline=_parse_baseline(baseline),
            )  # fmt: skip
        except (ValueError, FileNotFoundError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(report.table)
        passed = [r["label"] for r in report.rows if r.get("sanity") == "PASS"]
        failed = [r["label"] for r in report.rows if r.get("sanity") == "FAIL"]
        typer.echo(f"\nsanity check passed: {', '.join(passed) or 'none'}")
        typer.echo(f"sanity check failed: {', '.join(failed) or 'none'}")
        typer.echo(f"wrote {', '.join(sorted(report.paths))} to {out}/ in {report.seconds:.1f} s "
                   f"({report.computed} results computed)")  # fmt: skip
