"""How an audit entry becomes its line: ``json.dumps(entry, ensure_ascii=False, separators=(",", ":"),
default=str)`` and a newline, in UTF-8, byte for byte (the format docs/audit-log.md names and the chain seals).

The standard library's encoder was most of a line's cost (its string escaping alone more than the line's
SHA-256). orjson writes the same bytes for what an audit line holds (text in any script, integers, booleans,
``null``, lists and objects of them, floats from 1e-4 up) several times faster, so it writes a line whose
values are all of that kind; :func:`plain` says which are. Everything else goes to :mod:`json`, so each line's
bytes stay what they were, because orjson writes some values otherwise or not at all:

- a float under 1e-4 (``0.00001`` for json's ``1e-05``), NaN and the infinities (``null`` for ``NaN``);
- an ``Enum`` member that is not also a ``str``, ``int`` or ``float`` (its value for json's ``str()`` of it),
  and any other object json writes with ``str()`` (a datetime, a set, a ``str`` subclass);
- an integer beyond 64 bits, a key that is not a string, a string with a lone surrogate, nesting deeper than
  255 (orjson refuses them: :func:`encode` then falls back, so :func:`plain` need not look).

A string with a lone surrogate is not UTF-8; json's line for it is written with that character escaped
(``\\udc80``), which reads back as the same string, instead of failing the group write it is in.
"""

from __future__ import annotations

import json
from itertools import compress
from typing import Any

import orjson

__all__ = ["encode", "plain"]

#: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)``, without building an encoder per call
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

#: written alike by both encoders (an int beyond 64 bits: orjson refuses it)
_SCALARS = frozenset((str, int, bool, type(None)))
_NESTED = frozenset((dict, list, tuple, float))
_KNOWN = _SCALARS | _NESTED
_LARGEST = 1.7976931348623157e308


def plain(value: dict[str, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """Whether orjson writes every value in ``value`` (an object or an array) as json does, or refuses it."""
    values = value.values() if type(value) is dict else value
    kinds = set(map(type, values))
    if kinds <= _SCALARS:
        return True
    if not kinds <= _KNOWN:
        return False
    for item in compress(values, map(_NESTED.__contains__, map(type, values))):  # the floats, lists and objects
        kind = type(item)
        if kind is float:
            if not (1e-4 <= abs(item) <= _LARGEST or item == 0.0):  # NaN compares false
                return False
        elif (kind is dict or not set(map(type, item)) <= _SCALARS) and not plain(item):  # a list of scalars: no call
            return False
    return True


def encode(entry: dict[str, Any], plain_values: bool) -> bytes:
    """``entry``'s line, newline included; ``plain_values``: :func:`plain` holds for it (the caller may know)."""
    if plain_values:
        try:
            return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # orjson.JSONEncodeError: a value it refuses (module docstring)
            pass
    return (_dumps(entry) + "\n").encode("utf-8", "backslashreplace")
