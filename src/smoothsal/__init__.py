"""smoothsal: sharp, stable and honest gradient saliency maps for PyTorch image classifiers."""

from smoothsal.methods import Attribution, GradientXInput, VanillaGradient, preserve_model

__version__ = "0.1.0"

__all__ = ["Attribution", "GradientXInput", "VanillaGradient", "preserve_model", "__version__"]
