"""What the crawl knows of the people it may not collect, for the lines that name people as text.

:class:`DeniedPeople` is every person a decision of this crawl did not allow (any phase, in either mode): a log line
that names them by a bare id (``raise CloseSpider(f"stopped at {user_id}")``, an exception's message) cannot be
told from other text except by that id. :func:`url_reason` says what may be said of a URL found in a line: the
reason code when the person it names is not allowed (or is not known to be allowed: ``undecided``), None for a URL
that names no one or an allowed person.

:func:`judging_item` and :func:`item_judged`: the guard's verdict on the item the pipelines are processing, kept for
the duration of that processing (a context variable, set by :class:`~consentcrawl.itemsource.ItemSources` around
Scrapy's ``start_itemproc_async``), in which Scrapy logs ``Dropped: ... <item>``, ``Error processing <item>``, a
media pipeline's ``found errors processing <item>`` and the errors of ``item_scraped`` handlers. The item the guard
let through in report mode is the person's data whatever the line's logger; one it never judged is ``undecided``.
"""

from __future__ import annotations

import re
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from .deciding import Undecided
from .decision import not_allowed_reason
from .reasons import SUBJECT_AMBIGUOUS_URL

if TYPE_CHECKING:
    from .decision import Decision
    from .runtime import ConsentRuntime

UNDECIDED = "undecided"
#: the words an id may be: a run of letters and digits, or one with dots, dashes or pluses inside (a handle)
_WORDS = (re.compile(r"\w+"), re.compile(r"\w[\w.+-]*\w"))
#: what stands in a line for the id of a person consentcrawl did not allow
ID_STAND_IN = "<a person consentcrawl did not allow ({reason}); at DEBUG>"


class DeniedPeople:
    """The people a decision of this crawl did not allow, each with the first reason given (module doc)."""

    def __init__(self) -> None:
        self._reasons: dict[tuple[str, str], str] = {}
        self._by_id: dict[str, str] = {}

    def saw(self, decision: Decision) -> None:
        """A decision that did not allow: its person (if it names one) is denied from now on."""
        subject, platform = decision.subject, decision.platform
        if not subject or decision.allowed:
            return
        key = (str(platform or ""), str(subject).casefold())
        if key not in self._reasons:
            self._reasons[key] = str(decision.reason)
            self._by_id.setdefault(key[1], str(decision.reason))

    def reason(self, platform: str, subject: str) -> str | None:
        return self._reasons.get((platform, subject.casefold()))

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def ids_out(self, text: str, stand_in: str) -> str:
        """``text`` with every denied person's id that stands as a word of its own (``107`` in ``stopped at 107``,
        in ``/u/107``; not in ``1070``; ``john.doe`` in ``by john.doe.``) replaced by ``stand_in`` formatted with
        its reason. Each word is looked up, so the cost is the text's length, however many people were denied."""
        by_id = self._by_id
        if not by_id:
            return text
        found = sorted((m.start(), -m.end(), by_id[m[0].casefold()]) for words in _WORDS for m in words.finditer(text)
                       if m[0].casefold() in by_id)
        said, at = [], 0
        for start, end, reason in found:  # from the left, the longer of two that start alike first
            if start >= at:
                said += [text[at:start], stand_in.format(reason=reason)]
                at = -end
        return "".join([*said, text[at:]]) if found else text


def url_reason(runtime: ConsentRuntime, url: str) -> str | None:
    """What a line may say of ``url`` instead of naming it: the reason code of a live decision at it that is not an
    allow; for a URL that names a person (as the crawl reads URLs), the reason they were denied, ``undecided`` when
    their records are not known (not looked up, or changed since) or say nothing; None for an allowed person's URL
    or one that names no one."""
    live = [not_allowed_reason(decision) for decision in runtime.decisions_at(url)]
    refused = next((reason for reason in live if reason), None)
    if refused is not None:
        return refused
    now = runtime.config.now()
    facts, bad = runtime.facts_for(None, url, now)
    if facts is None:
        return str(bad.reason) if bad is not None else UNDECIDED
    if facts.ambiguous is not None:
        return SUBJECT_AMBIGUOUS_URL
    if facts.platform is None or facts.subject is None:
        return None
    platform, subject = facts.platform.name, facts.subject
    denied = runtime.denied_people.reason(platform, subject)
    if denied is not None or live:  # denied, or a live allow at this very URL
        return denied
    purpose = runtime.config.purpose
    decided = runtime.decider.now(lambda answers: runtime.engine.decide_subject(platform, subject, purpose, now,
                                                                                answers))
    return UNDECIDED if isinstance(decided, Undecided) else not_allowed_reason(decided)


# -- the item being processed ------------------------------------------------------------------------------------

_ITEM: ContextVar[list[str | None] | None] = ContextVar("consentcrawl_item_verdict", default=None)


def judging_item() -> Token[list[str | None] | None]:
    """An item goes to the pipelines: until the guard says otherwise it is ``undecided``; reset with the token."""
    return _ITEM.set([UNDECIDED])


def done_judging(token: Token[list[str | None] | None]) -> None:
    _ITEM.reset(token)


def item_judged(reason: str | None) -> None:
    """The guard's verdict on the item being processed: None for one it allowed or that is no one's."""
    verdict = _ITEM.get()
    if verdict is not None:
        verdict[0] = reason


def item_reason() -> str | None:
    """The reason code of the item being processed, when it was not allowed (or never judged); None when it was, or
    when no item is being processed."""
    verdict = _ITEM.get()
    return verdict[0] if verdict is not None else None


def item_line_reason() -> str | None:
    """What a line naming an item may say of it: as :func:`item_reason` while it is processed, ``undecided`` for an
    item named outside the pipelines' processing."""
    verdict = _ITEM.get()
    return verdict[0] if verdict is not None else UNDECIDED
