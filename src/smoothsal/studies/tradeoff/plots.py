"""Figures of the stability–fidelity study (read the rows only; matplotlib's object API).

* :func:`plot_curves`: error vs σ per setting, the curves of Ye & Farnia 2025
  (arXiv:2411.05837, Figs. 2–5);
* :func:`plot_pareto`: stability against fidelity error, one point per σ, ★ at the recommended σ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from smoothsal._core.jsontypes import JSONObject
from smoothsal.metrics.tradeoff import Recommendation
from smoothsal.studies.tradeoff.config import SETTING_LABELS

__all__ = ["plot_curves", "plot_pareto"]

_CURVE_LABELS = {"stability": "stability error", "fidelity": "fidelity error"}


def _series(rows: Sequence[JSONObject], setting: str, method: str, column: str) -> tuple[list[float], list[float]]:
    pts = sorted((r["noise_level"], r[column]) for r in rows if r["setting"] == setting and r["method"] == method)
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(
    rows: Sequence[JSONObject], methods: Sequence[str], settings: Sequence[str], kind: str, path: Path
) -> Path:
    """Error vs σ, one line per method with a ±1 std band, one column per setting.

    Top row: norm-scaled error (comparable across methods); bottom row: raw error on a log axis
    (map magnitudes differ by orders of magnitude between methods; its band is clipped below at
    a tenth of the mean). ``kind``: ``"stability"`` (eq. 12; band over model pairs) or
    ``"fidelity"`` (eq. 13; band over inputs).
    """
    from matplotlib.figure import Figure

    from smoothsal.registry import method_label

    if kind not in _CURVE_LABELS:
        raise ValueError(f"`kind` must be one of {list(_CURVE_LABELS)}, got {kind!r}")
    spread = "over model pairs" if kind == "stability" else "over inputs"
    fig = Figure(figsize=(4.2 * len(settings), 7.0), dpi=110)
    axes = fig.subplots(2, len(settings), squeeze=False)
    for j, setting in enumerate(settings):
        for i, (suffix, label) in enumerate((("_norm", "norm-scaled"), ("", "raw"))):
            ax = axes[i][j]
            for method in methods:
                x, y = _series(rows, setting, method, f"{kind}{suffix}_mean")
                if not x:
                    continue
                _, sd = _series(rows, setting, method, f"{kind}{suffix}_std")
                line = ax.plot(x, y, marker="o", ms=3, label=method_label(method))[0]
                hi = [a + b for a, b in zip(y, sd)]
                lo = [a - b if i == 0 else max(a - b, a / 10) for a, b in zip(y, sd)]  # log axis: clip at y/10
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            if i == 1:
                ax.set_yscale("log", nonpositive="mask")
                ax.set_xlabel("noise level σ / (x_max − x_min)")
            else:
                ax.set_title(f"{setting}: {SETTING_LABELS.get(setting, setting)}", fontsize=9)
            ax.set_ylabel(f"{_CURVE_LABELS[kind]} ({label})", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{_CURVE_LABELS[kind].capitalize()} vs σ (band: ±1 std {spread})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)


def plot_pareto(
    rows: Sequence[JSONObject],
    methods: Sequence[str],
    settings: Sequence[str],
    per_curve: dict[str, Recommendation],
    path: Path,
) -> Path:
    """Norm-scaled stability error against fidelity error, one labelled point per σ; ★ = recommended σ."""
    from matplotlib.figure import Figure

    from smoothsal.registry import method_label

    fig = Figure(figsize=(4.2 * len(settings), 4.0), dpi=110)
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    for ax, setting in zip(axes, settings):
        for method in methods:
            sig, stab = _series(rows, setting, method, "stability_norm_mean")
            if not sig:
                continue
            _, fid = _series(rows, setting, method, "fidelity_norm_mean")
            line = ax.plot(fid, stab, marker="o", ms=3, label=method_label(method))[0]
            for s, f, y in zip(sig, fid, stab):
                ax.annotate(f"{s:g}", (f, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            rec = per_curve.get(f"{setting}/{method}")
            if rec is not None and rec.noise_level in sig:
                k = sig.index(rec.noise_level)
                ax.plot([fid[k]], [stab[k]], marker="*", ms=11, color=line.get_color(), mec="black", mew=0.5)
        ax.set_title(f"{setting}: {SETTING_LABELS.get(setting, setting)}", fontsize=9)
        ax.set_xlabel("fidelity error (norm-scaled)")
        ax.set_ylabel("stability error (norm-scaled)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Stability–fidelity trade-off (labels: σ; ★: knee / recommended σ)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)
