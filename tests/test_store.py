"""The one results store of the studies (smoothsal.studies.store): resume, one hashing rule, one
behaviour for a changed configuration, crash safety."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from smoothsal.studies.store import ResultsStore, stable_hash, to_jsonable, write_json


def test_stable_hash_ignores_key_order_and_tuple_vs_list():
    config = {"seed": 0, "n_inputs": 8, "base": {"lr": 0.01, "split": (1, 3)}}
    h = stable_hash(config)
    assert len(h) == 16 and int(h, 16) >= 0
    assert stable_hash({"base": {"split": [1, 3], "lr": 0.01}, "n_inputs": 8, "seed": 0}) == h
    assert stable_hash(dict(config, seed=1)) != h
    assert stable_hash(config, 12) == h[:12]


def test_a_rerun_resumes_with_the_same_numbers(tmp_path):
    store = ResultsStore(tmp_path, "demo", {"sigma": 0.15})
    values = {"error": 0.1 + 0.2, "pairs": (1 / 3, 2.0), "n": 3, "name": "a", "missing": math.nan}
    echoed = store.put({"method": "grad", "sigma": 0.15}, values)
    store.put({"method": "ig", "sigma": 0.15}, {"error": 1.0})

    again = ResultsStore(tmp_path, "demo", {"sigma": 0.15})
    back = again.get({"sigma": 0.15, "method": "grad"})  # unit key order does not matter
    assert back == {**echoed, "missing": back["missing"]} and math.isnan(back["missing"])
    assert back["error"] == 0.30000000000000004 and back["pairs"] == [1 / 3, 2.0] and isinstance(back["n"], int)
    assert {"method": "ig", "sigma": 0.15} in again and {"method": "gradcam", "sigma": 0.15} not in again
    assert [r["method"] for r in again.records()] == ["grad", "ig"]  # order of first recording
    assert again.records()[1] == {"method": "ig", "sigma": 0.15, "error": 1.0}
    # get_or_compute calls compute only for what is missing
    calls = []
    assert again.get_or_compute({"method": "ig", "sigma": 0.15}, lambda: calls.append(1) or {"error": 9.0}) == {"error": 1.0}
    assert again.get_or_compute({"method": "gradcam", "sigma": 0.15}, lambda: calls.append(1) or {"error": 2.0}) == {"error": 2.0}
    assert calls == [1]
    assert json.loads((tmp_path / "config.json").read_text())["config"] == {"sigma": 0.15}


def test_a_changed_configuration_is_never_mixed_and_old_records_stay(tmp_path):
    old = ResultsStore(tmp_path, "demo", {"n_samples": 8})
    old.put({"method": "grad"}, {"error": 1.0})
    new = ResultsStore(tmp_path, "demo", {"n_samples": 16})
    assert new.get({"method": "grad"}) is None and new.records() == []  # nothing of the old one
    new.put({"method": "grad"}, {"error": 2.0})
    assert ResultsStore(tmp_path, "demo", {"n_samples": 8}).get({"method": "grad"}) == {"error": 1.0}
    assert ResultsStore(tmp_path, "demo", {"n_samples": 16}).get({"method": "grad"}) == {"error": 2.0}
    # another study in the same folder keeps its own records too
    assert ResultsStore(tmp_path, "other", {"n_samples": 8}).get({"method": "grad"}) is None
    # fresh clears every configuration
    ResultsStore(tmp_path, "demo", {"n_samples": 16}, fresh=True)
    assert ResultsStore(tmp_path, "demo", {"n_samples": 8}).get({"method": "grad"}) is None


def test_a_partial_last_line_is_dropped(tmp_path):
    store = ResultsStore(tmp_path, "demo", {})
    store.put({"i": 0}, {"v": 0.0})
    store.put({"i": 1}, {"v": 1.0})
    path = tmp_path / "records.jsonl"
    text = path.read_text()
    path.write_text(text + text.splitlines()[0][:25])  # a run killed in the middle of a write
    again = ResultsStore(tmp_path, "demo", {})
    assert [r["i"] for r in again.records()] == [0, 1]
    assert path.read_text() == text  # the half line is cut, so the next append starts a new line
    again.put({"i": 2}, {"v": 2.0})
    assert [r["i"] for r in ResultsStore(tmp_path, "demo", {}).records()] == [0, 1, 2]


@pytest.mark.parametrize("line", ["this is not json", '{"study": "demo"}', "[1, 2]"])
def test_a_corrupted_file_raises_a_clear_error(tmp_path, line):
    store = ResultsStore(tmp_path, "demo", {})
    store.put({"i": 0}, {"v": 0.0})
    with (tmp_path / "records.jsonl").open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(ValueError, match=r"records\.jsonl line 2 is not a .*results record"):
        ResultsStore(tmp_path, "demo", {})


def test_arrays_round_trip_exactly(tmp_path):
    store = ResultsStore(tmp_path, "demo", {"seed": 0})
    maps = torch.randn(2, 3, 5, 5)
    calls = []

    def compute():
        calls.append(1)
        return maps, {"delta": 0.25}

    arr, meta = store.array({"maps": "grad"}, compute)
    assert np.array_equal(arr, maps.numpy()) and arr.dtype == np.float32 and meta["delta"] == 0.25
    assert (tmp_path / meta["array"]).exists() and not list((tmp_path / "arrays").glob("*.tmp.npy"))
    arr2, meta2 = ResultsStore(tmp_path, "demo", {"seed": 0}).array({"maps": "grad"}, compute)
    assert calls == [1] and np.array_equal(arr2, arr) and meta2 == meta
    # an array whose file went missing is computed again
    (tmp_path / meta["array"]).unlink()
    ResultsStore(tmp_path, "demo", {"seed": 0}).array({"maps": "grad"}, compute)
    assert calls == [1, 1]


def test_write_json_and_to_jsonable():
    assert to_jsonable({"a": (1, np.float32(0.5)), "t": torch.tensor([1.0, 2.0])}) == {"a": [1, 0.5], "t": [1.0, 2.0]}


def test_write_json_writes_tuples_as_lists(tmp_path):
    path = write_json(tmp_path / "r.json", {"rows": [{"a": (1, 2)}], "x": 1.5})
    assert path == tmp_path / "r.json"
    assert json.loads(path.read_text()) == {"rows": [{"a": [1, 2]}], "x": 1.5}
    assert not (tmp_path / "r.json.tmp").exists()
