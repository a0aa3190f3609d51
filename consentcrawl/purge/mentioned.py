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
from typing import Any

from ..mentions import withhold
from ..personurls import scheme_urls, written_paths
from .common import Selection

__all__ = ["people_in", "withheld", "withheld_in_cell", "withheld_in_column"]


def _find(selection: Selection, text: str) -> list[tuple[str, str, str]]:
    """The mentions in ``text`` of selected people: (``url`` or ``path``, as written, ``platform:id``)."""
    found = []
    readings = [("url", url, [url]) for url in scheme_urls(text)]
    readings += [("path", path, urls) for path, urls in written_paths(selection.platforms, text)]
    for kind, written, urls in readings:
        who = next((person for url in urls if (person := selection.url(url)) is not None), None)
        if who is not None:
            found.append((kind, written, who))
    return found


def people_in(selection: Selection, text: str) -> list[str]:
    """The selected people ``text`` mentions (``platform:id``, once each), found as in a kept record: for a record
    that is not rewritten but goes whole when it names them (a queued request's meta, :mod:`.queued`)."""
    return list(dict.fromkeys(who for _, _, who in _find(selection, text)))


def withheld(selection: Selection, value: Any) -> tuple[Any, list[str]]:
    """``value`` (an item as read: dict, list, string) with the selected people's mentions withheld, and whose they
    were (``platform:id``, once each; empty: nothing changed)."""
    if not selection.people:
        return value, []
    changed, found = withhold(value, lambda text: _find(selection, text))
    return changed, list(dict.fromkeys(who for _, _, who in found))


def withheld_in_cell(selection: Selection, cell: str) -> tuple[str, list[str]]:
    """A CSV cell with the selected people's mentions withheld. Scrapy's CSV exporter writes a list as its values
    joined by commas, so the cell is read as that list: a value that is nothing but a mention leaves it, a mention
    in a longer value is replaced (an empty cell when nothing is left)."""
    parts, people = withheld(selection, cell.split(","))
    return ",".join(parts), people


def withheld_in_column(selection: Selection, value: Any) -> tuple[Any, list[str]]:
    """An SQLite column's value with the selected people's mentions withheld: JSON text of a list or an object (how
    a pipeline stores a field that holds one) is read as JSON and written back as JSON, other text as text."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, (list, dict)):
            changed, people = withheld(selection, parsed)
            return (json.dumps(changed, ensure_ascii=value.isascii()) if people else value), people
    return withheld(selection, value)
