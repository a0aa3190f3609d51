"""Whose a request waiting in a crawl's disk queue (``JOBDIR``) is, read from the bytes Scrapy stored.

Scrapy's disk queues hold each request as ``Request.to_dict()`` serialised with :mod:`pickle` (the default
``Pickle*`` queues) or :mod:`marshal`: the URL, method, headers, body, meta, ``cb_kwargs``, the callback's name.
A pickle from disk is never loaded as such: :class:`_Unpickler` builds only built-in values, and any other object
the pickle names (a ``datetime``, an item class, a callable) becomes an inert :class:`Opaque` holding its
arguments and state. No code the file names runs, and everything it holds can still be read. It is the Python
unpickler, not C's: C's sizes its memo table by the largest slot number a record names (25 bytes naming slot
2**28 make it allocate and clear 4 GiB), Python's memo is a dict. And every global is the one ``Opaque`` class,
not a class per reference (a class is ~1.5 kB: a 5-byte reference would cost 300 times its size).

**Whose it is** (:func:`owner`), read as a crawl reads the request at send time: the URL with the request's
``consentcrawl_subject``, form body, cookies (with those of its ``cookies``, sent as ``Cookie`` by
CookiesMiddleware) and routing headers (:func:`consentcrawl.facts.request_inputs`,
:class:`consentcrawl.facts.FactReader`), every reading a lenient server could take (:meth:`Selection.url`); then,
as for the HTTP cache, every absolute URL anywhere in the request (a ``Referer``: the link was on their page; the
``redirect_urls`` that led to it; a URL in its meta or ``cb_kwargs``), every mention of their page as an item may
hold one (``/u/1022``, ``microblog.example/u/1022``: :func:`.mentioned.people_in`), and every item it carries in
its meta or ``cb_kwargs`` (an item a callback passes on names its person by its subject field). A request that names one
selected person is theirs; one that names several, or that cannot be read into facts at all (a URL that cannot be
canonicalised, headers that are not headers), or that reads as no one person (the crawl denies it as ambiguous),
is *unsure*: it goes, and is listed as such. So is one whose values,
read as the tree a reader walks, are far larger than its stored bytes (:func:`_expands`): pickle's memo and
marshal's references let a few kilobytes name one list from many places, ~200**8 values to read.
"""

from __future__ import annotations

import io
import marshal
import pickle
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from scrapy.http.headers import Headers

from ..facts import FactReader, request_inputs
from ..onevalue import one_value, several
from ..robots.body import content_encoding
from .common import PurgeFailed, Selection, urls_in
from .mentioned import people_in

__all__ = ["UNSURE", "Opaque", "decode", "named_in_state", "owner"]

#: the owner of a request that may be a selected person's but cannot be pinned to one
UNSURE = "unsure"
#: how many values and characters a request may hold per byte stored, and besides them, before it is unsure
_PER_BYTE = 16
_BESIDES = 1_000_000


class Opaque:
    """An object a queued request's pickle names, kept inert: its class is never imported or called."""

    __slots__ = ("args", "items", "state")
    args: list[Any]
    items: list[Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        self = object.__new__(cls)
        self.args = [*args, *kwargs.values()]
        self.state = None
        self.items = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items += [key, value]

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)


class _Unpickler(pickle._Unpickler):  # the Python unpickler (see the module doc)
    """Loads built-in values only; every global the pickle names is :class:`Opaque`."""

    def find_class(self, module: str, name: str) -> Any:
        return Opaque

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id")


def decode(raw: bytes) -> dict[str, Any]:
    """A queued request's dict. Raises :class:`PurgeFailed` for bytes that are not one (the queue is then not
    rewritten: what cannot be read cannot be shown to be no one's)."""
    try:
        value = _Unpickler(io.BytesIO(raw)).load() if raw[:1] == b"\x80" else marshal.loads(raw)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same: not a request we can judge
        raise PurgeFailed(f"a queued request cannot be read ({type(exc).__name__})") from None
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise PurgeFailed("a queued record is not a request Scrapy stored (no dict with a URL)")
    return value


def owner(request: Mapping[str, Any], selection: Selection, reader: FactReader, stored: int) -> str | None:
    """``platform:id`` of the selected person this queued request is, :data:`UNSURE`, or None (keep it).
    ``stored``: the size of the bytes it was read from."""
    if _expands(request, _PER_BYTE * stored + _BESIDES):
        return UNSURE
    found: dict[str, None] = {}
    sure = True
    try:
        found.update(dict.fromkeys(_by_facts(request, selection, reader)))
    except Exception:  # noqa: BLE001 - the crawl would deny it as unreadable; whose it is cannot be told
        sure = False
    if UNSURE in found:
        del found[UNSURE]
        sure = False
    found.update(_named_in(request, selection, [request.get("meta"), request.get("cb_kwargs")]))
    if len(found) == 1 and sure:
        return next(iter(found))
    return UNSURE if found or not sure else None


def named_in_state(raw: bytes, selection: Selection) -> list[str]:
    """The selected people a spider's pickled ``state`` (``JOBDIR/spider.state``) names by an absolute URL or an
    item anywhere in it, read as a queued request is. Raises :class:`PurgeFailed` when it cannot be read, or is far
    larger read than stored: whether it names them cannot be told."""
    try:
        state = _Unpickler(io.BytesIO(raw)).load()
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same
        raise PurgeFailed(f"the spider's state cannot be read ({type(exc).__name__})") from None
    if _expands(state, _PER_BYTE * len(raw) + _BESIDES):
        raise PurgeFailed("the spider's state holds far more values than its bytes: it cannot be read")
    return list(_named_in(state, selection, [state]))


