"""Figures of ``smoothsal reproduce`` (matplotlib's object API; drawn from results only).

Each ``save_*`` returns ``(path, settings)``: the file written and the settings it shows (they go
into ``manifest.json`` with the figure's caption). Maps are drawn as in the SmoothGrad paper
(|map| summed over channels, capped at the 99th percentile, gray) unless a figure is about
another choice; grids are :func:`smoothsal.render.save_grid` (its documented pixel size).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smoothsal import render
from smoothsal._core.jsontypes import JSONObject
from smoothsal.registry import method_label, method_spec
from smoothsal.studies.tradeoff.plots import _series

__all__ = [
    "grid_pixels",
    "save_digits",
    "save_discriminativity",
    "save_fits",
    "save_line",
    "save_method_grid",
    "save_noise_levels",
    "save_pareto",
    "save_sample_sizes",
    "save_similarity_curves",
    "save_smoothgrad_combined",
    "save_stability_curves",
    "save_two_models",
    "save_visualization",
]

DPI = 100


def grid_pixels(nrows: int, ncols: int, row_labels: bool, col_labels: bool, title: bool, cell: float = 2.0) -> tuple[int, int]:
    """``(width, height)`` in pixels of a :func:`smoothsal.render.save_grid` PNG (its docstring's rule)."""
    w = ncols * cell + (render.ROW_LABEL_IN if row_labels else 0.0)
    h = nrows * cell + (render.COL_LABEL_IN if col_labels else 0.0) + (render.TITLE_IN if title else 0.0)
    return round(DPI * w), round(DPI * h)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _style(name: str) -> str:
    return method_spec(name).display


def _image(x: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] -> displayable ``[H, W, 3]`` (gray digits repeated)."""
    x = np.clip(np.asarray(x, dtype=float), 0, 1)
    x = np.moveaxis(x, 0, -1)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


# ---- SmoothGrad paper ------------------------------------------------------------------------------
def save_line(lines: dict[str, JSONObject], ends: np.ndarray, path: Path, settings: JSONObject) -> tuple[Path, JSONObject]:
    """Fig. 2: one pixel's partial derivative (normalised by the map's max) along x + tε, ends shown."""
    fig = _figure(12.0, 3.6)
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 2.2, 2.2])
    for j, (img, label) in enumerate(((ends[0], "x (t = 0)"), (ends[1], "x + ε (t = 1)"))):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(_image(img))
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for j, kind in enumerate(("gradient", "smoothgrad")):
        line = lines[kind]
        ax = fig.add_subplot(gs[0, 2 + j])
        t, partials = np.asarray(line["t"]), np.asarray(line["partials"])  # [T], [T, C]
        for c in range(partials.shape[1]):
            ax.plot(t, partials[:, c], lw=1, label=f"channel {c}")
        ax.set_xlabel("t")
        ax.set_ylabel("∂S/∂x_pixel / max|map|", fontsize=8)
        name = "gradient" if kind == "gradient" else f"SmoothGrad (n = {settings['line_samples']})"
        ax.set_title(f"{name}: roughness {line['roughness']:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"Fig. 2: pixel {tuple(lines['gradient']['pixel'])} along x + tε, ε ~ N(0, ({settings['line_eps']}·range)²)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path), settings


def save_noise_levels(fig3: dict[float, np.ndarray], displays: Sequence[np.ndarray], names: Sequence[str], path: Path,
                      settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Fig. 3: rows = images, columns = noise levels (σ = 0 is the vanilla gradient)."""
    levels = sorted(fig3)
    rows = [[displays[i], *[render.render_map(fig3[lv][i]) for lv in levels]] for i in range(len(displays))]
    render.save_grid(rows, path, row_labels=list(names), col_labels=["image", *[f"σ = {lv:.1%}" for lv in levels]],
                     title=f"Fig. 3: SmoothGrad vs noise level (n = {settings['n_samples']})", dpi=DPI)  # fmt: skip
    return Path(path), settings


