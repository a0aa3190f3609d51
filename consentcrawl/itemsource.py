"""Which response Scrapy says an item came from: the page of an item that carries none.

The spider middleware gives each item of a decided page that page's provenance: in the item's provenance field,
or, for an item that cannot carry it (the field off, an ``Item`` class without it), by the item object's identity
(:mod:`consentcrawl.itempages`). A project's spider middlewares meet a callback's output after ours, and one that
copies items (``yield dict(item)``, ``ItemAdapter(item).asdict()``, an item rebuilt from the old one, a new dict
of some of its fields) hands the pipelines an object that carries no page and that the spider middleware never
saw: the guard took it for no one's, and let it out with the fields its person's grant does not cover, or after
their grant had ended.

Scrapy knows which response every item it hands to the item pipelines came from
(``Scraper.start_itemproc_async(item, response=...)``): the page whose callback's output, through every spider
middleware, it is part of; the failure, for an errback's output (which no spider middleware sees); None for
``start()``'s. :class:`ItemSources`, in its place, keeps it in a context variable while the pipelines run, and the
guard reads it (:func:`item_source`) for an item that names no one, carries no page and is not an object the spider
middleware saw:

- a page: the item is judged as that page's person's, as if the spider middleware had stamped it;
- a failure or None: no page, as before (the items an errback yields for a refusal are dropped by errbacks.py);
- a page that was never decided, or no source at all (the item reached the pipelines without Scrapy's scraper:
  ``scrapy parse --pipelines`` hands a callback's items to them directly, and a project's code may): whose it is
  cannot be told, and it is dropped (``subject.unknown-page``).

A value that is no item at all (a ``str``, a ``tuple``, a number: Scrapy 2.19 hands any output that is not a
request or None to the pipelines) is refused here, before the pipelines: the guard cannot read whose it is and
would drop it (``error.internal``), but it cannot empty an immutable value, and Scrapy would hand it, with the name
or the refused URL it holds, to every ``item_dropped`` handler. It is recorded and counted as the guard's drop is.

What it cannot tell: a middleware that holds an item back and yields a *copy* of it while another page's output
passes makes the copy that page's. The held item itself keeps its own page (by identity), and a copy keeps it too
when it carries the provenance field (a dict's copy, an ``Item`` class that declares the field).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from itemadapter import is_item

from .decision import Evidence, Stage, deny
from .deniedpeople import done_judging, judging_item
from .runtime import get_runtime

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from .runtime import ConsentRuntime

logger = logging.getLogger("consentcrawl")

#: what :func:`item_source` returns for an item handed to the pipelines by anything but Scrapy's scraper
NO_SOURCE = object()
_SOURCE: ContextVar[Any] = ContextVar("consentcrawl_item_source", default=NO_SOURCE)


def item_source() -> Any:
    """The response (a failure for an errback's output, None for ``start()``'s) Scrapy said the item the pipelines
    are processing now came from; :data:`NO_SOURCE` outside Scrapy's scraper."""
    return _SOURCE.get()


class ItemSources:
    """``Scraper.start_itemproc_async`` for a crawl: the item's response is :func:`item_source` while its pipelines
    run (a context variable: each item's pipelines run in their own task or under this call)."""

    def __init__(self, crawler: Crawler, start: Callable[..., Awaitable[None]]) -> None:
        self.crawler = crawler
        self.start = start

    async def __call__(self, item: Any, *, response: Any) -> None:
        if not is_item(item):  # no pipeline, and no item_dropped handler, is handed it (module doc)
            self.refuse(type(item).__name__)
            return
        token, judging = _SOURCE.set(response), judging_item()  # the guard's verdict, for the lines about the item
        try:
            await self.start(item, response=response)
        finally:
            done_judging(judging)
            _SOURCE.reset(token)

    def refuse(self, kind: str) -> None:
        """Record the refusal of a value that is no item, of type ``kind`` (its value is not written anywhere)."""
        refuse_non_item(get_runtime(self.crawler), kind, "before the item pipelines")


def refuse_non_item(runtime: ConsentRuntime | None, kind: str, where: str) -> None:
    """Record the refusal of a value of type ``kind`` that is no item (a callback's, or what a project's pipeline
    handed on), refused ``where``; its value is not written anywhere."""
    logger.debug("consentcrawl: a %s was handed on as an item; refused %s (error.internal)", kind, where)
    if runtime is None:  # a configuration error: nothing is kept anyway
        return
    runtime.record(deny(Stage.ERROR, "error.internal", evidence=(
        Evidence("item", "item", {"cause": f"not an item: {kind}"}),)), None, None, "item")
    runtime.count("consentcrawl/items/dropped")
