"""The type of JSON data: what the results stores, manifests and summaries hold.

:data:`JSON` is recursive (a list or an object holds JSON again), so an annotation
``JSONObject`` says "a JSON object, any keys" and still rules out tensors, paths and other
values :func:`json.dumps` cannot write. Data with a fixed shape (a config, a table row) gets a
dataclass or a :class:`typing.TypedDict` instead; these aliases are for what is free-form.
"""

from __future__ import annotations

from typing import Union

#: A JSON value: null, a boolean, a number, a string, a list of JSON values or an object of them.
JSON = Union[None, bool, int, float, str, list["JSON"], dict[str, "JSON"]]
#: A JSON object (``dict`` with string keys and JSON values).
JSONObject = dict[str, JSON]

__all__ = ["JSON", "JSONObject"]
