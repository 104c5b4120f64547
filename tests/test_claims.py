"""Table 1 of Ye & Farnia 2025 number beside number: the transcription, the paper's direction rule,
the verdict rule (each branch on hand-made numbers), the row mapping, and the k of top-k on 28²."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch

from smoothsal.metrics.claims import (
    EQUIVALENCE_MARGIN,
    OURS_ONLY,
    claim_verdict,
    compare_with_paper,
    difference_interval,
    paper_direction,
    paper_rows_for,
    table1,
)
from smoothsal.metrics.intervals import MIN_IMAGES, Interval
from smoothsal.metrics.similarity import topk_choices


def test_table1_has_16_complete_rows_and_the_settings_as_printed():
    t = table1()
    assert len(t.rows) == 16
    raw = json.loads(resources.files("smoothsal").joinpath("data/paper_claims.json").read_text(encoding="utf-8"))
    for r in raw["stability"]["table1"]["rows"]:
        for key in ("setting", "algorithm", "method", "architectures", "ssim_raw", "ssim_smoothed", "topk_miou_raw",
                    "topk_miou_smoothed"):  # fmt: skip
            assert r.get(key) not in (None, "", []), (r, key)
        for key in ("ssim_raw", "ssim_smoothed", "topk_miou_raw", "topk_miou_smoothed"):
            assert len(r[key]) == 5 and 0.0 < float(r[key]) < 1.0  # "0.xyz", as printed
    assert [sum(r.setting == s for r in t.rows) for s in ("DT", "DR", "DA")] == [4, 4, 8]
    assert t.settings["noise_level"] == 0.15 and t.settings["n_samples"] == 100
    assert t.settings["topk"] == 500 and t.settings["image_size"] == 224
    # the three rows the issue quotes
    (dt_cam,) = paper_rows_for("DT", "gradcam")
    assert (dt_cam.ssim_raw, dt_cam.ssim_smoothed) == ("0.872", "0.846") and dt_cam.direction("ssim") == "down"
    (da_ig,) = paper_rows_for("DA", "ig", architectures=["Swin-T", "ConvNeXt-T"])
    assert (da_ig.ssim_raw, da_ig.ssim_smoothed) == ("0.268", "0.242") and da_ig.direction("ssim") == "down"
    (da_grad,) = paper_rows_for("DA", "grad", architectures=["ConvNeXt-T", "Swin-T"])
    assert (da_grad.ssim_raw, da_grad.ssim_smoothed) == ("0.201", "0.201") and da_grad.direction("ssim") == "equal"
    # every other SSIM row and every top-k row is "up"
    assert sum(r.direction("ssim") == "up" for r in t.rows) == 13
    assert all(r.direction("topk_miou") == "up" for r in t.rows)
    assert da_grad.numbers("topk_miou") == (0.047, 0.100)


def test_paper_direction_at_the_printed_precision():
    assert paper_direction(0.163, 0.227) == "up"
    assert paper_direction("0.872", "0.846") == "down"
    assert paper_direction(0.2014, 0.2006) == "equal"  # both print as 0.201
    assert paper_direction(0.2016, 0.2004) == "down"  # 0.202 -> 0.200
    assert paper_direction(0.2014, 0.2006, decimals=4) == "down"


def test_claim_verdict_every_branch():
    iv = lambda lo, hi, n=30: Interval((lo + hi) / 2, lo, hi, n)  # noqa: E731
    assert claim_verdict("up", iv(0.01, 0.05)) == "agrees"
    assert claim_verdict("up", iv(-0.05, -0.01)) == "disagrees"
    assert claim_verdict("up", iv(-0.01, 0.05)) == "inconclusive"
    assert claim_verdict("down", iv(-0.05, -0.01)) == "agrees"
    assert claim_verdict("down", iv(0.01, 0.05)) == "disagrees"
    assert claim_verdict("down", iv(-0.05, 0.01)) == "inconclusive"
    m = EQUIVALENCE_MARGIN
    assert claim_verdict("equal", iv(-m / 2, m / 2)) == "agrees"  # inside the margin
    assert claim_verdict("equal", iv(1.5 * m, 3 * m)) == "disagrees"  # a change larger than the margin
    assert claim_verdict("equal", iv(-3 * m, -1.5 * m)) == "disagrees"
    assert claim_verdict("equal", iv(m / 2, 2 * m)) == "inconclusive"  # straddles the margin
    assert claim_verdict("up", Interval(0.03, float("nan"), float("nan"), 1)) == "inconclusive"
    assert claim_verdict("up", iv(0.01, 0.05, n=MIN_IMAGES - 1)) == "inconclusive"  # too few images
    assert EQUIVALENCE_MARGIN < 0.012  # below the smallest change Table 1 prints (DT Grad-CAM++ SSIM)
    with pytest.raises(ValueError, match="direction"):
        claim_verdict("higher", iv(0.01, 0.05))


def test_our_rows_map_to_the_papers_by_setting_and_algorithm():
    assert len(paper_rows_for("DA", "grad")) == 4 and len(paper_rows_for("DA-ImageNet", "ig")) == 4
    assert [r.setting for r in paper_rows_for("DR", "gradcam++")] == ["DR"]
    assert paper_rows_for("DA", "gradcam") == [] and paper_rows_for("DA-ImageNet", "gradcam++") == []
    assert paper_rows_for("DT", "guided") == []
    assert len(paper_rows_for("DR-ImageNet", "grad", architectures=["ResNet50"])) == 1
    # an "ours only" row is listed, never scored
    (only,) = compare_with_paper("DA", "gradcam", {"ssim": Interval(0.05, 0.02, 0.08, 30)})
    assert only["paper_row"] is None and only["ssim_verdict"] == OURS_ONLY
    # one row of ours beside all four DA Simple-Grad rows: "up" rows agree, the "equal" row disagrees
    side = compare_with_paper("DA", "grad", {"ssim": Interval(0.05, 0.03, 0.07, 30),
                                             "topk_miou": Interval(0.02, -0.01, 0.05, 30)})  # fmt: skip
    verdicts = {s["paper_row"]: (s["ssim_direction"], s["ssim_verdict"], s["topk_miou_verdict"]) for s in side}
    assert verdicts["DA Simple-Grad (Swin-T & ConvNeXt-T)"] == ("equal", "disagrees", "inconclusive")
    assert verdicts["DA Simple-Grad (ResNet34 & ResNet50)"] == ("up", "agrees", "inconclusive")
    assert side[0]["ssim_paper"] == "0.141 → 0.180"


def test_difference_interval_pairs_units_and_resamples_pairs():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.1, 0.3, 20)
    iv = difference_interval(raw, raw + 0.05 + rng.normal(0, 0.01, 20))
    assert iv.low > 0.04 and iv.high < 0.06 and iv.n == 20
    raw2 = rng.uniform(0.1, 0.3, (3, 20))
    iv2 = difference_interval(raw2, raw2 + 0.05 + rng.normal(0, 0.01, (3, 20)))
    assert iv2.n_groups == 3 and iv2.n == 20 and iv2.low < 0.05 < iv2.high
    with pytest.raises(ValueError, match="one shape"):
        difference_interval(raw, raw[:5])


def test_topk_choices_on_28_by_28():
    assert topk_choices(28, 28) == {"paper_fraction": 8, "ten_percent": 78}
    assert topk_choices(224, 224)["paper_fraction"] == 500
    digits = torch.zeros(3, 1, 28, 28)
    digits[0, 0, 5:10, 5:9] = 1.0  # 20 stroke pixels
    digits[1, 0, 5:10, 5:11] = 0.8  # 30
    digits[2, 0, 5:15, 5:9] = 0.6  # 40
    digits[2, 0, 20, 20] = 0.2  # faint: below half the range
    assert topk_choices(28, 28, stroke_images=digits)["stroke_median"] == 30
    with pytest.raises(ValueError, match="stroke_images"):
        topk_choices(28, 28, stroke_images=torch.zeros(3, 1, 14, 14))