def _named_in(value: Any, selection: Selection, carriers: list[Any]) -> dict[str, None]:
    """The selected people an absolute URL anywhere in ``value`` names (or a path, a URL without its scheme: a
    mention, as :mod:`.mentioned` finds one in a kept item), or an item (a dict with str keys) in ``carriers``."""
    found: dict[str, None] = {}
    for url in _strings(value):
        for candidate in urls_in(url):
            who = selection.url(candidate) or selection.sources.get(candidate)
            if who is not None:
                found[who] = None
        found.update(dict.fromkeys(people_in(selection, url)))  # a path or a URL without its scheme, too
    for fields in _mappings(carriers):
        goes, who = selection.whose_item(fields)
        if goes and who is not None:
            found[who] = None
    return found


def _by_facts(request: Mapping[str, Any], selection: Selection, reader: FactReader) -> Iterator[str]:
    """The selected people the crawl's own facts find in the request, and :data:`UNSURE` for a reading of no one
    person (the crawl denies it: a lenient server could take it for anyone). Raises for one it could not read."""
    url = request["url"]
    meta = request.get("meta") or {}
    body = request.get("body") or b""
    if not isinstance(meta, dict) or not isinstance(body, bytes):
        raise ValueError("meta or body of another type")
    headers = Headers(request.get("headers") or {})
    cookies = _cookie_header(request.get("cookies"))
    if cookies:
        headers.appendlist(b"Cookie", cookies)
    facts = reader.facts(url, "purge", datetime.now(timezone.utc),
                         **request_inputs(meta, headers, body, headers.get(b"Content-Type") if body else None,
                                          content_encoding(headers) if body else None))
    platform = facts.platform.name if facts.platform is not None else None
    keys = [facts.subject] + [key for _, key in facts.ambiguous.readings] if facts.ambiguous else [facts.subject]
    for key in keys:
        who = selection.person(platform, key)
        if who is not None:
            yield who
    if facts.ambiguous and any(key is None for _, key in facts.ambiguous.readings):
        yield UNSURE
    named = one_value(meta.get("consentcrawl_subject"))
    # as named, whatever the URL says: a mismatch is denied by the crawl, and erased here (each of several values)
    if several(named):  # the crawl reads several values (or a list of lists) as no one person: unsure, as when the
        yield UNSURE    # URL and meta agree (facts) and also past a mismatch, which returns before that reading
    for one in (named if several(named) else () if named is None else (named,)):
        if not isinstance(one, (str, int)) or isinstance(one, bool):  # [["1022"]]: no id, read as text or not
            continue
        name, sep, ident = str(one).partition(":")
        who = selection.person(name, ident) if sep and name in selection.platforms else selection.person(
            platform, str(one))
        if who is not None:
            yield who
    who = selection.url(url)
    if who is not None:
        yield who


def _cookie_header(cookies: Any) -> str | None:
    """The ``Cookie`` header CookiesMiddleware makes at send time from a request's ``cookies`` (a dict, or a list
    of dicts with ``name`` and ``value``), which the crawl then reads; a queued request stores them apart from its
    headers. Raises for cookies of another shape."""
    if not cookies:
        return None
    pairs = cookies.items() if isinstance(cookies, dict) else [(c["name"], c["value"]) for c in cookies]
    return "; ".join(f"{_text(name)}={_text(value)}" for name, value in pairs)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _expands(request: Any, limit: int) -> bool:
    """Whether ``request``, read as a tree (every value as often as it is named, every character of its strings),
    holds more than ``limit`` values and characters. Counted without recursion, each value as it is reached, so
    the count stops at the limit before the values waiting to be read can outgrow it."""
    stack = [request]
    count = 1
    while stack:
        value = stack.pop()
        inner = _inside(value)
        count += len(inner) + (len(value) if isinstance(value, (str, bytes, bytearray)) else 0)
        if count > limit:
            return True
        stack.extend(inner)
    return False


def _walk(value: Any) -> Iterator[Any]:
    """Every value inside a queued request (dicts, lists, tuples, sets and Opaque objects), however deep: an API's
    JSON passed on in meta nests deep. Without recursion; what it reads was bounded by :func:`_expands` first."""
    stack = [value]
    while stack:
        value = stack.pop()
        yield value
        stack.extend(_inside(value))


def _inside(value: Any) -> Any:
    """The values directly inside ``value``: a dict's keys and values, a sequence's or set's items, an Opaque's
    arguments, state and items."""
    if isinstance(value, Opaque):
        return (value.args, value.state, value.items)
    if isinstance(value, dict):
        return (*value.keys(), *value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return ()


def _strings(value: Any) -> Iterator[str]:
    for inner in _walk(value):
        if isinstance(inner, str):
            yield inner
        elif isinstance(inner, (bytes, bytearray)):
            yield bytes(inner).decode("latin-1")


def _mappings(carriers: list[Any]) -> Iterator[Mapping[str, Any]]:
    """The dicts in ``carriers`` (a request's meta and ``cb_kwargs``: an item passed on), an Opaque's state too."""
    for carrier in carriers:
        for value in _walk(carrier):
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                yield value
