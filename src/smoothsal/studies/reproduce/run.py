"""``run_smoothgrad, run_stability``: the study end to end (compute or resume, then figures and reports), for its command and for Python.

The study is described in :mod:`smoothsal.studies.reproduce`, which exports these names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from smoothsal._core.jsontypes import JSON, JSONObject
from smoothsal.studies.options import RunOptions
from smoothsal.studies.reproduce.config import (
    SG_DEFAULT_OUT,
    ST_DEFAULT_OUT,
    SmoothGradReproConfig,
    StabilityReproConfig,
)

__all__ = ["QUICK_NOTE", "publish_outputs", "run_smoothgrad", "run_stability", "stability_command"]

QUICK_NOTE = "--quick run: fewer noise samples (and smaller grids) than the paper; cite the full run"


def _quote(numbers: JSONObject, command: str) -> JSONObject:
    return {"command": command, "numbers": numbers}


def run_smoothgrad(
    config: SmoothGradReproConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = print
) -> JSONObject:
    """Compute (or resume) ``reproduce smoothgrad`` as ``options`` say and write its figures, tables
    and manifest (default :class:`~smoothsal.studies.options.RunOptions`: ``out/reproduce/smoothgrad``)."""
    import numpy as np

    from smoothsal.studies.reproduce import plots
    from smoothsal.studies.reproduce import report as rp
    from smoothsal.studies.reproduce.smoothgrad import DIGIT_REGIMES, compute_smoothgrad
    from smoothsal.studies.store import write_json

    t0 = time.perf_counter()
    options = options if options is not None else RunOptions()
    res = compute_smoothgrad(config, options, echo=echo)
    out = options.out_dir(SG_DEFAULT_OUT)
    c = config
    base: JSONObject = {"model": c.model, "image_size": res.image_size, "noise_level": c.noise_level,
                        "n_samples": c.n_samples, "seed": options.seed, "quick": c.quick}  # fmt: skip
    figures: list[JSON] = []

    def add(result: tuple[Path, JSONObject], caption: str) -> None:
        path, settings = result
        figures.append({"file": path.name, "caption": caption, "settings": settings})

    line = res.lines
    add(plots.save_line(line, res.line_ends, out / "fig2_jagged_line.png",
                        {**base, "line_steps": c.line_steps, "line_eps": c.line_eps, "line_samples": c.line_samples,
                         "image": res.names[0], "pixel": line["gradient"]["pixel"]}),
        f"Fig. 2: one pixel's partial derivative along x + tε jumps sharply (roughness "
        f"{line['gradient']['roughness']:.3f}); under SmoothGrad it is calm ({line['smoothgrad']['roughness']:.3f})")  # fmt: skip
    levels = sorted(res.fig3)
    noisy = {lv: float(np.mean([rp.noisiness(m) for m in res.fig3[lv]])) for lv in levels}
    add(plots.save_noise_levels(res.fig3, res.displays, res.names, out / "fig3_noise_levels.png",
                                {**base, "noise_levels": levels, "images": res.names}),
        "Fig. 3: SmoothGrad of each image (rows) at noise levels 0–50 % (columns); σ = 0 is the vanilla gradient")
    k = res.fig4.shape[0]
    conv = np.mean([rp.convergence(res.fig4[i]) for i in range(k)], axis=0)
    se_n = res.fig4_se["n_samples"]
    add(plots.save_sample_sizes(res.fig4, res.fig4_sizes, res.fig4_se_maps, se_n, res.displays[:k], res.names[:k],
                                out / "fig4_sample_sizes.png",
                                {**base, "sample_sizes": res.fig4_sizes, "tol": c.tol, "n_se": se_n}),
        f"Fig. 4: SmoothGrad at n = {', '.join(map(str, res.fig4_sizes))} and at n_SE, where the relative standard "
        f"error reaches {c.tol} or the cap of {c.se_max_samples} stops it (n_SE = {', '.join(map(str, se_n))}; relative "
        f"SE {', '.join(f'{v:.2f}' for v in res.fig4_se['relative_stderr'])})")  # fmt: skip
    add(plots.save_method_grid(res.maps, c.methods, res.displays, res.names, out / "fig5_methods.png",
                               {**base, "methods": list(c.methods)}),
        "Fig. 5: gradient, Integrated Gradients and Guided Backprop, each raw and smoothed, without and with × input")
    class_names = [res.class_names[i].split(",")[0] if res.class_names else f"class {i}" for i in res.disc_classes]
    add(plots.save_discriminativity(res.disc, c.methods, res.disc_display, class_names, out / "fig6_discriminativity.png",
                                    {**base, "classes": res.disc_classes, "class_names": class_names}),
        f"Fig. 6: which pixels favour {class_names[0]} (red) over {class_names[1]} (blue), per method raw and smoothed")
    add(plots.save_smoothgrad_combined(res.maps, c.methods, res.displays, res.names, out / "fig7_combined.png",
                                       {**base, "methods": list(c.methods)}),
        "Fig. 7: SmoothGrad on top of Integrated Gradients and Guided Backprop")
    order = list(DIGIT_REGIMES)
    add(plots.save_digits(res.digit_inputs, res.digit_maps, order, out / "fig8_9_train_noise.png",
                          {**base, "digit_noise": c.digit_noise, "digit_epochs": c.digit_epochs,
                           "digit_models": c.digit_models, "digit_inputs": c.digit_inputs}),
        "Figs. 8–9: digits, trained without / with input noise × explained by the gradient / SmoothGrad")  # fmt: skip
    smooth_ref = res.fig3.get(c.noise_level, res.fig3[levels[-1]])
    add(plots.save_visualization(res.fig3[0.0][0], smooth_ref[0], res.displays[0], out / "visualization_lessons.png",
                                 {**base, "image": res.names[0]}),
        "Visualization lessons: absolute vs signed, with and without the 99th-percentile cap, and × input")

    # ---- tables
    tables: list[JSON] = []
    fig3_row = {f"{lv:g}": noisy[lv] for lv in levels}
    cols = list(fig3_row)
    rp.write_csv(out / "fig3_noise_levels.csv", [{"quantity": "noisiness", **fig3_row}], ["quantity", *cols])
    rp.write_markdown(out / "fig3_noise_levels.md", "Fig. 3: noisiness of the map vs noise level",
                      [{"quantity": "noisiness (mean over images)", **fig3_row}], ["quantity", *cols],
                      note="Noisiness: mean |difference| of neighbouring pixels of the rendered |map| (lower = smoother). "
                           "Columns: σ / (x_max − x_min).")  # fmt: skip
    tables.append({"file": "fig3_noise_levels.md", "caption": "noisiness of SmoothGrad vs noise level (columns)"})
    fig4_rows = [{"n": n, "distance_to_largest_n": float(v)} for n, v in zip(res.fig4_sizes, conv)]
    fig4_rows += [{"n": f"n_SE ({res.names[i]})", "distance_to_largest_n": float("nan"),
                   "relative_stderr": res.fig4_se["relative_stderr"][i], "n_se": se_n[i]} for i in range(k)]  # fmt: skip
    rp.write_csv(out / "fig4_sample_sizes.csv", fig4_rows, ["n", "distance_to_largest_n", "relative_stderr", "n_se"])
    rp.write_markdown(out / "fig4_sample_sizes.md", "Fig. 4: convergence with the sample size", fig4_rows,
                      ["n", "distance_to_largest_n", "relative_stderr"],
                      note=f"‖M_n − M_max‖/‖M_max‖ along one draw sequence (mean over {k} image(s)); n_SE: samples until "
                           f"the relative standard error ≤ {c.tol}, at most {c.se_max_samples} (a relative_stderr above "
                           f"{c.tol} means the cap stopped it).")  # fmt: skip
    tables.append({"file": "fig4_sample_sizes.md", "caption": "distance of the n-sample map from the largest-n map"})
    fig5_rows = []
    for name in c.methods:
        raw_n = float(np.mean([rp.noisiness(m) for m in res.maps[name]]))
        sm_n = float(np.mean([rp.noisiness(m) for m in res.maps[f"{name}_smooth"]]))
        raw_d = rp.correct_side_share(res.disc[name][0], res.disc[name][1])
        sm_d = rp.correct_side_share(res.disc[f"{name}_smooth"][0], res.disc[f"{name}_smooth"][1])
        fig5_rows.append({"method": name, "noisiness_raw": raw_n, "noisiness_smoothed": sm_n,
                          "smoother": "yes" if sm_n < raw_n else "NO", "disc_share_raw": raw_d,
                          "disc_share_smoothed": sm_d, "more_discriminative": "yes" if sm_d > raw_d else "NO"})  # fmt: skip
    fcols = ["method", "noisiness_raw", "noisiness_smoothed", "smoother", "disc_share_raw", "disc_share_smoothed",
             "more_discriminative"]  # fmt: skip
    rp.write_csv(out / "fig5_6_methods.csv", fig5_rows, fcols)
    rp.write_markdown(out / "fig5_6_methods.md", "Figs. 5–7: raw vs smoothed per method", fig5_rows, fcols,
                      note="Noisiness (lower = smoother) over the photos; discriminativity: share of the map's |mass| "
                           "on the correct object's side (0.5 = none, Fig. 6).")  # fmt: skip
    tables.append({"file": "fig5_6_methods.md", "caption": "noisiness and discriminativity, raw vs smoothed per method"})
    dcols = ["train", "explain", "train_noise", "explain_noise", "test_accuracy", "stability_mean",
             "stability_norm_mean", "ssim_mean", "topk_iou_mean", "n_models", "n_inputs"]  # fmt: skip
    for r in res.digit_rows:
        r["noisiness"] = float(np.mean([rp.noisiness(m) for m in res.digit_maps[(r["train"], r["explain"])]]))
    rp.write_csv(out / "fig8_9_train_noise.csv", res.digit_rows, dcols + ["noisiness"])
    rp.write_markdown(out / "fig8_9_train_noise.md", "Figs. 8–9: training noise × SmoothGrad on digits", res.digit_rows,
                      dcols + ["noisiness"],
                      note="Stability error (eq. 12 of Ye & Farnia 2025) between models trained on disjoint parts of "
                           "the digits (raw and norm-scaled), SSIM / top-k IoU of their maps, noisiness of the shown maps.")
    tables.append({"file": "fig8_9_train_noise.md", "caption": "the 2 × 2 of training noise × SmoothGrad, numbers"})

    numbers = {
        "fig2_roughness_gradient": line["gradient"]["roughness"],
        "fig2_roughness_smoothgrad": line["smoothgrad"]["roughness"],
        "fig3_noisiness": {f"{lv:g}": noisy[lv] for lv in levels},
        "fig4_distance_to_largest_n": {str(n): float(v) for n, v in zip(res.fig4_sizes, conv)},
        "fig4_n_se": se_n,
        "fig5_noisiness": {r["method"]: [r["noisiness_raw"], r["noisiness_smoothed"]] for r in fig5_rows},
        "fig6_correct_side_share": {r["method"]: [r["disc_share_raw"], r["disc_share_smoothed"]] for r in fig5_rows},
        "fig8_9": {f"{r['train']}/{r['explain']}": {"stability": r["stability_mean"], "ssim": r["ssim_mean"],
                                                     "noisiness": r["noisiness"], "accuracy": r["test_accuracy"]}
                   for r in res.digit_rows},
        "quick": c.quick,
    }  # fmt: skip
    command = "smoothsal reproduce smoothgrad" + (" --quick" if c.quick else "")
    if res.claims:
        from smoothsal.studies.reproduce.sg_claims import claim_rows, write_claims

        claims = claim_rows(res.claims, c, options.seed)
        write_claims(out, claims, command, float(res.claims["seconds"]), c.quick)
        tables.append({"file": "claims.md", "caption": "SmoothGrad's claims: our numbers with intervals, controls, verdicts"})
        numbers["claims"] = {f"{r.claim} / {r.data}": r.verdict for r in claims}
    write_json(out / "results_numbers.json", _quote(numbers, command))
    summary = rp.write_manifest(
        out, "reproduce-smoothgrad", "Reproducing SmoothGrad (Smilkov et al. 2017)", figures, tables, numbers,
        {"settings": {**c.settings(), **options.as_dict()}, "config_hash": res.config_hash, "seconds": round(time.perf_counter() - t0, 2),
         "notes": [QUICK_NOTE] if c.quick else [], "paper": rp.paper_claims()["smoothgrad"]},
    )  # fmt: skip
    if echo is not None:
        echo(f"wrote {len(figures)} figures and {len(tables)} tables to {out}/ in {summary['seconds']:.1f} s")
    return summary


def _provenance(command: str) -> JSONObject:
    """The command, the code's commit (``None`` outside a git checkout) and the machine."""
    import os
    import platform
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"command": command, "commit": commit, "machine": f"{platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} logical CPUs, python {platform.python_version()}",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip


