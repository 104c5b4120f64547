"""The built package installs and runs on its own: sdist + wheel, ``twine check``, a fresh venv.

``python -m build`` must print no warning (setuptools' deprecation notices included), ``twine
check --strict`` must pass, and the wheel, installed with its ``cli`` extra into a new virtual
environment (no ``--system-site-packages``: a dependency missing from ``pyproject.toml`` fails
here), must run ``smoothsal explain chelsea --methods grad --samples 4`` from a folder outside the
source tree. The outputs are checked for values: the installed package is the wheel's (not this
checkout's), the top class is the cat's, and its raw gradient map equals the gradient this
checkout computes for the same photo.

Torch comes from the pinned CPU wheel (``torch==2.13.0``, as the Makefile installs it), the other
dependencies from PyPI (or pip's cache), all in one ``pip install --no-compile``. About 1.5 minutes
on 2 cores (build ~10 s, venv + install ~50 s, the command ~25 s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = os.environ.get("SMOOTHSAL_TORCH_PIN", "torch==2.13.0")

pytestmark = pytest.mark.wheel
#: how setuptools and distutils warn: ``WARNING ...``/``warning: ...`` lines, ``XWarning:`` categories and
#: the ``!!`` / ``*****`` banners of a deprecation notice (a file named deprecation.py is not a warning)
WARNING = re.compile(r"^\s*(WARNING|warning)\b|\b\w*Warning\b:|^\s*!!|^\s*\*{5,}")


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{log[-4000:]}"
    return log


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path (and with byte-compiling allowed, so that
    setuptools does not warn that it is disabled)."""
    drop = {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONHOME"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason='the dev extra has `build`: pip install -e ".[dev]"')
    out = tmp_path_factory.mktemp("dist")
    log = _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT, env=_clean_env())
    warnings = [line for line in log.splitlines() if WARNING.search(line)]
    assert not warnings, "python -m build warned:\n" + "\n".join(warnings)
    return out


def test_the_warning_detector_reads_setuptools_notices_not_file_names() -> None:
    # what setuptools printed for the old `license = { text = "MIT" }` table, and what a clean build prints
    notices = ["WARNING `project.license` as a TOML table is deprecated", "!!", "        " + "*" * 80,
               "SetuptoolsDeprecationWarning: License classifiers are deprecated.",
               "warning: build_py: byte-compiling is disabled, skipping."]  # fmt: skip
    clean = ["copying src/smoothsal/_core/deprecation.py -> build/lib/smoothsal/_core",
             "adding 'smoothsal/_core/deprecation.py'", "Successfully built smoothsal-0.1.0.tar.gz"]  # fmt: skip
    assert all(WARNING.search(line) for line in notices) and not any(WARNING.search(line) for line in clean)


def test_sdist_and_wheel_build_without_warnings_and_pass_twine(dist: Path) -> None:
    import smoothsal

    version = smoothsal.__version__
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"smoothsal-{version}-py3-none-any.whl"]
    assert [s.name for s in sdists] == [f"smoothsal-{version}.tar.gz"]
    _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], cwd=dist)
    import zipfile

    with zipfile.ZipFile(wheels[0]) as zf:
        meta = zf.read(f"smoothsal-{version}.dist-info/METADATA").decode()
        names = zf.namelist()
    assert "License-Expression: MIT" in meta and f"Version: {version}" in meta  # the one version source
    assert f"smoothsal-{version}.dist-info/licenses/LICENSE" in names
    assert "smoothsal/data/imagenet_classes.txt" in names  # package data travels


def test_installed_wheel_runs_explain_outside_the_source_tree(dist: Path, tmp_path: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)  # no system site-packages
    py = env_dir / "bin" / "python"
    env = _clean_env()
    _run([str(py), "-m", "pip", "install", "-q", "--no-compile", TORCH_PIN, f"{wheel}[cli]"], cwd=tmp_path, env=env)

    work = tmp_path / "work"  # outside the source tree: nothing of this checkout is importable there
    work.mkdir()
    where = _run([str(py), "-c", "import smoothsal, torch; print(smoothsal.__file__); print(smoothsal.__version__); "
                  "print(torch.__version__)"], cwd=work, env=env).split()  # fmt: skip
    import smoothsal

    assert Path(where[0]).is_relative_to(env_dir) and where[1] == smoothsal.__version__
    assert where[2].startswith(TORCH_PIN.split("==")[-1])

    cache = tmp_path / "cache"
    env = _clean_env(SMOOTHSAL_CACHE=str(cache))
    log = _run([str(env_dir / "bin" / "smoothsal"), "explain", "chelsea", "--methods", "grad", "--samples", "4",
                "--device", "cpu"], cwd=work, env=env)  # fmt: skip
    out = work / "out" / "explain"
    assert "wrote grid.png" in log, log[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    top1 = summary["images"][0]["top5"][0]
    assert summary["images"][0]["name"] == "chelsea" and "cat" in top1["name"] and 0.2 < top1["prob"] < 1
    assert summary["methods"]["grad"]["smooth"]["n_samples"] == [4]
    maps = np.load(out / "maps.npz")
    assert maps["grad"].shape == (1, 3, 224, 224) and maps["grad_smooth"].shape == (1, 3, 224, 224)
    assert np.isfinite(maps["grad_smooth"]).all() and np.abs(maps["grad_smooth"]).sum() > 0
    assert not np.array_equal(maps["grad"], maps["grad_smooth"])
    # the wheel's raw gradient is the gradient this checkout computes (same weights, same photo)
    from smoothsal.datasets.photos import load_photo
    from smoothsal.methods import VanillaGradient
    from smoothsal.models.zoo import efficientnet_lite0

    model = efficientnet_lite0()
    x = load_photo("chelsea").tensor
    assert torch.equal(torch.from_numpy(maps["images"]), x)
    assert int(model(x).argmax()) == top1["class"] == int(maps["targets"][0])
    ours = VanillaGradient(model).attribute(x, target=top1["class"])
    # equal up to float rounding: the two processes run the convolutions with different thread counts
    torch.testing.assert_close(torch.from_numpy(maps["grad"]), ours, rtol=1e-4, atol=1e-4 * float(ours.abs().max()))
    from PIL import Image

    for name in summary["figures"]:
        with Image.open(out / name) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert rgb.std() > 5, f"{name} is blank"