def save_sample_sizes(maps: np.ndarray, sizes: Sequence[int], se_maps: np.ndarray, se_n: Sequence[int],
                      displays: Sequence[np.ndarray], names: Sequence[str], path: Path,
                      settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Fig. 4: rows = images, columns = sample sizes, then the n the standard error asks for."""
    rows = [[displays[i], *[render.render_map(m) for m in maps[i]], render.render_map(se_maps[i])]
            for i in range(maps.shape[0])]  # fmt: skip
    labels = [f"{n} (n_SE = {int(k)})" for n, k in zip(names, se_n)]
    render.save_grid(rows, path, row_labels=labels, col_labels=["image", *[f"n = {n}" for n in sizes], "n_SE"],
                     title=f"Fig. 4: SmoothGrad vs sample size (σ = {settings['noise_level']:.0%}); "
                           f"n_SE: relative SE ≤ {settings['tol']}", dpi=DPI)  # fmt: skip
    return Path(path), settings


def save_method_grid(maps: dict[str, np.ndarray], methods: Sequence[str], displays: Sequence[np.ndarray],
                     names: Sequence[str], path: Path, settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Fig. 5: each method raw | smoothed, each without and with × input."""
    labels, rows = ["image"], []
    for name in methods:
        for smoothed in (False, True):
            lab = method_label(name, smoothed)
            labels += [lab, f"{lab} × input"]
    for i, disp in enumerate(displays):
        row = [disp]
        for name in methods:
            for key in (name, f"{name}_smooth"):
                row += [render.render_map(maps[key][i], disp, style=_style(name)),
                        render.render_map(maps[key][i], disp, style="x_input")]  # fmt: skip
        rows.append(row)
    render.save_grid(rows, path, row_labels=list(names), col_labels=labels, dpi=DPI,
                     title=f"Fig. 5: raw vs smoothed (σ = {settings['noise_level']:.0%}, n = {settings['n_samples']}), "
                           "without and with × input")  # fmt: skip
    return Path(path), settings


def save_smoothgrad_combined(maps: dict[str, np.ndarray], methods: Sequence[str], displays: Sequence[np.ndarray],
                             names: Sequence[str], path: Path, settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Fig. 7: SmoothGrad on top of the other base methods (IG, Guided Backprop): raw | + SmoothGrad."""
    others = [m for m in methods if m != "grad"] or list(methods)
    labels = ["image"] + [lab for m in others for lab in (method_label(m), f"{method_label(m)} + SmoothGrad")]
    rows = [[d] + [render.render_map(maps[k][i], d, style=_style(m)) for m in others for k in (m, f"{m}_smooth")]
            for i, d in enumerate(displays)]  # fmt: skip
    render.save_grid(rows, path, row_labels=list(names), col_labels=labels, dpi=DPI,
                     title="Fig. 7: SmoothGrad combined with other methods")
    return Path(path), settings


def save_discriminativity(disc: dict[str, np.ndarray], methods: Sequence[str], display: np.ndarray,
                          class_names: Sequence[str], path: Path, settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Fig. 6: per method (raw, smoothed), each class's map and scale(M₁) − scale(M₂) on the diverging map."""
    rows, labels = [], []
    for name in methods:
        for smoothed in (False, True):
            m = disc[f"{name}_smooth" if smoothed else name]  # [2, C, H, W]
            rows.append([display, render.render_map(m[0]), render.render_map(m[1]),
                         render.diverging_rgb(render.discriminativity(m[0], m[1]))])  # fmt: skip
            labels.append(method_label(name, smoothed))
    a, b = class_names
    render.save_grid(rows, path, row_labels=labels, col_labels=["image", a, b, f"{a} − {b}"], dpi=DPI,
                     title="Fig. 6: discriminativity (red favours the first class, blue the second)")
    return Path(path), settings


def save_visualization(vanilla: np.ndarray, smooth: np.ndarray, display: np.ndarray, path: Path,
                       settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """The visualization lessons (SmoothGrad §3.1–3.2): |map| vs signed, 99th-percentile cap or not, × input."""
    styles = (("abs", 99.0, "|map|, 99th pct cap"), ("abs", 100.0, "|map|, no cap"),
              ("signed", 99.0, "signed, 99th pct cap"), ("signed", 100.0, "signed, no cap"),
              ("x_input", 99.0, "|map × input|"))  # fmt: skip
    rows = [[display] + [render.render_map(m, display, style=s, percentile=p) for s, p, _ in styles]
            for m in (vanilla, smooth)]  # fmt: skip
    render.save_grid(rows, path, row_labels=["gradient", "SmoothGrad"], col_labels=["image", *[s[2] for s in styles]],
                     title="Visualization lessons (signed: red +, blue −, gray 0)", dpi=DPI)  # fmt: skip
    return Path(path), settings


def save_digits(inputs: np.ndarray, cells: dict[tuple[str, str], np.ndarray], order: Sequence[tuple[str, str]],
                path: Path, settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Figs. 8–9: rows = digits, columns = train plain / noisy × explain gradient / SmoothGrad."""
    names = {"plain": "train plain", "noisy": f"train σ={settings['digit_noise']:g}", "gradient": "gradient",
             "smoothgrad": f"SmoothGrad σ={settings['noise_level']:g}"}  # fmt: skip
    rows = [[_image(inputs[i])] + [render.render_map(cells[k][i]) for k in order] for i in range(inputs.shape[0])]
    render.save_grid(rows, path, col_labels=["digit"] + [f"{names[t]}\n{names[e]}" for t, e in order], dpi=DPI,
                     title="Figs. 8–9: training with noise × explaining with noise (digits)")
    return Path(path), settings


# ---- stability paper -------------------------------------------------------------------------------
def _color(rows: Sequence[JSONObject], method: str) -> str:
    """One colour per method across every panel (tab10 by first appearance in ``rows``)."""
    order = list(dict.fromkeys(r["method"] for r in rows))
    return f"C{order.index(method) % 10}"


def _methods_of(rows: Sequence[JSONObject], setting: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["setting"] == setting and r["method"] not in seen:
            seen.append(r["method"])
    return seen


def _curves_by_setting(rows: Sequence[JSONObject], settings_order: Sequence[str], panels: Sequence[tuple[str, str]],
                       height: float, *, log_top: bool = False) -> Any:  # fmt: skip
    """A figure of len(panels) rows × one column per setting: each panel one row column vs σ per method.

    ``panels``: ``(column of rows, y label)`` from top to bottom; ``log_top``: log y axis on the top row.
    """
    n = len(settings_order)
    fig = _figure(4.0 * n, height)
    axes = fig.subplots(len(panels), n, squeeze=False)
    for j, setting in enumerate(settings_order):
        for i, (col, ylabel) in enumerate(panels):
            ax = axes[i][j]
            for method in _methods_of(rows, setting):
                x, y = _series(rows, setting, method, col)
                ax.plot(x, y, marker="o", ms=3, label=method_label(method), color=_color(rows, method))
            if i == 0:
                if log_top:
                    ax.set_yscale("log", nonpositive="mask")
                ax.legend(fontsize=6)
                ax.set_title(setting, fontsize=9)
            ax.set_xlabel("σ / (x_max − x_min)", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.grid(alpha=0.3)
    return fig


def save_stability_curves(rows: Sequence[JSONObject], settings_order: Sequence[str], kind: str, path: Path,
                          settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Error vs σ per method; top: the paper's raw error (eq. 12 or 13; log axis), bottom: norm-scaled."""
    panels = [(f"{kind}_mean", f"{kind} error (raw)"), (f"{kind}_norm_mean", f"{kind} error (norm-scaled)")]
    fig = _curves_by_setting(rows, settings_order, panels, 6.6, log_top=True)
    eq = "eq. 12" if kind == "stability" else "eq. 13"
    fig.suptitle(f"{kind.capitalize()} error vs σ ({eq}; raw = the paper's number, norm-scaled = maps of unit L2 norm)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path), settings


def save_similarity_curves(rows: Sequence[JSONObject], settings_order: Sequence[str], path: Path,
                           settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """SSIM and top-k IoU between two models' maps vs σ (Table 1's measures along the whole σ grid)."""
    panels = [("ssim_mean", "SSIM between models (higher = more stable)"),
              ("topk_iou_mean", "top-k IoU between models (higher = more stable)")]  # fmt: skip
    fig = _curves_by_setting(rows, settings_order, panels, 6.2)
    fig.suptitle("SSIM and top-k IoU of two models' maps vs σ", fontsize=10)
    fig.tight_layout()
    return _save(fig, path), settings


def save_pareto(rows: Sequence[JSONObject], settings_order: Sequence[str], path: Path,
                settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Norm-scaled stability error against fidelity error, one labelled point per σ."""
    n = len(settings_order)
    fig = _figure(4.0 * n, 3.8)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, setting in zip(axes, settings_order):
        for method in _methods_of(rows, setting):
            sig, stab = _series(rows, setting, method, "stability_norm_mean")
            _, fid = _series(rows, setting, method, "fidelity_norm_mean")
            ax.plot(fid, stab, marker="o", ms=3, label=method_label(method), color=_color(rows, method))
            for s, f, y in zip(sig, fid, stab):
                ax.annotate(f"{s:g}", (f, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("fidelity error (norm-scaled)", fontsize=8)
        ax.set_ylabel("stability error (norm-scaled)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("Stability–fidelity trade-off (labels: σ)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path), settings


def save_fits(rows: Sequence[JSONObject], fits: Sequence[JSONObject], settings_order: Sequence[str], path: Path,
              settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Log–log raw errors vs σ > 0 with the fitted power laws (stability ∝ σ^−a, fidelity ∝ σ^b)."""
    n = len(settings_order)
    fig = _figure(4.0 * n, 6.6)
    axes = fig.subplots(2, n, squeeze=False)
    index = {(f["setting"], f["method"], f["quantity"]): f for f in fits}
    for j, setting in enumerate(settings_order):
        for i, kind in enumerate(("stability", "fidelity")):
            ax = axes[i][j]
            for method in _methods_of(rows, setting):
                x, y = _series(rows, setting, method, f"{kind}_mean")
                pts = [(a, b) for a, b in zip(x, y) if a > 0 and b > 0]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                line = ax.plot(xs, ys, "o", ms=4, color=_color(rows, method))[0]
                f = index.get((setting, method, kind))
                if f is not None and np.isfinite(f["exponent"]):
                    grid = np.geomspace(min(xs), max(xs), 20)
                    ax.plot(grid, f["coef"] * grid ** f["exponent"], color=line.get_color(), lw=1,
                            label=f"{method_label(method)}: p = {f['exponent']:.2f} [{f['low']:.2f}, {f['high']:.2f}]")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{setting}: {kind}", fontsize=9)
            ax.set_xlabel("σ", fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6)
    fig.suptitle("Power-law fits y = c·σ^p (raw errors; 95% bootstrap interval over inputs; a description). Bounds: "
                 "stability ∝ σ^(−1/(βc+1)) (Thm 6), fidelity ≤ γσ√m (Prop 7)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path), settings


def save_two_models(figure_maps: dict[str, tuple[np.ndarray, float]], first_inputs: dict[str, np.ndarray], path: Path,
                    settings: JSONObject) -> tuple[Path, JSONObject]:  # fmt: skip
    """Two models' maps of the first input, raw vs smoothed, one row per (setting, method)."""
    rows, labels = [], []
    for key, (m, _sigma) in figure_maps.items():  # m: [4, 1, C, H, W]
        setting, method = key.split("/", 1)
        disp = _image(first_inputs[setting]) if setting in first_inputs else None
        style = _style(method)
        rows.append([disp] + [render.render_map(m[k][0], disp, style=style) for k in range(4)])
        labels.append(f"{setting}\n{method_label(method)}")
    render.save_grid(rows, path, row_labels=labels, dpi=DPI,
                     col_labels=["input", "model 1 raw", "model 2 raw", "model 1 smoothed", "model 2 smoothed"],
                     title=f"Two models' maps, raw vs smoothed (σ = {settings['table_noise_level']:g})")  # fmt: skip
    return Path(path), settings

