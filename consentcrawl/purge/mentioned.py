"""The erased people's mentions in the items a purge keeps: withheld as the item guard withholds them.

An item the purge keeps (someone else's, or no one's) can name an erased person by their profile URL: a ``friends``
list, a bio's link, a listing's links. That URL is the erased person's data; it was let through while they were
allowed, and goes now. Each string of a kept record is read with the finder the guard and the log filter share
(:mod:`consentcrawl.personurls`), each URL or path it finds is read as the purge reads a URL
(:meth:`.Selection.url`: every reading, when unsure erase), and the ones that are a selected person's page are
withheld by the guard's own rule (:func:`consentcrawl.mentions.withhold`): a value that is nothing but the mention
leaves its list (or its field becomes null), one inside longer text becomes ``[consentcrawl: withheld]``.

Only the selected people's mentions go: a URL that cannot be read, or a person who is not selected, is left as the
crawl's guard left it. Each target rewrites only the records that change (:mod:`.feeds`, :mod:`.sqlite_items`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from ..mentions import withhold
from ..personurls import scheme_urls, written_paths
from .common import Selection, TargetResult, loads

__all__ = ["in_kept", "people_in", "withheld", "withheld_in_cells", "withheld_in_row"]

_T = TypeVar("_T")


def _find(selection: Selection, text: str, unsure: bool = True) -> list[tuple[str, str, str]]:
    """The mentions in ``text`` of selected people: (``url`` or ``path``, as written, ``platform:id``). ``unsure``:
    an ambiguous URL that may be anyone's is every selected person's of its platform (:meth:`.Selection.owners`)."""
    found = []
    readings = [("url", url, [url]) for url in scheme_urls(text)]
    readings += [("path", path, urls) for path, urls in written_paths(selection.platforms, text)]
    for kind, written, urls in readings:
        # each person it may be counts (an ambiguous URL: every selected person of its platform, when unsure)
        for who in dict.fromkeys(person for url in urls for person in selection.owners(url, unsure)):
            found.append((kind, written, who))
    return found


def people_in(selection: Selection, text: str) -> list[str]:
    """The selected people ``text`` mentions (``platform:id``, once each), found as in a kept record: for a record
    that is not rewritten but goes whole when it names them (a queued request's meta, :mod:`.queued`)."""
    return list(dict.fromkeys(who for _, _, who in _find(selection, text)))


def withheld(selection: Selection, value: Any, unsure: bool = True) -> tuple[Any, list[str]]:
    """``value`` (an item as read: dict, list, string) with the selected people's mentions withheld, and whose they
    were (``platform:id``, once each; empty: nothing changed). ``unsure``: as :func:`_find`."""
    if not selection.people:
        return value, []
    changed, found = withhold(value, lambda text: _find(selection, text, unsure))
    return changed, list(dict.fromkeys(who for _, _, who in found))


def withheld_in_cells(selection: Selection, cells: list[str]) -> tuple[list[str], list[str]]:
    """A CSV record's cells with the selected people's mentions withheld. Scrapy's CSV exporter writes a list as its
    values joined by commas, so each cell is read as that list: a value that is nothing but a mention leaves it, a
    mention in a longer value is replaced (an empty cell when nothing is left). A value may hold commas itself (a
    ``profile.php?fields=a,b&id=1022`` the guard read whole in the item): a mention no one piece names is looked
    for in a few pieces read together (:func:`_joined`)."""
    changed: list[str] = []
    people: dict[str, None] = {}
    for cell in cells:
        parts, found = withheld(selection, cell.split(","))
        parts, more = _joined(selection, parts)
        changed.append(",".join(parts) if found or more else cell)
        people.update(dict.fromkeys([*found, *more]))
    return changed, list(people)


#: how many comma-separated pieces of a CSV cell one value may span (a URL with up to three commas)
_JOINED = 4


def _joined(selection: Selection, parts: list[str]) -> tuple[list[str], list[str]]:
    """``parts`` (a cell's pieces, none naming a selected person alone) with each run of two to :data:`_JOINED`
    pieces that names one read as one value, the shortest runs first: withheld as a value of the list is."""
    people: dict[str, None] = {}
    for length in range(2, _JOINED + 1):
        i = 0
        while i + length <= len(parts):
            # pieces joined are a guess at one value: joined, two people's URLs read as one ambiguous URL (``/u/1,
            # /u/2``), so only a reading that names a selected person counts, not one of no one for sure
            value, found = withheld(selection, ",".join(parts[i:i + length]), unsure=False)
            if not found:
                i += 1
                continue
            parts[i:i + length] = [] if value is None else [value]
            people.update(dict.fromkeys(found))
    return parts, list(people)


def withheld_in_row(selection: Selection, row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The columns of an SQLite row that lose the selected people's mentions, with their new values: JSON text of
    a list or an object (how a pipeline stores a field that holds one) is read as JSON and written back as JSON,
    other text as text."""
    changed: dict[str, Any] = {}
    people: dict[str, None] = {}
    for column, value in row.items():
        new, found = _in_column(selection, value)
        if found:
            changed[column] = new
            people.update(dict.fromkeys(found))
    return changed, list(people)


def _in_column(selection: Selection, value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            parsed = loads(value)
        except ValueError:  # a key twice too (.common.DuplicateKey): read as text, as any other text is
            parsed = None
        if isinstance(parsed, (list, dict)):
            changed, people = withheld(selection, parsed)
            return (json.dumps(changed, ensure_ascii=value.isascii()) if people else value), people
    return withheld(selection, value)


def in_kept(result: TargetResult, where: Any, how: Callable[[Selection, _T], tuple[_T, list[str]]],
            selection: Selection, value: _T) -> tuple[_T, bool]:
    """``how(selection, value)`` for a kept record at ``where`` of ``result``'s target: its new value, and whether
    it lost mentions (noted in ``result``). A record nested too deep to be read for mentions is kept as it was and
    reported (the run exits 1), as a record that cannot be parsed is."""
    try:
        changed, people = how(selection, value)
    except RecursionError:
        result.failures.append(f"record {where} is nested too deep to be read for mentions: kept as it was")
        return value, False
    if people:
        result.withheld(people, where)
    return changed, bool(people)
