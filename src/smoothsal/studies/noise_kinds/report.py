"""The noise-kinds study's fronts, matched-fidelity comparisons and conclusion, from the stored units.

Only reads what :mod:`~smoothsal.studies.noise_kinds.compute` stored; the rule is the package
docstring's (:mod:`smoothsal.studies.noise_kinds`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.intervals import MIN_IMAGES, Interval, two_level_interval
from smoothsal.studies.noise_kinds.config import FIDELITY_TARGETS, NoiseKindsConfig

__all__ = ["FrontPoint", "MatchedCell", "conclusion", "fronts", "matched_cells", "unit_arrays"]


@dataclass(frozen=True)
class FrontPoint:
    """One (group, kind, level) point: relative fidelity and stability errors with 95 % intervals.

    ``fidelity``/``stability`` are :math:`\\sqrt{\\text{mean}}` of the per-unit squared relative errors
    over pairs × images; ``*_low``/``*_high`` the square roots of the two-level interval of that mean
    (clipped at 0). ``pareto``: no other point of the same kind (raw included) has both errors lower.
    """

    group: str
    kind: str
    level: float
    fidelity: float
    fidelity_low: float
    fidelity_high: float
    stability: float
    stability_low: float
    stability_high: float
    pairs: int
    images: int
    pareto: bool = False


@dataclass(frozen=True)
class MatchedCell:
    """The comparison of the kinds in one group at one target fidelity ``target``.

    ``stability``: each reaching kind's relative stability error at the target (``None``: it never
    reaches it on the grid); ``differences``: ``"winner - other"`` -> ``[estimate, low, high]`` of the
    mean squared stability difference; ``verdict``: the winning kind or ``"inconclusive"``.
    """

    group: str
    target: float
    stability: dict[str, float | None]
    levels: dict[str, float | None]
    differences: dict[str, list[float]]
    verdict: str
    reason: str


def unit_arrays(records: Sequence[JSONObject], group: str) -> dict[tuple[str, float], dict[str, np.ndarray]]:
    """``(kind, level) -> {"stab2", "fid2"}`` ``[pairs, images]`` arrays of relative squared errors.

    Each image's errors are divided by its raw maps' squared norms (stability: the mean of the two
    models' norms; fidelity: each model's own, then the pair's mean). Raw: ``fid2`` is 0.
    """
    rows = [r for r in records if r["group"] == group]
    raw = {int(r["pair"]): r for r in rows if r["kind"] == "raw"}
    pairs = sorted(raw)
    out: dict[tuple[str, float], dict[str, np.ndarray]] = {}
    norm_a = np.array([raw[p]["norm_a"] for p in pairs])
    norm_b = np.array([raw[p]["norm_b"] for p in pairs])
    scale = ((norm_a + norm_b) / 2) ** 2
    tiny = np.finfo(float).tiny
    stab0 = np.array([raw[p]["stab2"] for p in pairs]) / np.maximum(scale, tiny)
    out[("raw", 0.0)] = {"stab2": stab0, "fid2": np.zeros_like(stab0)}
    keys = sorted({(r["kind"], float(r["level"])) for r in rows if r["kind"] != "raw"})
    for kind, level in keys:
        by_pair = {int(r["pair"]): r for r in rows if r["kind"] == kind and float(r["level"]) == level}
        if sorted(by_pair) != pairs:
            continue  # an unfinished run: this point waits for all its pairs
        stab = np.array([by_pair[p]["stab2"] for p in pairs]) / np.maximum(scale, tiny)
        fid = (np.array([by_pair[p]["fid2_a"] for p in pairs]) / np.maximum(norm_a**2, tiny)
               + np.array([by_pair[p]["fid2_b"] for p in pairs]) / np.maximum(norm_b**2, tiny)) / 2  # fmt: skip
        out[(kind, level)] = {"stab2": stab, "fid2": fid}
    return out


def _root(interval: Interval) -> tuple[float, float, float]:
    f = lambda v: math.sqrt(max(0.0, v)) if math.isfinite(v) else float("nan")  # noqa: E731
    return f(interval.estimate), f(interval.low), f(interval.high)


def _interval(a: np.ndarray, seed: int = 0) -> Interval:
    return two_level_interval(a, design="crossed", seed=seed)


def fronts(records: Sequence[JSONObject], config: NoiseKindsConfig) -> list[FrontPoint]:
    """Every (group, kind, level) point with its intervals; raw is listed once per group as kind ``"raw"``."""
    points: list[FrontPoint] = []
    for group in config.groups:
        arrays = unit_arrays(records, group)
        if ("raw", 0.0) not in arrays or not arrays[("raw", 0.0)]["stab2"].size:
            continue
        group_points = []
        for (kind, level), a in sorted(arrays.items(), key=lambda kv: (kv[0][0] != "raw", kv[0])):
            fid = _root(_interval(a["fid2"])) if kind != "raw" else (0.0, 0.0, 0.0)
            stab = _root(_interval(a["stab2"]))
            group_points.append(FrontPoint(group, kind, level, *fid, *stab, pairs=a["stab2"].shape[0],
                                           images=a["stab2"].shape[1]))  # fmt: skip
        raw = group_points[0]
        for p in group_points:
            same = [q for q in group_points if q.kind in (p.kind, "raw") and q is not p]
            dominated = any(q.fidelity <= p.fidelity and q.stability <= p.stability
                            and (q.fidelity < p.fidelity or q.stability < p.stability) for q in same)  # fmt: skip
            points.append(FrontPoint(**{**asdict(p), "pareto": not dominated}))
        del raw
    return points


def _at_target(arrays: dict, kind: str, target: float) -> tuple[np.ndarray | None, float | None]:
    """Per-unit squared stability interpolated to where ``kind``'s mean squared fidelity crosses ``target²``."""
    levels = sorted(level for k, level in arrays if k == kind)
    chain = [("raw", 0.0)] + [(kind, level) for level in levels]
    goal = target**2
    for lo, hi in zip(chain, chain[1:]):
        f_lo, f_hi = float(arrays[lo]["fid2"].mean()), float(arrays[hi]["fid2"].mean())
        if f_lo <= goal <= f_hi and f_hi > f_lo:
            w = (goal - f_lo) / (f_hi - f_lo)
            stab = (1 - w) * arrays[lo]["stab2"] + w * arrays[hi]["stab2"]
            return stab, (1 - w) * lo[1] + w * hi[1]
    return None, None


def matched_cells(records: Sequence[JSONObject], config: NoiseKindsConfig,
                  targets: Sequence[float] = FIDELITY_TARGETS) -> list[MatchedCell]:  # fmt: skip
    """The rule of the package docstring, applied to every group and target."""
    cells = []
    for group in config.groups:
        arrays = unit_arrays(records, group)
        if ("raw", 0.0) not in arrays:
            continue
        for target in targets:
            at = {kind: _at_target(arrays, kind, target) for kind in config.kinds}
            reach = {k: v[0] for k, v in at.items() if v[0] is not None}
            stability = {k: (math.sqrt(max(0.0, float(at[k][0].mean()))) if at[k][0] is not None else None)
                         for k in config.kinds}  # fmt: skip
            levels = {k: (round(float(at[k][1]), 4) if at[k][1] is not None else None) for k in config.kinds}
            if len(reach) < 2:
                cells.append(MatchedCell(group, target, stability, levels, {}, "inconclusive",
                                         f"{len(reach)} kind(s) reach fidelity {target} on the grid"))  # fmt: skip
                continue
            best = min(reach, key=lambda k: float(reach[k].mean()))
            diffs, decided = {}, True
            for other in reach:
                if other == best:
                    continue
                iv = _interval(reach[best] - reach[other])
                diffs[f"{best} - {other}"] = [iv.estimate, iv.low, iv.high]
                decided &= bool(math.isfinite(iv.high) and iv.high < 0 and iv.n >= MIN_IMAGES)
            missing = [k for k in config.kinds if k not in reach]
            note = f"; {', '.join(missing)} never reach(es) it" if missing else ""
            if decided:
                cells.append(MatchedCell(group, target, stability, levels, diffs, best,
                                         f"{best}'s difference interval to every other kind lies below 0{note}"))  # fmt: skip
            else:
                cells.append(MatchedCell(group, target, stability, levels, diffs, "inconclusive",
                                         f"lowest: {best}, but a difference interval reaches 0 (or too few images){note}"))  # fmt: skip
    return cells


def conclusion(cells: Sequence[MatchedCell]) -> tuple[str, str]:
    """``(answer, sentence)``: the kind that wins every decisive cell, ``"mixed"`` or ``"inconclusive"``."""
    winners = [c.verdict for c in cells if c.verdict != "inconclusive"]
    if not winners:
        return "inconclusive", f"no decisive cell among {len(cells)} (group, target) cells"
    kinds = sorted(set(winners))
    counts = ", ".join(f"{k}: {winners.count(k)}" for k in kinds)
    if len(kinds) == 1:
        return kinds[0], f"{kinds[0]} wins all {len(winners)} decisive cells of {len(cells)} ({counts})"
    return "mixed", f"different winners in the {len(winners)} decisive cells of {len(cells)} ({counts})"
