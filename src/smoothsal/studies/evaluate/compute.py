r"""Compute step of the report card: one store record per (section, row), maps as store arrays.

Rows: each method raw and smoothed (:class:`~smoothsal.smoothing.Smooth`), built by the registry
(:func:`~smoothsal.registry.method_factory`), plus the two registered controls that ignore the
model (``sobel``, ``random``), so a reader sees that the checks can fail. A row whose map is
sampled (the smoothed rows, the random control) also has a *second, independent estimate* (the
same method with another seed, :meth:`~.config.EvaluateConfig.second_seed`): the sanity checks'
reference. Every section records **per-image values** (``_per_image``); the report step turns
each into an estimate with its bootstrap 95 % interval over images
(:mod:`smoothsal.metrics.intervals`). Sections:

* **sanity** -- cascading model parameter randomization (Adebayo et al. 2018, arXiv:1810.03292)
  with the re-initialisation ``config.randomization`` (scale-preserving by default): per image,
  :math:`s_i` the Spearman of ``|map|`` between the original map and the randomized model's,
  averaged over checkpoints evenly spaced over the depth
  (:func:`~smoothsal.metrics.sanity.spaced_layers`), its reference :math:`r_i` (two estimates of
  the original map; 1 by construction for deterministic rows), :math:`\tilde r_i` (two estimates
  of each randomized model's map, cascade mean), the fully randomized end's
  Spearman and SSIM, and eMPRT's complexity ratio (Hedström et al. 2023). The verdict's rule is
  fixed in :mod:`smoothsal.metrics.sanity.verdicts` (retained similarity
  :math:`R = \sum s_i / \sum \sqrt{r_i \tilde r_i}`);
  sMPRT of a method is the MPRT of its smoothed row (the same average over noisy inputs);
* **faithfulness** -- deletion and insertion AUC (most relevant first, probability of the target,
  patches of 16 px at 224², the *same* baseline for both -- blurred by default -- so a random map
  gives :math:`\text{AUC}_{ins} \approx \text{AUC}_{del}` and ``ins − del`` measures faithfulness
  above chance), faithfulness correlation (Bhatt et al. 2020) and monotonicity (Nguyen &
  Martínez 2020); for methods with a convergence delta (``method.has_convergence_delta``: IG,
  DeepLIFT) also the mean relative completeness error :math:`|\sum a - (F(x) - F(x'))| / |F(x) - F(x')|`;
* **complexity** -- sparseness (Gini) and entropy of the pixel map;
* **roughness** -- :func:`~smoothsal.metrics.jaggedness.gradient_roughness`;
* **pruning** -- the smallest :math:`q` (%) whose top-:math:`q` pixels keep
  :data:`~.config.PRUNE_SHARE` of the target probability (:func:`~smoothsal.metrics.pruning.smallest_q`);
* **localization** -- pointing game, relevance mass and top-k IoU against ground-truth object
  masks (synthetic scenes and a small CNN trained on them, or the user's masked data); it has
  its own store under ``out_dir/localization``, keyed by its own data;
* **data_randomization** -- LeNet-5 trained on MNIST with true labels beside three trained on
  permuted labels, each with its own initialization and trained until it fits them
  (:func:`smoothsal.studies.train.randomization_models`, cached), compared on held-out digits
  with the same references and rule as the sanity section, the three permutations resampled as
  seeds; its own store under
  ``out_dir/data_randomization``;
* **jaggedness** -- the SmoothGrad paper's Fig. 2 lines on the first image (Smilkov et al. 2017,
  arXiv:1706.03825): gradient vs SmoothGrad along :math:`x + t\varepsilon`.

**Maps from a map store** (``config.maps``, :class:`MapSource`): the images are the store's images
of the model (the first ``config.store_images`` in id order), read by
:meth:`~smoothsal.studies.explain_dataset.store.MapStore.load_inputs`, and the targets are those
the stored maps explain. The model is loaded from ``config.model`` and its weights must be those
the store recorded (:func:`~smoothsal.studies.explain_dataset.compute.weights_digest`). A method
row takes its maps (:func:`row_maps`: faithfulness, complexity, roughness's reference, pruning)
from the store when the store holds its (method, σ) for every image with the same settings: the
registry's method settings (no ``ig_steps``), and for a smoothed row ``n_samples``, ``seed``,
statistic ``mean`` and no ``tol``. The store's smoothed maps draw their noise from per-image seeds
derived from its seed (:func:`~smoothsal.studies.explain_dataset.store.image_seed`), so they are
another draw of the same estimator, not the draw evaluate would make. Any other row is computed
as without a store, and one warning says which and why. The sections that run the model
(sanity, data randomization, localization, the jaggedness lines) are unchanged; a stored IG map
has no convergence delta (the column is empty for it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch
from torch import Tensor, nn

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.methods.base import Attribution
from smoothsal.smoothing import Smooth
from smoothsal.studies.evaluate.config import (
    PRUNE_SHARE,
    EvaluateConfig,
    tensor_digest,
)
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore

if TYPE_CHECKING:
    from smoothsal.studies.explain_dataset.store import MapStore

__all__ = ["Context", "DRData", "MapSource", "ReportRow", "build_rows", "compute_sections", "data_randomization_data",
           "jaggedness_lines", "load_data", "load_store_data", "mprt_seeds"]  # fmt: skip

#: ``model -> attribution method`` of a row (a raw method, ``Smooth`` around one, or a control).
MethodFactory = Callable[[nn.Module], Union[Attribution, Smooth]]


@dataclass(frozen=True)
class ReportRow:
    """One row of the report card: a method factory ``model -> attribution method``."""

    key: str  # "grad", "grad_smooth", "sobel", ...
    method: str
    label: str
    kind: str  # "method" | "control"
    smoothed: bool
    factory: MethodFactory = field(compare=False)
    #: an independent second estimate (another seed) for sampled rows; None = deterministic
    second: MethodFactory | None = field(default=None, compare=False)


@dataclass
class Context:
    """What every section needs: the model, the images and their targets, the settings, the store."""

    model: nn.Module
    inputs: Tensor  # [B, C, H, W]
    targets: Tensor  # [B]
    config: EvaluateConfig
    options: RunOptions
    store: ResultsStore
    loc: tuple[nn.Module, Tensor, Tensor, Tensor] | None = None  # model, images, masks, labels
    dr: DRData | None = None  # the data randomization test's models and inputs
    maps: MapSource | None = None  # the original model's maps read from a map store (config.maps)


@dataclass
class MapSource:
    """The original model's maps of a map store, for the report's images (``config.maps``).

    Attributes:
        store: the map store (:class:`~smoothsal.studies.explain_dataset.store.MapStore`).
        model: the model's spec in the store. images: the report's image ids, in report order.
        plan: ``{row key: None (read from the store) or why the row is computed}`` for the
            method rows (:meth:`plan_rows`); the controls are always computed (a store holds methods only).
    """

    store: MapStore
    model: str
    images: list[str]
    plan: dict[str, str | None] = field(default_factory=dict)

    def sigma(self, config: EvaluateConfig, row: ReportRow) -> float:
        """The σ of ``row``'s maps in the store: the report's noise level for a smoothed row, else 0."""
        from smoothsal.studies.explain_dataset.store import sigma_key

        return sigma_key(config.noise_level) if row.smoothed else 0.0

    def why_not(self, config: EvaluateConfig, seed: int, row: ReportRow) -> str | None:
        """Why ``row``'s maps cannot be read from the store (``None``: they can); ``seed``: the run's."""
        if row.kind != "method":
            return "a control (the store holds methods only)"
        sigma = self.sigma(config, row)
        found = len(self.store.select(model=self.model, method=row.method, sigma=sigma, images=self.images))
        if found < len(self.images):
            return (f"the store holds {found} of the {len(self.images)} maps of ({row.method}, σ = {sigma:g}); "
                    f"it has methods {self.store.methods()} and σ {self.store.sigmas()}")  # fmt: skip
        over = config.method_overrides(row.method)
        if over:
            return f"method settings {over} here, the registry's in the store"
        if not row.smoothed:
            return None
        sc = self.store.config
        diffs = []
        if sc.get("n_samples") != config.n_samples:
            diffs.append(f"n_samples {config.n_samples} here, {sc.get('n_samples')} in the store")
        if sc.get("tol") is not None:
            diffs.append(f"the store stopped sampling at tol {sc.get('tol')}, evaluate always draws n_samples")
        if sc.get("seed") != seed:
            diffs.append(f"seed {seed} here, {sc.get('seed')} in the store")
        if sc.get("statistic", "mean") != "mean":
            diffs.append(f"statistic {sc.get('statistic')!r} in the store, 'mean' here")
        return "; ".join(diffs) or None

    def plan_rows(self, config: EvaluateConfig, seed: int, rows: list[ReportRow]) -> dict[str, str | None]:
        """Decide, for every method row, whether its maps come from the store; warn once about the others."""
        self.plan = {r.key: self.why_not(config, seed, r) for r in rows if r.kind == "method"}
        computed = {k: why for k, why in self.plan.items() if why is not None}
        if computed:
            warnings.warn(
                f"map store {self.store.path}: {len(computed)} of {len(self.plan)} method rows are computed here, not "
                "read from the store: " + "; ".join(f"{k} ({why})" for k, why in computed.items()),
                stacklevel=2,
            )
        return self.plan

    def reads(self, row: ReportRow) -> bool:
        """Whether ``row``'s maps come from the store (decided by :meth:`plan_rows`)."""
        return row.key in self.plan and self.plan[row.key] is None

    def load(self, config: EvaluateConfig, row: ReportRow) -> Tensor:
        """``row``'s stored maps of the report's images, float32 ``[N, C, H, W]`` in report order."""
        sel = self.store.select(model=self.model, method=row.method, sigma=self.sigma(config, row), images=self.images)
        return sel.load()

    def summary(self) -> JSONObject:
        """JSON-ready: the store, its model, and which rows came from it (``report.json``'s settings)."""
        return {
            "path": str(self.store.path),
            "config_hash": self.store.config_hash,
            "n_maps": len(self.store),
            "model": self.model,
            "rows_from_store": [k for k, why in self.plan.items() if why is None],
            "rows_computed": {k: why for k, why in self.plan.items() if why is not None},
        }


