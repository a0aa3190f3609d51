"""The last item pipeline: the person an item was kept on, asked again as the item leaves the pipelines.

The guard pipeline decides an item first, before any other pipeline sees it. The pipelines after it may take long
before the item reaches ``item_scraped`` and the feeds: a media pipeline downloads the item's files (behind the
origin's ``Crawl-delay``, within ``DOWNLOAD_TIMEOUT``), a pipeline of the project's own awaits a service. A person
who withdraws meanwhile (or whose grant, or the platform's, ends) must not have the item written. So the add-on puts
this pipeline after every other one, and it asks the person's records again, at that time: a remembered answer
while nothing changed (the store's version, the validity spans), with no lookup.

Whose the item is, it reads as the guard does (:func:`~consentcrawl.itemperson.item_person`): the subject field,
else the person its provenance names (the page it came from), on the item's platform field, else its page's. An
item a pipeline between made name another platform than its page's, or several people, is denied as the guard
would deny it. An item that says neither (an ``Item`` class without those fields, kept on its page's person by
identity, :mod:`consentcrawl.itempages`; or one a pipeline between took them out of) is asked again about the
person the guard allowed it on.
"""

from __future__ import annotations

from typing import Any

from itemadapter import ItemAdapter

from .decision import Stage, deny
from .deniedpeople import item_allowed_person, item_judged, item_reason
from .itemperson import item_person
from .onevalue import one_value
from .pipelines import drop
from .runtime import RuntimeComponent

__all__ = ["ConsentLeavingPipeline"]


class ConsentLeavingPipeline(RuntimeComponent):
    """Drops an item whose person may no longer be collected as it leaves the last pipeline (see the module doc)."""

    async def process_item(self, item: Any) -> Any:
        runtime = self.runtime
        if runtime is None:
            raise drop(item, "configuration error")
        if item_reason() is not None:  # report mode let on an item the guard denied: recorded there already
            return item
        config = runtime.config
        adapter: Any = item if type(item) is dict else ItemAdapter(item)
        names = item.keys() if adapter is item else adapter.field_names()
        provenance = adapter.get(config.provenance_field) if config.provenance_field else None
        provenance = provenance if isinstance(provenance, dict) else {}
        person = item_person(adapter, names, config.subject_field, one_value(adapter.get(config.subject_field)),
                             provenance)
        allowed_on = item_allowed_person()
        if person is None and allowed_on is None:
            return item  # no one's
        now = runtime.config.now()
        if person is None:  # it does not say whose it is (any more): the person the guard allowed it on
            assert allowed_on is not None
            decision = await runtime.decider.decide_subject(*allowed_on, config.purpose, now)
        elif person.cause is not None:  # a later pipeline made it undecidable: denied, as the guard would have
            decision = deny(Stage.SUBJECT, person.reason, platform=person.stamped, evidence=(person.cause,))
        else:
            decision = await runtime.decider.decide_subject(person.platform, str(person.subject), config.purpose,
                                                            now)
        if decision.allowed:
            return item
        runtime.record(decision, provenance.get("url"), None, "item", time=now)
        runtime.count("consentcrawl/items/dropped")
        runtime.count("consentcrawl/items/denied_leaving")
        if runtime.enforce:
            raise drop(item, str(decision.reason), config.provenance_field)
        item_judged(str(decision.reason))  # report mode lets it on: no line at INFO or above may show it
        return item
