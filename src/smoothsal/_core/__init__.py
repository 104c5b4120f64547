"""Private foundations every layer may use: argument checks (:mod:`.validation`), optional
packages and their install hints (:mod:`.extras`), and where the package keeps files (:mod:`.paths`).

Nothing here imports another part of smoothsal.
"""