@dataclass
class DRData:
    """The data randomization section's models (true labels; one per label permutation), inputs and rows."""

    model: nn.Module
    random_label_models: list[nn.Module]
    inputs: Tensor
    targets: Tensor
    rows: dict[str, ReportRow]
    info: JSONObject


def build_rows(config: EvaluateConfig, options: RunOptions, image_size: int) -> list[ReportRow]:
    """The report's rows: each method raw and smoothed, then the registered controls."""
    from smoothsal.metrics.sanity import second_estimate_seed
    from smoothsal.registry import METHODS, method_spec

    seed, factory = options.seed, options.method_factory
    rows = []
    for name in config.methods:
        spec = method_spec(name)
        over = config.method_overrides(name)
        rows.append(ReportRow(name, name, spec.label_for(False), spec.kind, False,
                              factory(name, image_size=image_size, **over)))  # fmt: skip
        rows.append(ReportRow(f"{name}_smooth", name, spec.label_for(True), spec.kind, True,
                              factory(name, config.smooth_spec(seed), image_size=image_size, **over),
                              factory(name, config.smooth_spec(seed, 1), image_size=image_size, **over)))  # fmt: skip
    for name, spec in METHODS.items():
        if spec.kind == "control":  # a control that draws random numbers takes the study's seed
            if spec.takes("seed"):
                first, second = factory(name, seed=seed), factory(name, seed=second_estimate_seed(seed, 1))
            else:
                first, second = factory(name), None
            rows.append(ReportRow(name, name, spec.label, spec.kind, False, first, second))
    return rows


