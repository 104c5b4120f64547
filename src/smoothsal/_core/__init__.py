"""Private foundations every layer may use: argument checks (:mod:`.validation`), optional
packages and their install hints (:mod:`.extras`), where the package keeps files (:mod:`.paths`), and the
type of free-form JSON data (:mod:`.jsontypes`).

Nothing here imports another part of smoothsal.
"""
