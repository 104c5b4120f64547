r"""Control "methods": attributions that ignore the model, to show that the checks can fail.

Adebayo et al. 2018 ("Sanity Checks for Saliency Maps", arXiv:1810.03292, §3 and Fig. 1) show
that an edge detector applied to the input produces maps that look like saliency maps, yet do
not depend on the model at all. A faithful evaluation must therefore fail it. Two controls:

* :class:`SobelEdges` -- the Sobel gradient magnitude of each input channel,

  .. math::
      K = \begin{bmatrix}-1 & 0 & 1\\-2 & 0 & 2\\-1 & 0 & 1\end{bmatrix}, \qquad
      G_x = K \star x_c, \qquad G_y = K^\top \star x_c, \qquad
      E_c = \sqrt{G_x^2 + G_y^2}

  (cross-correlation, replicate padding at the border, so a constant image has no edges and an
  ideal step of height :math:`h` gives :math:`4h` on the two columns either side of it). It must
  *fail* model-parameter randomization: its maps stay identical when the weights are scrambled.
* :class:`RandomAttribution` -- i.i.d. standard Gaussian values shaped like the input, seeded and
  keyed by the sample's content, so it must score at chance on faithfulness metrics.

Both derive from :class:`~smoothsal.methods.base.Attribution`; neither calls the model unless a
``target`` is given, in which case one forward pass validates it (range and count).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smoothsal._core.validation import TargetSpec, check_logits, resolve_targets
from smoothsal.methods.base import Attribution

_MASK32 = 0xFFFFFFFF
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _validate_target(method: Attribution, inputs: Tensor, target: TargetSpec) -> None:
    """One forward pass to check ``target`` against the model's classes (skipped for ``None``)."""
    if target is None:
        return
    with torch.no_grad():
        logits = check_logits(method.model(inputs), inputs.shape[0])
    resolve_targets(target, logits)


def sobel_edges(images: Tensor) -> Tensor:
    """Sobel gradient magnitude of each channel of ``images`` ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    Example:
        >>> x = torch.zeros(1, 1, 4, 6); x[..., 3:] = 1.0   # vertical step between columns 2 and 3
        >>> sobel_edges(x)[0, 0, 0].tolist()
        [0.0, 0.0, 4.0, 4.0, 0.0, 0.0]
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"`inputs` must have shape [B, C, H, W] for Sobel edges, got {shape}")
    b, c, h, w = images.shape
    kx = torch.tensor(_SOBEL_X, dtype=images.dtype, device=images.device)
    kernels = torch.stack([kx, kx.T])[:, None]  # [2, 1, 3, 3]: G_x, G_y
    x = F.pad(images.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")  # [B*C, 1, H+2, W+2]
    g = F.conv2d(x, kernels)  # [B*C, 2, H, W]
    return g.pow(2).sum(dim=1).sqrt().reshape(b, c, h, w)


class SobelEdges(Attribution):
    """Edge-detector control: the Sobel magnitude of the input, independent of the model.

    Args:
        model: the model being "explained"; only used to validate a non-``None`` ``target``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
        >>> x = torch.zeros(1, 1, 4, 4); x[..., 2:] = 1.0
        >>> SobelEdges(model).attribute(x, target=1)[0, 0, 0].tolist()
        [0.0, 4.0, 4.0, 0.0]
    """

    required_ndim = 4

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        _validate_target(self, inputs, target)
        return sobel_edges(inputs)


def _hash32(x: Tensor) -> Tensor:
    """The ``lowbias32`` integer hash (C. Wellons) on int64 tensors holding values in [0, 2^32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _sample_keys(inputs: Tensor) -> Tensor:
    """A 32-bit key per sample from its exact float32 bit pattern and positions -> int64 ``[B]``."""
    flat = inputs.detach().to(torch.float32).flatten(1).contiguous()  # [B, D]
    bits = flat.view(torch.int32).to(torch.int64) & _MASK32
    pos = _hash32(torch.arange(flat.shape[1], device=flat.device, dtype=torch.int64) + 0x9E3779B9)
    return _hash32(_hash32(bits ^ pos).sum(dim=1))


def keyed_gaussian(inputs: Tensor, seed: int) -> Tensor:
    """Standard normal values shaped like ``inputs``, a pure function of ``(seed, sample content)``.

    Counter-based: uniforms are hashes of ``(seed, sample key, element index)``, turned into
    normals by Box-Muller, so a sample gets the same map in any batch, at any batch position.
    """
    b = inputs.shape[0]
    d = inputs[0].numel()
    keys = _hash32(_sample_keys(inputs) ^ _hash32(torch.tensor(seed & _MASK32, device=inputs.device)))  # [B]
    idx = torch.arange(d, device=inputs.device, dtype=torch.int64)  # [D]
    counter = keys[:, None] * 0x9E3779B1 + 2 * idx[None, :]  # [B, D]
    u1 = (_hash32(_hash32(counter)).to(torch.float64) + 0.5) / 2.0**32  # (0, 1)
    u2 = (_hash32(_hash32(counter + 1)).to(torch.float64) + 0.5) / 2.0**32
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)  # [B, D]
    return z.to(inputs.dtype).reshape(b, *inputs.shape[1:])


class RandomAttribution(Attribution):
    r"""Random-map control: :math:`a \sim \mathcal{N}(0, I)` shaped like the input, ignoring the model.

    The values are keyed by ``seed`` and by each sample's exact content (a hash of its float32
    values), not drawn from a stateful generator: the same sample gets the same map whatever the
    batch it is in, and a changed sample gets a fresh map. A faithfulness metric must give it the
    score of chance.

    Args:
        model: the model being "explained"; only used to validate a non-``None`` ``target``.
        seed: int, or a ``torch.Generator`` from which one 32-bit seed is drawn at construction.
    """

    def __init__(self, model: nn.Module, seed: int | torch.Generator = 0) -> None:
        super().__init__(model)
        if isinstance(seed, torch.Generator):
            seed = int(torch.randint(0, 2**32, (1,), generator=seed, dtype=torch.int64))
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or a torch.Generator, got {type(seed).__name__}")
        self.seed = seed

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        _validate_target(self, inputs, target)
        return keyed_gaussian(inputs, self.seed)