# ---- data ---------------------------------------------------------------------------------------
def _load_model(config: EvaluateConfig, options: RunOptions) -> tuple[nn.Module, int | None, list[str] | None]:
    device = options.torch_device()
    if isinstance(config.model, nn.Module):
        return config.model.to(device), None, None
    from smoothsal.models.zoo import load_model

    loaded = load_model(config.model)
    return loaded.model.to(device), loaded.image_size, loaded.class_names


def _load_images(config: EvaluateConfig, size: int) -> tuple[Tensor, list[str]]:
    from smoothsal.datasets.photos import BUNDLED, NATURAL, load_image, natural_photos

    if isinstance(config.images, Tensor):
        return config.images.detach().float(), [f"image{i}" for i in range(config.images.shape[0])]
    if config.images is None:
        names = list(config.photos) if config.photos else (list(BUNDLED) if config.image_set == "bundled" else None)
        photos = natural_photos(names, size=size)
    else:
        photos = [
            natural_photos([p], size=size)[0] if (p in BUNDLED or p in NATURAL) and not Path(p).exists()
            else load_image(p, size)
            for p in config.images
        ]  # fmt: skip
    return torch.cat([p.tensor for p in photos]), [p.name for p in photos]


def load_data(
    config: EvaluateConfig, options: RunOptions
) -> tuple[nn.Module, Tensor, Tensor, list[str], list[str] | None]:
    """``(model, images [B, C, H, W], targets [B] (the model's top-1), image names, class names)``.

    With ``config.maps``: the store's images and targets (:func:`load_store_data`).
    """

    if config.maps is not None:
        return load_store_data(config, options)[:5]

    net, size, class_names = _load_model(config, options)
    if size is None:
        size = int(config.images.shape[-1]) if isinstance(config.images, Tensor) else int(getattr(net, "image_size", 224))
    x, names = _load_images(config, size)
    targets = options.predict(net, x).argmax(dim=1)
    return net, x, targets, names, class_names


