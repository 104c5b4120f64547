"""The ``smoothsal evaluate`` report card, built on a tiny CNN and tiny synthetic images."""

import csv
import json
import math

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from smoothsal.datasets.base import ImageDataset
from smoothsal.metrics import METRICS
from smoothsal.metrics.intervals import bootstrap_interval, images_needed, ratio_of_means
from smoothsal.metrics.sanity import MPRT_THRESHOLD
from smoothsal.studies.evaluate import EvaluateConfig, register_cli, run_evaluate
from smoothsal.studies.evaluate.report import COLUMNS, COLUMNS_MD, PER_IMAGE, PER_IMAGE_RANGE, SANITY_MD, arrow
from smoothsal.studies.options import RunOptions

QUICK_TINY = {"steps": 12, "fc_runs": 32, "mprt_checkpoints": 3, "roughness_pairs": 2, "ig_steps": 4, "line_steps": 5}


def evaluate(out, **settings):
    """``run_evaluate`` of the quick preset with the tiny settings, no progress bar."""
    return run_evaluate(EvaluateConfig.preset("quick", **{**QUICK_TINY, **settings}), RunOptions(out=out, progress=False))


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4),
    ).eval()  # fmt: skip


def blobs(n: int, size: int = 24, seed: int = 0, with_empty: bool = False) -> ImageDataset:
    """Dark noise with one 6×6 square whose colour (red, green, blue) is the class; mask = the square.

    With ``with_empty`` a quarter of the images have no square (class 3, "none"), so a model trained on
    them answers "none" once the square is removed.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 0.3
    labels = torch.randint(0, 4 if with_empty else 3, (n,), generator=g)
    corner = torch.randint(0, size - 6, (n, 2), generator=g)
    rows = torch.arange(size)[None, :, None]  # [1, H, 1]
    cols = torch.arange(size)[None, None, :]  # [1, 1, W]
    top, left = corner[:, 0, None, None], corner[:, 1, None, None]
    inside = (rows >= top) & (rows < top + 6) & (cols >= left) & (cols < left + 6)  # [N, H, W]
    inside &= (labels < 3)[:, None, None]
    colour = torch.full((n, 4), 0.15)
    colour[torch.arange(n), labels] = 0.9
    images = torch.where(inside[:, None], colour[:, :3, None, None], x)
    return ImageDataset(images, labels, inside[:, None], 4, ["red", "green", "blue", "none"])


def trained_cnn(shuffle_labels: bool = False) -> nn.Module:
    """``tiny_cnn`` trained for 80 Adam steps on :func:`blobs` (100 % test accuracy, ~1 s); with
    ``shuffle_labels`` on the same images with permuted labels (the data randomization test's model)."""
    data = blobs(256, seed=1, with_empty=True)
    if shuffle_labels:
        data.labels = data.labels[torch.randperm(256, generator=torch.Generator().manual_seed(5))]
    model = tiny_cnn().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        idx = torch.randint(0, 256, (32,), generator=g)
        loss = nn.functional.cross_entropy(model(data.images[idx]), data.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def data() -> ImageDataset:
    return blobs(8, seed=2)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_cnn()


@pytest.fixture(scope="module")
def report(tmp_path_factory, data, model):
    out = tmp_path_factory.mktemp("evaluate")
    shuffled = trained_cnn(shuffle_labels=True)
    rep = evaluate(out, methods="grad,gradcam", model=model, images=data.images, localization=(model, data),
                   baseline="black", data_randomization=(model, shuffled, blobs(16, seed=3).images))  # fmt: skip
    return out, model, rep


def test_report_has_method_rows_raw_and_smoothed_and_both_controls(report):
    _, _, rep = report
    assert [r["row"] for r in rep.rows] == ["grad", "grad_smooth", "gradcam", "gradcam_smooth", "sobel", "random"]
    assert rep.row("sobel")["kind"] == "control" and rep.row("random")["kind"] == "control"
    assert rep.row("grad_smooth")["smoothed"] and rep.row("grad_smooth")["label"] == "SmoothGrad"
    for r in rep.rows:  # every per-image value summarized, with its interval
        for key in PER_IMAGE:
            assert key in r and len(r[f"{key}_ci"]) == 2, (r["row"], key)
        assert len(r["_per_image"]["deletion_auc"]) == 8  # one value per image


def test_sobel_fails_sanity_the_gradient_is_read_by_the_rule_the_random_map_is_inconclusive(report):
    _, _, rep = report
    sobel, grad, rnd = rep.row("sobel"), rep.row("grad"), rep.row("random")
    assert sobel["sanity"] == "FAIL" and sobel["mprt_spearman_abs"] == pytest.approx(1.0)
    assert sobel["sanity_R_ci"] == pytest.approx([1.0, 1.0]) and sobel["mprt_ssim"] == pytest.approx(1.0)
    assert "fails" in sobel["sanity_reason"]
    # The gradient, by value: deterministic, so r = 1 for each image and R = Σs/Σr is the mean cascade
    # similarity; its interval is the seeded bootstrap of the stored pairs; it keeps clearly less of its
    # rank structure than the edge map (R = 1), measured R = 0.48 [0.23, 0.56] (studentized). On 8 images R sits near
    # the threshold 0.5, so its verdict (PASS or inconclusive) moves with float rounding: the test checks
    # that the stated verdict is the rule's reading of this interval, not which one it is.
    per = grad["_per_image"]
    assert per["mprt_r"] == [1.0] * 8 and grad["mprt_by_construction"]
    assert grad["sanity_R"] == pytest.approx(sum(per["mprt_s"]) / 8)
    iv = bootstrap_interval(per["mprt_s"], per["mprt_r"], statistic=ratio_of_means, seed=0)
    assert grad["sanity_R_ci"] == pytest.approx([iv.low, iv.high]) and iv.low <= grad["sanity_R"] <= iv.high
    assert 0.0 < iv.low and iv.high < 0.75
    if iv.high < MPRT_THRESHOLD:
        assert grad["sanity"] == "PASS" and "passes" in grad["sanity_reason"]
    else:  # never FAIL: the interval holds 0.5 (measured low end 0.23, far from it)
        assert iv.low < MPRT_THRESHOLD <= iv.high
        assert grad["sanity"] == f"inconclusive (≈ {images_needed(iv, MPRT_THRESHOLD)} images for 80 % power)"
        assert f"interval contains {MPRT_THRESHOLD}" in grad["sanity_reason"]
    assert sobel["mprt_by_construction"] and grad["mprt_by_construction"] and sobel["mprt_init"] == "scaled"
    # the random map is pure sampling noise: two seeds share nothing (r ≈ 0), so the check cannot
    # tell -- inconclusive, never PASS (and not the FAIL it got when one seed was reused)
    assert not rnd["mprt_by_construction"] and abs(rnd["mprt_r"]) < 0.05
    assert rnd["sanity"] == "inconclusive (map not reproducible)"
    # the smoothed rows measure their reference: below 1, well above the noise
    smooth = rep.row("grad_smooth")
    assert not smooth["mprt_by_construction"] and 0.5 < smooth["mprt_r"] < 0.99  # measured 0.85
    # R is Σs/Σ√(r·r̃) over the stored per-image values (r̃: the randomized map's own reproducibility,
    # measured, below 1), and its interval the seeded bootstrap of those pairs
    per = smooth["_per_image"]
    assert all(0.0 < v < 0.999 for v in per["mprt_rt"])
    denom = [math.sqrt(max(r, 0.0) * max(t, 0.0)) for r, t in zip(per["mprt_r"], per["mprt_rt"])]
    iv = bootstrap_interval(per["mprt_s"], denom, statistic=ratio_of_means, seed=0)
    assert smooth["sanity_R"] == pytest.approx(sum(per["mprt_s"]) / sum(denom))
    assert smooth["sanity_R"] != pytest.approx(sum(per["mprt_s"]) / sum(per["mprt_r"]), rel=1e-3)
    assert smooth["sanity_R_ci"] == pytest.approx([iv.low, iv.high])
    # sMPRT of the raw gradient is the MPRT of its smoothed row; eMPRT: the edge map's complexity stays (ratio 1)
    assert grad["smprt"] == smooth["sanity"] and grad["smprt_R"] == smooth["sanity_R"]
    assert sobel["emprt"] == pytest.approx(1.0) and sobel["emprt_verdict"] == "FAIL"
    assert grad["emprt_verdict"] == "PASS" and grad["emprt_ci"][0] > 1.0  # measured 1.24 [1.13, 1.33]


def test_mprt_seeds_are_resampled_with_the_images(tmp_path, monkeypatch, report, data, model):
    """``mprt_seeds=2``: each seed's per-image s and r̃ are recorded; seed 0's cascade is the one-seed
    card's; R is the ratio of totals over seeds × images and its interval the crossed two-level
    bootstrap of those values (seeds and images resampled)."""
    from smoothsal.metrics.intervals import two_level_interval
    from smoothsal.metrics.sanity import reproducibility

    rep = evaluate(tmp_path, methods="grad", model=model, images=data.images, sections="sanity", mprt_seeds=2,
                   data_randomization=False)  # fmt: skip
    one_seed = report[2].row("grad_smooth")
    row = rep.row("grad_smooth")
    seeds = row["_mprt_seeds"]
    assert row["mprt_n_seeds"] == 2 and len(seeds["s"]) == 2 and all(len(v) == 8 for v in seeds["s"])
    assert seeds["s"][0] == pytest.approx(one_seed["_mprt_seeds"]["s"][0])  # same seed, same draw
    assert seeds["s"][1] != pytest.approx(seeds["s"][0], abs=1e-6)
    assert row["_per_image"]["mprt_s"] == pytest.approx([(a + b) / 2 for a, b in zip(*seeds["s"])])
    s = torch.tensor(seeds["s"], dtype=torch.float64).numpy()
    d = reproducibility(torch.tensor(row["_per_image"]["mprt_r"]).expand(2, 8).numpy(), torch.tensor(seeds["rt"]).numpy())
    assert row["sanity_R"] == pytest.approx(s.sum() / d.sum())
    iv = two_level_interval(s, d, statistic="ratio", design="crossed", seed=0)
    assert row["sanity_R_ci"] == pytest.approx([iv.low, iv.high])
    assert "8 image(s) × 2 randomization seeds (both resampled)" in row["sanity_reason"]
    assert "× 2 randomization" not in one_seed["sanity_reason"]
    md = (tmp_path / "report.md").read_text()
    assert "3 checkpoints under 2 re-initialisation seed(s)" in md
    # each seed and the reference are store units of their own: with the row's record gone (a run
    # interrupted after its seeds), a rerun rebuilds the row from them without running a cascade
    records = (tmp_path / "records.jsonl").read_text().splitlines()
    units = [json.loads(line)["unit"] for line in records]
    assert {"section": "sanity_seed", "row": "grad_smooth", "seed": 1} in units
    assert {"section": "sanity_reference", "row": "grad_smooth"} in units
    kept = [line for line, u in zip(records, units) if u != {"section": "sanity", "row": "grad_smooth"}]
    (tmp_path / "records.jsonl").write_text("\n".join(kept) + "\n")

    def no_cascade(*args, **kwargs):
        raise AssertionError("a recorded seed was computed again")

    monkeypatch.setattr("smoothsal.metrics.sanity.mprt_over_seeds", no_cascade)
    again = evaluate(tmp_path, methods="grad", model=model, images=data.images, sections="sanity", mprt_seeds=2,
                     data_randomization=False).row("grad_smooth")  # fmt: skip
    assert again["_mprt_seeds"] == seeds and again["sanity_R"] == row["sanity_R"]


def test_data_randomization_uses_a_label_shuffled_model(report):
    _, _, rep = report
    grad, sobel = rep.row("grad"), rep.row("sobel")
    assert len(grad["_per_image"]["dr_s"]) == 16
    assert sobel["dr_verdict"] == "FAIL" and sobel["dr_R"] == pytest.approx(1.0)
    assert grad["dr_verdict"] == "PASS" and grad["dr_R_ci"][1] < 0.5, grad["dr_reason"]
    assert "permuted-label model(s)" in (rep.paths["report.md"].read_text())


def test_random_map_scores_at_chance_and_the_methods_above_it(report):
    _, _, rep = report
    rnd = rep.row("random")
    # same baseline for deletion and insertion: a random order gives equal areas in expectation
    assert abs(rnd["ins_minus_del"]) < 0.15, rnd
    assert abs(rnd["faithfulness_corr"]) < 0.3 and abs(rnd["monotonicity"]) < 0.3
    # ROAD: a random order removes the same pixels in expectation first and last (measured 0.02 [-0.04, 0.09])
    assert abs(rnd["road_combined"]) < 0.15 and rnd["road_combined_ci"][0] < 0 < rnd["road_combined_ci"][1]
    # the edge map's black-baseline deletion looks informative (ins−del 0.52); imputed, it is not (measured 0.000)
    sobel = rep.row("sobel")
    assert abs(sobel["road_combined"]) < 0.05 and sobel["ins_minus_del"] > 0.3
    assert abs(rnd["loc_mass"] - rep.settings["loc_chance_mass"]) < 0.05  # relevance mass ≈ mask area
    for key in ("grad", "grad_smooth", "gradcam"):
        row = rep.row(key)
        assert row["ins_minus_del"] > 0.5 and row["deletion_auc"] < rnd["deletion_auc"]
        assert row["road_combined"] > 0.9 and row["road_morf"] < rnd["road_morf"] - 0.5  # measured ≥ 0.985; MoRF ≤ 0.015
        assert row["prune_q90"] < rnd["prune_q90"]
        assert row["loc_pointing"] > 0.5 and row["loc_topk_iou"] > 2 * rnd["loc_topk_iou"]
    # SmoothGrad calms the gradient's roughness; the random map is the roughest of all
    assert rep.row("grad_smooth")["roughness"] < rep.row("grad")["roughness"] < rnd["roughness"]


def test_files_written_and_consistent(report):
    out, _, rep = report
    for name in ("report.csv", "report.json", "report.md", "deletion_insertion.png", "road.png", "randomization.png",
                 "jaggedness.png"):  # fmt: skip
        assert (out / name).exists(), name
        assert rep.paths[name] == out / name
    with (out / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["row"] for r in rows] == [r["row"] for r in rep.rows] and list(rows[0]) == list(COLUMNS)
    assert rows[-2]["sanity"] == "FAIL" and float(rows[-2]["sanity_R_low"]) == pytest.approx(1.0)
    data = json.loads((out / "report.json").read_text())
    assert len(data["rows"]) == 6 and data["settings"]["n_samples"] == 8 and data["settings"]["n_images"] == 8
    assert len(data["rows"][0]["_mprt"]["spearman_abs"]) == 3  # one value per cascade checkpoint
    md = (out / "report.md").read_text()
    assert "pointing game" in md and "bootstrap 95 % interval" in md


def test_rerun_resumes_and_skips_finished_work(tmp_path, data):
    model = tiny_cnn()
    kwargs = dict(methods="grad", model=model, images=data.images[:2], localization=False)
    first = evaluate(tmp_path, **kwargs)
    assert first.computed == 6 * 4 + 1  # 6 sections × (grad, SmoothGrad, Sobel, random) + the jaggedness lines
    second = evaluate(tmp_path, **kwargs)
    assert second.computed == 0
    assert second.rows == first.rows
    # one more method: only its rows are computed
    third = evaluate(tmp_path, **{**kwargs, "methods": "grad,guided"})
    assert third.computed == 6 * 2
    assert [r["row"] for r in third.rows][:2] == ["grad", "grad_smooth"] and third.rows[0] == first.rows[0]
    # other settings: nothing is reused, and nothing of theirs is mixed in ...
    fourth = evaluate(tmp_path, **{**kwargs, "noise_level": 0.3})
    assert fourth.computed == first.computed
    assert fourth.settings["config_hash"] != first.settings["config_hash"]
    # ... while the first settings' records are kept: running them again computes nothing
    assert evaluate(tmp_path, **kwargs).computed == 0


def test_sections_subset_shares_the_records(tmp_path, data):
    kwargs = dict(methods="grad", model=tiny_cnn(), images=data.images[:4], localization=False)  # MIN_IMAGES
    only = evaluate(tmp_path, sections="sanity", **kwargs)
    assert only.computed == 4 + 1  # sanity of grad, SmoothGrad, Sobel, random + the jaggedness lines
    assert "deletion_auc" not in only.row("grad") and only.row("sobel")["sanity"] == "FAIL"
    full = evaluate(tmp_path, **kwargs)  # the other sections are added; sanity is reused
    assert full.computed == 5 * 4 and full.row("grad")["sanity_R"] == only.row("grad")["sanity_R"]
    with pytest.raises(ValueError, match="sections"):
        EvaluateConfig(sections="sanity,nope", model=tiny_cnn())


def test_bad_arguments(tmp_path, data):
    model = tiny_cnn()
    with pytest.raises(ValueError, match="unknown method"):
        EvaluateConfig(methods="grad,nope", model=model, images=data.images[:2])
    with pytest.raises(ValueError, match="unknown method 'sobel'"):  # controls are rows of their own
        EvaluateConfig(methods="grad,sobel", model=model)
    with pytest.raises(TypeError, match="stepz"):
        EvaluateConfig.preset("quick", model=model, stepz=3)
    with pytest.raises(ValueError, match="noise_level"):
        EvaluateConfig(noise_level=-0.1, model=model)
    with pytest.raises(ValueError, match="baseline"):
        EvaluateConfig(baseline="grey", model=model)
    with pytest.raises(ValueError, match="randomization"):
        EvaluateConfig(randomization="xavier", model=model)
    with pytest.raises(ValueError, match="image_set"):
        EvaluateConfig(image_set="imagenet", model=model)
    with pytest.raises(TypeError, match="data_randomization"):
        EvaluateConfig(data_randomization=(model, model), model=model)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        EvaluateConfig(images=["nope.png"], model=model)
    with pytest.raises(ValueError, match="`model`"):
        EvaluateConfig(model="lite9")
    with pytest.raises(ValueError, match="masks"):
        unmasked = ImageDataset(data.images, data.labels, None, 4, data.class_names)
        EvaluateConfig(methods="grad", model=model, images=data.images[:2], localization=(model, unmasked))
    # aliases resolve through the registry; duplicates are dropped
    assert EvaluateConfig(methods="smoothgrad,gradient,integrated_gradients", model=model).methods == ("grad", "ig")


def test_cli_runs_on_a_user_model(tmp_path, monkeypatch, data):
    import sys
    import types

    module = types.ModuleType("tiny_user_models")
    def factory() -> nn.Module:
        model = tiny_cnn()
        model.image_size = 24  # read by smoothsal.models.zoo.load_model: images are loaded at 24 px
        return model

    module.factory = factory
    monkeypatch.setitem(sys.modules, "tiny_user_models", module)
    image = tmp_path / "shape.png"
    from PIL import Image

    Image.fromarray((data.images[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(image)
    images = [str(image)]  # four images (MIN_IMAGES): on fewer every verdict is "inconclusive (too few images)"
    for i in (1, 2, 3):
        images.append(str(tmp_path / f"shape{i + 1}.png"))
        Image.fromarray((data.images[i].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(images[-1])
    app = typer.Typer()
    register_cli(app)

    @app.command("noop")
    def noop() -> None:  # a second command, so typer keeps "evaluate" as a subcommand
        pass

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["evaluate", *images, "--methods", "grad", "--quick", "--samples", "4", "--out", str(out),
         "--model", "tiny_user_models:factory", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sanity check failed: Sobel edges (control)" in result.output
    assert "sanity check inconclusive:" in result.output
    assert (out / "report.md").exists()
    bad = CliRunner().invoke(app, ["evaluate", "--methods", "nope", "--out", str(out), "--model", "tiny_user_models:factory"])
    assert bad.exit_code == 2 and "unknown method" in bad.output
    # --device: resolved before any work; a device torch cannot use is an error naming it
    if not torch.cuda.is_available():
        bad = CliRunner().invoke(app, ["evaluate", "--device", "cuda:3", "--out", str(out), "--model",
                                       "tiny_user_models:factory"])  # fmt: skip
        assert bad.exit_code == 2 and "cuda:3" in bad.output
    bad = CliRunner().invoke(app, ["evaluate", "--randomization", "shuffle", "--out", str(out)])
    assert bad.exit_code == 2 and "randomization" in bad.output


def _parse(cell: str) -> list[float]:
    """``"0.213 [0.150, 0.281]"`` -> ``[0.213, 0.150, 0.281]``."""
    return [float(v) for v in cell.replace("[", " ").replace("]", " ").replace(",", " ").split()]


def test_table_numbers_are_the_rows_with_intervals_and_arrows_come_from_the_metrics(report):
    out, _, rep = report
    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method | final"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    # every arrow is the metric's own direction
    assert f"del AUC {METRICS['deletion_auc'].arrow}".strip() in cells
    assert f"ins AUC {METRICS['insertion_auc'].arrow}".strip() in cells
    assert f"roughness {METRICS['gradient_roughness'].arrow}".strip() in cells
    assert METRICS["deletion_auc"].arrow == "↓" and METRICS["insertion_auc"].arrow == "↑"
    assert arrow(("insertion_auc", "deletion_auc")) == "↑"  # ins − del: both terms agree on ↑
    assert arrow(("insertion_auc", "insertion_auc")) == ""
    main = [line for line in md.splitlines() if line.startswith("| ")]
    for r in rep.rows:
        # the main table: each cell is the row's estimate and its 95 % interval, formatted
        line = next(line for line in main if line.startswith(f"| {r['label']} |") and "%" not in line
                    and line.count("[") >= len(COLUMNS_MD) - 1)  # fmt: skip
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for col, cell in zip(COLUMNS_MD, cells):
            value, ci = r.get(col.key), r.get(f"{col.key}_ci")
            if isinstance(value, float) and math.isfinite(value) and ci and None not in ci:
                tol = 0.5 * 10 ** -col.digits
                assert _parse(cell) == pytest.approx([value, *ci], abs=tol), (r["row"], col.key)
                # and the interval is the seeded bootstrap of the stored per-image values, clipped to
                # the metric's range (a mean of probabilities keeps its interval in [0, 1])
                iv = bootstrap_interval(r["_per_image"][col.key], seed=0)
                lo, hi = PER_IMAGE_RANGE.get(col.key, (-math.inf, math.inf))
                assert ci == pytest.approx([min(max(iv.low, lo), hi), min(max(iv.high, lo), hi)]), (r["row"], col.key)
                assert lo <= ci[0] <= ci[1] <= hi
    # the sanity table states each verdict as the row holds it
    sanity_lines = [line for line in main if "by construction" in line or "inconclusive" in line or "scaled" in line]
    for r in rep.rows:
        line = next(line for line in sanity_lines if line.startswith(f"| {r['label']} | scaled"))
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        assert cells[[c.key for c in SANITY_MD].index("sanity")] == r["sanity"]


def test_completeness_delta_is_asked_of_the_method(tmp_path, data):
    """IG has a convergence delta (sum of the map vs F(x) − F(baseline)); the gradient has none."""
    rep = evaluate(tmp_path, methods="grad,ig", model=tiny_cnn(), images=data.images[:2], localization=False,
                   ig_steps=64)  # fmt: skip
    assert rep.row("grad")["convergence_delta"] is None and rep.row("sobel")["convergence_delta"] is None
    assert 0 <= rep.row("ig")["convergence_delta"] < 0.05  # 64 Gauss–Legendre points: nearly complete
    assert "Convergence delta" in rep.table
