"""The stability–fidelity study (Ye & Farnia 2025, arXiv:2411.05837): known answers first, then
end-to-end runs on tiny configurations."""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest
import torch
import typer
from conftest import SumSin
from typer.testing import CliRunner

from smoothsal.metrics.tradeoff import stability_error
from smoothsal.registry import method_factory, method_label
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.options import RunOptions
from smoothsal.studies.tradeoff import TradeoffConfig, register_cli, run_tradeoff
from smoothsal.studies.tradeoff.compute import curve_rows
from smoothsal.studies.tradeoff.report import recommend, table_noise_level
from smoothsal.studies.train import TrainConfig, load_split, models_for_setting

TINY_BASE = TrainConfig(dataset="digits", epochs=1)
TINY = dict(
    methods=("grad", "gradcam"),
    noise_levels=(0.0, 0.15, 0.3),
    settings=("DT", "DA"),
    n_inputs=6,
    n_samples=3,
    n_models=3,
    base=TINY_BASE,
)
#: the settings of RunOptions (the rest are TradeoffConfig's)
RUN_KEYS = ("batch_size", "progress", "fresh", "seed", "device", "max_memory")
FILES = (
    "results.csv",
    "results.json",
    "models.json",
    "stability_vs_sigma.png",
    "fidelity_vs_sigma.png",
    "pareto.png",
    "table1.md",
    "recommendation.json",
)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoothsal_cache")


@pytest.fixture(autouse=True)
def _cache_env(model_cache, monkeypatch):
    monkeypatch.setenv("SMOOTHSAL_CACHE", str(model_cache))


def tiny(**settings):
    return TradeoffConfig(**{**TINY, **{k: v for k, v in settings.items() if k not in RUN_KEYS}})


def options(out, **settings):
    return RunOptions(out=out, **{"progress": False, **{k: v for k, v in settings.items() if k in RUN_KEYS}})


def run_tiny(out, *, on_row=None, **settings):
    """``run_tradeoff`` of the tiny config (``settings``: its changes and the run options)."""
    return run_tradeoff(tiny(**settings), options(out, **settings), on_row=on_row)


