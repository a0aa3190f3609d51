"""Who a crawl purges from its own outputs at its end besides the people who withdrew: the people whose own say it
found denies them (``CONSENTCRAWL_PURGE_ON_CLOSE``, :mod:`consentcrawl.purge.onclose`). Pure: no Scrapy, no I/O.

A refusal on a person's page stops their pages from the moment it is read, but not what the crawl let through
before: their posts fetched before their profile (the first-page gate holds a person's requests only until a page
*showing their profile* is read), what was collected before they changed their profile, what this worker
collected before another worker of a distributed crawl read their refusal. The person said no: their data goes,
like a withdrawn person's, with a receipt that says which say selected them.

- **refused** (``refused-during-crawl``): a decision of the crawl denied them ``subject.refused-on-page`` (also
  for a refusal known from the refusal log: the cached pages that name them go, as a withdrawn person's do), or
  the crawl let their data through and, at its end, the refusal book or the cluster holds a refusal of theirs of
  the crawl's purpose. ``because`` names each refusal's ``refusal-found`` event and form, and who saw it.
- **unread** (``unread-during-crawl``): the actor their profile links to could not be read (the crawl denied them
  for it, :class:`~consentcrawl.refusals.book.Unread`): what they say is not known, and when unsure, erase. The
  next crawl asks again. Also a person whose data the crawl let through but neither whose profile page itself
  nor a page of whom *showing their profile* was ever read for refusals (``because`` ``cause:
  profile-never-read``): the crawl ended, or ``CLOSESPIDER_*`` stopped it, after their posts and before their
  profile, or the spider never asked for it. The first-page gate
  (:class:`~consentcrawl.refusalphase.FirstPageGate`) tells who was read; the workers of a distributed crawl tell
  each other through Redis, and where the cluster cannot say, the rule is not applied (``profile_read`` None).

A person both refused and withdrawn is purged once, as refused: their own say comes first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..refusals.book import ClusterSay, Refusal, RefusalBook
from ..terms.platforms import PlatformRegistry

__all__ = ["NEVER_READ", "REFUSED", "UNREAD", "WITHDRAWN", "Cause", "check_purge_on_close", "denied_people"]

WITHDRAWN = "withdrawn-during-crawl"
REFUSED = "refused-during-crawl"
UNREAD = "unread-during-crawl"

Person = tuple[str, str]


@dataclass(frozen=True)
class Cause:
    """Why a person goes: the receipt's ``selection``, and (refused) ``because``."""

    selection: str
    because: tuple[Mapping[str, Any], ...] = ()

    def receipt_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"selection": self.selection}
        if self.selection != WITHDRAWN:
            fields["because"] = [dict(b) for b in self.because]
        return fields


def _because(refusal: Refusal, logged: Collection[Refusal]) -> dict[str, Any]:
    return {"event": refusal.event_id, "form": refusal.form,
            "seen_by": "refusal log" if refusal in logged else "this crawl"}


#: ``because`` of a person whose data the crawl let through and whose profile it never read
NEVER_READ = {"seen_by": "this crawl", "cause": "profile-never-read"}


def denied_people(book: RefusalBook, purposes: frozenset[str], *, refused_decided: Iterable[Person],
                  collected: Iterable[Person], logged: Collection[Refusal] = (),
                  cluster: Mapping[Person, ClusterSay] | None = None,
                  profile_read: Collection[Person] | None = None) -> dict[Person, Cause]:
    """The people to purge for their own say, each with why (see the module doc).

    ``refused_decided``: people a decision denied ``subject.refused-on-page``; ``collected``: people the crawl let
    data of through; ``logged``: the refusals read from the refusal log at start; ``cluster``: what the workers
    published (a distributed crawl), by person; ``purposes``: what the crawl's purpose counts as;
    ``profile_read``: the people a page showing whose profile was read (None: not known, the rule is not
    applied)."""
    cluster = cluster or {}
    out: dict[Person, Cause] = {}
    decided = dict.fromkeys(refused_decided)
    for person in dict.fromkeys([*decided, *collected]):
        mine = [r for r in book.people.get(person, ()) if r.purposes & purposes]
        theirs = cluster.get(person)
        if mine:
            out[person] = Cause(REFUSED, tuple(_because(r, logged) for r in mine))
        elif theirs is not None and not theirs.unread:
            evidence = theirs.evidence
            out[person] = Cause(REFUSED, ({"event": evidence.get("event_id"), "form": evidence.get("form"),
                                          "seen_by": "another worker"},))
        elif person in decided:  # denied for a refusal whose evidence this worker no longer holds
            out[person] = Cause(REFUSED)
        elif book.unread(*person) is not None:
            out[person] = Cause(UNREAD, ({"seen_by": "this crawl"},))
        elif theirs is not None:
            out[person] = Cause(UNREAD, ({"seen_by": "another worker"},))
        elif profile_read is not None and person not in profile_read:
            out[person] = Cause(UNREAD, (NEVER_READ,))
    for person in book.unread_people:  # denied by this crawl: named by its decisions, whether collected or not
        out.setdefault(person, Cause(UNREAD, ({"seen_by": "this crawl"},)))
    return out


def check_purge_on_close(platforms: PlatformRegistry) -> None:
    """Purge on close erases everyone collected whose profile page was never read for refusals; on a platform
    without profile templates no URL is anyone's profile page, so it would erase everyone collected there,
    whatever they said. The crawl cannot tell whose a page is there: it does not start (rather than erase all, or
    none, silently)."""
    for platform in platforms.platforms.values():
        if not platform.profiles:
            raise ConfigError(
                f"platform {platform.name!r} ({platform.source}) has no profile templates: no page there can be "
                "told to be a person's profile, so no one's profile is ever read for refusals and purge on close "
                "would erase everyone the crawl collects there; give the platform its `profiles` in the platforms "
                "file, or turn purge on close off and erase withdrawn people with `consentcrawl purge --withdrawn`",
                source="CONSENTCRAWL_PURGE_ON_CLOSE")
