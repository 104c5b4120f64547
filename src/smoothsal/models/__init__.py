"""Models: the bundled EfficientNet-Lite zoo (:mod:`.zoo`), hub model specs (:mod:`.hubs`), and the
[0, 1]-image wrapper both return (:mod:`.wrappers`).

``smoothsal.zoo`` and ``smoothsal.hubs`` are the same modules under their documented names.
"""

from smoothsal.models import hubs, wrappers, zoo
from smoothsal.models.wrappers import Normalize, ZooModel
from smoothsal.models.zoo import LoadedModel, load_model

__all__ = ["LoadedModel", "Normalize", "ZooModel", "hubs", "load_model", "wrappers", "zoo"]
