"""The people an item mentions: each URL of a person's page in its values is decided as that person's page is.

An item the guard keeps is about a person who may be collected (or about no one), yet its values can name other
people: a profile's ``friends`` with their profile URLs, a post's ``mentions``, a bio that links to someone. A
person's profile URL identifies them, so it is their data: a mention of a person who is not allowed is taken out of
the item before any other pipeline, a feed or a log line sees it.

- **Found** as the log filter finds a person's URL in a line (:mod:`consentcrawl.personurls`): a URL with its
  scheme, one without it that begins with a platform's host, a path read on each platform's host (``/u/107``,
  ``../u/107``, ``u/107``), in every spelling the crawl's URL reading reads (case, percent escapes, backslashes, a
  port, ``www.``). Every string in the item is read: field values, dictionary keys and values, lists, tuples and
  sets, nested items (dict, ``scrapy.Item``, dataclass, attrs: through itemadapter, as Scrapy reads them), in one
  pass; a string without ``/``, ``\\`` or ``?`` cannot hold a URL or a path and is skipped. Bytes are read as the
  CSV and XML exporters decode them; any other value by its text (:func:`_texts`), and taken out whole when that
  names someone not allowed (an object cannot be changed). The provenance field is read too: an item from
  ``start()`` carries the one its spider wrote.
- **Decided** as a page of that person is, when the item passes (``now``, the store's current version: a
  withdrawal since the person's last decision counts): the platform's grant and the person's authorization
  (:meth:`~consentcrawl.deciding.Decider.decide_subject`, which a refusal found on their page overrules). A URL that
  cannot be read is withheld (``error.bad-url``) unless it is on no platform's host in a scheme the crawl does not
  fetch (:func:`~consentcrawl.personurls.off_platform`), so is one that could be more than one person
  (``subject.ambiguous-url``); a path read on several platforms' hosts is withheld if any reading is not allowed.
- **Withheld** (``CONSENTCRAWL_ITEM_MENTIONS = "withhold"``, the default): a string that is nothing but the mention
  (and punctuation or spaces) is removed: from a list, tuple or set it is taken out, and a field or a dictionary
  value holding it is set to None (the key stays: feed exporters and pipelines keep the item's shape); a dictionary
  key holding a mention loses its entry. A mention inside longer text is replaced by :data:`WITHHELD`. Lists and
  dictionaries are changed in place (a spider that kept them holds no withheld URL either); a tuple, a set and a
  string are replaced by new ones. ``"drop"`` drops the whole item instead (emptied, as the guard drops one).
- **Recorded**: one ``mentions-withheld`` event per item in the audit log (each withheld person's platform, id and
  reason code, never the URL as written; the audit log already holds the ids of the people the crawl denied) and
  the stats ``consentcrawl/items/mentions_withheld`` (mentions) and ``consentcrawl/items/with_mentions_withheld``
  (items). Each withheld person is among the crawl's denied people, so a log line that names them by id is
  rewritten (:mod:`consentcrawl.personlines`). In report mode the item is left as it is, the event written before
  it goes on, and the lines about it at INFO and above name the reason code instead of the item.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter

from .decision import Decision, new_decision_id, not_allowed_reason
from .deniedpeople import item_judged, item_mentions_kept
from .personurls import PATH_TRAILING, off_platform, scheme_urls, without_path, without_url, written_paths
from .reasons import SUBJECT_AMBIGUOUS_URL

if TYPE_CHECKING:
    from .runtime import ConsentRuntime

__all__ = ["EVENT", "WITHHELD", "Finder", "guard_mentions", "withhold"]

#: what stands in an item's text for a mention of a person who is not allowed
WITHHELD = "[consentcrawl: withheld]"
#: the audit log event of an item that mentioned people who are not allowed
EVENT = "mentions-withheld"
#: a string that is nothing but withheld mentions: taken out of its container
_REMOVED: Any = object()
#: what may be left around a withheld mention in a string that is still nothing but the mention
_AROUND = " \t\r\n([{" + PATH_TRAILING


async def guard_mentions(runtime: ConsentRuntime, item: Any, decided: Decision | None = None) -> str | None:
    """Withhold from ``item`` (in place) the mentions of people who are not allowed (module doc); the reason to drop
    it instead, when ``CONSENTCRAWL_ITEM_MENTIONS`` says so, or None. ``decided``: the guard's decision about the
    person the item is about, made as it passes: a mention of that person (their page's URL, most often) is
    decided by it. Raises on an error: the guard drops the item."""
    config = runtime.config
    texts: dict[str, None] = {}
    _strings(item, texts, set())
    if _ONE_SHOT in texts:  # read its one-shot iterators into lists (what an exporter writes), then the item
        _apply(item, {}, {})
        texts = {}
        _strings(item, texts, set())
    if not texts:
        return None
    judge = _Judge(runtime, config.now())
    if decided is not None and decided.platform and decided.subject:
        judge.people[(decided.platform, decided.subject)] = decided
    found: dict[str, list[tuple[str, str, str]]] = {}
    for text in texts:
        withheld = await judge.mentions(text)
        if withheld:
            found[text] = withheld
    own = (decided.platform, decided.subject) if decided is not None else None
    item_mentions_kept(tuple(p for p, d in judge.people.items() if d.allowed and p != own))  # asked as it leaves
    if not found:
        return None
    count = sum(len(mentions) for mentions in found.values())
    first = next(reason for mentions in found.values() for _, _, reason in mentions)
    dropping = config.item_mentions == "drop"
    action = "dropped" if dropping else "withheld"
    if not runtime.enforce:
        action = "would drop" if dropping else "would withhold"
    runtime.count("consentcrawl/items/mentions_withheld", count)
    runtime.count("consentcrawl/items/with_mentions_withheld")
    written = _recorded(runtime, item, config.provenance_field, judge, count, action)
    if not runtime.enforce and written:
        item_judged(first)  # report mode lets it on: no line at INFO or above may show it
        return None
    if dropping:
        return f"{first} (a person the item mentions)"
    _apply(item, {text: await _withheld(judge, text, mentions) for text, mentions in found.items()}, {})
    return None


#: per engine (one crawl's platforms), the texts whose every URL and path reads as no one's page (a provenance's
#: file paths, a listing's own URL, a link elsewhere): what a URL reads as does not change in a crawl, so the next
#: item's same text is not read again (a text naming a person is read every time: their decision may change)
_NO_ONE: weakref.WeakKeyDictionary[Any, dict[str, None]] = weakref.WeakKeyDictionary()
_NO_ONE_MAX = 4096


@dataclass
class _Judge:
    """One item's mentions decided: each URL read once, each person decided once, all as of ``now``."""

    runtime: ConsentRuntime
    now: datetime
    urls: dict[str, str | None] = field(default_factory=dict)
    people: dict[tuple[str, str], Decision] = field(default_factory=dict)
    because: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: the URLs read as no one's page (:data:`_NO_ONE`)
    nobody: set[str] = field(default_factory=set)

    async def mentions(self, text: str) -> list[tuple[str, str, str]]:
        """The mentions in ``text`` of people who are not allowed: (``url`` or ``path``, as written, reason)."""
        known = _NO_ONE.setdefault(self.runtime.engine, {})
        if text in known:
            return []
        readings = [(("url", url), [url]) for url in scheme_urls(text)]
        readings += [(("path", path), urls) for path, urls in written_paths(self.runtime.config.platforms, text)]
        withheld = [(*mention, reason) for mention, urls in readings if (reason := await self.reason(urls))]
        if not withheld and all(url in self.nobody for _, urls in readings for url in urls):
            if len(known) >= _NO_ONE_MAX:
                known.clear()
            known[text] = None
        return withheld

    async def reason(self, urls: list[str]) -> str | None:
        """Why a mention that may be read as any of ``urls`` is withheld, or None: none names a person who is not
        allowed."""
        for url in urls:
            if url not in self.urls:
                self.urls[url] = await self._url(url)
            if self.urls[url] is not None:
                return self.urls[url]
        return None

    async def _url(self, url: str) -> str | None:
        runtime = self.runtime
        facts, bad = runtime.facts_for(None, url, self.now)
        if facts is None:
            if off_platform(runtime.config.platforms, url):  # ``s3://bucket/a.png``: no one's page
                self.nobody.add(url)
                return None
            return str(bad.reason) if bad is not None else "error.bad-url"
        if facts.ambiguous is not None:
            return SUBJECT_AMBIGUOUS_URL
        if facts.platform is None or facts.subject is None:
            self.nobody.add(url)
            return None
        person = (facts.platform.name, facts.subject)
        decision = self.people.get(person)
        if decision is None:
            decision = await runtime.decider.decide_subject(*person, runtime.config.purpose, self.now)
            self.people[person] = decision
            self.because[person] = runtime.note_person(decision, self.now)
        return not_allowed_reason(decision)

    def withheld(self) -> list[dict[str, Any]]:
        return [{"platform": platform, "subject": subject, "reason": not_allowed_reason(decision),
                 **({"because": self.because[(platform, subject)]} if self.because.get((platform, subject)) else {})}
                for (platform, subject), decision in self.people.items() if not_allowed_reason(decision)]


def _recorded(runtime: ConsentRuntime, item: Any, skip: str | None, judge: _Judge, count: int, action: str) -> bool:
    """The item's ``mentions-withheld`` event written (in report mode before the item goes on); whether it was.
    A reason that names no person (a URL that cannot be read, one of several people) has its count in ``unread``."""
    provenance = _field(item, skip) if skip else None
    provenance = provenance if isinstance(provenance, Mapping) else {}
    people = judge.withheld()
    unread = sorted({reason for reason in judge.urls.values() if reason is not None}
                    - {str(person["reason"]) for person in people})
    fields = {"event_id": new_decision_id(), "action": action, "withheld": count, "people": people,
              **({"unread": unread} if unread else {}),
              "item": {key: provenance.get(key) for key in ("platform", "subject", "url", "item_decision_id")}}
    return runtime.record_event(EVENT, fields, time=judge.now, durable=not runtime.enforce)


def _field(item: Any, name: str) -> Any:
    try:
        return (item if isinstance(item, Mapping) else ItemAdapter(item)).get(name)
    except Exception:  # noqa: BLE001 - an item itemadapter does not know: no provenance to name
        return None


async def _withheld(judge: _Judge, text: str, mentions: list[tuple[str, str, str]]) -> Any:
    """``text`` with each withheld mention replaced (:func:`_rounds`), each round's text read by ``judge``."""
    rounds = _rounds(text, mentions)
    text = next(rounds)
    try:
        while True:
            text = rounds.send(await judge.mentions(text))
    except StopIteration as done:
        return done.value


def _rounds(text: str, mentions: list[tuple[str, str, str]]) -> Generator[str, list[tuple[str, str, str]], Any]:
    """``text`` with each withheld mention replaced by :data:`WITHHELD`; :data:`_REMOVED` when nothing else is left.
    The text is read again after each round (it is yielded, the mentions found in it sent back): what a replacement
    left or made (text that now reads as another person's URL) is withheld in the next, and a text still naming
    someone after three rounds goes whole."""
    for _ in range(3):
        for kind, written, _ in mentions:
            text = (without_url if kind == "url" else without_path)(text, written, WITHHELD)
        mentions = yield text
        if not mentions:
            return _REMOVED if not text.replace(WITHHELD, "").strip(_AROUND) else text
    return _REMOVED


#: the mentions of people to withhold in a text: (``url`` or ``path``, as written, why: a reason or a person)
Finder = Callable[[str], list[tuple[str, str, str]]]


def withhold(value: Any, find: Finder) -> tuple[Any, list[tuple[str, str, str]]]:
    """``value`` with the mentions ``find`` names in its strings withheld as the guard withholds them (module doc:
    lists and dictionaries changed in place, a string or a tuple replaced; a value that is nothing but a mention
    becomes None), and every mention found. For a reader that knows whose mentions to withhold without a crawl
    (the purge: the erased people's)."""
    texts: dict[str, None] = {}
    _strings(value, texts, set())
    found = {text: mentions for text in texts if text != _ONE_SHOT and (mentions := find(text))}
    if not found:
        return value, []
    new: dict[str, Any] = {}
    for text, mentions in found.items():
        rounds = _rounds(text, mentions)
        written = next(rounds)
        try:
            while True:
                written = rounds.send(find(written))
        except StopIteration as done:
            new[text] = done.value
    changed = _apply(value, new, {})
    return (None if changed is _REMOVED else changed), [m for mentions in found.values() for m in mentions]


# -- reading and changing the item's values, nested --------------------------------------------------------------


#: values that hold no text: not looked into
_SCALARS = (int, float, complex, datetime)
#: the containers whose elements are read
_SEQUENCES = (list, tuple, set, frozenset)
#: bytes are read as the exporters write them (CSV and XML decode them), undecodable bytes kept as they are
_BYTES = (bytes, bytearray)


def _decoded(value: bytes | bytearray) -> str:
    return bytes(value).decode("utf-8", "surrogateescape")


def _texts(value: Any) -> list[str]:
    """The text of a value the guard cannot look into (a ``scrapy.link.Link``, a ``Request``, a URL object, a
    ``deque``, a project's own class): what a feed writes of it (``str()`` in CSV and XML, a ``Request``'s URL in
    JSON lines) and what a log line shows (``repr()``, also how CSV writes it inside a list)."""
    return list(dict.fromkeys(text for text in (str(value), repr(value))
                              if "/" in text or "\\" in text or "?" in text))


def _fields(value: Any) -> MutableMapping[str, Any] | None:
    """A mapping of the item's fields to read and set (a dict or ``scrapy.Item`` itself, any other item through
    itemadapter), or None for a value that is no item."""
    if isinstance(value, MutableMapping):
        return value
    if isinstance(value, _SEQUENCES):
        return None
    if ItemAdapter.is_item(value):
        return ItemAdapter(value)
    return None


def _strings(value: Any, into: dict[str, None], seen: set[int]) -> None:
    """Every string in ``value`` that may hold a URL or a path, into ``into``."""
    if isinstance(value, str):
        if "/" in value or "\\" in value or "?" in value:
            into[value] = None
        return
    if value is None or isinstance(value, _SCALARS) or id(value) in seen:
        return
    if isinstance(value, _BYTES):
        _strings(_decoded(value), into, seen)
        return
    seen.add(id(value))
    if type(value) is dict:  # what most items and their values are: read without asking what it is
        elements: Any = [element for pair in value.items() for element in pair]
    else:
        fields = _fields(value)
        if fields is None and not isinstance(value, (Mapping, *_SEQUENCES)):
            into.update(dict.fromkeys([_ONE_SHOT] if isinstance(value, Iterator) else _texts(value)))
            return
        mapping = fields if fields is not None else value if isinstance(value, Mapping) else None
        elements = value if mapping is None else [
            element for key in list(mapping.keys()) for element in (key, mapping.get(key))]
    for element in elements:
        kind = type(element)
        if kind is str:
            if "/" in element or "\\" in element or "?" in element:
                into[element] = None
        elif element is not None and kind not in _LEAVES:
            _strings(element, into, seen)


#: what stands in the strings found for a one-shot iterator (a generator, ``map``): it cannot be read without being
#: consumed (the XML exporter consumes it and writes what it yields), so it is read into a list where it stands
_ONE_SHOT = "\x00a one-shot iterator\x00"
#: a one-shot iterator longer than this (an endless generator) cannot be read: it is taken out whole
_MAX_ELEMENTS = 100_000

#: the types of values that hold no text, told by their type alone (:data:`_SCALARS` by ``isinstance``)
_LEAVES = frozenset({int, float, bool})


def _apply(value: Any, new: dict[str, Any], seen: dict[int, Any]) -> Any:
    """``value`` with each string in ``new`` replaced by what it maps to (:data:`_REMOVED`: taken out, or None
    where it has a place of its own: a field, a dictionary's value, a named tuple's member); a value the guard
    cannot look into whose text (:func:`_texts`) is withheld is taken out whole. ``seen``: what each value already
    became (a tuple held in two places is replaced in both)."""
    if isinstance(value, str):
        return new.get(value, value)
    if value is None or isinstance(value, _SCALARS):
        return value
    if id(value) in seen:
        return seen[id(value)]
    if isinstance(value, _BYTES):
        text = _decoded(value)
        changed = new.get(text, text)
        return value if changed is text else changed if changed is _REMOVED else changed.encode(
            "utf-8", "surrogateescape")
    seen[id(value)] = value
    fields = _fields(value)
    if fields is None and not isinstance(value, (Mapping, *_SEQUENCES)):
        if isinstance(value, Iterator):  # read once, into what is handed on in its place
            elements = list(itertools.islice(value, _MAX_ELEMENTS + 1))
            seen[id(value)] = elements if len(elements) <= _MAX_ELEMENTS else _REMOVED
        else:
            seen[id(value)] = _REMOVED if any(text in new for text in _texts(value)) else value
        return seen[id(value)]
    if fields is not None or isinstance(value, Mapping):
        mapping = fields if fields is not None else dict(value)  # a read-only mapping: a dict in its place
        for key in list(mapping.keys()):
            element = mapping[key]
            changed = _apply(element, new, seen)
            changed = None if changed is _REMOVED else changed
            new_key = _apply(key, new, seen)  # a key is read as any value (a tuple of URLs too)
            if new_key is not key:
                del mapping[key]
                if new_key is not _REMOVED:
                    mapping[new_key] = changed
            elif changed is not element:
                _set(mapping, value, key, changed)
        seen[id(value)] = value if fields is not None else mapping
        return seen[id(value)]
    seen[id(value)] = _sequence(value, [_apply(element, new, seen) for element in value])
    return seen[id(value)]


def _sequence(value: Any, changed: list[Any]) -> Any:
    """The list, tuple or set ``value`` with its elements ``changed`` (a list in place)."""
    if all(a is b for a, b in zip(changed, value, strict=True)):
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple keeps its members
        named: Any = type(value)
        return named(*(None if element is _REMOVED else element for element in changed))
    kept = [element for element in changed if element is not _REMOVED]
    if isinstance(value, list):
        value[:] = kept
        return value
    return type(value)(kept)


def _set(mapping: MutableMapping[str, Any], item: Any, key: Any, value: Any) -> None:
    """``mapping[key] = value``; on a frozen item (a frozen dataclass or attrs class), set underneath its setter."""
    try:
        mapping[key] = value
    except Exception:  # noqa: BLE001 - frozen, or a validating setter
        object.__setattr__(item, key, value)
