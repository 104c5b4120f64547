"""Figures of ``smoothsal explain``, drawn from :class:`~smoothsal.studies.explain.compute.ExplainResults` only.

They follow the SmoothGrad paper (Smilkov et al. 2017, arXiv:1706.03825): maps drawn as the
absolute value summed over channels, capped at the 99th percentile, in gray (its §3.1), and CAMs
(registered with ``display="overlay"``) as heat maps over the photo.

* ``grid.png``: rows = images; columns = the image, then each method raw | smoothed (Fig. 5);
* ``noise_levels.png``: SmoothGrad of the first image from σ = 0 to 50 % (Fig. 3);
* ``sample_sizes.png``: SmoothGrad at growing n, one continued draw sequence (Fig. 4);
* ``visualization.png``: |map| capped vs not, signed, × input (§3.1–3.2);
* ``discriminativity.png``: scale(M_cat) − scale(M_coffee) on the two-object image (Fig. 6).
"""

from __future__ import annotations

from pathlib import Path

from smoothsal import render
from smoothsal.registry import method_label, method_spec
from smoothsal.studies.explain.compute import ExplainResults

__all__ = [
    "save_discriminativity",
    "save_figures",
    "save_main_grid",
    "save_noise_levels",
    "save_sample_sizes",
    "save_visualization",
]

#: ``visualization.png`` columns: (render style, percentile cap, label).
VISUALIZATION_STYLES: tuple[tuple[str, float, str], ...] = (
    ("abs", 99.0, "|map|, 99th pct cap"),
    ("abs", 100.0, "|map|, no cap"),
    ("signed", 99.0, "signed"),
    ("x_input", 99.0, "× input"),
)


def _sampling_label(results: ExplainResults) -> str:
    c = results.config
    return f"n ≤ {c.n_samples}, stop at relative SE {c.tol}" if c.tol else f"n = {c.n_samples}"


def save_main_grid(results: ExplainResults, path: Path) -> Path:
    """``grid.png``: every image × every method, raw and smoothed (SmoothGrad Fig. 5 layout)."""
    names = results.config.methods
    labels = ["image"]
    for name in names:
        labels += [method_label(name), method_label(name, smooth=results.config.smooth_spec(0))]
    rows = []
    for i, photo in enumerate(results.photos):
        row = [photo.display]
        for name in names:
            style = method_spec(name).display
            for key in (name, f"{name}_smooth"):
                row.append(render.render_map(results.maps[key][i], photo.display, style=style))
        rows.append(row)
    title = (
        f"raw vs smoothed (noise level {results.config.noise_level:.0%}, {_sampling_label(results)}); "
        "|map|, capped at the 99th percentile"
    )
    return render.save_grid(rows, path, row_labels=[p.name for p in results.photos], col_labels=labels, title=title)


def save_noise_levels(results: ExplainResults, path: Path) -> Path:
    """``noise_levels.png``: SmoothGrad vs noise level on the first image (SmoothGrad Fig. 3)."""
    if results.noise_level_maps is None:
        raise ValueError("noise_levels.png needs results computed with extras=True")
    photo, levels = results.photos[0], sorted(results.noise_level_maps)
    row = [photo.display, *[render.render_map(results.noise_level_maps[lv]) for lv in levels]]
    return render.save_grid(
        [row],
        path,
        col_labels=["image", *[f"σ = {lv:.0%}" for lv in levels]],
        title=f"SmoothGrad vs noise level ({_sampling_label(results)}); σ = 0 is the vanilla gradient",
    )


def save_sample_sizes(results: ExplainResults, path: Path) -> Path:
    """``sample_sizes.png``: SmoothGrad vs sample size on the first image (SmoothGrad Fig. 4)."""
    if results.sample_size_maps is None or results.sample_sizes is None:
        raise ValueError("sample_sizes.png needs results computed with extras=True")
    photo = results.photos[0]
    row = [photo.display, *[render.render_map(m) for m in results.sample_size_maps]]
    return render.save_grid(
        [row],
        path,
        col_labels=["image", *[f"n = {n}" for n in results.sample_sizes]],
        title=(
            f"SmoothGrad vs sample size (noise level {results.config.noise_level:.0%}); "
            "each n extends the previous draws"
        ),
    )


def save_visualization(results: ExplainResults, path: Path) -> Path:
    """``visualization.png``: the visualization choices of SmoothGrad §3 on the gradient and SmoothGrad.

    SmoothGrad is the noise-level map at the run's noise level when the figure has it, else the
    largest sample size of ``sample_sizes.png`` (both at the run's noise level).
    """
    if results.noise_level_maps is None or results.sample_size_maps is None:
        raise ValueError("visualization.png needs results computed with extras=True")
    photo = results.photos[0]
    vanilla = results.noise_level_maps[0.0]
    smooth = results.noise_level_maps.get(results.config.noise_level, results.sample_size_maps[-1])
    rows = [
        [render.render_map(m, photo.display, style=s, percentile=p) for s, p, _ in VISUALIZATION_STYLES]
        for m in (vanilla, smooth)
    ]
    return render.save_grid(
        rows,
        path,
        row_labels=["gradient", "SmoothGrad"],
        col_labels=[lab for _, _, lab in VISUALIZATION_STYLES],
        title="visualization choices (signed: red +, blue −, gray 0)",
    )


def save_discriminativity(results: ExplainResults, path: Path) -> Path:
    """``discriminativity.png``: which pixels favour the first class over the second (SmoothGrad Fig. 6)."""
    disc = results.discriminativity
    if disc is None or results.class_names is None:
        raise ValueError("discriminativity.png needs a model with class names and extras=True")
    names = [results.class_names[c].split(",")[0] for c in disc.classes]
    rows = [
        [
            disc.display,
            render.render_map(m[0]),
            render.render_map(m[1]),
            render.diverging_rgb(render.discriminativity(m[0], m[1])),
        ]
        for m in disc.maps  # [2 classes, C, H, W] for the gradient, then SmoothGrad
    ]
    return render.save_grid(
        rows,
        path,
        row_labels=["gradient", "SmoothGrad"],
        col_labels=["image", names[0], names[1], f"{names[0]} − {names[1]}"],
        title="discriminativity: red favours the first class, blue the second",
    )


def save_figures(results: ExplainResults, out: Path) -> list[str]:
    """Every figure the results allow, into ``out``; returns the file names written."""
    written = [save_main_grid(results, out / "grid.png").name]
    if results.noise_level_maps is not None:
        written.append(save_noise_levels(results, out / "noise_levels.png").name)
        written.append(save_sample_sizes(results, out / "sample_sizes.png").name)
        written.append(save_visualization(results, out / "visualization.png").name)
    if results.discriminativity is not None:
        written.append(save_discriminativity(results, out / "discriminativity.png").name)
    return written
