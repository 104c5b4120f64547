"""The noise-kinds study's report: fronts, matched-fidelity rule and conclusion on records with a known answer."""

import math

import numpy as np
import pytest

from smoothsal.studies.noise_kinds.config import NoiseKindsConfig
from smoothsal.studies.noise_kinds.report import conclusion, fronts, matched_cells, unit_arrays

PAIRS, IMAGES = 3, 8


def _records(stability_of, noise=0.02, seed=0):
    """Records of one group: raw maps of norm 1 and raw squared stability 1; at each (kind, level) the
    squared fidelity is level² (so fidelity 0.3 sits at level 0.3 for every kind) and the squared
    stability ``stability_of(kind, level)``, plus per-unit noise."""
    rng = np.random.default_rng(seed)
    config = NoiseKindsConfig(groups=("mnist:DT",), levels=(0.2, 0.4, 0.8), n_pairs=PAIRS)
    recs = []
    for pair in range(PAIRS):
        ones = [1.0] * IMAGES
        recs.append({"group": "mnist:DT", "pair": pair, "kind": "raw", "level": 0.0, "stab2": ones,
                     "norm_a": ones, "norm_b": ones})  # fmt: skip
        for kind in config.kinds:
            for level in config.levels:
                jitter = lambda: (rng.normal(0, noise, IMAGES)).tolist()  # noqa: E731
                recs.append({
                    "group": "mnist:DT", "pair": pair, "kind": kind, "level": level,
                    "stab2": (stability_of(kind, level) + np.array(jitter())).tolist(),
                    "fid2_a": (level**2 + np.array(jitter()) * 0.01).tolist(),
                    "fid2_b": (level**2 + np.array(jitter()) * 0.01).tolist(),
                })  # fmt: skip
    return config, recs


def test_the_kind_with_lower_stability_at_matched_fidelity_wins():
    # stability² = 1 - level (input, both) but 1 - 2·level for weights, capped at 0.05
    config, recs = _records(lambda k, lv: max(0.05, 1 - (2 if k == "weights" else 1) * lv))
    cells = matched_cells(recs, config, targets=(0.3,))
    (cell,) = cells
    # fidelity 0.3 is F² = 0.09, between levels 0.2 (F² = 0.04) and 0.4 (0.16): weight w = 5/12 on 0.4
    w = 5 / 12
    assert cell.levels["weights"] == pytest.approx((1 - w) * 0.2 + w * 0.4, abs=1e-3)
    assert cell.stability["weights"] == pytest.approx(math.sqrt((1 - w) * 0.6 + w * 0.2), abs=0.01)
    assert cell.stability["input"] == pytest.approx(math.sqrt((1 - w) * 0.8 + w * 0.6), abs=0.01)
    assert cell.verdict == "weights"
    assert conclusion(cells)[0] == "weights"


def test_equal_kinds_are_inconclusive():
    config, recs = _records(lambda k, lv: max(0.05, 1 - lv), noise=0.05)
    cells = matched_cells(recs, config, targets=(0.3, 0.6))
    assert all(c.verdict == "inconclusive" for c in cells)
    assert conclusion(cells)[0] == "inconclusive"


def test_a_kind_that_never_reaches_the_target_takes_no_part():
    config, recs = _records(lambda k, lv: 1 - lv / 2)
    for r in recs:  # weight noise moves the map little: fidelity² = level² / 100
        if r["kind"] == "weights":
            r["fid2_a"] = r["fid2_b"] = [r["level"] ** 2 / 100] * IMAGES
    (cell,) = matched_cells(recs, config, targets=(0.6,))
    assert cell.stability["weights"] is None and cell.levels["weights"] is None
    assert "weights never reach" in cell.reason


def test_fronts_are_root_mean_squares_with_intervals_and_pareto_flags():
    config, recs = _records(lambda k, lv: 1 - lv if k != "both" else 1 - lv / 4, noise=0.0)
    points = fronts(recs, config)
    raw = next(p for p in points if p.kind == "raw")
    assert (raw.fidelity, raw.stability) == (0.0, 1.0)
    p = next(p for p in points if p.kind == "input" and p.level == 0.4)
    assert p.fidelity == pytest.approx(0.4, rel=1e-3) and p.stability == pytest.approx(math.sqrt(0.6))
    assert p.stability_low <= p.stability <= p.stability_high
    assert all(q.pareto for q in points if q.kind == "input")  # each level: more fidelity error, less instability
    arrays = unit_arrays(recs, "mnist:DT")
    assert arrays[("input", 0.2)]["stab2"].shape == (PAIRS, IMAGES)


def test_config_checks():
    with pytest.raises(ValueError, match="n_samples"):
        NoiseKindsConfig(n_samples=7)
    with pytest.raises(ValueError, match="groups"):
        NoiseKindsConfig(groups=("cifar:DT",))
    with pytest.raises(ValueError, match="levels"):
        NoiseKindsConfig(levels=(0.0,))
    spec = NoiseKindsConfig().spec("both", 0.2, seed=1)
    assert (spec.noise_level, spec.weight_noise, spec.noise_kind) == (0.2, 0.2, "both")
    assert NoiseKindsConfig().spec("weights", 0.2, seed=1).noise_level == 0.0


def test_a_run_writes_its_files_and_resumes(tmp_path, monkeypatch):
    # the compute step end to end on small CNNs in place of the trained pairs (their loading takes a minute)
    import torch

    from conftest import small_cnn
    from smoothsal.studies.noise_kinds import compute, run
    from smoothsal.studies.options import RunOptions

    def tiny(group, config, options):
        models = [small_cnn(seed=s) for s in range(4)]
        pairs = [(f"m{2 * p}", models[2 * p], f"m{2 * p + 1}", models[2 * p + 1]) for p in range(2)]
        x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        return compute.GroupData(pairs, x, torch.tensor([0, 1, 2, 0]))

    monkeypatch.setattr(compute, "group_data", tiny)
    config = NoiseKindsConfig(groups=("mnist:DT",), levels=(0.1, 0.5), n_samples=4, n_pairs=2)
    options = RunOptions(out=tmp_path, progress=False)
    first = run.run_noise_kinds(config, options)
    assert first.computed == 2 * (1 + 3 * 2)  # per pair: raw + 3 kinds × 2 levels
    assert all(p.exists() for p in first.paths.values())
    header = first.paths["fronts.csv"].read_text().splitlines()[0]
    assert header.startswith("group,kind,level,fidelity")
    again = run.run_noise_kinds(config, options)
    assert again.computed == 0 and again.answer == first.answer  # resumed from the store
    both = next(p for p in first.points if p.kind == "both" and p.level == 0.5)
    weights = next(p for p in first.points if p.kind == "weights" and p.level == 0.5)
    assert both.fidelity > 0 and weights.fidelity > 0
