"""Every committed result file comes from a command in ``results/INDEX.md``; no file names a path outside the repo.

(a) **Paths outside the repository.** Every file git tracks is read as text (binary files are
skipped) and searched for paths that only exist on the machine that wrote them:

* anywhere: a path into a workspace or home folder (``/work/``, ``/root/``, ``/home/``,
  ``/Users/``, ``/mnt/``, ``C:\\Users\\`` followed by a name) or into a sibling of the checkout
  (``../shared`` followed by ``/``, a space, a quote or the end of the line);
* in data files only (result folders, ``.json``/``.csv``/``.jsonl``/``.ipynb``): a path into a
  temporary folder (``/tmp/``, ``/var/folders/`` followed by a name). Code and prose may name
  ``/tmp`` when they explain an example; a result that records one was written to a path nobody
  else has.

A prefix alone (as this docstring writes them) names no file and is not flagged.

System paths (``/usr/bin/chromium``, ``/etc/...``) are not flagged: they are the same on every
machine of the kind the project runs on, and name no one's files.

(b) **The index.** Every file under ``benchmarks/results/`` and ``results/`` (tracked by git, the
index itself aside) has exactly one line in ``results/INDEX.md``, every line names a file that
exists, and its command is real: each ``python benchmarks/X.py`` step names a script that exists
and accepts every ``--option`` given, each ``smoothsal CMD`` step a command that has those options.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "results" / "INDEX.md"
RESULT_DIRS = ("benchmarks/results/", "results/")

# built from pieces, so that this file does not match itself
_HOMES = ["/" + "work/", "/" + "root/", "/" + "home/", "/" + "Users/", "/" + "mnt/"]
_TEMPS = ["/" + "tmp/", "/" + "var/folders/"]
_NAME = r"(?=[\w$~-])"  # a path into the folder, not the bare prefix
ANYWHERE = re.compile(
    "|".join(re.escape(p) + _NAME for p in _HOMES)
    + "|" + "C:" + r"\\{1,2}Users\\{1,2}" + _NAME
    + "|" + re.escape("../" + "shared") + r"(?=[/\s\"'),;]|$)"
)
IN_DATA = re.compile("|".join(re.escape(p) + _NAME for p in _TEMPS))
DATA_SUFFIXES = {".json", ".jsonl", ".csv", ".ipynb", ".tsv"}


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"not a git checkout ({err}): the tracked files are unknown")
    return [p for p in out.decode().split("\0") if p]


def is_data(path: str) -> bool:
    return path.startswith(RESULT_DIRS) or Path(path).suffix.lower() in DATA_SUFFIXES


def outside_paths(path: str, text: str) -> list[str]:
    """``line N: match`` for each path outside the repository in ``text`` (the rule of the module docstring)."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for rx in (ANYWHERE, IN_DATA) if is_data(path) else (ANYWHERE,):
            found += [f"line {n}: {m.group(0)!r} in {line.strip()[:120]!r}" for m in rx.finditer(line)]
    return found


def test_the_path_rule_flags_what_it_should_and_nothing_else():
    home = "/" + "work/main/benchmarks/results/x.json"
    assert outside_paths("benchmarks/results/bench.json", f'"out": "{home}"')
    assert outside_paths("docs/conf.py", "see " + "/" + "home/ann/notes.md")
    assert outside_paths("README.md", "read ../" + "shared/design.md")
    assert outside_paths("benchmarks/results/a.txt", "--out " + "/" + "tmp/anchors.json")  # a result that names /tmp
    assert outside_paths("examples/x.ipynb", '"' + "/" + "tmp/run/out.png" + '"')
    assert outside_paths("x.csv", "C:" + "\\Users\\ann\\run.csv")
    assert not outside_paths("README.md", "smoothsal explain --out " + "/" + "tmp/explain  # any folder")  # prose may
    assert not outside_paths("tests/test_report.py", 'CHROMIUM = "/usr/bin/chromium"')  # a system path
    assert not outside_paths("src/smoothsal/x.py", "out/dataset, benchmarks/results/a.json, ../data")
    assert not outside_paths("benchmarks/results/a.json", "never ``" + "/" + "work/`` or ``" + "/" + "home/...``")  # bare prefixes