def _store_model(config: EvaluateConfig, store: MapStore, net: nn.Module) -> str:
    """The spec of ``net`` in the map store; ValueError when the store's maps are not this model's."""
    from smoothsal.studies.evaluate.config import store_model_of
    from smoothsal.studies.explain_dataset.compute import weights_digest

    if isinstance(config.model, nn.Module):
        return store_model_of(store, net)
    spec = config.model
    info = store.model_info.get(spec)
    if info is None or spec not in store.models():
        raise ValueError(f"`model` {spec!r} has no maps in the map store {store.path} (it holds maps of {store.models()})")
    digest = weights_digest(net)
    if info.get("weights_sha1") != digest:
        raise ValueError(
            f"`model` {spec!r} loads other weights (SHA-1 {digest}) than the map store {store.path} recorded for it "
            f"({info.get('weights_sha1')}): its maps are not this model's; rerun `smoothsal explain-dataset`"
        )
    return spec


def load_store_data(
    config: EvaluateConfig, options: RunOptions
) -> tuple[nn.Module, Tensor, Tensor, list[str], list[str] | None, MapSource]:
    """:func:`load_data` of a report card on a map store (``config.maps``), and its :class:`MapSource`.

    The images are the store's images of the model in id order (the first ``config.store_images``),
    the inputs as the explain-dataset job read them, the targets those the stored maps explain (of
    its σ = 0 maps where there are, every stored map of an image explaining the same class).
    """
    net, _, class_names = _load_model(config, options)
    store = config.map_store()
    spec = _store_model(config, store, net)
    entries = store.select(model=spec)
    ids = sorted({e.image for e in entries})[: config.store_images]
    wanted = set(ids)
    targets: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: e.sigma != 0):  # σ = 0 first
        if e.image not in wanted:
            continue
        if targets.setdefault(e.image, e.target) != e.target:
            raise ValueError(
                f"`maps`: the store's maps of image {e.image!r} explain different classes ({targets[e.image]} and "
                f"{e.target}); the store is inconsistent"
            )
    try:
        x = store.load_inputs(ids)
    except (FileNotFoundError, OSError) as err:
        raise FileNotFoundError(
            f"`maps`: the store's images are read from the folder it was made from ({store.data_dir}): {err}"
        ) from err
    x = x.detach().float()
    class_names = class_names or store.model_info[spec].get("class_names")
    target = torch.tensor([targets[i] for i in ids], dtype=torch.long)
    return net, x, target, ids, class_names, MapSource(store, spec, ids)


def localization_data(config: EvaluateConfig, options: RunOptions) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """(model, images, masks, labels) of the localization section."""
    loc = config.localization
    if isinstance(loc, tuple):
        model, data = loc
    else:
        from smoothsal.studies.train import TrainConfig, load_split, train_model

        kw = {} if config.loc_epochs is None else {"epochs": config.loc_epochs}
        trained = train_model(TrainConfig(dataset="synthetic", arch="cnn", **kw), progress=options.progress)
        _, test = load_split("synthetic")
        model, data = trained.model, test.subset(list(range(min(config.loc_images, len(test)))))
        from smoothsal.studies.train.data import release_dataset_caches

        release_dataset_caches()  # the subset is a copy: the cached split is not needed again
    return model.to(options.torch_device()), data.images.float(), data.masks, data.labels


