"""Unit tests of smoothsal.experiments._results: the resumable results.csv of the experiments."""

from __future__ import annotations

import json
import math

import pytest

from smoothsal.experiments._results import ResultsFile, check_config, config_hash, write_json

FIELDS = ("name", "n", "score", "pairs", "config_hash")


def _file(tmp_path, fields=FIELDS):
    return ResultsFile(tmp_path / "results.csv", fields, "run_demo", str_fields=("name", "config_hash"),
                       int_fields=("n",), list_fields=("pairs",))  # fmt: skip


def test_config_hash_is_stable_and_short():
    config = {"seed": 0, "n_inputs": 8, "base": {"lr": 0.01, "split": (1, 3)}}
    h = config_hash(config)
    assert len(h) == 12 and int(h, 16) >= 0
    # key order does not matter, tuples hash like lists, and the value is fixed across versions
    assert config_hash({"base": {"split": [1, 3], "lr": 0.01}, "n_inputs": 8, "seed": 0}) == h
    assert h == "9e6b225d5512"  # results.csv files already on disk keep resuming
    assert config_hash(dict(config, seed=1)) != h


def test_append_then_read_round_trips_types_exactly(tmp_path):
    results = _file(tmp_path)
    rows = [
        {"name": "a", "n": 3, "score": 0.1 + 0.2, "pairs": [1 / 3, 2.0], "config_hash": "abc"},
        {"name": "b", "n": 0, "score": math.nan, "pairs": (0.5,), "config_hash": "abc"},
    ]
    echoed = [results.append(r) for r in rows]
    back = results.read()
    assert back[0] == echoed[0] == {"name": "a", "n": 3, "score": 0.30000000000000004, "pairs": [1 / 3, 2.0],
                                    "config_hash": "abc"}  # fmt: skip
    assert isinstance(back[0]["n"], int) and isinstance(back[0]["score"], float)
    assert math.isnan(back[1]["score"]) and back[1]["pairs"] == [0.5]
    text = (tmp_path / "results.csv").read_text().splitlines()
    assert text[0] == ",".join(FIELDS) and len(text) == 3  # one header, one line per row
    assert text[1] == "a,3,0.30000000000000004,0.3333333333333333 2.0,abc"


def test_load_refuses_another_configuration_and_fresh_discards(tmp_path):
    results = _file(tmp_path)
    assert results.load("abc") == []  # no file yet
    results.append({"name": "a", "n": 1, "score": 1.0, "pairs": [], "config_hash": "abc"})
    assert [r["name"] for r in results.load("abc")] == ["a"]
    with pytest.raises(ValueError, match="another configuration") as err:
        results.load("xyz")
    assert str(tmp_path / "results.csv") in str(err.value) and "abc" in str(err.value) and "xyz" in str(err.value)
    assert results.load("xyz", fresh=True) == [] and not (tmp_path / "results.csv").exists()


def test_check_config_names_the_file(tmp_path):
    path = tmp_path / "results.csv"
    check_config([{"config_hash": "abc"}], "abc", path)
    with pytest.raises(ValueError, match="another configuration") as err:
        check_config([{"config_hash": "old"}, {"config_hash": "new"}], "new", path)
    assert str(err.value).startswith(f"{path} holds rows of another configuration (old; this run is new); ")


def test_read_refuses_other_columns_and_tolerates_an_empty_file(tmp_path):
    (tmp_path / "results.csv").write_text("")
    assert _file(tmp_path).read() == []
    _file(tmp_path, FIELDS[:-1] + ("other", "config_hash")).append(
        {"name": "a", "n": 1, "score": 1.0, "pairs": [], "other": 2.0, "config_hash": "abc"}
    )
    with pytest.raises(ValueError, match="not written by this version of `run_demo` \\(columns differ\\)"):
        _file(tmp_path).read()


def test_write_json_writes_tuples_as_lists(tmp_path):
    path = write_json(tmp_path / "r.json", {"rows": [{"a": (1, 2)}], "x": 1.5})
    assert path == tmp_path / "r.json"
    assert json.loads(path.read_text()) == {"rows": [{"a": [1, 2]}], "x": 1.5}
    assert path.read_text().startswith('{\n  "rows"')
