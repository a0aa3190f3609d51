"""Which of a spider's attributes an entry of the shared queue may name as its request's callback or errback.

A queue entry is data another process wrote (or anyone who can write the queue's key): the names in it are looked
up on the spider of whichever worker pops it, and called with a response or a failure. Only what a request of the
spider could have named is accepted: a *method the project's spider class defines* (a plain function on the class
or one of its own base classes), or one of the methods Scrapy's generic spiders give their own requests
(:data:`SCRAPY_CALLBACKS`). Refused, even where the project's class defines them:

- the methods Scrapy calls by name (``start``, ``start_requests``, ``close``, ``closed``, ``from_crawler``,
  ``update_settings``, ``handles_request``, ``log``...: :data:`HOOKS`), and any ``__dunder__``;
- every other method of a class of Scrapy, scrapy-redis or consentcrawl (``ConsentSpider``'s, ``RedisSpider``'s);
- anything that is not a plain function of the class: an instance attribute, a ``staticmethod`` or
  ``classmethod``, a class, a ``functools.partial``, a property.

The same rule holds when a request is queued (:meth:`~.heldqueue.HeldPriorityQueue._encode_request`): a request
whose callback it refuses is not queued but sent by the worker that made it, so every entry a worker writes is one
every worker of the same deploy accepts.
"""

from __future__ import annotations

import types
import weakref
from typing import Any

import scrapy

__all__ = ["HOOKS", "MISSING", "SCRAPY_CALLBACKS", "callback_names", "refusal"]

#: the methods Scrapy's own spiders name as their requests' callbacks and errbacks (``Spider``, ``CrawlSpider``,
#: ``SitemapSpider``, the feed spiders)
SCRAPY_CALLBACKS = frozenset({"parse", "_parse", "parse_start_url", "_callback", "_errback", "_parse_sitemap"})
#: called by Scrapy by name, never a request's callback (``closed`` is called by ``Spider.close``)
HOOKS = (frozenset(name for name in vars(scrapy.Spider) if name not in SCRAPY_CALLBACKS)
         | {"closed", "start", "start_requests"})
#: the top-level packages whose spider classes' other methods are the framework's, not callbacks
FRAMEWORK = frozenset({"scrapy", "scrapy_redis", "consentcrawl"})
#: :func:`refusal`'s answer for a name the spider has no attribute for (another deploy's callback, or none's)
MISSING = "missing"


def _defined(cls: type, name: str) -> tuple[type, Any] | None:
    """The class of ``cls``'s MRO that defines ``name``, and what it holds there."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass, vars(klass)[name]
    return None


def refusal(spider: Any, name: Any) -> str | None:
    """None when ``spider``'s attribute ``name`` may be run as a queued request's callback or errback;
    :data:`MISSING` when the spider has no such attribute; else why it is refused."""
    if not isinstance(name, str) or not name.isidentifier():
        return "it is not a method name"
    if name in HOOKS or (name.startswith("__") and name.endswith("__")):
        return f"{name!r} is a method Scrapy calls, not a callback"
    if name in getattr(spider, "__dict__", ()):
        return f"{name!r} is an attribute of the spider object, not a method of its class"
    known = _known.setdefault(type(spider), {})
    if name in known:  # asked for every request queued and popped; a spider names few callbacks
        return known[name]
    answer = _class_refusal(type(spider), name)
    if len(known) < 256:  # names come from the queue's writers too: the memory stays bounded
        known[name] = answer
    return answer


#: :func:`_class_refusal`'s answers, by spider class and name
_known: weakref.WeakKeyDictionary[type, dict[str, str | None]] = weakref.WeakKeyDictionary()


def _class_refusal(cls: type, name: str) -> str | None:
    """:func:`refusal` by the spider's class alone."""
    found = _defined(cls, name)
    if found is None:
        return MISSING
    klass, value = found
    if not isinstance(value, types.FunctionType):
        return f"{name!r} is a {type(value).__name__}, not a method"
    if klass.__module__.partition(".")[0] in FRAMEWORK and name not in SCRAPY_CALLBACKS:
        return f"{name!r} is a method of {klass.__module__}.{klass.__qualname__}, not a callback"
    return None


def callback_names(spider: Any) -> list[str]:
    """Every name :func:`refusal` accepts for ``spider`` (what this deploy can run), sorted."""
    names = {name for klass in type(spider).__mro__ for name in vars(klass)}
    return sorted(name for name in names if refusal(spider, name) is None)