def data_randomization_data(config: EvaluateConfig, options: RunOptions) -> DRData:
    """Load (or train once, cached) the MNIST models of the data randomization test
    (:func:`smoothsal.studies.train.randomization_models`: LeNet-5 on true labels, one per label
    permutation of :data:`~.config.DR_LABEL_SEEDS`, each with its own initialization and trained
    until it fits its permuted labels), and draw the held-out digits to explain (``config.dr_images``,
    drawn with the run's seed)."""
    from smoothsal.studies.evaluate.config import DR_LABEL_SEEDS
    from smoothsal.studies.train import held_out_inputs, randomization_models
    from smoothsal.studies.train.data import release_dataset_caches

    device = options.torch_device()
    if isinstance(config.data_randomization, tuple):
        model, rand, x = config.data_randomization
        rand = list(rand) if isinstance(rand, (list, tuple)) else [rand]
        model, x = model.to(device), x.detach().float()
        targets = options.predict(model, x).argmax(dim=1)
        info: JSONObject = {"dataset": "user", "arch": type(model).__name__, "n_images": int(x.shape[0]),
                            "n_random_label_models": len(rand)}  # fmt: skip
        rows = {r.key: r for r in build_rows(config, options, int(x.shape[-1]))}
        return DRData(model, [m.to(device) for m in rand], x, targets, rows, info)
    sets = randomization_models(DR_LABEL_SEEDS, progress=options.progress)
    size = int(sets.true_label.config.image_size)
    data = held_out_inputs("mnist", size, config.dr_images, options.seed)
    x = data.images.float()
    model = sets.true_label.model.to(device).eval()
    targets = options.predict(model, x).argmax(dim=1)
    info = {"dataset": "mnist", "arch": sets.true_label.config.arch, "recipe": sets.true_label.config.describe(),
            "n_images": int(x.shape[0]), "n_random_label_models": len(sets.random_label),
            "label_seeds": list(sets.label_seeds), "true_label_test_accuracy": sets.true_label.test_accuracy,
            "true_label_train_accuracy": sets.true_label.train_accuracy,
            "random_label_train_accuracy": [t.train_accuracy for t in sets.random_label],
            "random_label_test_accuracy": [t.test_accuracy for t in sets.random_label],
            "random_label_epochs": [t.epochs_run for t in sets.random_label]}  # fmt: skip
    rows = {r.key: r for r in build_rows(config, options, size)}
    release_dataset_caches()  # the drawn digits are all the card needs of MNIST (it kept ~260 MB)
    return DRData(model, [t.model.to(device).eval() for t in sets.random_label], x, targets, rows, info)


def data_digest(x: Tensor, targets: Tensor) -> str:
    """Identifies the explained images and their targets in the store's configuration."""
    return f"{tensor_digest(x)}-{tensor_digest(targets)}"


# ---- sections -----------------------------------------------------------------------------------
def _mean(t: Tensor) -> float:
    return float(t.float().nanmean())


def _values(t: Tensor) -> list[JSON]:
    """Per-image values as JSON-ready floats (non-finite -> None, dropped by the intervals)."""
    out: list[JSON] = []
    for v in t.detach().double().cpu().flatten().tolist():
        out.append(v if math.isfinite(v) else None)
    return out


def _scaled_patch(patch_224: int, x: Tensor) -> int:
    """``patch_224`` pixels at 224 px, scaled to the images' size (at least 1)."""
    return max(1, round(patch_224 * max(x.shape[-2:]) / 224))


def _n_units(x: Tensor, patch: int) -> int:
    h, w = x.shape[-2:]
    return math.ceil(h / patch) * math.ceil(w / patch)


def compute_row_maps(ctx: Context, row: ReportRow) -> tuple[Tensor, JSONObject]:
    """Explain the report images with ``row``'s method: ``(maps, metadata)``, the metadata holding
    the mean relative convergence delta where the method has one."""
    method = row.factory(ctx.model)
    if getattr(method, "has_convergence_delta", False):
        maps, delta = method.attribute_with_delta(ctx.inputs, ctx.targets)
        return maps.detach().float().cpu(), {"convergence_delta": _mean(delta.relative)}
    return method.attribute(ctx.inputs, ctx.targets).detach().float().cpu(), {}


def row_maps(ctx: Context, row: ReportRow) -> Tensor:
    """The row's maps of the report images: read from the map store where ``ctx.maps`` says so
    (:class:`MapSource`), else a results-store array (:func:`compute_row_maps`, computed once)."""
    if ctx.maps is not None and ctx.maps.reads(row):
        return ctx.maps.load(ctx.config, row)
    arr, _ = ctx.store.array({"maps": row.key}, lambda: compute_row_maps(ctx, row))
    return torch.from_numpy(arr)


def mprt_seeds(seed: int, count: int) -> list[int]:
    """The report card's ``count`` re-initialisation seeds of MPRT: the run's ``seed`` and the next
    ``count - 1`` integers (seed ``k`` draws its own randomized weights)."""
    return [int(seed) + k for k in range(count)]


