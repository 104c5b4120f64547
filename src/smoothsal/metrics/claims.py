r"""A paper's table beside ours, number beside number: Ye & Farnia 2025's Table 1 and the rule that scores our rows.

``smoothsal/data/paper_claims.json`` holds the 16 rows of Table 1 of Ye & Farnia 2025
(arXiv:2411.05837, §5.3) as printed: setting (DT different training sets, DR different recipes,
DA different architectures), algorithm, the two architectures, SSIM raw / smoothed and top-k mIoU
raw / smoothed between two models' maps, at σ/(x_max − x_min) = 0.15, 100 samples, k = 500 pixels
at 224². :func:`table1` reads them.

**The paper's direction** (:func:`paper_direction`), per row and metric: ``"up"`` when the printed
smoothed number is larger than the printed raw one, ``"down"`` when smaller, ``"equal"`` when the
two printed numbers are equal (at the table's precision, 3 decimals: e.g. DA Swin-T & ConvNeXt-T
Simple-Grad SSIM 0.201 → 0.201). Three SSIM rows are not "up": DT Grad-CAM 0.872 → 0.846 and
DA Swin-T & ConvNeXt-T Integrated-Grad 0.268 → 0.242 (down), and that Simple-Grad row (equal).

**The verdict** (:func:`claim_verdict`), fixed before any of our rows was computed. Given our 95 %
interval :math:`[l, h]` of :math:`\Delta = \text{smoothed} - \text{raw}` (a paired interval over images,
and over model pairs where there are several: :func:`difference_interval`):

* paper ``"up"``: **agrees** if :math:`l > 0`, **disagrees** if :math:`h < 0`, else **inconclusive**;
* paper ``"down"``: **agrees** if :math:`h < 0`, **disagrees** if :math:`l > 0`, else **inconclusive**;
* paper ``"equal"``: **agrees** if :math:`-m < l` and :math:`h < m` (the interval lies inside the
  equivalence margin: a two-one-sided-tests equivalence, Schuirmann 1987), **disagrees** if
  :math:`l > m` or :math:`h < -m` (a change larger than the margin is shown), else **inconclusive**.
  The margin :data:`EQUIVALENCE_MARGIN` :math:`m = 0.01` (SSIM or IoU units) is below the smallest
  difference the table itself prints as a change (0.012: DT Grad-CAM++ SSIM 0.874 → 0.886), so any
  change the paper would have printed as one falls outside it; the paper's own "equal" means
  :math:`|\Delta| < 0.001`, a margin no sample of our size could show.

Also **inconclusive** when the interval is undefined or rests on fewer than
:data:`~smoothsal.metrics.intervals.MIN_IMAGES` images. A row of ours that the paper does not have
(e.g. DA Grad-CAM: Table 1's DA rows are Simple-Grad and Integrated-Grad only) is **"ours only"**
and is never scored.

**Which paper rows a row of ours answers** (:func:`paper_rows_for`): by setting (``"DA-ImageNet"``,
``"DT-MNIST"``... answer the paper's ``"DA"``, ``"DT"``: the text before the first ``-``) and
algorithm; our models are not the paper's (MNIST CNNs, EfficientNet-Lite), so a DA row of ours is
set beside *all four* of the paper's DA rows of its algorithm, each scored on its own. Passing
``architectures`` keeps only the paper rows with exactly those architectures (e.g. our DR on
torchvision ResNet50 V1 vs V2 is the paper's DR row itself).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from smoothsal.metrics.intervals import (
    LEVEL,
    MIN_IMAGES,
    N_BOOT,
    Interval,
    bootstrap_interval,
    two_level_interval,
)

__all__ = [
    "DIRECTIONS",
    "EQUIVALENCE_MARGIN",
    "OURS_ONLY",
    "TABLE1_METRICS",
    "Table1",
    "Table1Row",
    "claim_verdict",
    "compare_with_paper",
    "difference_interval",
    "paper_direction",
    "paper_rows_for",
    "table1",
]

#: the paper's directions
DIRECTIONS = ("up", "down", "equal")
#: the equivalence margin for a paper row printed "equal" (module docstring)
EQUIVALENCE_MARGIN = 0.01
#: the metrics of Table 1, by the name of their columns
TABLE1_METRICS = ("ssim", "topk_miou")
#: the verdict of a row the paper does not have
OURS_ONLY = "ours only"


@dataclass(frozen=True)
class Table1Row:
    """One row of the paper's Table 1, numbers as printed.

    Attributes:
        setting: ``"DT"``, ``"DR"`` or ``"DA"``.
        algorithm: the paper's name (``"Simple-Grad"``, ``"Integrated-Grad"``, ``"Grad-CAM"``, ``"Grad-CAM++"``).
        method: smoothsal's registry name of that algorithm (``"grad"``, ``"ig"``, ``"gradcam"``, ``"gradcam++"``).
        architectures: the two models' architectures (one name when both are the same).
        ssim_raw, ssim_smoothed, topk_miou_raw, topk_miou_smoothed: the printed strings (``"0.270"``).
    """

    setting: str
    algorithm: str
    method: str
    architectures: tuple[str, ...]
    ssim_raw: str
    ssim_smoothed: str
    topk_miou_raw: str
    topk_miou_smoothed: str

    def numbers(self, metric: str) -> tuple[float, float]:
        """``(raw, smoothed)`` of ``metric`` (``"ssim"`` or ``"topk_miou"``) as floats."""
        _check_metric(metric)
        return float(getattr(self, f"{metric}_raw")), float(getattr(self, f"{metric}_smoothed"))

    def direction(self, metric: str) -> str:
        """The paper's direction for ``metric`` (:func:`paper_direction` of the printed numbers)."""
        return paper_direction(getattr(self, f"{metric}_raw"), getattr(self, f"{metric}_smoothed"))

    @property
    def label(self) -> str:
        """``"DA Simple-Grad (ResNet50 & Swin-T)"``."""
        return f"{self.setting} {self.algorithm} ({' & '.join(self.architectures)})"


