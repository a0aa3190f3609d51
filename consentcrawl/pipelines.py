"""The guard pipeline: first in line, it keeps an item only if the person it names may be collected.

This is the last line of defence and the one that sees people's data on listing pages, search results and
anywhere else that is not a profile URL: an item naming a subject must be covered by a live authorization of
the platform and of the person for the crawl's purpose, or it is dropped before any other pipeline sees it.

The other people a kept item mentions in its values (a friend's profile URL) are decided too, and withheld from
it when not allowed (:mod:`consentcrawl.mentions`).

A dropped item is emptied first (:func:`emptied`). Scrapy hands the very item object it dropped to every
``item_dropped`` handler (a project's handler that logs or stores dropped items) and to the log formatter's
``dropped`` line; no pipeline can hand them another object. Not raising ``DropItem`` is no way out either: an item
returned goes on to ``item_scraped`` and the feeds, any other exception makes it an ``item_error``, logged at ERROR
with the item. So the handlers still learn that an item was dropped and why (the exception names the reason code),
never whose it was or what it held; the audit log has the decision.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import DropItem
from scrapy.http import Response
from twisted.python.failure import Failure

from ._scrapy_internals import item_pipelines
from .decision import Decision, Evidence, Stage, deny
from .deniedpeople import UNDECIDED, item_judged, item_kept_on, item_reason
from .itemperson import item_person
from .itemsource import ItemSources, item_source
from .mediaurls import (
    decide_media_requests,
    guard_stored_media,
    is_media_pipeline,
    keep_allowed_media,
    media_fields,
)
from .mentions import guard_mentions
from .onevalue import one_value
from .provenance import page_provenance, with_item_decision
from .reasons import SUBJECT_UNKNOWN_PAGE
from .runtime import RuntimeComponent, get_runtime, is_checked_url
from .startup import GuardProbe, ProbeSeen, guard_sees_item, hook_scraper

logger = logging.getLogger("consentcrawl")


class ConsentDropItem(DropItem):
    """Dropped for consent. Logged at DEBUG: the item holds the data of a person who did not authorize it.

    The level is set on the instance: ``DropItem.__init__`` sets ``log_level`` on every instance (``None`` meaning
    ``DEFAULT_DROPITEM_LOG_LEVEL``, WARNING), so a class attribute would be shadowed.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, log_level="DEBUG")


#: the key of the stand-in an emptied mapping keeps in the provenance field: why the guard dropped it
DROPPED = "dropped"


def emptied(item: Any, field: str | None = None, reason: str | None = None) -> Any:
    """``item`` without its data, in place: a mapping (a dict, a Scrapy ``Item``) loses every key, an item of
    fields (a dataclass, attrs, pydantic) has each set to None, a frozen one too, and so has every attribute of
    its own outside its fields. Any other holder of the same
    object (the spider kept it) is left the emptied item as well: the data of a person this crawl may not collect
    has no place in its memory either.

    A mapping that can take the provenance ``field`` is left ``{field: {"dropped": reason}}``: a handler sees why,
    and the same object yielded again (a page stamped it before the guard emptied it) is dropped again
    (:meth:`ConsentGuardPipeline._guard`), not let out as an empty item."""
    if isinstance(item, MutableMapping):
        for key in list(item.keys()):
            del item[key]
        if field:
            try:
                item[field] = {DROPPED: reason}
            except KeyError:  # an Item class without that field
                pass
        return item
    try:
        names = list(ItemAdapter(item).field_names())
    except TypeError:  # not an item itemadapter knows: its attributes are its data
        names = []
    # and any attribute the spider gave it besides its fields: the handlers are handed the object, not its fields
    names += [name for name in getattr(item, "__dict__", {}) if name not in names]
    for name in names:
        try:
            setattr(item, name, None)
        except Exception:  # noqa: BLE001 - frozen, or a validating setter: set underneath it
            try:
                object.__setattr__(item, name, None)
            except Exception:  # noqa: BLE001 - a field that cannot be set: the others still go
                continue
    return item