def run(out, **settings):
    """:func:`run_tiny` with Grad-CAM's "left out the MLP" warnings silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*left out", category=UserWarning)
        return run_tiny(out, **settings)


class Interrupted(RuntimeError):
    pass


def _csv_rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---- known answers ----------------------------------------------------------------------------
def test_smoothing_lowers_the_stability_error_of_two_jagged_models():
    """f_i(x) = Σ sin(w_i x): gradient w_i cos(w_i x), SmoothGrad w_i cos(w_i x) exp(−w_i²σ²/2) ≈ 0.

    At σ = 0 the stability error (eq. 12) is the closed form mean_x ‖g_1(x) − g_2(x)‖; at a large σ
    both smoothed maps vanish (up to Monte-Carlo error), so the stability error collapses and the
    fidelity error (eq. 13) becomes the size of the raw maps.
    """
    torch.manual_seed(0)
    x = torch.rand(8, 16)
    w1, w2 = torch.full((16,), 20.0), torch.full((16,), 25.0)
    models = [SumSin(w1), SumSin(w2)]
    targets = torch.zeros(8, dtype=torch.long)
    rows = dict(curve_rows("grad", models, ["a", "b"], x, targets, [0.0, 1.0], smooth=SmoothSpec(n_samples=400, seed=0)))

    g1, g2 = w1 * torch.cos(w1 * x), w2 * torch.cos(w2 * x)  # [8, 16] exact gradients
    assert rows[0.0]["stability_mean"] == pytest.approx(float((g1 - g2).norm(dim=1).mean()), rel=1e-5)
    assert rows[0.0]["fidelity_mean"] == 0.0 and rows[0.0]["n_samples"] == 0
    assert rows[0.0]["n_pairs"] == 1 and rows[0.0]["models"] == "a+b"
    # smoothing at σ = 100 % of the range: both maps ≈ 0, Monte-Carlo error ≈ w / sqrt(2 n) per entry
    assert rows[1.0]["stability_mean"] < 0.15 * rows[0.0]["stability_mean"]
    raw_size = float(torch.cat([g1, g2]).norm(dim=1).mean())
    assert rows[1.0]["fidelity_mean"] == pytest.approx(raw_size, rel=0.1)
    assert rows[1.0]["n_samples"] == 400


class LinearPlusSine(torch.nn.Module):
    """One logit ``f(x) = w·x + sign · a sin(ω u·x)`` (and 0): the gradient is ``w + sign · aω u cos(ω u·x)``.

    Gaussian smoothing with σ damps the high-frequency term exactly: E_z ∇f(x + z) =
    ``w + sign · aω u cos(ω u·x) exp(−ω² σ² |u|² / 2)``, and leaves ``w`` alone.
    """

    def __init__(self, w: torch.Tensor, u: torch.Tensor, a: float, omega: float, sign: float) -> None:
        super().__init__()
        self.w, self.u, self.a, self.omega, self.sign = w, u, a, omega, sign
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x @ self.w + self.sign * self.a * torch.sin(self.omega * (x @ self.u))
        return torch.stack([f, torch.zeros_like(f)], dim=1)


@pytest.mark.parametrize("sigma", [0.05, 0.1])
def test_smoothing_lowers_the_stability_error_of_a_controlled_pair_by_the_closed_form_factor(sigma):
    """f_± = w·x ± a sin(ω u·x): the two gradients differ by 2aω u cos(ω u·x), so

    Stab(0) = mean_x 2aω |u| |cos(ω u·x)|, and Stab(σ) = Stab(0) · exp(−ω² σ² |u|² / 2) (eq. 12
    with the closed form of the smoothed gradients); the fidelity error of either model is
    Fid(σ) = mean_x aω |u| |cos(ω u·x)| (1 − exp(−ω² σ² |u|² / 2)) (eq. 13).

    u = e_1, so only the first noise coordinate matters: with the Latin-hypercube sampler it is
    stratified over the n draws, and n = 256 puts the Monte-Carlo error far below the tolerance.
    """
    from smoothsal.methods.gradient import VanillaGradient
    from smoothsal.metrics.tradeoff import fidelity_error
    from smoothsal.smoothing import Smooth

    d, a, omega = 6, 0.5, 20.0
    w = torch.linspace(-1, 1, d, dtype=torch.float64)
    u = torch.zeros(d, dtype=torch.float64)
    u[0] = 1.0
    pair = [LinearPlusSine(w, u, a, omega, +1.0), LinearPlusSine(w, u, a, omega, -1.0)]
    x = torch.rand(10, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.zeros(10, dtype=torch.long)
    cos = (omega * (x @ u)).cos().abs()
    damping = math.exp(-(omega**2) * sigma**2 / 2)

    def smoothed(m):
        return Smooth(VanillaGradient(m), noise_level=sigma, value_range=(0.0, 1.0), n_samples=256, sampler="lhs", seed=0)

    raw = stability_error(VanillaGradient, pair, x, targets)
    smooth = stability_error(smoothed, pair, x, targets)
    assert raw.mean == pytest.approx(float((2 * a * omega * cos).mean()), rel=1e-10)
    assert smooth.mean == pytest.approx(float((2 * a * omega * cos).mean()) * damping, rel=0.05)
    assert smooth.mean < raw.mean  # smoothing must lower it: by exp(−ω²σ²/2) = 0.61 at σ = 0.05, 0.14 at 0.1
    fid = fidelity_error(VanillaGradient, pair[0], x, targets, noise_level=sigma, n_samples=256, seed=0)
    # fidelity_error: σ is a fraction of each input's own range, and the noise is Gaussian (not
    # stratified): a per-input damping and a looser tolerance (Monte-Carlo error ≈ 0.7/√256 per input)
    sigma_x = sigma * (x.amax(1) - x.amin(1))
    expected = (a * omega * cos * (1 - torch.exp(-(omega**2) * sigma_x**2 / 2))).mean()
    assert fid.mean == pytest.approx(float(expected), rel=0.1)


def test_recommended_sigma_of_a_hand_made_curve():
    """Stability 1, .3, .2, .15 and fidelity 0, .1, .5, 1 over σ = 0, .1, .2, .3: the knee is σ = .1.

    Scaled to [0, 1] the points are (0, 1), (.1, .176), (.5, .059), (1, 0); the chord joins the two
    ends and σ = .1 lies farthest below it ((1 − .276)/√2 = .51 vs .31 for σ = .2).
    """
    grid = [0.0, 0.1, 0.2, 0.3]
    stab, fid = [1.0, 0.3, 0.2, 0.15], [0.0, 0.1, 0.5, 1.0]
    rows = [
        {"setting": "DT", "method": m, "noise_level": g, "stability_norm_mean": s * k, "fidelity_norm_mean": f * k}
        for m, k in (("grad", 1.0), ("ig", 2.0))
        for g, s, f in zip(grid, stab, fid)
    ]  # "ig" is the same curve scaled by 2: the same knee
    overall, per_curve = recommend(rows, grid)
    assert per_curve["DT/grad"].noise_level == 0.1 and per_curve["DT/ig"].noise_level == 0.1
    assert overall.noise_level == 0.1 and overall.rule == "knee"
    assert [p["stability"] for p in overall.table] == pytest.approx([1.5 * s for s in stab])  # mean of the curves
    # a fidelity bound picks the largest σ within it
    assert recommend(rows[:4], grid, fidelity_bound=0.6)[0].noise_level == 0.2
    # a curve missing a σ of the grid does not count
    with pytest.raises(ValueError, match="every noise level"):
        recommend(rows[:3], grid)


def test_table_noise_level_picks_the_nearest_positive_sigma():
    assert table_noise_level([0.0, 0.1, 0.2], 0.15) == 0.1  # a tie goes to the smaller σ
    assert table_noise_level([0.0, 0.15, 0.3], 0.15) == 0.15
    assert math.isnan(table_noise_level([0.0], 0.15))


# ---- configuration -------------------------------------------------------------------------------
def test_config_is_checked_before_any_work(tmp_path):
    cases = [
        (dict(noise_levels=(0.0, -0.1)), "negative values"),
        (dict(methods=("sobel",)), "unknown method 'sobel'"),
        (dict(methods=("grad", "nope")), "unknown method 'nope'"),
        (dict(n_models=1), "`n_models` must be >= 2"),
        (dict(dataset="imagenet"), "`dataset` must be one of"),
        (dict(dataset="mnist", n_models=3, settings=("DR",), base=None), "`n_models` must be 2 for setting 'DR' on MNIST"),
        (dict(dataset="mnist"), "`image_size` must be 28"),  # TINY's base is a 32-pixel digits recipe
        (dict(settings=("DT", "XX")), "unknown \\['XX'\\]"),
        (dict(epochs=0), "`epochs` must be >= 1"),
        (dict(noise_levels=(0.0,)), "σ > 0"),
        (dict(n_models=5, settings=("DA",)), "n_models"),
        (dict(table_noise_level=-1.0), "table_noise_level"),
        (dict(ig_steps=1), "ig_steps"),
    ]
    for settings, message in cases:
        with pytest.raises(ValueError, match=message):
            tiny(**settings)
    with pytest.raises(ValueError, match="batch_size"):
        options(tmp_path, batch_size=0)
    assert not any(tmp_path.iterdir())  # nothing was written
    with pytest.raises(ValueError, match=r"settings.*DA"):
        TradeoffConfig.preset("quick", dataset="photos", settings=("DT",))
    with pytest.raises(ValueError, match="`preset`"):
        TradeoffConfig.preset("medium")
    mnist = TradeoffConfig.preset("quick", dataset="mnist")
    assert mnist.n_models == 2 and mnist.base.arch == "lenet" and mnist.base.image_size == 28


def test_presets_aliases_and_the_sigma_zero_rule(tmp_path):
    quick = TradeoffConfig.preset("quick")
    assert quick.noise_levels == (0.0, 0.05, 0.15, 0.3) and quick.base.epochs == 2 and not quick.zero_added
    assert TradeoffConfig.preset("quick", base=TINY_BASE).base.epochs == 1  # a given base keeps its epochs
    assert TradeoffConfig().n_inputs == 128 and TradeoffConfig().base.epochs == TrainConfig().epochs
    photos = TradeoffConfig.preset("quick", dataset="photos")
    assert photos.settings == ("DA",) and photos.n_inputs == 4 and photos.base is None
    config = tiny(methods="smoothgrad,integrated_gradients", noise_levels=(0.3, 0.15))
    assert config.methods == ("grad", "ig")
    assert config.noise_levels == (0.0, 0.15, 0.3) and config.zero_added
    # the hash holds what changes results (the run options: only the seed), not where they go
    assert tiny(methods=("grad",)).to_hash(0) == tiny().to_hash(0)
    assert tiny(n_samples=4).to_hash(0) != tiny().to_hash(0) and tiny().to_hash(1) != tiny().to_hash(0)
    assert config.method_overrides("ig") == {} and tiny(ig_steps=8).method_overrides("ig") == {"steps": 8}
    assert tiny(ig_steps=8).method_overrides("grad") == {}


# ---- run_tradeoff ------------------------------------------------------------------------------------
def test_run_tradeoff_writes_every_output(tmp_path):
    with pytest.warns(UserWarning, match="DA/gradcam: left out m2:mlp"):
        result = run_tiny(tmp_path)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    for name in ("stability_vs_sigma.png", "fidelity_vs_sigma.png", "pareto.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.computed == 12 and len(result.rows) == 12 and len(_csv_rows(tmp_path / "results.csv")) == 12

    rows = {(r["setting"], r["method"], r["noise_level"]): r for r in result.rows}
    for (setting, method, sigma), r in rows.items():
        assert r["n_pairs"] == r["n_models"] * (r["n_models"] - 1) // 2
        if sigma == 0:
            assert r["fidelity_mean"] == 0 and r["fidelity_norm_mean"] == 0 and r["n_samples"] == 0
        else:
            assert r["n_samples"] == 3
    # DA trains cnn, cnn_wide, mlp: Grad-CAM needs a conv layer, so the MLP is left out of its pairs
    assert rows[("DA", "grad", 0.0)]["n_models"] == 3 and rows[("DA", "gradcam", 0.0)]["n_models"] == 2
    assert "mlp" not in rows[("DA", "gradcam", 0.0)]["models"]

    # the σ = 0 row is the plain stability error on the fixed inputs with their true labels
    _, test = load_split("digits")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:6]
    models = [t.model for t in models_for_setting("DT", n_models=3, base=TINY_BASE, progress=False)]
    direct = stability_error(method_factory("grad"), models, test.images[idx], test.labels[idx])
    assert rows[("DT", "grad", 0.0)]["stability_mean"] == pytest.approx(direct.mean, rel=1e-5)
    assert rows[("DT", "grad", 0.0)]["stability_norm_mean"] == pytest.approx(direct.mean_normalized, rel=1e-5)
    # the σ > 0 rows' fidelity error (eq. 13) is each model's own, pooled over the models' inputs
    from smoothsal.methods.gradient import VanillaGradient
    from smoothsal.metrics.tradeoff import fidelity_error

    for sigma in (0.15, 0.3):
        own = [fidelity_error(VanillaGradient, m, test.images[idx], test.labels[idx], noise_level=sigma, n_samples=3,
                              seed=0).mean for m in models]  # fmt: skip
        assert rows[("DT", "grad", sigma)]["fidelity_mean"] == pytest.approx(sum(own) / len(own), rel=1e-4)

    # table1.md shows the rows' numbers: raw = σ 0, smoothed = σ 0.15, the higher one in bold
    table = (tmp_path / "table1.md").read_text()
    assert "σ = 0.15" in table
    for method in ("grad", "gradcam"):
        for setting in ("DT", "DA"):
            line = next(t for t in table.splitlines() if t.startswith(f"| {method_label(method)} | {setting} |"))
            cells = [c.strip() for c in line.strip("|").split("|")][2:]
            r0, r1 = rows[(setting, method, 0.0)], rows[(setting, method, 0.15)]
            expected = [r0["ssim_mean"], r1["ssim_mean"], r0["topk_iou_mean"], r1["topk_iou_mean"]]
            assert [float(c.strip("*")) for c in cells] == pytest.approx(expected, abs=5e-4)
            for a, b in ((0, 1), (2, 3)):
                if f"{expected[a]:.3f}" != f"{expected[b]:.3f}":
                    assert cells[a if expected[a] > expected[b] else b].startswith("**")

    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert rec["overall"]["noise_level"] == result.recommendation.noise_level
    assert set(rec["per_curve"]) == {"DT/grad", "DT/gradcam", "DA/grad", "DA/gradcam"}
    payload = json.loads((tmp_path / "results.json").read_text())
    assert len(payload["rows"]) == 12 and set(payload["models"]) == {"DT", "DA"}
    assert all(0 <= m["test_accuracy"] <= 1 for m in payload["models"]["DT"])
    # results.csv holds the rows' numbers exactly
    first = _csv_rows(tmp_path / "results.csv")[0]
    r = result.rows[0]
    assert (first["setting"], first["method"], float(first["noise_level"])) == (r["setting"], r["method"], r["noise_level"])
    assert float(first["stability_mean"]) == r["stability_mean"]
    assert [float(v) for v in first["pair_stability"].split()] == r["pair_stability"]


def test_run_tradeoff_resumes_after_an_interruption(tmp_path):
    seen = []

    def stop_after_three(row):
        seen.append((row["setting"], row["method"], row["noise_level"]))
        if len(seen) == 3:
            raise Interrupted("simulated interruption")

    # a fixed batch size: bitwise equality (the automatic one learns between runs, and a CPU
    # convolution's last bits can depend on its batch size)
    with pytest.raises(Interrupted):
        run_tiny(tmp_path / "a", batch_size=8, on_row=stop_after_three)
    assert len((tmp_path / "a" / "records.jsonl").read_text().splitlines()) == 1 + 3  # models of DT + 3 rows
    first = list(seen)

    seen.clear()
    with pytest.warns(UserWarning, match="left out"):
        again = run_tiny(tmp_path / "a", batch_size=8, on_row=lambda row: seen.append(
            (row["setting"], row["method"], row["noise_level"])))  # fmt: skip
    assert again.computed == 9 and len(seen) == 9 and not set(first) & set(seen)  # nothing recomputed

    run(tmp_path / "b", batch_size=8)  # uninterrupted
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    assert (tmp_path / "a" / "table1.md").read_text() == (tmp_path / "b" / "table1.md").read_text()
    assert run(tmp_path / "a", batch_size=8).computed == 0  # a finished run recomputes nothing
    assert run(tmp_path / "a").computed == 0  # the batch size is not part of the configuration


def test_a_changed_configuration_never_mixes_with_old_rows(tmp_path):
    small = dict(settings=("DT",), methods=("grad",), noise_levels=(0.0, 0.1))
    old = run(tmp_path, **small)
    new = run(tmp_path, **small, n_samples=4)
    assert new.computed == 2  # nothing of the other configuration is reused ...
    assert [r["n_samples"] for r in new.rows] == [0, 4]
    assert [int(r["n_samples"]) for r in _csv_rows(tmp_path / "results.csv")] == [0, 4]  # ... or mixed in
    assert run(tmp_path, **small).computed == 0  # the old records are kept
    assert run(tmp_path, **small).rows == old.rows
    assert run_tiny(tmp_path, **small, n_samples=4, fresh=True).computed == 2  # --fresh clears


def test_a_grid_without_zero_gets_it(tmp_path):
    result = run(tmp_path, settings=("DT",), methods=("grad",), noise_levels=(0.15,))
    assert [r["noise_level"] for r in result.rows] == [0.0, 0.15] and result.config.zero_added
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["noise_levels"] == [0.0, 0.15] and "σ = 0" in payload["notes"][0]


# ---- CLI ------------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()
    register_cli(app)

    @app.command("noop")
    def noop() -> None:  # a second command, so typer keeps "tradeoff" as a subcommand
        pass

    return app


TINY_ARGS = ["--settings", "DT", "--methods", "grad,gradcam", "--inputs", "6", "--samples", "3", "--models", "3",
             "--epochs", "1", "--no-progress"]  # fmt: skip


def test_tradeoff_cli_on_a_tiny_config(tmp_path):
    result = CliRunner().invoke(_app(), ["tradeoff", "--out", str(tmp_path), "--noise-levels", "0,0.15,0.3",
                                         "--batch-size", "4", "--max-memory", "1GB", *TINY_ARGS])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recommended noise level:" in result.output and "DT/grad: σ =" in result.output
    assert "note:" not in result.output
    for name in FILES:
        assert (tmp_path / name).exists(), name
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert f"recommended noise level: {rec['overall']['noise_level']:g}" in result.output


def test_tradeoff_cli_adds_sigma_zero_and_says_so(tmp_path):
    result = CliRunner().invoke(_app(), ["tradeoff", "--out", str(tmp_path), "--noise-levels", "0.15", *TINY_ARGS])
    assert result.exit_code == 0, result.output
    assert "note: σ = 0 (the unsmoothed map) was added to the noise grid" in result.output
    assert sorted({float(r["noise_level"]) for r in _csv_rows(tmp_path / "results.csv")}) == [0.0, 0.15]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--noise-levels", "0,-0.1"], "negative"),
        (["--noise-levels", "0,abc"], "comma-separated numbers"),
        (["--epochs", "0"], "`epochs` must be >= 1"),
        (["--methods", "grad,nope"], "unknown method 'nope'"),
        (["--settings", "DT,XX"], "XX"),
        (["--max-memory", "lots"], "error:"),
    ],
)
def test_tradeoff_cli_reports_bad_options_before_any_work(tmp_path, args, message):
    out = tmp_path / "bad"
    result = CliRunner().invoke(_app(), ["tradeoff", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert not out.exists()


def test_photos_need_the_da_setting(tmp_path):
    with pytest.raises(ValueError, match=r"settings.*DA"):
        TradeoffConfig(dataset="photos", settings=("DT",), n_inputs=2)


@pytest.mark.slow
def test_photos_compare_the_pretrained_lite_models(tmp_path):
    config = TradeoffConfig.preset("quick", dataset="photos", methods=("grad",), noise_levels=(0.0, 0.15), n_inputs=1,
                                   n_samples=2)  # fmt: skip
    result = run_tradeoff(config, options(tmp_path))
    assert [r["noise_level"] for r in result.rows] == [0.0, 0.15]
    models = json.loads((tmp_path / "models.json").read_text())["DA"]
    assert [m["name"] for m in models] == ["m0:lite0", "m1:lite1", "m2:lite2"]
    # three different networks explain the same photo differently, smoothed or not
    assert all(r["n_pairs"] == 3 and r["stability_norm_mean"] > 0.1 for r in result.rows)
    assert result.rows[0]["fidelity_norm_mean"] == 0.0 and result.rows[1]["fidelity_norm_mean"] > 0
