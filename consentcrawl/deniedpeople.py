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
import unicodedata
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .deciding import Undecided
from .decision import not_allowed_reason
from .reasons import SUBJECT_AMBIGUOUS_URL
from .signals.policy import SignalsNeeded

if TYPE_CHECKING:
    from collections.abc import Callable

    from .decision import Decision
    from .facts import RequestFacts
    from .runtime import ConsentRuntime

UNDECIDED = "undecided"
#: the words an id may be: a run of letters and digits, or one with dots, dashes or pluses inside (a handle), or a
#: run of digits wherever it stands (``u107``, ``profile_107``, ``user-107``), with a zero fraction (``107.0``)
_WORDS = (re.compile(r"\w+"), re.compile(r"\w[\w.+-]*\w"), re.compile(r"\d+(?:\.0+(?!\d))?"))
#: a word with percent escapes in it (``%31%30%37``), read as a server decodes it
_ESCAPED = re.compile(r"[\w.+-]*(?:%[0-9A-Fa-f]{2}[\w.+-]*)+")
#: no id is longer: a longer run of digits is not read as a number (``int()`` of a long one is slow, or refused)
_LONGEST_NUMBER = 40
#: digits grouped by underscores, which ``int()`` reads as the number (``1_07`` is 107)
_GROUPED = re.compile(r"\d+(?:_\d+)+")
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
            self._by_id.setdefault(id_key(key[1]), str(decision.reason))

    def reason(self, platform: str, subject: str) -> str | None:
        return self._reasons.get((platform, subject.casefold()))

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def without(self, allowed: Callable[[str, str], bool]) -> DeniedPeople:
        """A copy without the people (platform name, id) for whom ``allowed`` is true (a later crawl allows them)."""
        kept = DeniedPeople()
        for (platform, subject), reason in self._reasons.items():
            if not allowed(platform, subject):
                kept._reasons[(platform, subject)] = reason
                kept._by_id.setdefault(id_key(subject), reason)
        return kept

    def ids_out(self, text: str, stand_in: str) -> str:
        """``text`` with every denied person's id that stands as a word of its own (``107`` in ``stopped at 107``,
        in ``/u/107``; not in ``1070``; ``john.doe`` in ``by john.doe.``) replaced by ``stand_in`` formatted with
        its reason. A word is read as the platform's server reads an id (:func:`id_key`: fullwidth digits, ``0107`` and
        ``107.0`` are 107), a run of digits is a word after letters or ``_`` (``u107``, ``profile_107``: an id a
        project writes into a name), and a word with percent escapes is read decoded (``%31%30%37``). A handle
        joined to letters by ``_`` (``alice_x``) is another handle. Each word is looked up, so the cost is the
        text's length, however many people were denied."""
        if not self._by_id:
            return text
        found = sorted(self._found(text))
        said, at = [], 0
        for start, end, reason in found:  # from the left, the longer of two that start alike first
            if start >= at:
                said += [text[at:start], stand_in.format(reason=reason)]
                at = -end
        return "".join([*said, text[at:]]) if found else text

    def _found(self, text: str) -> list[tuple[int, int, str]]:
        """(start, -end, reason) of each denied person's id in ``text`` (:meth:`ids_out`)."""
        by_id = self._by_id
        found = [(m.start(), -m.end(), by_id[key]) for words in _WORDS for m in words.finditer(text)
                 if (key := id_key(m[0])) in by_id]
        if "%" in text:
            for m in _ESCAPED.finditer(text):
                decoded = _decoded(m[0])
                inside = self._found(decoded) if decoded != m[0] else []
                if inside:
                    found.append((m.start(), -m.end(), min(inside)[2]))
        return found


def id_key(word: str) -> str:
    """What an id is to a server that reads it leniently: NFKC (fullwidth digits), any case, and a number by its value
    (``0107``, ``107.0``, ``1_07``, digits of any script)."""
    if not word.isascii():
        word = unicodedata.normalize("NFKC", word)
    word = word.casefold()
    if "_" in word and _GROUPED.fullmatch(word):
        word = word.replace("_", "")
    head, dot, fraction = word.partition(".")
    number = head if dot and not fraction.strip("0") else word
    if number.isdecimal() and len(number) <= _LONGEST_NUMBER:
        return str(int(number))
    return word


def _decoded(word: str) -> str:
    """``word`` with its percent escapes decoded, again while it has some (a server may decode twice)."""
    for _ in range(3):
        decoded = unquote(word)
        if decoded == word:
            break
        word = decoded
    return word


