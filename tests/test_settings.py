"""Typed settings: SmoothSpec (the smoothing), the registry's checked method settings, RunOptions
(how a study runs) built once by the CLI, and no process-wide state set by a command."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from conftest import Quadratic, small_cnn
from typer.testing import CliRunner

from smoothsal.execution import memory
from smoothsal.methods.gradient import VanillaGradient
from smoothsal.methods.integrated_gradients import IntegratedGradients
from smoothsal.registry import build_method, method_factory, register
from smoothsal.smoothing import Smooth, SmoothGrad
from smoothsal.smoothing_spec import SmoothSpec
from smoothsal.studies.options import RunOptions

SRC = Path(__file__).resolve().parents[1] / "src" / "smoothsal"


# ---- SmoothSpec -------------------------------------------------------------------------------------
def test_a_spec_round_trips_through_json_and_replace_checks_again():
    spec = SmoothSpec(noise_level=0.2, n_samples=8, statistic="var", seed=3, value_range=(0, 1), tol=0.1, min_samples=4)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data == {"noise_level": 0.2, "n_samples": 8, "statistic": "var", "sampler": "gaussian", "seed": 3,
                    "value_range": [0.0, 1.0], "tol": 0.1, "min_samples": 4}  # fmt: skip
    assert SmoothSpec.from_dict(data) == spec and SmoothSpec.from_dict({}) == SmoothSpec()
    assert spec.replace(n_samples=16).n_samples == 16 and spec.n_samples == 8  # frozen: a copy
    with pytest.raises(ValueError, match="`n_samples` must be >= 1"):
        spec.replace(n_samples=0)
    with pytest.raises(ValueError, match=r"unknown SmoothSpec settings \['n'\]"):
        SmoothSpec.from_dict({"n": 3})
    with pytest.raises(TypeError, match="torch.Generator.*no JSON form"):
        SmoothSpec(seed=torch.Generator()).to_dict()
    with pytest.raises(TypeError, match="no JSON form"):
        SmoothSpec(sampler=lambda shape, gen, device, dtype: torch.randn(shape, generator=gen)).to_dict()


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"noise_level": -0.1}, ValueError, "noise_level"),
        ({"statistic": "median"}, ValueError, "statistic"),
        ({"sampler": "laplace"}, ValueError, "sampler"),
        ({"sampler": "antithetic", "statistic": "var"}, ValueError, "dependent samples"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"value_range": (1.0, 0.0)}, ValueError, "value_range"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"min_samples": 0}, ValueError, "min_samples"),
    ],
)
def test_a_spec_names_the_bad_setting(changes, error, match):
    with pytest.raises(error, match=match):
        SmoothSpec(**changes)


def test_from_spec_is_the_keyword_constructor_bit_for_bit():
    model, x = small_cnn(), torch.rand(2, 3, 8, 8)
    spec = SmoothSpec(noise_level=0.2, n_samples=6, seed=4, statistic="square")
    a = Smooth.from_spec(VanillaGradient(model), spec, batch_size=4).attribute(x, 1)
    b = Smooth(VanillaGradient(model), noise_level=0.2, n_samples=6, seed=4, statistic="square", batch_size=4).attribute(x, 1)
    c = SmoothGrad.from_spec(model, spec, batch_size=4)
    assert torch.equal(a, b) and torch.equal(c.attribute(x, 1), a)
    assert c.spec == spec and Smooth(VanillaGradient(model), n_samples=6, seed=4, statistic="square",
                                     noise_level=0.2).spec == spec  # fmt: skip
    assert Smooth.from_spec(VanillaGradient(model), spec, max_memory="1MB").max_memory == "1MB"
    with pytest.raises(ValueError, match="max_memory"):
        Smooth(VanillaGradient(model), max_memory="lots")
    with pytest.raises(TypeError, match="`spec` must be a SmoothSpec"):
        Smooth.from_spec(VanillaGradient(model), {"n_samples": 3})


# ---- the registry -----------------------------------------------------------------------------------
def test_build_method_checks_settings_against_the_constructor():
    model = Quadratic(torch.eye(3))
    with pytest.raises(ValueError, match=r"method 'ig' has no setting \['stpes'\]; it takes .*'steps'"):
        build_method("ig", model, stpes=8)
    with pytest.raises(ValueError, match="method 'grad' has no setting"):
        method_factory("grad", window=3)  # checked now, before any model
    with pytest.raises(TypeError, match="`smooth` must be a SmoothSpec"):
        build_method("grad", model, {"n_samples": 3})
    with pytest.raises(ValueError, match=r"method 'mine' has no setting \['size'\]"):
        register("mine", VanillaGradient, raw={"size": 3})  # a misspelt registration fails at once


def test_build_method_gives_rows_settings_to_the_methods_that_batch():
    model = Quadratic(torch.eye(3))
    ig = build_method("ig", model, batch_size=5, steps=8)
    assert isinstance(ig, IntegratedGradients) and ig.batch_size == 5 and ig.steps == 8
    assert isinstance(build_method("grad", model, batch_size=5), VanillaGradient)  # runs its inputs in one call
    sg = build_method("ig", model, SmoothSpec(n_samples=4, seed=1), batch_size=6, max_memory="2MB")
    assert (sg.batch_size, sg.max_memory, sg.spec.n_samples, sg.method.steps) == (6, "2MB", 4, 4)  # smoothed: 4 steps
    x = torch.rand(2, 3)
    torch.testing.assert_close(sg.attribute(x, 0), Smooth(IntegratedGradients(model, steps=4), n_samples=4, seed=1).attribute(x, 0))


# ---- RunOptions and the CLI -------------------------------------------------------------------------
def test_run_options_max_memory_reaches_the_learned_policys_budget(monkeypatch):
    """Every row-running call of a study (predict, attribution_maps, a built Smooth and the evaluate
    study's metrics) learns its rows under the run's ``max_memory``, not the default budget."""
    from smoothsal.execution import policy, runner
    from smoothsal.metrics.faithfulness import deletion_curve

    seen: list[policy.LearnedRows] = []

    class Recorded(policy.LearnedRows):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(runner, "LearnedRows", Recorded)
    budget = 3_000_000
    assert memory.memory_budget("cpu") != budget  # the default differs, so the check can fail
    options = RunOptions(max_memory=budget)
    model, x = small_cnn(), torch.rand(2, 3, 16, 16)
    targets = options.predict(model, x).argmax(dim=1)
    maps = options.attribution_maps(options.build_method("ig", model, steps=4), x, targets)
    options.build_method("grad", model, SmoothSpec(n_samples=4)).attribute(x, targets)
    deletion_curve(model, x, maps, targets, steps=4, batch_size=options.batch_size, max_memory=options.max_memory)
    kinds = {p.key[-1][0] if isinstance(p.key[-1], tuple) else p.key[-1] for p in seen}
    assert {"forward", "maps", "smooth"} <= kinds, kinds
    assert [(p.key[-1], p.budget) for p in seen] == [(p.key[-1], budget) for p in seen]
    options = RunOptions(max_memory=budget, batch_size=3)  # a batch_size is obeyed: nothing is learned
    seen.clear()
    options.attribution_maps(options.build_method("ig", model, steps=4), x, targets)
    assert seen == []


def test_run_options_are_checked_when_built():
    options = RunOptions(out="o", max_memory="25%", batch_size=8, seed=2)
    assert options.out == Path("o") and options.max_memory == 0.25 and options.out_dir("x") == Path("o")
    assert RunOptions().out_dir("out/explain") == Path("out/explain")
    assert options.as_dict() == {"out": "o", "device": "auto", "max_memory": 0.25, "batch_size": 8, "seed": 2,
                                 "progress": True, "fresh": False}  # fmt: skip
    for bad, match in (({"max_memory": "4XB"}, "max_memory"), ({"batch_size": 0}, "batch_size"),
                       ({"seed": -1}, "seed"), ({"device": "tpu"}, "device")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            RunOptions(**bad)
    sg = options.build_method("grad", small_cnn(), SmoothSpec(n_samples=2))
    assert (sg.batch_size, sg.max_memory) == (8, 0.25)  # the run's rows settings reach the library


def test_a_command_gets_one_run_options_and_a_bad_one_fails_before_any_work(tmp_path):
    import typer

    from smoothsal.studies._options import with_run_options

    seen = []
    app = typer.Typer()

    @app.command("probe")
    @with_run_options("out/probe")
    def probe(options: RunOptions, count: int = typer.Option(1, "--count")) -> None:
        seen.append((options, count))

    @app.command("other")
    def other() -> None:
        pass

    runner = CliRunner()
    result = runner.invoke(app, ["probe", "--count", "3", "--max-memory", "2GB", "--batch-size", "4", "--seed", "7",
                                 "--no-progress", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen == [(RunOptions(out=tmp_path, max_memory=2 * 10**9, batch_size=4, seed=7, progress=False), 3)]
    result = runner.invoke(app, ["probe", "--max-memory", "lots"])
    assert result.exit_code == 2 and "error: `max_memory`" in result.output and len(seen) == 1
    assert runner.invoke(app, ["probe"]).exit_code == 0 and seen[-1][0] == RunOptions(out=Path("out/probe"))
    assert memory.get_max_memory() is None  # nothing was set process-wide


# ---- no process globals -----------------------------------------------------------------------------
#: calls that change process-wide state
GLOBAL_SETTERS = {"set_max_memory", "set_folding", "set_num_threads", "set_num_interop_threads"}


def _global_changes(path: Path) -> list[str]:
    """Calls of :data:`GLOBAL_SETTERS` and assignments to ``os.environ[...]`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in GLOBAL_SETTERS:
                found.append(f"{path.name}:{node.lineno} {name}()")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    found.append(f"{path.name}:{node.lineno} os.environ[...] =")
    return found


def test_the_harness_sets_no_process_global():
    offenders = [hit for path in sorted((SRC / "studies").rglob("*.py")) + [SRC / "cli.py"] for hit in _global_changes(path)]
    assert not offenders, offenders


def test_only_conftest_pins_the_thread_count():
    tests = Path(__file__).resolve().parent
    pins = [hit for path in sorted(tests.glob("*.py")) for hit in _global_changes(path) if "set_num_threads" in hit]
    assert [hit.split(":")[0] for hit in pins] == ["conftest.py"], pins
