"""Vanilla gradient (Simple-Grad) and gradient × input.

Vanilla gradient (Simonyan et al. 2013, arXiv:1312.6034; the SmoothGrad paper's eq. 1):

.. math:: M_c(x) = \\partial S_c(x) / \\partial x

Gradient × input (Shrikumar et al. 2016, arXiv:1605.01713) multiplies it elementwise by the
input, :math:`x \\odot \\partial S_c / \\partial x`, the first-order Taylor term of the score.
Both take exactly one forward and one backward pass per batch.
"""

from __future__ import annotations

from torch import Tensor

from smoothsal._core.validation import TargetSpec
from smoothsal.methods.base import Attribution


class VanillaGradient(Attribution):
    """Gradient of the target logit with respect to the input.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2, bias=False)
        >>> with torch.no_grad():
        ...     model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.0]]))
        >>> VanillaGradient(model).attribute(torch.ones(1, 3), target=0)
        tensor([[1., 2., 3.]])
    """

    folds_batchnorm = True

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        grad, _, _ = self._score_and_grad(inputs, target)
        return grad


class GradientXInput(Attribution):
    """Gradient times input, :math:`x \\odot \\partial S_c / \\partial x`."""

    folds_batchnorm = True

    def _attribute(self, inputs: Tensor, target: TargetSpec) -> Tensor:
        grad, _, _ = self._score_and_grad(inputs, target)
        return grad * inputs


def vanilla_gradient(model, inputs: Tensor, target: TargetSpec = None) -> Tensor:
    """Functional form of :class:`VanillaGradient`."""
    return VanillaGradient(model).attribute(inputs, target)


def gradient_x_input(model, inputs: Tensor, target: TargetSpec = None) -> Tensor:
    """Functional form of :class:`GradientXInput`."""
    return GradientXInput(model).attribute(inputs, target)