def drop(item: Any, reason: str, field: str | None = None) -> ConsentDropItem:
    """The exception that drops ``item`` for ``reason``; the item is emptied first (see the module doc)."""
    try:
        emptied(item, field, reason)
    except Exception:  # an item that will not be emptied is still dropped, never let on or logged
        logger.debug("consentcrawl: a dropped item could not be emptied", exc_info=True)
    return ConsentDropItem(f"consentcrawl: {reason}")


class ConsentGuardPipeline(RuntimeComponent):
    crawler: Any = None
    media: tuple[str, ...] = ()  #: the item fields media pipelines read URLs from (mediaurls.py)
    media_pipelines: list[Any] = []  #: the crawl's media pipelines (mediaurls.py), known once the spider opened

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        guard = cls(get_runtime(crawler))
        guard.crawler = crawler
        guard.media = media_fields(crawler.settings)
        crawler.signals.connect(guard.spider_opened, signal=signals.spider_opened)
        return guard

    def spider_opened(self, spider: Any = None) -> None:
        """The guard learns the response each item came from (itemsource.py) from the first item on."""
        hook_scraper(self.crawler, "start_itemproc_async", ItemSources,
                     "an item a spider middleware copied would pass the guard as no one's")
        if self.runtime is not None:  # a media pipeline hands on no file of a denied person (mediaurls.py)
            self.media_pipelines = [p for p in item_pipelines(self.crawler) if is_media_pipeline(p)]
            guard_stored_media(self.runtime, self.media_pipelines)

    async def process_item(self, item: Any) -> Any:
        if type(item) is GuardProbe:  # the start-up check that the item processor runs the guard (startup.py)
            raise ProbeSeen
        guard_sees_item()
        if self.runtime is None:
            raise drop(item, "configuration error")
        try:
            kept, decided = await self._guard(item)
            if item_reason() == UNDECIDED:  # allowed, or no one's: the lines about it may show it
                item_judged(None)
            if item_reason() is None:  # the other people it names (mentions.py); report mode's denied item: no one
                dropping = await guard_mentions(self.runtime, kept, decided)
                if dropping is not None:
                    self.runtime.count("consentcrawl/items/dropped")
                    raise drop(kept, dropping, self.runtime.config.provenance_field)
            adapter: Any = kept if type(kept) is dict else ItemAdapter(kept)
            await keep_allowed_media(self.runtime, adapter, kept.keys() if adapter is kept else adapter.field_names(),
                                     self.media)
            if self.media_pipelines:
                await decide_media_requests(self.runtime, kept, self.media_pipelines)
            return kept
        except ConsentDropItem:
            raise
        except Exception as exc:  # noqa: BLE001 - never let an item out, or into an ERROR line, on a failure
            cause = Evidence("error", "guard pipeline", {"error": type(exc).__name__})  # not str(exc): item data
            self.runtime.record(deny(Stage.ERROR, "error.internal", evidence=(cause,)), None, None, "item")
            self.runtime.count("consentcrawl/items/dropped")
            raise drop(item, f"error.internal ({type(exc).__name__})", self.runtime.config.provenance_field) from None

    async def _guard(self, item: Any) -> tuple[Any, Decision | None]:
        """The item to hand on, and the decision about the person it is about (None: no one's)."""
        assert self.runtime is not None
        config = self.runtime.config
        # a plain dict (what most spiders yield) is read as it is; any other kind of item through itemadapter
        adapter: Any = item if type(item) is dict else ItemAdapter(item)
        names = item.keys() if adapter is item else adapter.field_names()
        subject = one_value(adapter.get(config.subject_field))  # an ItemLoader's field is a list
        provenance = adapter.get(config.provenance_field) if config.provenance_field else None
        carried = isinstance(provenance, dict)
        if isinstance(provenance, dict) and DROPPED in provenance and len(provenance) == 1:
            # the guard dropped and emptied this very object already; yielded again, it holds nothing to decide on
            self.runtime.count("consentcrawl/items/dropped")
            raise drop(item, str(provenance[DROPPED]), config.provenance_field)
        if not isinstance(provenance, dict):  # an item that cannot carry it: its page, kept by the spider middleware
            page = self.runtime.item_pages.take(item)
            if page is None and subject in (None, ""):  # not an object it saw (a copy): the page Scrapy names
                page = self._source_page(item)
            # for an item that does not say whose it is; one that names a person but no platform stays undecidable
            provenance = page if page is not None and subject in (None, "") else {}
        findable = carried or subject not in (None, "")  # the output names its person: a purge can find it
        person = item_person(adapter, names, config.subject_field, subject, provenance)
        if person is None:
            return item, None
        if person.cause is not None:
            decision = self.runtime.record(deny(Stage.SUBJECT, person.reason, platform=person.stamped,
                                                evidence=(person.cause,)), provenance.get("url"), None, "item")
        else:
            decision = await self.runtime.decide_item(person.platform, str(person.subject), provenance.get("url"))
            if decision.allowed:  # asked again as the item leaves, whatever a later pipeline makes of its fields
                item_kept_on(person.platform, str(person.subject))
        if not decision.allowed:
            self.runtime.count("consentcrawl/items/dropped")
            if self.runtime.enforce:
                raise drop(item, str(decision.reason), config.provenance_field)
            item_judged(str(decision.reason))  # report mode lets it on: no line at INFO or above may show it
            return item, decision
        if config.provenance_field:
            written = self._add_provenance(adapter, config.provenance_field, provenance, decision, config.purpose)
            # an item that carried none (a copy) now names its page's person there: a purge can find it
            findable = findable or (written and provenance.get("subject") not in (None, ""))
        if not findable and decision.platform and decision.subject:
            self.runtime.item_pages.kept(decision.platform, decision.subject)  # a purge cannot find it in the output
        if decision.fields is not None and self.runtime.enforce:
            keep = set(decision.fields) | {config.subject_field, "platform"}
            if config.provenance_field:
                keep.add(config.provenance_field)
            for name in [n for n in names if n not in keep and n in adapter]:
                del adapter[name]
                self.runtime.count("consentcrawl/items/fields_removed")
        self.runtime.count("consentcrawl/items/kept")
        return item, decision

    def _source_page(self, item: Any) -> dict[str, Any] | None:
        """The provenance of the page Scrapy says the item came from (itemsource.py); None for no page (``start()``,
        an errback, a local URL). Whose it is cannot be told for an item of a page never decided, or one handed to
        the pipelines outside Scrapy's scraper: denied (``subject.unknown-page``)."""
        assert self.runtime is not None
        source = item_source()
        if source is None or isinstance(source, Failure):
            return None
        url = None
        if isinstance(source, Response):
            if not is_checked_url(source.url):
                return None
            decision = self.runtime.decision_for(source.request, source.url)
            if decision is not None:
                return page_provenance(decision, source.url, self.runtime.config.purpose)
            url, cause = source.url, "the item's page was never decided"
        else:
            cause = "the item reached the item pipelines outside Scrapy's scraper, from no page it names"
        decision = self.runtime.record(deny(Stage.SUBJECT, SUBJECT_UNKNOWN_PAGE, evidence=(
            Evidence("item", "item", {"cause": cause}),)), url, None, "item")
        self.runtime.count("consentcrawl/items/dropped")
        if self.runtime.enforce:
            raise drop(item, str(decision.reason), self.runtime.config.provenance_field)
        item_judged(str(decision.reason))
        return None

    @staticmethod
    def _add_provenance(adapter: Any, field: str, provenance: dict[str, Any], decision: Decision,
                        purpose: str | None) -> bool:
        """The person's grant this item is kept on, and the earliest end of the grants, into its provenance;
        whether it was written.

        An item yielded where no page decision stamped it (from ``start()``) gets a provenance of its own."""
        if not decision.allowed:
            return False
        if not provenance:
            provenance = {"decision_id": None, "url": None, "platform": decision.platform,
                          "subject": None, "purpose": purpose, "reason": None}
        try:
            adapter[field] = with_item_decision(dict(provenance), decision)
        except KeyError:  # an Item class without that field: provenance is in the audit log only
            return False
        return True
