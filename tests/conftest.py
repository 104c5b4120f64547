"""Shared test fixtures: small analytic models with closed-form gradients."""

from __future__ import annotations

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