@dataclass(frozen=True)
class Table1:
    """The paper's Table 1: its rows and settings (noise level, samples, k, image size, ...)."""

    rows: tuple[Table1Row, ...]
    settings: dict[str, Any]
    source: str


def _check_metric(metric: str) -> None:
    if metric not in TABLE1_METRICS:
        raise ValueError(f"`metric` must be one of {TABLE1_METRICS}, got {metric!r}")


@lru_cache(maxsize=1)
def table1() -> Table1:
    """Ye & Farnia 2025's Table 1 from ``smoothsal/data/paper_claims.json`` (16 rows)."""
    data = json.loads(resources.files("smoothsal").joinpath("data/paper_claims.json").read_text(encoding="utf-8"))
    t = data["stability"]["table1"]
    fields = ("ssim_raw", "ssim_smoothed", "topk_miou_raw", "topk_miou_smoothed")
    rows = tuple(
        Table1Row(r["setting"], r["algorithm"], r["method"], tuple(r["architectures"]), *(r[f] for f in fields))
        for r in t["rows"]
    )
    return Table1(rows, dict(t["settings"]), t["source"])


def paper_direction(raw: float | str, smoothed: float | str, decimals: int = 3) -> str:
    """``"up"``, ``"down"`` or ``"equal"``: the direction of the numbers as printed at ``decimals``.

    Both numbers are rounded to ``decimals`` first (strings as printed are exact), so two numbers
    that print the same are ``"equal"``.

    Example:
        >>> paper_direction("0.201", "0.201"), paper_direction(0.872, 0.846), paper_direction(0.163, 0.227)
        ('equal', 'down', 'up')
    """
    a, b = round(float(raw), decimals), round(float(smoothed), decimals)
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"`raw` and `smoothed` must be finite numbers, got {raw!r} and {smoothed!r}")
    return "up" if b > a else "down" if b < a else "equal"