def _section_sanity(ctx: Context, row: ReportRow) -> JSONObject:
    """Cascading MPRT under :attr:`~.config.EvaluateConfig.mprt_seeds` re-initialisation seeds:
    per seed and image :math:`s` and :math:`\tilde r` (``_mprt_seeds``, ``[S][N]``, resampled
    crossed by the verdict), :math:`r` shared; ``_per_image`` holds their means over the seeds.

    Each seed is its own unit of the store, and so is the reference :math:`r`: an interrupted run
    (a smoothed IG row's cascades take hours of CPU) keeps every finished seed."""
    seeds = [_mprt_seed_unit(ctx, row, k) for k in mprt_seeds(ctx.options.seed, ctx.config.mprt_seeds)]
    first = seeds[0]
    r = _mprt_reference(ctx, row)["r"]  # None: deterministic, r = 1 by construction

    def mean(key: str) -> list[JSON]:
        return _values(torch.tensor([[math.nan if v is None else v for v in u[key]] for u in seeds]).nanmean(dim=0))

    return {
        "mprt_init": first["init"],
        "mprt_by_construction": first["by_construction"],
        "mprt_n_seeds": len(seeds),
        "_mprt_seeds": {"s": [u["s"] for u in seeds], "rt": [u["rt"] for u in seeds]},
        "_per_image": {
            "mprt_s": mean("s"),
            "mprt_r": r if r is not None else [1.0] * len(first["s"]),  # r_i: two estimates of the original map
            "mprt_rt": mean("rt"),
            "mprt_spearman_abs": mean("spearman_abs_end"),  # fully randomized end
            "mprt_ssim": mean("ssim_end"),
            "mprt_topk_iou": mean("topk_iou_end"),
            "emprt": mean("emprt"),
        },
        "_mprt": {"layers": first["layers"], **{m: torch.tensor([u["summary"][m] for u in seeds]).mean(dim=0).tolist()
                                                for m in first["summary"]}},
    }  # fmt: skip


def _mprt_reference(ctx: Context, row: ReportRow) -> JSONObject:
    """:math:`r` of the row's original maps (its own store unit): ``{"r": [N] or None}``, ``None``
    for a deterministic row (:math:`r = 1` by construction)."""
    from smoothsal.metrics.sanity import map_reproducibility

    def compute() -> JSONObject:
        if row.second is None:
            return {"r": None}
        second = row.second(ctx.model).attribute(ctx.inputs, ctx.targets).detach().float().cpu()
        return {"r": _values(map_reproducibility(row_maps(ctx, row), second))}

    return ctx.store.get_or_compute({"section": "sanity_reference", "row": row.key}, compute)


def _mprt_seed_unit(ctx: Context, row: ReportRow, seed: int) -> JSONObject:
    """One re-initialisation seed's cascade of the row (its own store unit)."""
    from smoothsal.metrics.sanity import mprt_over_seeds, spaced_layers

    def compute() -> JSONObject:
        ref = _mprt_reference(ctx, row)["r"]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="a map is constant")
            res = mprt_over_seeds(
                row.factory, ctx.model, ctx.inputs, ctx.targets, order="cascading", seeds=[seed],
                layers=spaced_layers(ctx.model, ctx.config.mprt_checkpoints), init=ctx.config.randomization,
                second_estimate=row.second, original=row_maps(ctx, row),
                reference=None if ref is None else torch.tensor([math.nan if v is None else v for v in ref]),
            )[0]  # fmt: skip
        return {
            "init": res.init, "by_construction": res.reference_by_construction, "layers": res.layers,
            "s": _values(res.per_image("spearman_abs")),
            "rt": _values(res.per_image_randomized_reference()),
            "spearman_abs_end": _values(res.spearman_abs[-1]), "ssim_end": _values(res.ssim[-1]),
            "topk_iou_end": _values(res.topk_iou[-1]), "emprt": _values(res.emprt), "summary": res.summary(),
        }  # fmt: skip

    return ctx.store.get_or_compute({"section": "sanity_seed", "row": row.key, "seed": seed}, compute)


def _section_faithfulness(ctx: Context, row: ReportRow) -> JSONObject:
    from smoothsal.metrics.faithfulness import (
        auc,
        deletion_curve,
        faithfulness_correlation,
        insertion_curve,
        monotonicity,
    )

    c, x, t = ctx.config, ctx.inputs, ctx.targets
    maps = row_maps(ctx, row)
    patch, mono_patch = _scaled_patch(c.patch, x), _scaled_patch(c.monotonicity_patch, x)
    steps = min(c.steps, _n_units(x, patch))
    rows = {"batch_size": ctx.options.batch_size, "max_memory": ctx.options.max_memory}  # the run's rows settings
    dele = deletion_curve(ctx.model, x, maps, t, steps=steps, patch=patch, baseline=c.baseline, **rows)
    ins = insertion_curve(ctx.model, x, maps, t, steps=steps, patch=patch, baseline=c.baseline, **rows)
    fc = faithfulness_correlation(ctx.model, x, maps, t, n_runs=c.fc_runs, patch=patch, seed=ctx.options.seed, **rows)
    mono = monotonicity(ctx.model, x, maps, t, patch=mono_patch, **rows)
    d_auc, i_auc = auc(dele), auc(ins)
    meta = ctx.store.get({"maps": row.key}) or {}
    return {
        "convergence_delta": meta.get("convergence_delta"),
        "_per_image": {
            "deletion_auc": _values(d_auc),
            "insertion_auc": _values(i_auc),
            "ins_minus_del": _values(i_auc - d_auc),
            "faithfulness_corr": _values(fc),
            "monotonicity": _values(mono),
        },
        "_curves": {
            "fractions": dele.fractions.tolist(),
            "deletion": dele.scores.mean(dim=0).tolist(),
            "insertion": ins.scores.mean(dim=0).tolist(),
        },
    }


