"""What of a page's URL the site-level signals depend on: the memo key of the site check and the response phase.

Pure: built from the fetched files (:class:`~consentcrawl.signals.files.SiteFiles`), read as
:func:`~consentcrawl.signals.evaluate.site_results` reads them; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..recent import Recent
from ..robots.fetch import RobotsFile, RobotsStatus
from ..robots.matcher import _glob_match, _pieces
from ._common import (
    CaseSight,
    PagePath,
    PathPattern,
    SlashSight,
    SpellingSight,
    canonical_page,
    normal_path,
    spelled_page,
    url_path,
)
from .ai_txt import parse_ai_txt
from .content_usage import usage_rules
from .fetch import SignalFileStatus
from .files import SiteFiles, licence_links
from .rsl import RslDocument, content_scope, parse_rsl
from .tdmrep import parse_tdmrep_file

if TYPE_CHECKING:
    from ..urls import CanonicalURL

__all__ = ["PathKey", "PathKeys"]

OK = SignalFileStatus.OK

#: marks a key made of several spellings' selections (a selection alone is a tuple that never starts with it)
_SPELLINGS = object()

#: a pattern that applies on any origin
ANYWHERE = object()

#: one path pattern as the selection walks it: (the origin the page must have, or :data:`ANYWHERE`; its first
#: piece; the pattern, or None when the first piece is all of it, a plain prefix matched by ``startswith`` alone;
#: its encoded length; what it selects: a tdmrep.json entry's index, a ``Content-Usage`` rule's line, a
#: ``<content>`` element's index)
_Row = tuple[object, str, PathPattern | None, int, int]


def _row(pattern: PathPattern, origin: object, selects: int) -> _Row:
    # unanchored, the pieces after the first that are empty (a trailing ``*``) match anywhere: a prefix still
    prefix_only = not pattern.anchored and not any(pattern.pieces[1:])
    return origin, pattern.pieces[0], None if prefix_only else pattern, pattern.length, selects


class PathKey:
    """What of a page's URL the site-level outcome depends on, for one set of files and one product token.

    Each path-scoped statement selects, for a URL, one part of its file, and
    :func:`~consentcrawl.signals.evaluate.site_results` reads nothing else of the URL; so URLs that select the same
    parts have the same site-level outcome (the findings cite the file, its line or entry, never the page).
    :meth:`key` is that selection:

    - tdmrep.json: the index of the first entry whose ``location`` matches (None: none);
    - robots.txt ``Content-Usage`` rules of our group: whether the path may be crawled, and the lines of the rules
      with the longest matching pattern (:func:`~consentcrawl.signals.content_usage.selected_rules`);
    - each RSL licence robots.txt names: the ``<content>`` elements that apply
      (:func:`~consentcrawl.signals.rsl.selected_contents`);
    - ai.txt: the rule that disallows the path (its line, text and group), or None.

    The patterns are laid out once per set of files in flat rows (:data:`_Row`), so a new URL's selection is a loop
    of ``startswith`` over them, the glob walk only for a pattern with ``*`` or ``$``, and the page's origin only
    worked out if a statement names one (``tests/test_signals_keys.py`` holds it to the signals' own matchers).
    ``origin_wide``: no file says anything path-scoped, every URL of the origin has the same outcome.
    """

    __slots__ = ("_ai", "_ai_reach", "_known", "_licences", "_origins", "_patterns", "_robots", "_rsl", "_sight",
                 "_tdm", "_token", "_usage", "origin_wide")

    def __init__(self, files: SiteFiles, token: str) -> None:
        self._token = token
        self._known: Recent[str, tuple[Hashable, ...]] = Recent(1024)
        tdmrep = files.tdmrep
        parsed = parse_tdmrep_file(tdmrep.body) if tdmrep is not None and tdmrep.status is OK else None
        #: the tdmrep.json entries in array order (None: no file read)
        self._tdm = None if parsed is None else [
            _row(e.pattern, ANYWHERE if e.origin is None else e.origin, e.index) for e in parsed.entries]
        robots = files.robots
        self._robots = robots.rules if robots is not None and robots.status is RobotsStatus.OK else None
        #: the ``Content-Usage`` rules of our group
        self._usage = [_row(r.pattern, ANYWHERE, r.line) for r in usage_rules(robots, token)] \
            if robots is not None and self._robots is not None else []
        self._licences: list[RslDocument] = []
        for link in licence_links(files):
            licence = files.licences.get(link.url)
            if licence is not None and licence.status is OK:
                document = parse_rsl(licence.body)
                if document.error is None:
                    self._licences.append(document)
        #: each licence's ``<content>`` elements that name a path (one that names none matches no page)
        self._rsl: list[list[_Row]] = []
        for document in self._licences:
            rows = []
            for content in document.contents:
                full, origin, pattern = content_scope(content)
                if pattern is not None:
                    rows.append(_row(pattern, origin if full else ANYWHERE, content.index))
            self._rsl.append(rows)
        #: whether a statement names an origin (then the page's is worked out)
        self._origins = any(row[0] is not ANYWHERE for rows in (self._tdm or [], *self._rsl) for row in rows)
        ai_txt = files.ai_txt
        self._ai = parse_ai_txt(ai_txt.body, ai_txt.cut) if ai_txt is not None and ai_txt.status is OK else None
        #: the paths some ai.txt ``Disallow`` may reach: one that meets none is allowed without the matcher's walk
        #: over the rules by priority (most paths of a site, where the rules name a few folders and file types)
        self._ai_reach = self._ai.disallow_reach(token) if self._ai is not None else None
        self._patterns = self._tdm is not None or bool(self._usage) or bool(self._licences)
        self.origin_wide = not self._patterns and self._ai is None
        #: what the patterns can tell apart: built the first time a request has another spelling
        self._sight: tuple[SlashSight, SpellingSight, CaseSight] | None = None

    def key(self, url: str) -> Hashable:
        """The parts of the files ``url`` selects (None for every URL when :attr:`origin_wide`). Remembered for the
        URLs seen last: a response is decided for each of its spellings."""
        if self.origin_wide:
            return None
        known = self._known.get(url)
        if known is None:
            path = url_path(url)
            known = self._select(url, path, normal_path(path), False)
            self._known.put(url, known)
        return known

    def canonical_key(self, canonical: CanonicalURL, allowed: tuple[str, ...] = (),
                      paths: tuple[str, ...] = ()) -> Hashable:
        """:meth:`key` of ``canonical.url``, from what a request's facts know already rather than by splitting and
        matching the URL again: its path read off the canonical form (:func:`~._common.canonical_path`, which is
        what :func:`~consentcrawl.signals.evaluate.site_results` reads), and ``allowed``, the paths the robots.txt
        this key maker was built with allows for its token (the robots check's match,
        ``CheckContext.robots_allowed``).

        ``paths``: the request's other spellings (:func:`~consentcrawl.signals.evaluate.spelled_urls`). Where one
        selects other parts of the files than the canonical URL, the key is every spelling's selection in that
        order (the decision is the first spelling's that denies); where all select the same, it is the canonical
        URL's alone, whose decision it is. The site check remembers the key per request (its decisions reuse it).
        """
        if self.origin_wide:
            return None
        path, normal, plain = canonical_page(canonical)
        known: Hashable = self._select(canonical, path, normal, path in allowed)
        if (len(paths) > 1 or (paths and paths[0] != canonical.path_query)) and not self._blind(
                path, plain, paths, allowed):
            first = canonical.path_query
            spelled = []
            for spelling in paths:  # in spelled_urls' order
                if spelling != first:
                    url, page, page_normal = spelled_page(canonical, spelling)  # what site_results reads of it
                    spelled.append(self._select(url, page, page_normal, page in allowed))
            for part in spelled:
                if part != known:
                    return (_SPELLINGS, known, *spelled)
        return known

    def _blind(self, first: str, plain: bool | None, paths: tuple[str, ...], allowed: tuple[str, ...]) -> bool:
        """Whether no pattern of the files can tell any of the request's other spellings from its canonical
        path+query: then every spelling selects what the canonical path does, which is the key, without matching
        the spellings against every pattern. Each spelling is told by its length which change it may be: longer by
        one, the trailing slash as written (an insertion: :class:`SlashSight`); shorter, a reading of its escapes or
        ``;`` parameters (``/b/0%2F1`` read ``/b/0/1``: :class:`SpellingSight`); as long, the path in another case
        (``/b/user1`` on a platform whose ids are case-insensitive: :class:`CaseSight`). Each sight checks that the
        spelling is that change, so a spelling that is something else is matched.

        Only asked where each pattern compares the paths as they are, literal and normal alike: a canonical
        path+query read back (``first``, with ``plain`` not None: ``canonical_page`` reads it as it is, its own
        normal form), and spellings that add the slash to it, read back with no ``%``, or differ from it in case
        only (``spelled_page`` then reads each on the canonical origin, as it is or, with escapes, as ``first``'s
        escapes); and, where ``Content-Usage`` rules are read, with every spelling allowed by robots.txt (which can
        tell them apart). ``tests/test_signals_lenient.py`` and ``tests/test_signals_case.py`` hold each of these to
        selecting every spelling."""
        if plain is None or (self._usage and allowed is not paths and not all(p in allowed for p in paths)):
            return False
        sight = self._sight
        if sight is None:
            sight = self._sight = self._make_sight()
        size = len(first)
        for spelling in paths:
            if spelling == first:
                continue
            length = len(spelling)
            if length < size:
                if sight[1].tells_apart(first, spelling):  # which also sees whether the spelling is read as it is
                    return False
            elif length == size:
                if sight[2].tells_apart(first, spelling):
                    return False
            elif length > size + 1:
                return False
            elif "?" in first:  # the slash as written before the query
                if spelling != first.replace("?", "/?", 1) or sight[0].tells_apart(first.partition("?")[0], True):
                    return False
            elif spelling[-1] != "/" or not spelling.startswith(first) or sight[0].tells_apart(first, False):
                return False
        return True

    def _make_sight(self) -> tuple[SlashSight, SpellingSight, CaseSight]:
        rows = [*(self._tdm or ()), *self._usage, *(row for rows in self._rsl for row in rows)]
        patterns = [(pattern.pieces, pattern.anchored) if pattern is not None else ((first,), False)
                    for _origin, first, pattern, _length, _selects in rows]
        exact: tuple[str, ...] = ()
        if self._ai is not None:
            patterns += [_pieces(p) for p in self._ai.patterns(self._token)]
            exact = ("/robots.txt",)  # always allowed, which /robots.txt/ and /ROBOTS.TXT are not
        return SlashSight(patterns, exact), SpellingSight(patterns, exact), CaseSight(patterns, exact)

    def _select(self, url: str | CanonicalURL, path: str, normal: str, crawlable: bool) -> tuple[Hashable, ...]:
        """The parts of the files the page selects; ``normal``: ``normal_path(path)``, worked out once for every
        pattern (ai.txt is matched as robots.txt is, on ``path``)."""
        parts: list[Hashable] = []
        if self._patterns:
            origin = PagePath(url, path, normal).origin if self._origins else None
            if self._tdm is not None:  # the first entry that matches
                entry = None
                for row in self._tdm:
                    if normal.startswith(row[1]) and (row[0] is ANYWHERE or row[0] == origin) and (
                            row[2] is None or _glob_match(row[2].pieces, row[2].anchored, normal)):
                        entry = row[4]
                        break
                parts.append(entry)
            if self._usage:
                assert self._robots is not None
                if crawlable or self._robots.match(path, self._token).allowed:
                    parts.append(_longest(self._usage, normal, origin))
                else:
                    parts.append(False)  # no usage preferences apply to a path that may not be crawled
            for rows in self._rsl:
                parts.append(_longest(rows, normal, origin))
        if self._ai is not None:
            if normal == path and self._ai_reach is not None and self._ai_reach.match(path) is None:
                parts.append(None)  # its own literal spelling too, and no Disallow reaches it: allowed
            else:
                match = self._ai.match(path, self._token, normal == path)
                parts.append(None if match.allowed else (match.line, match.rule, match.group))
        return tuple(parts)


def _longest(rows: list[_Row], normal: str, origin: str | None) -> tuple[int, ...]:
    """What the rows with the longest pattern matching the page select, in order (``Content-Usage`` rules and
    ``<content>`` elements: the longest match applies, equal ones together)."""
    longest, chosen = -1, []
    for row_origin, first, pattern, length, selects in rows:
        if normal.startswith(first) and length >= longest and (row_origin is ANYWHERE or row_origin == origin) and (
                pattern is None or _glob_match(pattern.pieces, pattern.anchored, normal)):
            if length > longest:
                longest, chosen = length, [selects]
            else:
                chosen.append(selects)
    return tuple(chosen)


class PathKeys:
    """The :class:`PathKey` of each set of files decided lately, by identity (the memo's rule: a refetched file is a
    new :class:`SiteFiles`, so a key is never built from stale files). A crawl interleaves origins, so one per
    origin is kept rather than the last one only, which each switch would rebuild (parsing the rules again and
    forgetting the URLs' keys)."""

    __slots__ = ("_keys", "_last")

    def __init__(self, size: int = 256) -> None:
        self._keys: Recent[tuple[int, int, str], tuple[SiteFiles, object, str, PathKey]] = Recent(size)
        #: the one used last, checked first (a crawl often decides one origin's pages in runs)
        self._last: tuple[SiteFiles, object, str, PathKey] | None = None

    def of(self, files: SiteFiles, token: str, robots: RobotsFile | None = None) -> PathKey:
        """The key maker for ``files`` as decided with ``robots`` (default: the files' own robots.txt)."""
        if robots is None:
            robots = files.robots
        hit = self._last
        if hit is not None and hit[0] is files and hit[1] is robots and hit[2] == token:
            return hit[3]
        index = (id(files), id(robots), token)
        hit = self._keys.get(index)
        if hit is None or hit[0] is not files or hit[1] is not robots:
            keyer = PathKey(files if files.robots is robots else replace(files, robots=robots), token)
            hit = (files, robots, token, keyer)
            self._keys.put(index, hit)
        self._last = hit
        return hit[3]
