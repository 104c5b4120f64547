"""The noise-kinds study's units: squared stability and fidelity errors per (group, pair, kind, level), per image.

Every unit is written to the results store as soon as it is done (:class:`~smoothsal.studies.store.ResultsStore`),
so an interrupted run resumes. A unit's values are per-image lists:

* ``kind="raw"``, level 0: ``stab2`` (:math:`\\lVert S_1 - S_2\\rVert^2` of the raw gradients), ``norm_a``,
  ``norm_b`` (the raw maps' norms, the scale of the relative errors);
* any other kind and level: ``stab2`` (the debiased squared distance of the two models' smoothed maps,
  :func:`smoothsal.metrics.tradeoff.debiased_distance` of their halves, unclipped) and ``fid2_a``,
  ``fid2_b`` (each model's debiased squared distance from its own raw map).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from smoothsal.metrics.tradeoff import debiased_distance, smoothed_halves
from smoothsal.studies.noise_kinds.config import NoiseKindsConfig
from smoothsal.studies.options import RunOptions
from smoothsal.studies.store import ResultsStore

__all__ = ["GroupData", "compute_units", "group_data"]

#: the pretrained models of group ``"photos:DA"``
PHOTO_MODELS: tuple[str, ...] = ("lite0", "lite1", "lite2")


@dataclass
class GroupData:
    """One group's model pairs (``(name_a, model_a, name_b, model_b)``), inputs ``[N, ...]`` and targets ``[N]``."""

    pairs: list[tuple[str, nn.Module, str, nn.Module]]
    inputs: Tensor
    targets: Tensor


def group_data(group: str, config: NoiseKindsConfig, options: RunOptions) -> GroupData:
    """The models and inputs of ``group`` (``"mnist:DT"``, ..., ``"photos:DA"``), on the run's device."""
    device = options.torch_device()
    dataset, setting = group.split(":")
    if dataset == "photos":
        from smoothsal.datasets.photos import BUNDLED, bundled_photos
        from smoothsal.models.zoo import efficientnet_lite

        x = torch.cat([p.tensor for p in bundled_photos(list(BUNDLED)[: config.n_photos])])
        if config.photo_size != x.shape[-1]:
            x = torch.nn.functional.interpolate(x, size=config.photo_size, mode="bilinear", antialias=True)
        models = [efficientnet_lite(name).to(device) for name in PHOTO_MODELS]
        targets = options.predict(models[0], x.to(device)).argmax(dim=1)
        pairs = [(PHOTO_MODELS[i], models[i], PHOTO_MODELS[j], models[j]) for i in range(3) for j in range(i + 1, 3)]
        return GroupData(pairs[: config.n_pairs] if config.n_pairs < 3 else pairs, x.to(device), targets)
    from smoothsal.studies.train import held_out_inputs, model_pairs

    sets = model_pairs(setting, n_pairs=config.n_pairs, dataset=dataset, progress=options.progress)
    sub = held_out_inputs(dataset, None, config.n_inputs, options.seed)
    pairs = [(f"{setting}{p}a", a.model.to(device), f"{setting}{p}b", b.model.to(device)) for p, (a, b) in enumerate(sets)]
    return GroupData(pairs, sub.images.to(device), sub.labels.to(device))


def _units(config: NoiseKindsConfig, group: str, n_pairs: int) -> Iterator[dict]:
    for pair in range(n_pairs):
        yield {"group": group, "pair": pair, "kind": "raw", "level": 0.0}
        for kind in config.kinds:
            for level in config.levels:
                yield {"group": group, "pair": pair, "kind": kind, "level": float(level)}


def _raw_values(data: GroupData, pair: int, options: RunOptions) -> tuple[dict[str, list[float]], tuple[Tensor, Tensor]]:
    _, a, _, b = data.pairs[pair]
    maps = [options.attribution_maps(options.build_method("grad", m), data.inputs, data.targets) for m in (a, b)]
    values = {
        "stab2": ((maps[0] - maps[1]).flatten(1).double() ** 2).sum(1).tolist(),
        "norm_a": maps[0].flatten(1).double().norm(dim=1).tolist(),
        "norm_b": maps[1].flatten(1).double().norm(dim=1).tolist(),
    }
    return values, (maps[0], maps[1])


def _smoothed_values(
    data: GroupData, pair: int, kind: str, level: float, raw: tuple[Tensor, Tensor], config: NoiseKindsConfig,
    options: RunOptions, cache: dict,
) -> dict[str, list[float]]:
    """``cache``: ``(model name, kind, level) -> halves``, so a model in several pairs (Lite0/1/2) is smoothed once."""
    name_a, a, name_b, b = data.pairs[pair]
    spec = config.spec(kind, level, options.seed)  # the same seed for both models: common random numbers
    halves = []
    for name, model in ((name_a, a), (name_b, b)):
        key = (name, kind, level)
        if key not in cache:
            split = smoothed_halves(options.build_method("grad", model, spec), data.inputs, data.targets)
            if split is None:  # pragma: no cover - a Gaussian, fixed-n mean always has halves
                raise RuntimeError("the smoothed maps gave no independent halves")
            cache[key] = split[1]
        halves.append(cache[key])
    return {
        "stab2": debiased_distance(halves[0], halves[1]).squared.double().tolist(),
        "fid2_a": debiased_distance(halves[0], raw[0]).squared.double().tolist(),
        "fid2_b": debiased_distance(halves[1], raw[1]).squared.double().tolist(),
    }


def compute_units(config: NoiseKindsConfig, options: RunOptions, store: ResultsStore) -> int:
    """Compute every unit not yet in ``store``; returns how many were computed."""
    from tqdm.auto import tqdm

    computed = 0
    for group in config.groups:
        n_pairs = 3 if group.startswith("photos") else config.n_pairs
        wanted = list(_units(config, group, n_pairs))
        if all(u in store for u in wanted):
            continue
        data = group_data(group, config, options)
        cache: dict = {}
        with tqdm(total=len(wanted), desc=f"noise kinds {group}", disable=not options.progress, unit="unit") as bar:
            for pair in range(len(data.pairs)):
                raw_unit = {"group": group, "pair": pair, "kind": "raw", "level": 0.0}
                values, raw = _raw_values(data, pair, options)
                if raw_unit not in store:
                    store.put(raw_unit, values)
                    computed += 1
                bar.update()
                for unit in wanted:
                    if unit["pair"] != pair or unit["kind"] == "raw":
                        continue
                    if unit not in store:
                        values = _smoothed_values(data, pair, unit["kind"], unit["level"], raw, config, options, cache)
                        store.put(unit, values)
                        computed += 1
                    bar.update()
    return computed
