"""Attribution methods: one module each, all derived from :class:`~smoothsal.methods.base.Attribution`."""

from smoothsal.methods.base import Attribution, preserve_model
from smoothsal.methods.gradient import GradientXInput, VanillaGradient

__all__ = ["Attribution", "preserve_model", "VanillaGradient", "GradientXInput"]
