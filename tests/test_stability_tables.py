"""``reproduce stability``'s tables from hand-made rows: Table 1 beside the paper's, the trend and bound tables,
and the per-pair numbers of one row (known answers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smoothsal.metrics.claims import table1
from smoothsal.studies.reproduce.stability import ModelMaps, pair_values
from smoothsal.studies.reproduce.stability_tables import (
    NOT_RUN,
    bounds_table,
    table1_side_by_side,
    trend_table,
)

KS = {"paper_fraction": 8, "ten_percent": 78}


def _row(setting, method, sigma, ssim, topk, stab_sq, fid_sq, seed):
    """A row of 3 pairs × 12 images around the given means (small noise, fixed seed)."""
    rng = np.random.default_rng(seed)
    noisy = lambda m: (m + 0.01 * rng.standard_normal((3, 12))).tolist()
    arrays = {"ssim": noisy(ssim), "topk_paper_fraction": noisy(topk), "topk_ten_percent": noisy(topk),
              "stability_sq_debiased": noisy(stab_sq), "fidelity_sq_debiased": noisy(fid_sq)}  # fmt: skip
    return {"setting": setting, "method": method, "noise_level": sigma, "arrays": arrays, "ssim_mean": ssim,
            "topk_iou_mean": topk, "topk": KS}  # fmt: skip


def _curve(setting, method, ssim, topk, seed):
    """σ = 0 and 0.15: SSIM and top-k move from the first to the second number; stability falls, fidelity grows."""
    return [_row(setting, method, 0.0, ssim[0], topk[0], 2.0, 0.0, seed),
            _row(setting, method, 0.15, ssim[1], topk[1], 1.0, 1.0, seed + 1)]  # fmt: skip


def test_side_by_side_scores_every_paper_row_by_its_own_direction():
    rows = (_curve("DT", "grad", (0.5, 0.4), (0.2, 0.3), 0)  # paper: SSIM up, top-k up
            + _curve("DT", "gradcam", (0.8, 0.75), (0.2, 0.2), 10)  # paper: SSIM down (0.872 → 0.846)
            + _curve("DA", "gradcam", (0.5, 0.6), (0.1, 0.2), 20))  # the paper has no DA Grad-CAM row  # fmt: skip
    lines = table1_side_by_side(rows, 0.15, skipped={"DR-ImageNet": "weights not given"}, n_boot=300)
    by = {(line["paper_row"], line["ours"]): line for line in lines}
    grad = by[("DT Simple-Grad (ResNet50)", "DT grad")]
    assert grad["ssim_paper"] == "0.163 → 0.227" and grad["ssim_direction"] == "up"
    assert grad["ssim_verdict"] == "disagrees" and grad["topk_verdict"] == "agrees"
    cam = by[("DT Grad-CAM (ResNet50)", "DT gradcam")]
    assert cam["ssim_direction"] == "down" and cam["ssim_verdict"] == "agrees"  # our fall agrees with the paper's
    assert cam["topk_direction"] == "up" and cam["topk_verdict"] == "inconclusive"  # no change shown
    assert cam["topk_ours"].startswith("k=8:") and cam["topk10_ours"].startswith("k=78:")
    ours_only = [line for line in lines if line["ours"] == "DA gradcam"]
    assert len(ours_only) == 1 and ours_only[0]["ssim_verdict"] == "ours only" and ours_only[0]["paper_row"] == "(none)"
    # every paper row appears, each with its numbers; rows we did not run say so, with the reason
    labels = {line["paper_row"] for line in lines}
    assert {r.label for r in table1().rows} <= labels
    missing = by[("DR Grad-CAM (ResNet50)", "DR gradcam")]
    assert missing["ssim_verdict"] == NOT_RUN and missing["ssim_paper"] == "0.729 → 0.754" and missing["note"]
    assert by[("DR Simple-Grad (ResNet50)", "DR-ImageNet grad")]["note"] == "weights not given"
    assert by[("DT Simple-Grad (ResNet50)", "DT-ImageNet grad")]["topk_verdict"] == NOT_RUN
    assert len(lines) == 16 + 4 + 4 + 1  # paper rows, their DT/DR ImageNet versions, ours only


def test_trend_table_reads_the_debiased_errors_of_each_curve():
    rows = _curve("DT", "grad", (0.5, 0.6), (0.2, 0.3), 0)
    res = {t["quantity"]: t for t in trend_table(rows, n_boot=300)}
    assert res["stability"]["verdict"] == "agrees" and res["stability"]["claim"] == "non-increasing"
    assert res["fidelity"]["verdict"] == "agrees" and res["fidelity"]["sigmas"] == "0 0.15"
    flat = _curve("DT", "grad", (0.5, 0.6), (0.2, 0.3), 0)
    flat[1]["arrays"]["stability_sq_debiased"] = (np.asarray(flat[1]["arrays"]["stability_sq_debiased"]) + 1.5).tolist()
    assert {t["quantity"]: t for t in trend_table(flat, n_boot=300)}["stability"]["verdict"] == "disagrees"


def test_bounds_table_by_hand():
    from smoothsal.studies.train import TheoryConstants

    # B = (2, 3): γ = 1 · (2·3) · 2 = 12; m = 4, σ = 0.1: Prop. 7's bound 12 · 0.1 · 2 = 2.4
    # Remark 4 with C = 1: α_{2,1} = 3 + 2 = 5, β ≤ 7 · 25 = 175; c = 0.01: Theorem 6's exponent −1/(1.75 + 1)
    consts = TheoryConstants(layers=2, input_dim=4, input_norm_bound=1.0, step_constant=0.01, step_offset=0, steps=10,
                             n_train=100, batch_size=1, weight_norms=(2.0, 3.0), final_weight_norms=(2.0, 3.0),
                             tracking_gap=0.0, lipschitz_estimate=1.0, gamma_estimate=1.0)  # fmt: skip
    arrays = {"fidelity": [[0.6, 1.2]], "stability": [[0.5, 0.7]]}
    theory = {"constants": [consts.to_dict()], "rows": [{"method": "grad", "noise_level": 0.1, "arrays": arrays}]}
    fid, stab = bounds_table(theory, [1.0])
    assert fid["bound"] == pytest.approx(2.4) and fid["ratio_max"] == pytest.approx(0.5)
    assert fid["measured_mean"] == pytest.approx(0.9)
    assert stab["exponent"] == pytest.approx(-1 / 2.75) and "not a test" in stab["meaning"]
    assert stab["bound"] == pytest.approx(consts.stability_bound(0.1))
    # σ in pixel units follows the inputs' value range
    assert bounds_table(theory, [2.0])[0]["bound"] == pytest.approx(4.8)


def test_pair_values_use_the_cross_term_of_the_halves():
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(2, 1, 12, 12, generator=gen)
    u = torch.zeros_like(raw)
    v = torch.zeros_like(raw)
    u[:, :, :6] = 0.1  # two half-means around the raw map with orthogonal errors: cross term exactly 0
    v[:, :, 6:] = 0.1
    full = raw + (u + v) / 2
    smooth = ModelMaps(full, (raw + u, raw + v), torch.zeros(2), torch.full((2,), 4.0))
    plain = ModelMaps(raw, None, torch.zeros(2), torch.zeros(2))
    out = pair_values([plain, plain], [smooth, smooth], KS)
    assert torch.allclose(out["fidelity_sq_debiased"], torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out["fidelity"] ** 2, torch.full((2,), 0.05**2 * 144, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(out["ssim"], torch.ones(2, dtype=torch.float64))  # the same maps: SSIM 1, IoU 1, distance 0
    assert torch.equal(out["topk_paper_fraction"], torch.ones(2, dtype=torch.float64))
    assert torch.equal(out["stability"], torch.zeros(2, dtype=torch.float64))
    other = ModelMaps(raw, None, torch.zeros(2), torch.zeros(2))
    flipped = pair_values([plain, other], [plain, ModelMaps(raw.flip(-1), None, torch.zeros(2), torch.zeros(2))], KS)
    assert torch.allclose(flipped["stability_sq_debiased"], flipped["stability"] ** 2)  # raw maps: the exact square
    with pytest.raises(ValueError, match="two models"):
        pair_values([plain], [smooth], KS)
