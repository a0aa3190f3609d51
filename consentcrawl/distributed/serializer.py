"""The shared queue's serializer (scrapy-redis's ``SCHEDULER_SERIALIZER``): a request's dict as JSON, never pickle.

scrapy-redis queues ``Request.to_dict()`` through a module with ``loads`` and ``dumps``; its default is pickle, so
whoever can write the queue's key runs code in every worker that pops the entry. This module is the default of
:class:`~consentcrawl.distributed.scheduler.ConsentRedisScheduler`: an entry is ``MAGIC`` and JSON, whose
``loads`` builds only plain values (dicts, lists, strings, numbers, bytes) and calls nothing.

``Request.to_dict()`` holds bytes (the body, the headers) and dicts keyed by bytes, which JSON has no words for; so
every dict and every bytes value is written as a one-key object: ``{"m": {...}}`` a dict keyed by strings,
``{"d": [[key, value], ...]}`` any other dict, ``{"b": "base64"}`` bytes; tuples become lists. A value of any other
kind (a ``datetime``, an object of the project's in ``meta``) cannot be queued: :class:`NotQueueable`, naming its
type; the scheduler then keeps that request in the worker (``consentcrawl/shared_queue/kept_local``).

An entry that is not ours is refused by ``loads``: :class:`PickledEntry` for a pickle (an older version's queue,
or someone who hoped it would be unpickled), :class:`UnreadableEntry` for anything else; the queue sets it aside
(:mod:`~consentcrawl.distributed.heldqueue`).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

__all__ = ["MAGIC", "NotQueueable", "PickledEntry", "UnreadableEntry", "dumps", "loads"]

#: the first bytes of every entry: the format and its version
MAGIC = b"consentcrawl-request/1:"


class NotQueueable(TypeError):
    """A request holds a value JSON cannot carry."""


class UnreadableEntry(ValueError):
    """An entry of the shared queue is not a request in this format."""


class PickledEntry(UnreadableEntry):
    """An entry of the shared queue is a pickle: never loaded."""


def dumps(obj: Any) -> bytes:
    return MAGIC + orjson.dumps(_tag(obj))


def loads(data: bytes) -> Any:
    if not isinstance(data, bytes):
        raise UnreadableEntry(f"a {type(data).__name__}, not bytes")
    if not data.startswith(MAGIC):
        if data[:1] == b"\x80":  # pickle protocol 2 and later (scrapy-redis's picklecompat writes the highest)
            raise PickledEntry("a pickle (scrapy-redis's default serializer): not loaded")
        raise UnreadableEntry("not a request in consentcrawl's queue format")
    try:
        return _untag(orjson.loads(data[len(MAGIC):]))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise UnreadableEntry(f"not a request in consentcrawl's queue format ({type(exc).__name__})") from None


def _tag(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"m": {k: _tag(v) for k, v in value.items()}}
        return {"d": [[_tag(k), _tag(v)] for k, v in value.items()]}
    raise NotQueueable(f"a {type(value).__module__}.{type(value).__qualname__} cannot be queued as JSON")


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError("an object of more than one key")
    (kind, inner), = value.items()
    if kind == "m" and isinstance(inner, dict):
        return {k: _untag(v) for k, v in inner.items()}
    if kind == "d" and isinstance(inner, list):
        return {_hashable(_untag(k)): _untag(v) for k, v in inner}
    if kind == "b" and isinstance(inner, str):
        return base64.b64decode(inner, validate=True)
    raise ValueError(f"an unknown tag {kind!r}")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        raise TypeError("a dict as a key")
    return key
