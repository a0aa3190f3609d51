"""Whose an item is: one reading of its fields and provenance, for the guard pipeline and the leaving check.

The guard pipeline decides an item when it enters the pipelines, the leaving check (:mod:`consentcrawl.leaving`)
asks again as it leaves them; a pipeline between the two may have changed the item. Were the leaving check to read
the item's person more simply than the guard (a platform field taken as it is, without its page's), a field the
guard would have denied could have the item asked about as someone else at the end. So both read it here.

Pure: the item is read through the adapter the caller made; no Scrapy, no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .decision import Evidence
from .itempages import ItemPages
from .onevalue import one_value, several
from .reasons import SUBJECT_AMBIGUOUS_URL, SUBJECT_MISMATCH

__all__ = ["ItemPerson", "item_person"]


@dataclass(frozen=True)
class ItemPerson:
    """The person an item is about, and why it cannot be decided on them (``cause`` not None: deny, ``reason``)."""

    platform: str | None  #: the platform the item is judged on: its own field's, else its page's; None: not one
    subject: Any  #: the id as the item gives it (a list: several, see ``cause``)
    stamped: Any  #: the platform its page's provenance names
    cause: Evidence | None = None
    reason: str = ""


def _mismatch(named: Any, stamped: Any, provenance: dict[str, Any]) -> Evidence | None:
    """Why the item cannot be judged on its page's records, or None: it names another platform than its page's,
    or it was yielded from the pages of different people before the guard took it (itempages.py)."""
    if named and stamped and named != stamped:
        return Evidence("item", "item", {"platform": str(named)[:100], "page_platform": stamped,
                                         "cause": "the item names another platform than its page's"})
    pages = ItemPages.conflicting(provenance)
    if pages:
        return Evidence("item", "item", {
            "pages": [{"url": p.get("url"), "platform": p.get("platform"), "subject": p.get("subject")}
                      for p in pages],
            "cause": "the item was yielded from the pages of different people"})
    return None


def item_person(adapter: Any, names: Any, subject_field: str, subject: Any,
                provenance: dict[str, Any]) -> ItemPerson | None:
    """Whose the item read through ``adapter`` (field ``names``) is: ``subject``, its ``subject_field`` as
    :func:`~consentcrawl.onevalue.one_value` read it, else the person of its page (``provenance``); None when it
    names no one. The platform is its ``platform`` field, else its page's."""
    if subject in (None, ""):
        # an item from a person's page that does not repeat whose it is: it is about the page's person
        subject = provenance.get("subject")
        if subject in (None, ""):
            return None
    named = one_value(adapter.get("platform")) if "platform" in names else None
    stamped = provenance.get("platform")
    platform = named or stamped
    if not isinstance(platform, str):  # a list from getall(), a Selector...: not a platform we can name
        platform = None
    cause = _mismatch(named, stamped, provenance)
    if cause is not None:
        return ItemPerson(platform, subject, stamped, cause, SUBJECT_MISMATCH)
    if several(subject):  # whose it is cannot be told
        return ItemPerson(platform, subject, stamped, Evidence("item", "item", {"platform": platform, "cause": (
            f"the item's {subject_field!r} holds several values ({len(subject)}), not one person")}),
            SUBJECT_AMBIGUOUS_URL)
    return ItemPerson(platform, subject, stamped)