def test_no_tracked_file_names_a_path_outside_the_repository():
    bad = {}
    for path in tracked_files():
        full = ROOT / path
        if not full.is_file():
            continue
        raw = full.read_bytes()
        if b"\0" in raw[:8192]:
            continue  # binary (PNG, ...)
        hits = outside_paths(path, raw.decode("utf-8", errors="replace"))
        if hits:
            bad[path] = hits[:3]
    assert not bad, f"paths outside the repository (record paths relative to it: benchmarks/_provenance.py): {bad}"


# ---- the index ------------------------------------------------------------------------------------------
ROW = re.compile(r"^\|\s*`(?P<file>[^`]+)`\s*\|\s*`(?P<command>[^`]+)`\s*\|\s*(?P<date>[^|]*?)\s*\|\s*(?P<commit>[^|]*?)\s*\|\s*$")


def index_rows() -> list[dict[str, str]]:
    rows = []
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            m = ROW.match(line)
            assert m, f"results/INDEX.md: a line that is not `| file | command | date | commit |`: {line!r}"
            rows.append(m.groupdict())
    return rows


def test_every_result_file_is_in_the_index_and_every_entry_exists():
    rows = index_rows()
    listed = [r["file"] for r in rows]
    assert len(listed) == len(set(listed)), "a file listed twice"
    assert listed == sorted(listed), "keep the index in path order"
    results = {p for p in tracked_files() if p.startswith(RESULT_DIRS) and p != "results/INDEX.md"}
    assert results, "no result file found: the check would pass on nothing"
    assert not results - set(listed), f"result files missing from results/INDEX.md: {sorted(results - set(listed))}"
    missing = [f for f in listed if not (ROOT / f).is_file()]
    assert not missing, f"results/INDEX.md lists files that do not exist: {missing}"
    for r in rows:
        assert r["file"].startswith(RESULT_DIRS), r
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["date"]), r
        assert re.fullmatch(r"[0-9a-f]{7,40}", r["commit"]), r


def _cli_options() -> dict[str, set[str]]:
    import typer

    from smoothsal.cli import build_app

    group = typer.main.get_command(build_app())
    out = {}
    for name, cmd in group.commands.items():
        out[name] = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
        for sub, subcmd in getattr(cmd, "commands", {}).items():  # a group: `smoothsal reproduce stability`
            out[f"{name} {sub}"] = {opt for p in subcmd.params for opt in (*p.opts, *p.secondary_opts)}
    return out


def test_every_index_command_names_a_real_script_and_its_options():
    cli = None
    for row in index_rows():
        for step in row["command"].split("&&"):
            words = shlex.split(step)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]  # environment settings
            passed: list[str] = []  # a script's own words end at a bare `--`; a smoothsal command follows
            if words[0] == "python" and "--" in words:
                words, passed = words[: words.index("--")], ["smoothsal", *words[words.index("--") + 1 :]]
            if words[0] == "python":
                options = {w.split("=")[0] for w in words if w.startswith("--")}
                script = ROOT / words[1]
                assert script.is_file(), f"{row['file']}: no script {words[1]}"
                source = script.read_text()
                unknown = [o for o in options if f'"{o}"' not in source]
                assert not unknown, f"{row['file']}: {words[1]} has no option {unknown}"
                words = passed
                if not words:
                    continue
            options = {w.split("=")[0] for w in words if w.startswith("--")}
            if words[0] == "smoothsal":
                cli = cli or _cli_options()
                name = f"{words[1]} {words[2]}" if len(words) > 2 and f"{words[1]} {words[2]}" in cli else words[1]
                assert name in cli, f"{row['file']}: no command smoothsal {name}"
                assert options <= cli[name], f"{row['file']}: smoothsal {name} has no option {options - cli[name]}"
            elif words[0] == "cp":
                assert words[-1].rstrip("/") == str(Path(row["file"]).parent) and any(
                    Path(w).name == Path(row["file"]).name for w in words[1:-1]), row  # fmt: skip
            else:
                raise AssertionError(f"{row['file']}: a step that is not python, smoothsal or cp: {step!r}")
