"""Shared test fixtures: small analytic models with closed-form gradients, and headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

# tiny models run fastest single-threaded; the few pretrained-model tests barely lose
torch.set_num_threads(1)


class Linear(nn.Module):
    """f(x) = W x + b on flattened inputs; ∂f_c/∂x = W[c]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone() if bias is not None else torch.zeros(weight.shape[0]))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class Quadratic(nn.Module):
    """Two logits: [xᵀ A x, 0]; ∂f_0/∂x = (A + Aᵀ) x."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.einsum("bi,ij,bj->b", x, self.a, x)
        return torch.stack([q, torch.zeros_like(q)], dim=1)


class SumSin(nn.Module):
    """Two logits: [Σ_i sin(w_i x_i), 0]; SmoothGrad has the closed form w cos(w x) exp(−w²σ²/2)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sin(x * self.w).sum(dim=1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def small_cnn(seed: int = 0, classes: int = 3, inplace: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU6(inplace=inplace),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, classes),
    ).eval()


@pytest.fixture
def cnn() -> nn.Module:
    return small_cnn()


def study_cli_app(register_cli):
    """A typer app with one study's command, plus a second command so that typer keeps the study's
    command as a named subcommand (an app of one command would run it at the top level)."""
    import typer

    app = typer.Typer()
    register_cli(app)

    @app.command("other")
    def _other() -> None:  # pragma: no cover - never invoked
        pass

    return app


# ---- headless Chromium (the report's and the docs' browser tests) --------------------------------------
# the Debian packages' paths, given to Selenium explicitly so that Selenium Manager never downloads a driver;
# SMOOTHSAL_CHROMIUM / SMOOTHSAL_CHROMEDRIVER point elsewhere
CHROMIUM = os.environ.get("SMOOTHSAL_CHROMIUM") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
)
CHROMEDRIVER = os.environ.get("SMOOTHSAL_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium, with the Debian chromedriver (Selenium Manager never runs)."""
    # .ci/run sets SMOOTHSAL_BROWSER_TEST=required once it has installed Chromium: there, absent pieces fail
    absent = pytest.fail if os.environ.get("SMOOTHSAL_BROWSER_TEST") == "required" else pytest.skip
    try:
        from selenium import webdriver
    except ImportError:
        absent("selenium is not installed (the dev extra has it: pip install -e '.[dev]')")
    if CHROMIUM is None or not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        absent(f"Chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) is absent "
               "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600", "--allow-file-access-from-files"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