def claim_verdict(direction: str, interval: Interval, margin: float = EQUIVALENCE_MARGIN) -> str:
    """``"agrees"``, ``"disagrees"`` or ``"inconclusive"``: our interval of smoothed − raw against the
    paper's ``direction`` (the module docstring's rule).

    Example:
        >>> claim_verdict("up", Interval(0.05, 0.02, 0.08, 30))
        'agrees'
        >>> claim_verdict("equal", Interval(0.001, -0.004, 0.006, 30))
        'agrees'
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {direction!r}")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"`margin` must be a positive number, got {margin!r}")
    if not interval.defined or interval.n < MIN_IMAGES:
        return "inconclusive"
    lo, hi = interval.low, interval.high
    if direction == "up":
        return "agrees" if lo > 0 else "disagrees" if hi < 0 else "inconclusive"
    if direction == "down":
        return "agrees" if hi < 0 else "disagrees" if lo > 0 else "inconclusive"
    if -margin < lo and hi < margin:
        return "agrees"
    return "disagrees" if lo > margin or hi < -margin else "inconclusive"


def paper_rows_for(setting: str, method: str, architectures: Sequence[str] | None = None) -> list[Table1Row]:
    """The paper's rows that our row (``setting``, ``method``) answers (module docstring); ``[]`` when
    the paper has none (the row is :data:`OURS_ONLY`).

    Args:
        setting: ours, e.g. ``"DT"``, ``"DA-ImageNet"``: its part before the first ``-`` is matched.
        method: a registry name (``"grad"``, ``"ig"``, ``"gradcam"``, ``"gradcam++"``).
        architectures: keep only the paper rows with exactly these architectures (any order).
    """
    base = setting.split("-", 1)[0]
    rows = [r for r in table1().rows if r.setting == base and r.method == method]
    if architectures is not None:
        want = sorted(architectures)
        rows = [r for r in rows if sorted(r.architectures) == want]
    return rows


def difference_interval(
    raw: Any, smoothed: Any, *, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0
) -> Interval:
    """Our interval of mean(smoothed − raw), paired unit by unit.

    Args:
        raw, smoothed: ``[images]`` scores of one model pair, or ``[pairs, images]`` of several pairs on
            the same images (both levels resampled, crossed: :func:`~smoothsal.metrics.intervals.two_level_interval`).
        level, n_boot, seed: as :func:`~smoothsal.metrics.intervals.bootstrap_interval`.
    """
    a, b = np.asarray(raw, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"`raw` and `smoothed` must have one shape, [images] or [pairs, images]; got {a.shape} and {b.shape}")
    d = b - a
    if d.ndim == 1:
        return bootstrap_interval(d, level=level, n_boot=n_boot, seed=seed)
    return two_level_interval(d, level=level, n_boot=n_boot, seed=seed)


def compare_with_paper(
    setting: str,
    method: str,
    differences: dict[str, Interval],
    *,
    architectures: Sequence[str] | None = None,
    margin: float = EQUIVALENCE_MARGIN,
) -> list[dict[str, Any]]:
    """Our row beside every paper row it answers, scored per metric.

    Args:
        setting, method, architectures: as :func:`paper_rows_for`.
        differences: our interval of smoothed − raw per metric (``{"ssim": ..., "topk_miou": ...}``;
            :func:`difference_interval`).
        margin: the equivalence margin for ``"equal"`` rows.
    Returns:
        One dict per paper row (``paper_row`` = its label, and per metric ``{metric}_paper`` =
        ``"0.872 → 0.846"``, ``{metric}_direction``, ``{metric}_ours`` = our interval,
        ``{metric}_verdict``), or one dict with every verdict :data:`OURS_ONLY` when the paper
        has no such row.
    """
    for metric in differences:
        _check_metric(metric)
    rows = paper_rows_for(setting, method, architectures)
    ours = {f"{m}_ours": iv.format() for m, iv in differences.items()}
    if not rows:
        return [{"setting": setting, "method": method, "paper_row": None, **ours,
                 **{f"{m}_verdict": OURS_ONLY for m in differences}}]  # fmt: skip
    out = []
    for row in rows:
        entry: dict[str, Any] = {"setting": setting, "method": method, "paper_row": row.label, **ours}
        for metric, iv in differences.items():
            raw, smoothed = getattr(row, f"{metric}_raw"), getattr(row, f"{metric}_smoothed")
            direction = row.direction(metric)
            entry.update({f"{metric}_paper": f"{raw} → {smoothed}", f"{metric}_direction": direction,
                          f"{metric}_verdict": claim_verdict(direction, iv, margin)})  # fmt: skip
        out.append(entry)
    return out