def stability_command(c: StabilityReproConfig) -> str:
    """The ``smoothsal`` command line that runs ``c`` (the full run: ``make reproduce-stability FULL=1``)."""
    return "smoothsal reproduce stability" + (" --quick" if c.quick else "")


def publish_outputs(out: Path, target: Path) -> list[Path]:
    """Copy the tables, figures and JSON of ``out`` (not its results store) into ``target``.

    What a committed copy holds: ``manifest.json``, ``summary.json``, ``results_numbers.json``,
    ``results.json`` and every ``.csv``, ``.md`` and ``.png`` the run wrote. Returns the copies.
    """
    import shutil

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    names = ("manifest.json", "summary.json", "results_numbers.json", "results.json")
    files = [out / n for n in names] + sorted(p for ext in ("csv", "md", "png") for p in out.glob(f"*.{ext}"))
    copies = []
    for f in files:
        if f.exists():
            copies.append(Path(shutil.copy2(f, target / f.name)))
    return copies


def run_stability(
    config: StabilityReproConfig, options: RunOptions | None = None, echo: Callable[[str], object] | None = print,
    publish: Path | None = None,
) -> JSONObject:
    """Compute (or resume) ``reproduce stability`` as ``options`` say and write its figures, tables
    and manifest (default :class:`~smoothsal.studies.options.RunOptions`: ``out/reproduce/stability``);
    with ``publish``, also copy them there (:func:`publish_outputs`; ``make reproduce-stability FULL=1``
    publishes to ``results/reproduce/stability``).

    The rows' CPU seconds are summed into ``summary.json`` (``cpu_seconds_rows``: the computation,
    across resumed runs) beside this invocation's wall and CPU seconds.
    """
    from smoothsal.studies.reproduce import plots
    from smoothsal.studies.reproduce import report as rp
    from smoothsal.studies.reproduce import stability_tables as st
    from smoothsal.studies.reproduce.stability import (
        DA_IMAGENET,
        DR_IMAGENET,
        compute_stability,
        compute_theory,
    )
    from smoothsal.studies.store import write_json

    t0, cpu0 = time.perf_counter(), time.process_time()
    c = config
    options = options if options is not None else RunOptions()
    rows, extras, store = compute_stability(c, options, echo=echo)
    theory = compute_theory(c, options, store) if c.theory else {"models": [], "constants": [], "rows": []}
    out = options.out_dir(ST_DEFAULT_OUT)
    order = list(dict.fromkeys(r["setting"] for r in rows))
    base: JSONObject = {"settings": order, "methods": list(c.methods), "photo_methods": list(c.photo_methods),
            "noise_levels": list(c.noise_levels), "photo_noise_levels": list(c.photo_noise_levels),
            "n_samples": c.n_samples, "photo_samples": c.photo_samples, "n_inputs": c.n_inputs,
            "photos": list(c.photo_names), "n_pairs": c.n_pairs, "photo_models": list(c.photo_models),
            "dataset": c.dataset, "ig_steps": c.ig_steps, "table_noise_level": c.table_noise_level, "quick": c.quick}  # fmt: skip
    figures: list[JSON] = []

    def add(result: tuple[Path, JSONObject], caption: str) -> None:
        path, settings = result
        figures.append({"file": path.name, "caption": caption, "settings": settings})

    add(plots.save_stability_curves(rows, order, "stability", out / "stability_vs_sigma.png", base),
        "Stability error (eq. 12) between two models vs σ per method and setting; raw (the paper's) and norm-scaled")
    add(plots.save_stability_curves(rows, order, "fidelity", out / "fidelity_vs_sigma.png", base),
        "Fidelity error (eq. 13) of the smoothed map to the model's own raw map (same method and steps) vs σ")
    add(plots.save_pareto(rows, order, out / "pareto.png", base),
        "Stability against fidelity error (norm-scaled), one point per σ: the trade-off")
    add(plots.save_similarity_curves(rows, order, out / "ssim_topk_vs_sigma.png", base),
        "SSIM and top-k IoU (k = 1 % of the pixels) between two models' maps vs σ")
    fits = rp.fit_table(rows, c.n_boot, options.seed)
    add(plots.save_fits(rows, fits, order, out / "power_law_fits.png", {**base, "n_boot": c.n_boot}),
        "Errors vs σ in log–log with fitted power laws (a description, not a test of Theorem 6 / Proposition 7)")
    if extras.figure_maps:
        add(plots.save_two_models(extras.figure_maps, extras.first_inputs, out / "two_models_maps.png", base),
            "Two models' maps of one input, raw vs smoothed, per setting and method")

    # ---- tables
    tables: list[JSON] = []

    def table(name: str, title: str, lines: list[JSONObject], cols: list[str], note: str, caption: str) -> None:
        """``name.csv`` and ``name.md`` from ``lines``, the Markdown one listed in the manifest (its title
        ends in "(quick)" for a ``--quick`` run)."""
        rp.write_csv(out / f"{name}.csv", lines, cols)
        rp.write_markdown(out / f"{name}.md", title + (" (quick)" if c.quick else ""), lines, cols, note=note)
        tables.append({"file": f"{name}.md", "caption": caption})

    flat = [{k: r.get(k) for k in rp.ROW_FIELDS} for r in rows]
    rp.write_csv(out / "results.csv", flat, rp.ROW_FIELDS)
    settings = {**c.settings_dict(), **options.as_dict()}
    write_json(out / "results.json", {"config": settings, "config_hash": store.config_hash, "rows": rows,
                                      "theory": theory, "models": extras.models, "photos": extras.photos,
                                      "topk": extras.topk})  # fmt: skip
    tables.append({"file": "results.csv", "caption": "every (setting, method, σ) row: errors plain, debiased and "
                                                     "norm-scaled, SSIM, top-k IoU at two k, relative standard error"})
    model_rows = [{"setting": s, **m} for s, ms in extras.models.items() for m in ms]
    model_rows += [{"setting": "theory pair", **m} for m in theory["models"]]
    table("models", "The models compared, with their test accuracy", model_rows,
          ["setting", "pair", "name", "recipe", "test_accuracy"],
          "MNIST models: smoothsal.studies.train.model_pairs (cached by a hash of the recipe, `name`); test accuracy on "
          "the 10,000 MNIST test images.", "every model with its recipe and test accuracy")  # fmt: skip
    if extras.photos:
        table("imagenet_photos", "The ImageNet-scale photos and the class each shows (the target)", extras.photos,
              ["name", "class_index", "class_name", "shows"], "", "each photo with its ImageNet class")  # fmt: skip
    per_map = [{"setting": r["setting"], "method": r["method"], "noise_level": r["noise_level"], "photo": photo,
                 "model": model, "relative_stderr": rse[i], "samples": r["samples_per_map"][model][i],
                 "below_target": rse[i] < c.max_rse}
                for r in rows if r["noise_level"] > 0 and r.get("rse_per_map") for model, rse in r["rse_per_map"].items()
                for i, photo in enumerate(c.photo_names)]  # fmt: skip
    if per_map:
        table("imagenet_rse", f"Each ImageNet map's relative standard error (target < {c.max_rse})", per_map,
              ["setting", "method", "noise_level", "photo", "model", "relative_stderr", "samples", "below_target"],
              f"‖SE‖/‖map‖ of each smoothed map, sampled {c.photo_samples} at a time up to {c.photo_max_samples} until "
              f"it is below {c.max_rse} (Smooth's tol).", "each ImageNet map's relative standard error and samples")  # fmt: skip
    t1 = rp.table1_rows(rows, c.table_noise_level)
    samples_note = (f"{c.n_samples} noise samples (MNIST), ImageNet {c.photo_samples} up to {c.photo_max_samples} "
                    f"(until the relative standard error is below {c.max_rse})"
                    + (" — --quick" if c.quick else ""))  # fmt: skip
    table("table1", f"Table 1 on our models: raw vs smoothed (σ = {c.table_noise_level:g})", t1,
          ["setting", "method", "sigma", "ssim_raw", "ssim_smoothed", "topk_raw", "topk_smoothed", "topk10_raw",
           "topk10_smoothed", "stability_raw", "stability_smoothed", "stability_rms_debiased_smoothed",
           "fidelity_smoothed", "fidelity_rms_debiased_smoothed", "rse_max"],
          f"MNIST: {c.n_inputs} test digits × {c.n_pairs} trained pairs per setting; {samples_note}. "
          "topk: k = 1 % of the pixels (8 at 28², 500 at 224²); topk10: k = 10 % (78 at 28²). "
          "stability/fidelity: eq. 12/13 plain means; *_rms_debiased: root of the Monte-Carlo-debiased "
          "mean squared distance; rse_max: largest relative standard error of a smoothed map.",
          "Table 1's measures on our models, raw vs smoothed")  # fmt: skip
    sbs = st.table1_side_by_side(rows, c.table_noise_level, skipped=extras.skipped, n_boot=c.n_boot, seed=options.seed)
    claims = rp.paper_claims()["stability"]
    counts = st.verdict_counts(sbs)
    table("table1_side_by_side", "Table 1 of Ye & Farnia 2025 beside ours", sbs, list(st.SIDE_BY_SIDE_COLUMNS),
          f"Paper: {claims['paper']}; its numbers from smoothsal/data/paper_claims.json (σ = "
          f"{claims['table1_sigma']}, {claims['table1_samples']} samples, k = 500 at 224², ImageNet). "
          "Ours: Δ = smoothed − raw with a 95 % studentized bootstrap interval over model pairs × "
          "images (crossed); verdict by smoothsal.metrics.claims.claim_verdict (paper up: agrees if the "
          "interval is above 0, disagrees if below; down: the reverse; equal: agrees inside ±0.01; else "
          "inconclusive). topk: k = 1 % of the pixels (the paper's rule); topk10: k = 10 %, the same "
          f"rule. Verdict counts: {counts}. A disagreement is reported, not tuned away.",
          "every paper row with its numbers and direction, ours with an interval, and the verdict")  # fmt: skip
    trends = st.trend_table(rows, theory["rows"], n_boot=c.n_boot, seed=options.seed)
    table("trend_tests", "The paper's empirical claims as trend tests", trends,
          ["setting", "method", "quantity", "claim", "verdict", "sigmas", "endpoint", "units", "reason"],
          "Stability error non-increasing and fidelity error non-decreasing in σ (§5.1), tested on the "
          "Monte-Carlo-debiased squared errors per (pair, image) by smoothsal.metrics.theory.trend_test: "
          "disagrees if Holm over the grid's steps rejects a step against the claim at 5 %; agrees if "
          "not and σ_min → σ_max moves the claimed way (one-sided p ≤ 0.05); else inconclusive. The "
          "intervals resample pairs and images, not the noise draws (one seed).",
          "stability non-increasing / fidelity non-decreasing in σ, tested")  # fmt: skip
    bounds = st.bounds_table(theory, theory.get("input_ranges") or [1.0]) if theory["rows"] else []
    if bounds:
        table("theory_bounds", "Proposition 7 and Theorems 5–6 on the theory pair", bounds,
              ["method", "noise_level", "quantity", "statement", "measured_mean", "measured_max", "bound",
               "ratio_max", "exponent", "meaning"],
              "The pair trained in the theorems' regime (smooth_mlp: ball projection, softplus β=4, plain SGD with "
              "step c/(t+t0), c=1000, t0=1000). Constants per model in results.json (theory.constants). σ in pixel "
              "units = noise level × the largest value range of the explained digits. exponent: the σ-exponent of "
              "the bound, −1/(βc+1) for Theorem 6 with Remark 4's β.",
              "Proposition 7's fidelity bound against the measured fidelity; Theorems 5–6 computed")  # fmt: skip
    table("power_law_fits", "Power-law fits of the errors: y = c·σ^p (a description)", fits,
          ["setting", "method", "quantity", "exponent", "low", "high", "n_inputs", "n_sigmas"],
          f"Least squares in log–log over σ > 0; 95% percentile bootstrap over inputs ({c.n_boot} resamples). A "
          "description, not a test: Theorem 6 bounds the stability error by a term ∝ σ^(−1/(βc+1)), Proposition 7 "
          "the fidelity error by γσ√m; a bound does not predict a slope (the tests: trend_tests.md, "
          "theory_bounds.md).", "fitted exponents with intervals (description)")  # fmt: skip

    photo_rows = [r for r in rows if r["setting"] in (DA_IMAGENET, DR_IMAGENET) and r["noise_level"] > 0]
    rse_max = max((r["rse_max"] for r in photo_rows), default=float("nan"))
    command = stability_command(c)
    cpu_rows = float(sum(float(r.get("cpu_seconds", 0.0)) for r in [*rows, *theory["rows"]]))
    numbers = {
        "table1": {f"{r['setting']}/{r['method']}": {k: r[k] for k in ("ssim_raw", "ssim_smoothed", "topk_raw",
                   "topk_smoothed", "stability_raw", "stability_smoothed")} for r in t1},
        "side_by_side_verdicts": counts,
        "trend_verdicts": {f"{t['setting']}/{t['method']}/{t['quantity']}": t["verdict"] for t in trends},
        "prop7_ratio_max": max((b["ratio_max"] for b in bounds if b["quantity"].startswith("fidelity")), default=None),
        "imagenet_rse_max": rse_max if photo_rows else None,
        "imagenet_rse_below": c.max_rse,
        "imagenet_rse_ok": bool(rse_max < c.max_rse) if photo_rows else None,
        "mnist_rse_max": max((r["rse_max"] for r in rows if r["setting"] in c.settings), default=None),
        "n_samples": c.n_samples, "photo_samples": c.photo_samples, "quick": c.quick,
    }  # fmt: skip
    write_json(out / "results_numbers.json", _quote(numbers, command))
    notes = [QUICK_NOTE] if c.quick else []
    if photo_rows and not rse_max < c.max_rse:
        notes.append(f"the ImageNet maps' relative standard error reaches {rse_max:.3f} (target < {c.max_rse})")
    notes += [f"{k}: not run ({v})" for k, v in extras.skipped.items()]
    summary = rp.write_manifest(
        out, "reproduce-stability", "Reproducing the stability–fidelity trade-off (Ye & Farnia 2025)", figures, tables,
        numbers, {"settings": settings, "config_hash": store.config_hash, **_provenance(command),
                  "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - cpu0, 2),
                  "cpu_seconds_rows": round(cpu_rows, 2), "notes": notes, "paper": claims,
                  "models": extras.models, "photos": extras.photos},
    )  # fmt: skip
    if echo is not None:
        echo(f"wrote {len(figures)} figures and {len(tables)} tables to {out}/ in {summary['seconds']:.1f} s "
             f"(rows: {cpu_rows:.0f} CPU s)")  # fmt: skip
        for note in notes:
            echo(f"note: {note}")
    if publish is not None:
        copies = publish_outputs(out, Path(publish))
        if echo is not None:
            echo(f"published {len(copies)} files to {publish}/")
    return summary
