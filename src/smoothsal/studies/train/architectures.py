r"""The classifiers the studies train: small CNNs and MLPs, LeNet, a small ResNet, and the theory's MLP.

Every model takes ``[B, C, S, S]`` images in ``[0, 1]`` and returns logits ``[B, classes]``. Each
nonlinearity is its own (non-inplace) module, so hook-based attribution methods can treat each
one on its own.

``"smooth_mlp"`` is the network class of Ye & Farnia (2025, §3.1 and Remark 4),
:math:`f_W(x) = W_2\,\sigma(W_1 P_C(x))` with no biases, an activation that is 1-Lipschitz,
1-smooth and zero at zero (:class:`ShiftedSoftplus` with β = 4), and the input normalization
:math:`P_C` of Theorem 6 (:class:`BallProjection`, ``‖P_C(x)‖ ≤ C``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothsal._core.validation import check_choice, check_positive_int
from smoothsal.studies.train.config import ARCHS

#: hidden width of ``"smooth_mlp"``
SMOOTH_MLP_WIDTH = 512
#: β of ``"smooth_mlp"``'s softplus: the largest β whose softplus is 1-smooth (σ'' ≤ β/4)
SMOOTH_BETA = 4.0


class Standardize(nn.Module):
    """Fixed input scaling ``(x - 0.5) / 0.25`` as the model's first module (inputs stay in [0, 1])."""

    def __init__(self, mean: float = 0.5, std: float = 0.25) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class ShiftedSoftplus(nn.Module):
    r""":math:`\sigma(u) = \frac1\beta \log(1 + e^{\beta u}) - \frac{\log 2}{\beta}`.

    :math:`\sigma(0) = 0`, :math:`0 < \sigma' < 1` (1-Lipschitz) and
    :math:`0 < \sigma'' \le \beta/4` (so β = 4 makes it 1-smooth, as Remark 4 of Ye & Farnia
    2025 assumes).
    """

    def __init__(self, beta: float = SMOOTH_BETA) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, beta=self.beta) - math.log(2.0) / self.beta

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}"


class BallProjection(nn.Module):
    r"""Project each input onto the ℓ2 ball of radius ``C``: :math:`P_C(x) = x \min(1, C / \lVert x \rVert)`.

    The normalization Theorem 6 of Ye & Farnia (2025) asks for, so that ``‖input‖ ≤ C`` also holds
    for the noisy inputs of SmoothGrad. :math:`P_C` is 1-Lipschitz and the identity inside the ball.
    """

    def __init__(self, radius: float) -> None:
        super().__init__()
        if not radius > 0:
            raise ValueError(f"`radius` must be > 0, got {radius}")
        self.radius = float(radius)

    def forward(self, x: Tensor) -> Tensor:
        norms = x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)  # [B]
        scale = (self.radius / norms).clamp(max=1.0)
        return x * scale.view(-1, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"radius={self.radius:g}"


class ResidualBlock(nn.Module):
    """The basic block of He et al. (2016): two 3×3 conv-BN layers and an identity (or 1×1) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def _conv_block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


def _small_cnn(arch: str, in_channels: int, num_classes: int, image_size: int) -> list[nn.Module]:
    pooled = image_size // 4  # two 2×2 max-pools (floor)
    widths = {"cnn": (16, 32), "cnn_wide": (32, 64), "cnn_deep": (16, 32)}[arch]
    body = _conv_block(in_channels, widths[0], pool=True) + _conv_block(widths[0], widths[1], pool=True)
    if arch == "cnn_deep":
        body += _conv_block(widths[1], widths[1], pool=False) + _conv_block(widths[1], widths[1], pool=False)
    return body + [nn.Flatten(), nn.Linear(widths[1] * pooled**2, num_classes)]  # [B, C*S/4*S/4] -> logits


def _lenet(in_channels: int, num_classes: int, image_size: int) -> list[nn.Module]:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling:
    conv5×5(6) → pool → conv5×5(16) → pool → 120 → 84 → classes."""
    if image_size < 16:
        raise ValueError(f"`image_size` must be >= 16 for arch 'lenet' (two 5×5 convs and two pools), got {image_size}")
    side = ((image_size - 4) // 2 - 4) // 2  # 28 -> 24 -> 12 -> 8 -> 4
    return [
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * side**2, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
    ]  # fmt: skip


def _resnet(in_channels: int, num_classes: int) -> list[nn.Module]:
    """A small ResNet: conv3×3(16)-BN-ReLU → max-pool → block(16) → block(32, stride 2) → global mean
    → linear."""
    return [
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        ResidualBlock(16, 16, 1), ResidualBlock(16, 32, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    ]  # fmt: skip


def smooth_mlp_radius(in_channels: int, image_size: int) -> float:
    r"""``C = √m`` for ``m = in_channels·S²`` inputs: the largest norm of an image in :math:`[0, 1]^m`,
    so :class:`BallProjection` leaves every clean image unchanged and only acts on noisy ones."""
    return math.sqrt(in_channels * image_size**2)


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A small classifier for ``[B, in_channels, S, S]`` images in ``[0, 1]``.

    * ``"cnn"``: conv16 → pool → conv32 → pool → linear (3×3 convs, ReLU);
    * ``"cnn_wide"``: the same with twice the channels (32, 64);
    * ``"cnn_deep"``: conv16 → pool → conv32 → pool → conv32 → conv32 → linear;
    * ``"mlp"``: flatten → 256 → 128 → classes;
    * ``"lenet"``: LeNet-5 with ReLU and max-pooling (S >= 16);
    * ``"resnet"``: a small ResNet (two basic blocks, 16 and 32 channels, BatchNorm);
    * ``"smooth_mlp"``: :class:`BallProjection` (radius :func:`smooth_mlp_radius`) → flatten →
      linear (512, no bias) → :class:`ShiftedSoftplus` (β = 4) → linear (classes, no bias).

    Every model but ``"smooth_mlp"`` starts with :class:`Standardize`; ``"smooth_mlp"`` sees the
    raw pixels, so its weight norms are the theory's ``B_i`` in pixel units.
    """
    check_choice(arch, "arch", ARCHS)
    check_positive_int(in_channels, "in_channels")
    check_positive_int(num_classes, "num_classes", minimum=2)
    check_positive_int(image_size, "image_size", minimum=8)
    if arch == "smooth_mlp":
        m = in_channels * image_size**2
        return nn.Sequential(
            BallProjection(smooth_mlp_radius(in_channels, image_size)),
            nn.Flatten(),  # [B, m]
            nn.Linear(m, SMOOTH_MLP_WIDTH, bias=False),
            ShiftedSoftplus(SMOOTH_BETA),
            nn.Linear(SMOOTH_MLP_WIDTH, num_classes, bias=False),
        )
    if arch == "mlp":
        body: list[nn.Module] = [
            nn.Flatten(),  # [B, C*S*S]
            nn.Linear(in_channels * image_size**2, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        ]  # fmt: skip
    elif arch == "lenet":
        body = _lenet(in_channels, num_classes, image_size)
    elif arch == "resnet":
        body = _resnet(in_channels, num_classes)
    else:
        body = _small_cnn(arch, in_channels, num_classes, image_size)
    return nn.Sequential(Standardize(), *body)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` in forward order (``"smooth_mlp"``: ``W_1, ..., W_k``)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]