def _section_road(ctx: Context, row: ReportRow) -> JSONObject:
    """ROAD (Rong et al. 2022) with the authors' settings (:mod:`smoothsal.metrics.road`): per image the
    MoRF and LeRF curves' means over 10..90 % removed and their difference; the mean curves for the record."""
    from smoothsal.metrics.road import road_curves

    c = road_curves(ctx.model, ctx.inputs, row_maps(ctx, row), ctx.targets, seed=ctx.options.seed,
                    batch_size=ctx.options.batch_size, max_memory=ctx.options.max_memory)  # fmt: skip
    morf, lerf = c.morf_auc(), c.lerf_auc()
    return {
        "_per_image": {"road_morf": _values(morf), "road_lerf": _values(lerf), "road_combined": _values(lerf - morf)},
        "_road": {"levels": c.levels.tolist(), "morf": c.morf.mean(dim=0).tolist(), "lerf": c.lerf.mean(dim=0).tolist()},
    }


def _section_complexity(ctx: Context, row: ReportRow) -> JSONObject:
    from smoothsal.metrics.complexity import entropy, sparseness

    maps = row_maps(ctx, row)
    return {"_per_image": {"sparseness": _values(sparseness(maps, reduce_channels=True)),
                           "entropy": _values(entropy(maps, reduce_channels=True))}}  # fmt: skip


def _section_roughness(ctx: Context, row: ReportRow) -> JSONObject:
    from smoothsal.metrics.jaggedness import gradient_roughness

    r = gradient_roughness(
        row.factory(ctx.model), ctx.inputs, ctx.targets, radius=0.01, n_pairs=ctx.config.roughness_pairs,
        seed=ctx.options.seed, reference=row_maps(ctx, row),
    )  # fmt: skip
    return {"_per_image": {"roughness": _values(r)}}


def _section_pruning(ctx: Context, row: ReportRow) -> JSONObject:
    from smoothsal.metrics.pruning import attribution_pruning, smallest_q

    res = attribution_pruning(
        ctx.model, ctx.inputs, row_maps(ctx, row), ctx.targets, baseline=ctx.config.baseline,
        batch_size=ctx.options.batch_size, max_memory=ctx.options.max_memory, share=PRUNE_SHARE,
    )  # fmt: skip
    q10 = int((res.q == 10).nonzero()[0]) if bool((res.q == 10).any()) else 0
    return {
        "_per_image": {"prune_q90": _values(smallest_q(res, PRUNE_SHARE)),
                       "prune_conf_q10": _values(res.confidence_kept[q10])},  # fmt: skip
        "_pruning": {"q": res.q.tolist(), "confidence_kept": res.confidence_kept.mean(dim=1).tolist()},
    }


def _section_localization(ctx: Context, row: ReportRow) -> JSONObject:
    from smoothsal.metrics.localization import (
        mask_topk_iou,
        pointing_game,
        relevance_mass,
    )

    if ctx.loc is None:
        return {}
    model, images, masks, labels = ctx.loc
    maps = row.factory(model).attribute(images, labels).detach().cpu()
    return {"_per_image": {"loc_pointing": _values(pointing_game(maps, masks)),
                           "loc_mass": _values(relevance_mass(maps, masks, relevance="abs")),
                           "loc_topk_iou": _values(mask_topk_iou(maps, masks))}}  # fmt: skip


