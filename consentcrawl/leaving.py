"""The last item pipeline: the person an item was kept on, asked again as the item leaves the pipelines.

The guard pipeline decides an item first, before any other pipeline sees it. The pipelines after it may take long
before the item reaches ``item_scraped`` and the feeds: a media pipeline downloads the item's files (behind the
origin's ``Crawl-delay``, within ``DOWNLOAD_TIMEOUT``), a pipeline of the project's own awaits a service. A person
who withdraws meanwhile (or whose grant, or the platform's, ends) must not have the item written. So the add-on puts
this pipeline after every other one, and it asks the person's records again, at that time: a remembered answer
while nothing changed (the store's version, the validity spans), with no lookup.

Whose the item is: the person the guard kept it on, held for the item's processing
(:func:`~consentcrawl.deniedpeople.item_kept_person`), since a pipeline after the guard may hand on a new object in
the shape its export wants, without the subject field or the provenance (or the item never said: an ``Item`` class
without those fields, kept on its page's person by identity, :mod:`consentcrawl.itempages`); and the person the item
names as it leaves, read as the guard reads it (:func:`~consentcrawl.itemperson.item_person`), if that is another.
An item a pipeline between made name another platform than its page's, or several people, is denied as the guard
would deny it. Each person is asked; any deny drops the item. So is each other person the guard let the item
mention (:mod:`consentcrawl.mentions`): one no longer allowed has the item's mentions read again and withheld, as
the guard withholds them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item

from .decision import Stage, deny
from .deniedpeople import item_judged, item_kept_person, item_mentioned, item_reason
from .itemperson import item_person
from .itemsource import refuse_non_item
from .mentions import guard_mentions
from .onevalue import one_value
from .pipelines import ConsentDropItem, drop
from .runtime import RuntimeComponent

if TYPE_CHECKING:
    from datetime import datetime

    from .decision import Decision
    from .runtime import ConsentRuntime

__all__ = ["ConsentLeavingPipeline"]

logger = logging.getLogger("consentcrawl")


class ConsentLeavingPipeline(RuntimeComponent):
    """Drops an item whose person may no longer be collected as it leaves the last pipeline (see the module doc)."""

    async def process_item(self, item: Any) -> Any:
        runtime = self.runtime
        if runtime is None:
            raise drop(item, "configuration error")
        if item_reason() is not None:  # report mode let on an item the guard denied: recorded there already
            return item
        if not is_item(item):  # a pipeline between handed on no item: whose it is cannot be read, nor its value shown
            refuse_non_item(runtime, type(item).__name__, "as it left the pipelines")
            logger.warning("consentcrawl: an item pipeline handed on a %s in place of the item (process_item must "
                           "return the item): refused (error.internal)", type(item).__name__)
            raise ConsentDropItem(f"consentcrawl: error.internal (not an item: {type(item).__name__})")
        config = runtime.config
        adapter: Any = item if type(item) is dict else ItemAdapter(item)
        names = item.keys() if adapter is item else adapter.field_names()
        provenance = adapter.get(config.provenance_field) if config.provenance_field else None
        provenance = provenance if isinstance(provenance, dict) else {}
        people = [kept] if (kept := item_kept_person()) is not None else []
        person = item_person(adapter, names, config.subject_field, one_value(adapter.get(config.subject_field)),
                             provenance)
        if person is not None and person.cause is not None:  # a later pipeline made it undecidable: as the guard
            decision = deny(Stage.SUBJECT, person.reason, platform=person.stamped, evidence=(person.cause,))
            return self._denied(runtime, item, decision, provenance.get("url"), runtime.config.now())
        if person is not None and (named := (person.platform, str(person.subject))) not in people:
            people.append(named)
        for asked in people:  # none: no one's, or no item the guard kept (its processing not followed)
            now = runtime.config.now()
            decision = await runtime.decider.decide_subject(*asked, config.purpose, now)
            if not decision.allowed:
                return self._denied(runtime, item, decision, provenance.get("url"), now)
        for mentioned in item_mentioned():  # one no longer allowed: the mentions read again, as the guard did
            if not (await runtime.decider.decide_subject(*mentioned, config.purpose, runtime.config.now())).allowed:
                if (dropping := await guard_mentions(runtime, item)) is not None:
                    runtime.count("consentcrawl/items/dropped")
                    raise drop(item, dropping, config.provenance_field)
                break
        return item

    @staticmethod
    def _denied(runtime: ConsentRuntime, item: Any, decision: Decision, url: Any, now: datetime) -> Any:
        """Drop ``item`` for ``decision`` (enforce mode), or let it on unlogged (report mode)."""
        config = runtime.config
        runtime.record(decision, url, None, "item", time=now)
        runtime.count("consentcrawl/items/dropped")
        runtime.count("consentcrawl/items/denied_leaving")
        if runtime.enforce:
            raise drop(item, str(decision.reason), config.provenance_field)
        item_judged(str(decision.reason))  # report mode lets it on: no line at INFO or above may show it
        return item
