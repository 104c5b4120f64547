"""What ``smoothsal report`` shows of an explain folder: each figure after the SmoothGrad paper's, from ``summary.json``."""

from pathlib import Path

from smoothsal._core.jsontypes import JSONObject
from smoothsal.studies.report import html as H
from smoothsal.studies.report.describe import SG, KnownFile, KnownStudy, StudyKnowledge, joined, pct, rows_table, study_results


def per_image_rows(methods: JSONObject, images: list[str]) -> list[JSONObject]:
    """``summary.json``'s ``methods`` as table rows, one per (method, map, image).

    A list with one value per image becomes that image's value; a dict of such lists (the
    convergence delta) becomes one column per key (``convergence delta relative``); any other
    value (a wall time for all images) is repeated on each row of its map.
    """
    rows: list[JSONObject] = []
    for method, maps in methods.items():
        for which, values in (maps or {}).items():
            columns: dict[str, object] = {}
            for k, v in (values or {}).items():
                if isinstance(v, dict):
                    columns.update({f"{k} {sub}".replace("_", " "): w for sub, w in v.items()})
                else:
                    columns[k.replace("_", " ")] = v
            n = max([len(v) for v in columns.values() if isinstance(v, list)] + [1])
            for i in range(n):
                row: JSONObject = {"method": method, "map": which}
                if n > 1 or images:
                    row["image"] = images[i] if i < len(images) else i
                for k, v in columns.items():
                    row[k] = (v[i] if i < len(v) else None) if isinstance(v, list) else v
                rows.append(row)
    return rows


def _explain(folder: Path) -> KnownStudy:
    known, summary, _ = study_results(
        folder, "summary", "settings", title="Explain: every method, raw and smoothed", command="smoothsal explain",
        description=(
            f"Each image explained by each method, raw and smoothed with Gaussian noise ({SG}); maps are "
            "|map| summed over channels, capped at the 99th percentile, in gray (the paper's §3.1); "
            "CAMs as heat maps over the photo."
        ),
    )  # fmt: skip
    known.settings.update({k: summary[k] for k in ("image_size", "config_hash", "seconds") if k in summary})
    s = summary.get("settings") or {}
    nl = s.get("noise_level")
    rule = (f"n ≤ {s.get('n_samples')}, stop at relative standard error {s['tol']}" if s.get("tol")
            else f"n = {s.get('n_samples')}")  # fmt: skip
    common = {k: s[k] for k in ("model", "noise_level", "n_samples", "tol", "seed") if k in s}
    images = summary.get("images") or []
    first = images[0]["name"] if images and isinstance(images[0], dict) else "the first image"

    names = [i.get("name") for i in images if isinstance(i, dict)]
    method_rows = per_image_rows(summary.get("methods") or {}, names)
    gap = "convergence delta "
    cols: list[str] = []
    for r in method_rows:
        cols += [k for k in r if k not in cols]
    key = ["method", "map", "image"]
    gap_rows = [
        {**{k: r[k] for k in key if k in r}, **{k[len(gap):]: v for k, v in r.items() if k.startswith(gap)}}
        for r in method_rows if any(k.startswith(gap) for k in r)
    ]  # fmt: skip
    gap_cols = key + [c[len(gap):] for c in cols if c.startswith(gap)]
    numbers = []
    if method_rows:
        numbers.append(
            "<p>One row per method, map and image: the wall time of the map for all images, in seconds; for a "
            "smoothed map the samples used and the relative standard error ‖SE‖/‖map‖.</p>"
            + rows_table(method_rows, [c for c in cols if not c.startswith(gap)])
        )
    if gap_rows:
        numbers.append(
            "<p>Completeness gap of IG/DeepLIFT per image (the convergence delta): |Σ attributions − ΔF| "
            "absolute and relative to |ΔF|, the score change ΔF expected, the path points; for a smoothed map "
            "the mean and maximum over its noisy samples.</p>" + rows_table(gap_rows, gap_cols)
        )
    if images:
        numbers.append(
            "<p>Images (rows), the class explained and the model's top-5:</p>"
            + H.table(
                ["image", "target", "top-5"],
                [[i.get("name"), i.get("target"),
                  "; ".join(f"{t.get('name', '').split(',')[0]} {t.get('prob', 0):.3f}" for t in i.get("top5", []))]
                 for i in images if isinstance(i, dict)],
            )
        )
    f = known.files
    f["grid.png"] = KnownFile(
        "figure",
        f"Rows: the images; columns: the image, then each method raw and smoothed (noise level {pct(nl)}, "
        f"{rule}): the layout of {SG} Fig. 5. Smoothing should keep the object and drop the speckle.",
        settings={**common, "methods": s.get("methods"), "images": [i.get("name") for i in images]},
        numbers=numbers,
        data=["summary.json", "maps.npz"],
    )
    levels = s.get("noise_levels")
    f["noise_levels.png"] = KnownFile(
        "figure",
        f"SmoothGrad of {first} at noise levels σ/(x_max − x_min) = {joined(levels, pct, 'several levels')}"
        + f" ({rule}); σ = 0 is the vanilla gradient. {SG} Fig. 3: 10–20 % balances sharpness against keeping the object.",
        settings={**common, "noise_levels": levels, "image": first},
    )
    sizes = s.get("sample_sizes")
    n = s.get("n_samples")
    if isinstance(sizes, list) and isinstance(n, int):
        sizes = [v for v in sizes if v < n] + [n]
    f["sample_sizes.png"] = KnownFile(
        "figure",
        f"SmoothGrad of {first} at growing sample sizes n = {joined(sizes)}"
        + f" (noise level {pct(nl)}), each n extending the same noise draws: {SG} Fig. 4 (the map settles as n grows).",
        settings={**common, "sample_sizes": sizes, "image": first},
    )
    f["visualization.png"] = KnownFile(
        "figure",
        f"The visualization choices of {SG} §3 on the gradient and SmoothGrad of {first}: |map| with and without "
        "the 99th-percentile cap, the signed map, and map × input (black pixels never show).",
        settings=dict(common),
    )
    f["discriminativity.png"] = KnownFile(
        "figure",
        f"Discriminativity ({SG} Fig. 6): scale(M_c1) − scale(M_c2) for two classes on the two-object image, on a "
        "blue–gray–red map: red pixels favour the first class, blue the second.",
        settings=dict(common),
    )
    f["summary.json"] = KnownFile("raw", "Top-5, targets, every setting, timings, samples used, standard errors.")
    f["maps.npz"] = KnownFile("raw", "Every map (raw and smoothed) by key, the images and the targets.")
    return known


#: the report's knowledge of this study's folders
KNOWN = StudyKnowledge(signature=("summary.json", "grid.png"), store_names=("explain",), describe=_explain)
