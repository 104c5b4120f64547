"""Figures of the report card (read the rows only; matplotlib's object API, no global state).

* :func:`plot_perturbation_curves`: mean deletion and insertion curves per row;
* :func:`plot_road_curves`: mean ROAD curves (MoRF, LeRF) per row;
* :func:`plot_randomization`: similarity to the original map vs cascade depth (Adebayo et al.
  2018, arXiv:1810.03292, Fig. 2's layout);
* :func:`plot_jaggedness`: the R, G, B partials of one pixel along :math:`x + t\\varepsilon`
  (Smilkov et al. 2017, arXiv:1706.03825, Fig. 2), one panel per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.jaggedness import JaggedLine
from smoothsal.studies.evaluate.config import SANITY_THRESHOLD

__all__ = ["lines_from_json", "plot_jaggedness", "plot_perturbation_curves", "plot_randomization", "plot_road_curves"]

_CHANNEL_COLOURS = ("tab:red", "tab:green", "tab:blue")


def _style(row: JSONObject, i: int) -> dict[str, object]:
    from matplotlib import colormaps

    colour = colormaps["tab20"](i % 20)
    return {"color": colour, "ls": ":" if row["kind"] == "control" else ("--" if row["smoothed"] else "-"), "lw": 1.4}


def _curve_pair(path: Path, rows: Sequence[JSONObject], record: str, x: str,
                panels: Sequence[tuple[str, str, str]], **line: object) -> Path:
    """Two panels sharing the y axis (target probability): for each row with a ``record`` dict, its
    curve ``record[key]`` against ``record[x]``; ``panels``: ``(key, title, x label)`` per panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for i, r in enumerate(rows):
        c = r.get(record)
        if not c:
            continue
        for ax, (key, _, _) in zip(axes, panels):
            ax.plot(c[x], c[key], label=r["label"], **line, **_style(r, i))
    for ax, (_, title, xlabel) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("target probability")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_perturbation_curves(path: Path, rows: Sequence[JSONObject]) -> Path:
    """Mean deletion and insertion curves of every row (most relevant first)."""
    return _curve_pair(path, rows, "_curves", "fractions", [
        ("deletion", "deletion (most relevant first; lower AUC is better)", "fraction of patches removed"),
        ("insertion", "insertion (most relevant first; higher AUC is better)", "fraction of patches inserted"),
    ])  # fmt: skip


def plot_road_curves(path: Path, rows: Sequence[JSONObject]) -> Path:
    """Mean ROAD curves of every row: most relevant first (MoRF) and least relevant first (LeRF)."""
    return _curve_pair(path, rows, "_road", "levels", [
        ("morf", "ROAD, most relevant first (lower is better)", "fraction of pixels removed and imputed"),
        ("lerf", "ROAD, least relevant first (higher is better)", "fraction of pixels removed and imputed"),
    ], marker="o", ms=3)  # fmt: skip


def plot_randomization(path: Path, rows: Sequence[JSONObject]) -> Path:
    """|Spearman| and SSIM between the original and the randomized model's maps vs cascade depth; for
    sampled rows (smoothed, random) a dotted line of the row's colour marks its reference: the
    Spearman between two independent estimates of the original map."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    layers: list[str] = []
    for i, r in enumerate(rows):
        m = r.get("_mprt")
        if not m:
            continue
        layers = m["layers"]
        depth = list(range(1, len(layers) + 1))
        for ax, metric in zip(axes, ("spearman_abs", "ssim")):
            vals = [float("nan") if v is None else (abs(v) if metric == "spearman_abs" else v) for v in m[metric]]
            ax.plot(depth, vals, marker="o", ms=3, label=r["label"], **_style(r, i))
        ref = r.get("mprt_r")
        if not r.get("mprt_by_construction", True) and isinstance(ref, float):
            # the sampled row's reference: two estimates of the original map (what "unchanged" looks like)
            axes[0].axhline(ref, color=_style(r, i)["color"], ls=(0, (1, 3)), lw=1.0)
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
    return Path(path)


def lines_from_json(lines: Mapping[str, Any]) -> dict[str, JaggedLine]:
    """``{label: JaggedLine}`` from the JSON form the compute step records."""
    import torch

    return {
        label: JaggedLine(
            t=torch.tensor(d["t"]), partials=torch.tensor(d["partials"]), keeps_class=torch.tensor(d["keeps_class"]),
            raw_partials=torch.tensor(d["raw_partials"]), scale=torch.tensor(d["scale"]), pixel=tuple(d["pixel"]),
            target=d["target"], predicted=d["predicted"],
        )
        for label, d in lines.items()
    }


def plot_jaggedness(lines: Mapping[str, JaggedLine], path: str | Path) -> Path:
    """Plot each line's partials against ``t`` (R, G, B for 3 channels), one panel per label.

    The SmoothGrad paper's Fig. 2 (Smilkov et al. 2017, arXiv:1706.03825): a pixel's partial
    derivative, as a fraction of the map's largest ``|entry|``, swings wildly along a tiny
    perturbation of the input while the class stays the same; SmoothGrad calms the line.
    Points where the class changes are shaded grey.

    Args:
        lines: ``{label: JaggedLine}`` (:func:`smoothsal.metrics.jaggedness.gradient_along_line`),
            e.g. ``{"gradient": ..., "SmoothGrad 15%": ...}``.
        path: PNG file to write (folders are created).
    Returns:
        the path written.
    """
    if not isinstance(lines, Mapping) or not lines:
        raise ValueError("`lines` must be a non-empty dict {label: JaggedLine}")
    for label, line in lines.items():
        if not isinstance(line, JaggedLine):
            raise TypeError(f"`lines[{label!r}]` must be a JaggedLine, got {type(line).__name__}")
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(lines)
    fig = Figure(figsize=(4.2 * n, 3.4))
    axes = fig.subplots(1, n, squeeze=False, sharey=True)
    for ax, (label, line) in zip(axes[0], lines.items()):
        t = line.t.cpu().numpy()
        parts = line.partials.cpu().numpy()
        for c in range(parts.shape[1]):
            colour = _CHANNEL_COLOURS[c] if parts.shape[1] == 3 else None
            name = "RGB"[c] if parts.shape[1] == 3 else f"channel {c}"
            ax.plot(t, parts[:, c], color=colour, lw=1.2, label=name)
        bad = ~line.keeps_class.cpu().numpy()
        if bad.any():
            ax.fill_between(t, -1, 1, where=bad, color="0.85", step="mid", label="class changed")
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{label}\npixel {line.pixel}, TV/step {line.roughness:.3g}", fontsize=9)
        ax.set_xlabel("t  (x + t·ε)")
    axes[0][0].set_ylabel("∂S/∂x_pixel ÷ max |∂S/∂x|")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