def url_reason(runtime: ConsentRuntime, url: str) -> str | None:
    """What a line may say of ``url`` instead of naming it: the reason code of a live decision at it that is not an
    allow; for a URL that names a person (as the crawl reads URLs), the reason they were denied, ``undecided`` when
    their records are not known (not looked up, or changed since) or say nothing, and else what the site says of
    the page (:func:`_site_reason`); None for an allowed person's URL or one that names no one."""
    live = [not_allowed_reason(decision) for decision in runtime.decisions_at(url)]
    refused = next((reason for reason in live if reason), None)
    if refused is not None:
        return refused
    now = runtime.config.now()
    facts, bad = runtime.facts_for(None, url, now)
    if facts is None:
        from .personurls import off_platform  # here: personurls reads through the runtime, which imports this module

        if off_platform(runtime.config.platforms, url):  # ``sqlite:////var/db``, ``s3://bucket/a.png``: no one's
            return None
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
    if isinstance(decided, Undecided):
        return UNDECIDED
    return not_allowed_reason(decided) or _site_reason(runtime, facts)


def _site_reason(runtime: ConsentRuntime, facts: RequestFacts) -> str | None:
    """What the site says of a page whose person's records allow it (a link Scrapy's spider middlewares log before
    the request phase has read the site's say): the full decision with the robots.txt and signal files the crawl
    holds for its origin. A site whose files it does not hold yet has said nothing the crawl knows of: the records
    decide, as they do for a person whose page has not been read for refusals yet."""
    origin = facts.canonical.origin
    robots = runtime.robots.cached(origin)
    if robots is None:
        return None
    signals = runtime.site_signals.cached(origin, robots)
    try:
        decided = runtime.decider.now(lambda answers: runtime.engine.decide(facts, robots, answers, signals))
    except SignalsNeeded:  # robots.txt allows it; the signal files are not held
        return None
    return UNDECIDED if isinstance(decided, Undecided) else not_allowed_reason(decided)


# -- the item being processed ------------------------------------------------------------------------------------

class ItemVerdict:
    """The guard's say on the item being processed (set in place: each pipeline may run in a task of its own, which
    sees the object the context held when it started, not a value set since)."""

    __slots__ = ("mentioned", "person", "reason")

    def __init__(self) -> None:
        self.reason: str | None = UNDECIDED
        #: (platform, subject) the guard kept the item on: the leaving check asks them again, whatever a later
        #: pipeline made of the item's fields (leaving.py)
        self.person: tuple[str | None, str] | None = None
        #: the other people the guard let the item mention (mentions.py): asked again as it leaves
        self.mentioned: tuple[tuple[str, str], ...] = ()


_ITEM: ContextVar[ItemVerdict | None] = ContextVar("consentcrawl_item_verdict", default=None)


def judging_item() -> Token[ItemVerdict | None]:
    """An item goes to the pipelines: until the guard says otherwise it is ``undecided``; reset with the token."""
    return _ITEM.set(ItemVerdict())


def done_judging(token: Token[ItemVerdict | None]) -> None:
    _ITEM.reset(token)


def item_judged(reason: str | None) -> None:
    """The guard's verdict on the item being processed: None for one it allowed or that is no one's."""
    verdict = _ITEM.get()
    if verdict is not None:
        verdict.reason = reason


def item_kept_on(platform: str | None, subject: str) -> None:
    """The person the guard kept the item being processed on (:attr:`ItemVerdict.person`)."""
    verdict = _ITEM.get()
    if verdict is not None:
        verdict.person = (platform, subject)


def item_mentions_kept(people: tuple[tuple[str, str], ...]) -> None:
    """The other people the guard let the item being processed mention (:attr:`ItemVerdict.mentioned`)."""
    verdict = _ITEM.get()
    if verdict is not None:
        verdict.mentioned = people


def item_mentioned() -> tuple[tuple[str, str], ...]:
    """The other people the guard let the item being processed mention; none outside processing."""
    verdict = _ITEM.get()
    return verdict.mentioned if verdict is not None else ()


def item_kept_person() -> tuple[str | None, str] | None:
    """(platform, subject) the guard kept the item being processed on; None for no one's, or outside processing."""
    verdict = _ITEM.get()
    return verdict.person if verdict is not None else None


def item_reason() -> str | None:
    """The reason code of the item being processed, when it was not allowed (or never judged); None when it was, or
    when no item is being processed."""
    verdict = _ITEM.get()
    return verdict.reason if verdict is not None else None


def item_line_reason() -> str | None:
    """What a line naming an item may say of it: as :func:`item_reason` while it is processed, ``undecided`` for an
    item named outside the pipelines' processing."""
    verdict = _ITEM.get()
    return verdict.reason if verdict is not None else UNDECIDED
