"""README.md gets a newcomer going, and stays true: its example runs, its command table is complete,
its links resolve, and it stays short.

The Python example is extracted from the README and executed as written, with two substitutions
that keep it to a few seconds: ``ss.zoo.efficientnet_lite0`` returns a tiny ReLU CNN (convolutions
for Grad-CAM, ReLUs for Guided Backprop, inputs in [0, 1] as the zoo's) and ``load_photo`` the same
bundled photo at 32 × 32. Every name the example calls is the package's own, so a renamed or
removed API fails here.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: the README is for a newcomer; measurements live on the docs site (docs/results/)
MAX_LINES = 250


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES}: move details to docs/)"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    import smoothsal as ss
    from smoothsal.datasets import photos

    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python example"
    real_load_photo = photos.load_photo
    monkeypatch.setattr(ss.zoo, "efficientnet_lite0", _tiny_cnn)
    monkeypatch.setattr(ss.datasets, "load_photo", lambda name="chelsea", size=224: real_load_photo(name, 32))
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102
    # the example saves a 4-column grid: save_grid's documented width, 4 cells of 2 inches at 100 dpi
    from PIL import Image

    with Image.open(tmp_path / "chelsea.png") as im:
        assert im.size[0] == 800
    # it prints the samples its estimate used (at most its n_samples=64) and the relative standard error
    n, rse = re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", out.getvalue())[:2]
    assert 1 <= int(n) <= 64 and float(rse) > 0


def test_readme_command_table_lists_every_command():
    pytest.importorskip("typer")
    import typer

    from smoothsal.cli import build_app

    group = typer.main.get_command(build_app())
    names = []
    for name, cmd in group.commands.items():
        subs = getattr(cmd, "commands", None)
        names += [f"{name} {sub}" for sub in subs] if subs else [name]
    assert len(names) >= 8
    table = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `smoothsal ")]
    missing = [n for n in names if not any(line.startswith(f"| `smoothsal {n}") for line in table)]
    assert not missing, f"commands missing from README's command table: {missing}"
    listed = {re.match(r"\| `smoothsal ([a-z-]+(?: [a-z]+)?)", line).group(1) for line in table}
    unknown = [c for c in listed if c not in names and c.split()[0] not in names]
    assert not unknown, f"README lists commands the CLI does not have: {unknown}"


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local)
    broken = [t for t in local if not (ROOT / t).is_file()]
    assert not broken, f"README.md links to missing files: {broken}"