def _section_data_randomization(ctx: Context, row: ReportRow) -> JSONObject:
    """Per image and label permutation: :math:`s`, :math:`\\tilde r` (``_dr_seeds``, ``[S][N]``),
    :math:`r` (shared); ``_per_image`` holds their means over the permutations for the table."""
    from smoothsal.metrics.sanity import data_randomization

    if ctx.dr is None:
        return {}
    d = ctx.dr
    digit_row = d.rows[row.key]  # the same method, built for the digits' size
    results = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="a map is constant")
        original = digit_row.factory(d.model).attribute(d.inputs, d.targets).detach()  # estimate (a), once
        for rand in d.random_label_models:
            results.append(data_randomization(digit_row.factory, d.model, rand, d.inputs, d.targets,
                                              second_estimate=digit_row.second, original=original))  # fmt: skip
    s = torch.stack([r.per_image("spearman_abs") for r in results])  # [S, N]
    rt = torch.ones_like(s) if results[0].randomized_reference is None else torch.stack([r.randomized_reference for r in results])
    return {
        "dr_by_construction": results[0].reference_by_construction,
        "_dr_seeds": {"s": [_values(v) for v in s], "rt": [_values(v) for v in rt]},
        "_per_image": {"dr_s": _values(s.nanmean(dim=0)), "dr_r": _values(results[0].reference),
                       "dr_rt": _values(rt.nanmean(dim=0))},
    }  # fmt: skip


SECTION_FUNCTIONS: dict[str, Callable[[Context, ReportRow], JSONObject]] = {
    "sanity": _section_sanity,
    "faithfulness": _section_faithfulness,
    "road": _section_road,
    "complexity": _section_complexity,
    "roughness": _section_roughness,
    "pruning": _section_pruning,
    "localization": _section_localization,
    "data_randomization": _section_data_randomization,
}


def jaggedness_lines(ctx: Context) -> JSONObject:
    """Fig. 2 of Smilkov et al. 2017 on the first image: the vanilla gradient and SmoothGrad at the
    report's noise level, along the same line and pixel."""
    from smoothsal.metrics.jaggedness import gradient_along_line

    c, o, x0, t0 = ctx.config, ctx.options, ctx.inputs[:1], ctx.targets[:1]
    methods = {
        "gradient": o.build_method("grad", ctx.model),
        f"SmoothGrad {c.noise_level:.0%}": o.build_method("grad", ctx.model, c.smooth_spec(o.seed)),
    }
    out: JSONObject = {}
    pixel = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*change the predicted class")
        for label, method in methods.items():
            line = gradient_along_line(
                method, x0, t0, pixel=pixel, t_steps=c.line_steps, seed=o.seed, batch_size=o.batch_size,
                max_memory=o.max_memory
            )
            pixel = line.pixel  # the smoothed line follows the gradient's pixel
            out[label] = {
                "t": line.t.tolist(), "partials": line.partials.tolist(), "keeps_class": line.keeps_class.tolist(),
                "raw_partials": line.raw_partials.tolist(), "scale": line.scale.tolist(), "pixel": list(line.pixel),
                "target": line.target, "predicted": line.predicted, "tv_per_step": line.roughness,
            }  # fmt: skip
    return out


def compute_sections(
    ctx: Context,
    rows: list[ReportRow],
    sections: list[str],
    stores: dict[str, ResultsStore] | None = None,
    loaders: dict[str, Callable[[], object]] | None = None,
) -> tuple[dict[tuple[str, str], JSONObject], JSONObject, int]:
    """Compute what the stores lack; returns ``({(section, row key): values}, jaggedness lines, computed)``.

    ``stores``: a section's own store (localization, data randomization; default ``ctx.store``);
    ``loaders``: ``{section: () -> data}`` run once when that section has work left, the result
    set on the context (``ctx.loc``, ``ctx.dr``).
    """
    from tqdm.auto import tqdm

    stores, loaders = stores or {}, loaders or {}

    def store_of(section: str) -> ResultsStore:
        return stores.get(section, ctx.store)

    pending = [(s, r) for s in sections for r in rows if {"section": s, "row": r.key} not in store_of(s)]
    for section, attr in (("localization", "loc"), ("data_randomization", "dr")):
        if any(s == section for s, _ in pending) and section in loaders and getattr(ctx, attr) is None:
            setattr(ctx, attr, loaders[section]())
    computed = 0
    with tqdm(total=len(pending), desc="evaluate", unit="result", disable=not ctx.options.progress) as bar:
        for section, row in pending:
            bar.set_postfix_str(f"{section}: {row.label}")
            store_of(section).put({"section": section, "row": row.key}, SECTION_FUNCTIONS[section](ctx, row))
            computed += 1
            bar.update(1)
    line_unit = {"jaggedness": "lines"}
    if line_unit not in ctx.store:
        ctx.store.put(line_unit, jaggedness_lines(ctx))
        computed += 1
    results = {(s, r.key): store_of(s).get({"section": s, "row": r.key}) or {} for s in sections for r in rows}
    return results, ctx.store.get(line_unit) or {}, computed
