"""Helpers the signal modules share: header lines, robots-style path patterns, the tags in an HTML head."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..robots.matcher import _glob_match, _literal_rule, _normal, _path_spellings, _pieces, _utf8
from ..robots.tags import header_lines as _header_lines

if TYPE_CHECKING:
    from ..urls import CanonicalURL

HEADER_MAX = 64 * 1024  #: longest header value read


def header_lines(headers: Any, names: frozenset[str]) -> Iterator[tuple[str, str, str]]:
    """:func:`consentcrawl.robots.tags.header_lines`, each value cut to :data:`HEADER_MAX`."""
    for lname, name, value in _header_lines(headers, names):
        yield lname, name, value[:HEADER_MAX]


def url_path(url: str) -> str:
    """The path and query of ``url`` as requested (``/`` when empty); a bare path is returned as given."""
    if url.startswith("/"):
        return url.partition("#")[0]
    try:
        parts = urlsplit(url)
    except ValueError:
        return "/"
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


#: a canonical path+query that :func:`url_path` reads back unchanged from the canonical URL: RFC 3986 ``pchar``,
#: ``/`` and ``%`` in the path (so no ``?`` or ``#`` to end it early, nothing ``urlsplit`` strips), then an
#: optional non-empty query that may also hold ``?`` (never ``#``)
_READ_BACK = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]+)?")


#: the characters of :data:`_READ_BACK` (the path's, and ``?`` that a query may hold)
_READ_BACK_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%?")
#: those of them that a path can hold and be its own normal and literal form with no escape to read
_PLAIN_CHARS = _READ_BACK_CHARS - {"%"}


def reads_back(path: str) -> bool:
    """``_READ_BACK.fullmatch(path) is not None``, without a regex: a new URL's key is made of a few of these tests,
    and a regex call costs several times a set's look at each character (``str.strip`` with 81 characters costs as
    much again: it searches them for each one); ``tests/test_signals_keys.py`` checks they agree."""
    if path[:1] != "/" or not _READ_BACK_CHARS.issuperset(path):
        return False
    cut = path.find("?")
    return cut < 0 or cut < len(path) - 1  # a ``?`` starts a query that is not empty


def canonical_path(canonical: CanonicalURL) -> str:
    """``url_path(canonical.url)``: the path+query every signal reads for a canonical URL, without splitting it.

    The canonical form already has it (:attr:`~consentcrawl.urls.CanonicalURL.path_query`), and splitting the
    canonical URL gives it back for every URL :func:`~consentcrawl.urls.canonicalize` makes
    (``tests/test_reuse_signals.py`` checks that on arbitrary spellings). Where that could fail, the URL is split
    as the signals split it: a path or query holding a character the canonical form never writes literally (the
    split could end or strip it elsewhere) and an IPv6 host (``urlsplit`` checks the brackets, and a URL it
    rejects reads as ``/``).
    """
    return canonical_page(canonical)[0]


def canonical_page(canonical: CanonicalURL) -> tuple[str, str, bool | None]:
    """:func:`canonical_path`, its normal form (:func:`normal_path`), and whether it is the canonical path+query
    read back with no ``%`` (True: then it matches :data:`PLAIN`), read back with one (False), or not read back
    (None). A path read back is its own normal form, and its own literal one as robots.txt matchers spell it: it
    holds only characters a URI writes literally, and the canonical form's escapes are the normal form's (``%XX``
    upper-cased, unreserved characters decoded, in the path and in the query; ``tests/test_signals_keys.py`` checks
    it on arbitrary spellings), so nothing is normalised again."""
    path = canonical.path_query
    if ":" in canonical.host or not reads_back(path):
        path = url_path(canonical.url)
        return path, normal_path(path), None
    return path, path, "%" not in path


def spelled_page(canonical: CanonicalURL, spelling: str) -> tuple[str | CanonicalURL, str, str]:
    """Another spelling of a canonical URL's path+query (``RequestFacts.robots_paths``) as the signals read the URL
    ``canonical.origin + spelling``: ``(url, url_path(url), normal_path(url_path(url)))``. Where the spelling reads
    back unchanged (:func:`canonical_path`'s rule) that is ``canonical`` and the spelling itself: the same origin,
    no text made or split, and a spelling with no ``%`` is its own normal form (what :data:`PLAIN` allows)."""
    if ":" in canonical.host or not reads_back(spelling):
        url = canonical.origin + spelling
        path = url_path(url)
        return url, path, normal_path(path)
    return canonical, spelling, spelling if "%" not in spelling else normal_path(spelling)


def origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = parts.hostname
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None and port != default else "")


class PathPattern:
    """A robots.txt-style path pattern (RFC 9309 §2.2.2): a prefix, ``*`` any run of characters, ``$`` the end.

    Case-sensitive. Both sides are compared in their RFC 3986 normal form, as robots.txt rules are (``%xx``
    upper-cased, unreserved ones decoded, non-ASCII percent-encoded as UTF-8), so ``/caf%c3%a9`` and ``/café``
    are one path.
    """

    __slots__ = ("anchored", "length", "pattern", "pieces")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        normal = _normal(_literal_rule(_utf8(pattern)))
        self.pieces, self.anchored = _pieces(normal)
        self.length = len(normal)  #: the encoded length: the longest matching pattern wins

    def matches(self, path: str) -> bool:
        return _glob_match(self.pieces, self.anchored, normal_path(path))

    def matches_normal(self, normal: str) -> bool:
        """:meth:`matches` on a path already in normal form (:func:`normal_path`): normalised once, matched often."""
        return _glob_match(self.pieces, self.anchored, normal)

    def matches_page(self, page: PagePath) -> bool:
        return _glob_match(self.pieces, self.anchored, page.normal)


class SlashSight:
    """Which paths a set of robots-style patterns can tell from the same path with a ``/`` after it.

    ``s1 = N + R`` and ``s2 = N + "/" + R`` (``R`` empty or a query starting with ``?``) differ only by the slash
    at the junction, so a pattern (pieces between ``*``, maybe ``$``-anchored) matches one and not the other only
    where it can see that junction:

    - its first piece reaches past ``N``: ``N`` is a prefix of it followed by ``/`` or ``?`` (:attr:`exact`), or,
      anchored without ``*``, ``N`` is the whole pattern;
    - a later piece covers the junction: in ``s2`` it holds the inserted ``/``, followed by nothing or by ``?``;
      in ``s1`` it holds the ``?`` that starts ``R``; in both ``N`` ends with what comes before (:attr:`suffixes`);
    - anchored with ``*``, no query: the last piece ends ``N`` (:attr:`tails`), which ``s2`` ends with ``/``.

    Any other occurrence of a piece lies inside ``N`` or inside ``R`` in both strings, at the same place up to the
    slash, so the leftmost-match walk finds the same pieces in the same order and the pattern matches both or
    neither (``tests/test_signals_slash.py`` checks it against the matcher on arbitrary patterns). Works on plain
    text only: the caller compares paths that are their own normal and literal form.
    """

    __slots__ = ("exact", "suffixes", "tails")

    def __init__(self, patterns: list[tuple[tuple[str, ...], bool]], exact: tuple[str, ...] = ()) -> None:
        found: set[str] = set(exact)
        suffixes: set[str] = set()
        tails: set[str] = set()
        for pieces, anchored in patterns:
            first = pieces[0]
            found.update(first[:i] for i in range(1, len(first)) if first[i] in "/?")
            if len(pieces) == 1:
                if anchored:
                    found.add(first)
                continue
            for piece in pieces[1:]:
                for j, char in enumerate(piece):
                    if char == "?" or (char == "/" and piece[j + 1:j + 2] in ("", "?")):
                        suffixes.add(piece[:j])
            if anchored:
                tails.add(pieces[-1])
        self.exact = frozenset(found)
        self.suffixes = tuple(suffixes)
        self.tails = tuple(tails)

    def tells_apart(self, path: str, query: bool) -> bool:
        """Whether some pattern may match ``path + R`` and not ``path + "/" + R`` or the other way round (``query``:
        ``R`` is a query; else it is empty). False is certain; True only means "match both to know"."""
        return path in self.exact or path.endswith(self.suffixes) or (not query and path.endswith(self.tails))


class SpellingSight:
    """Which other spellings of a path a set of robots-style patterns can tell from it, where the spellings are a
    server's readings of its escapes or ``;`` parameters: ``a = C + A`` and ``b = C + B``, ``C`` the part of ``a``
    before its first ``%`` (or, with none, its first ``;``) and ``A`` and ``B`` not empty (``/b/0%2F1`` and a
    decoding server's ``/b/0/1``: ``C`` is ``/b/0``, ``A`` ``%2F1``, ``B`` ``/1``).

    A pattern (pieces between ``*``, maybe ``$``-anchored) can match one and not the other only if

    - its first piece reaches past ``C``: ``C`` is a proper prefix of it (a shorter first piece is at the same place
      in both or in neither; a longer one not starting with ``C`` matches neither), or
    - a later piece holds a character of ``A`` or ``B``: one that holds none never reaches into them, so each of its
      occurrences lies in ``C``, the same text at the same place in both strings, or nowhere; the leftmost-match
      walk then finds the same pieces, and an anchored last piece, which would end in ``A`` or ``B``, ends neither.

    So the test per spelling is a set lookup of ``C`` among the first pieces' proper prefixes and a look at the
    characters after it, whatever the number of patterns (``tests/test_signals_lenient.py`` checks it against the
    matchers on arbitrary patterns and spellings). ``C`` is cut where a reading can first differ rather than where
    it does, because finding that costs more than the selection it would save; a spelling that differs before it is
    "told apart" (matched). The patterns compare the paths as they are: ``a`` is its own normal and literal form
    (the caller's part), and so is ``b`` where it has only :data:`_PLAIN_CHARS` and does not end with ``?`` (an
    empty query, which a split drops), which the same look checks; any other ``b`` is "told apart".
    """

    __slots__ = ("chars", "plain", "prefixes")

    #: the most characters the prefixes may hold (a pattern of n characters has n of them, n * (n - 1) / 2 long):
    #: with more, every spelling is "told apart"
    LIMIT = 1 << 22

    def __init__(self, patterns: list[tuple[tuple[str, ...], bool]], exact: tuple[str, ...] = ()) -> None:
        firsts: set[str] = set(exact)  # an exact path (``/robots.txt``) is a first piece that must be the path
        chars: set[str] = set()
        for pieces, _anchored in patterns:  # an anchored single piece is seen as its first piece is
            firsts.add(pieces[0])
            for piece in pieces[1:]:
                chars.update(piece)
        self.chars = frozenset(chars)  #: every character of a later piece
        #: what ``B`` may hold: a plain path's characters, none of :attr:`chars` (empty: too many prefixes to hold)
        self.plain = _PLAIN_CHARS - self.chars
        #: every proper prefix of a first piece
        self.prefixes: frozenset[str] = frozenset()
        if sum(len(first) * (len(first) - 1) // 2 for first in firsts) <= self.LIMIT:
            self.prefixes = frozenset(first[:i] for first in firsts for i in range(len(first)))
        else:
            self.plain = frozenset()

    def tells_apart(self, a: str, b: str) -> bool:
        """Whether some pattern may match ``a`` and not ``b`` or the other way round. False is certain; True only
        means "match both to know"."""
        common, sep, tail = a.partition("%")  # (``str.find`` and ``startswith`` parse their arguments: dearer)
        if not sep:
            common, sep, tail = a.partition(";")
            if not sep:
                return True
        cut = len(common)
        rest = b[cut:]
        if not rest or common in self.prefixes or b[:cut] != common or not self.plain.issuperset(rest) or \
                rest[-1] == "?":
            return True
        chars = self.chars
        return bool(chars) and (sep in chars or not chars.isdisjoint(tail))


class CaseSight:
    """Which lower-case spellings of a path a set of robots-style patterns can tell from it: a platform whose ids are
    case-insensitive has a request's path in lower case checked too (``/b/User1`` is ``/b/user1`` there).

    ``b`` is ``a.lower()``, and ``a`` reads back and is its own normal and literal form (the caller's part), so
    ASCII. Then ``b`` reads back too, and what the matchers compare of it (its literal and its normal spelling:
    escapes upper-cased again, and none decoded, since ``a``'s, in the same places, encode no unreserved character)
    differs from ``a`` only where ``a`` has an upper-case letter outside an escape. A pattern's piece holding neither
    case of such a letter never covers its place, so every piece occurs at the same places in both strings, and the
    pattern matches both or neither. So the test is one set look: no letter of a pattern (or of an exact path),
    upper-cased (:attr:`letters`), is in ``a``. Any other ``b`` (another text, upper case where ``a`` has lower) is
    "told apart" (``tests/test_signals_case.py`` checks it against the matchers on arbitrary patterns and spellings).
    """

    __slots__ = ("letters",)

    def __init__(self, patterns: list[tuple[tuple[str, ...], bool]], exact: tuple[str, ...] = ()) -> None:
        letters: set[str] = set()
        for piece in (*(piece for pieces, _anchored in patterns for piece in pieces), *exact):
            letters.update(char.upper() for char in piece if char.lower() != char.upper())
        self.letters = frozenset(letters)  #: every letter of a pattern (and of an exact path), in upper case

    def tells_apart(self, a: str, b: str) -> bool:
        """Whether some pattern may match ``a`` and not ``b`` or the other way round. False is certain; True only
        means "match both to know"."""
        return b != a.lower() or not self.letters.isdisjoint(a)


#: a path+query made only of these is its own normal form (no ``%`` to decode, nothing to encode, no ``#``)
_PLAIN = PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")


def normal_path(path: str) -> str:
    """The RFC 3986 normal form of a path+query, as :class:`PathPattern` compares it (``""`` is ``/``)."""
    if _PLAIN.fullmatch(path) is not None:
        return path
    return _path_spellings(path or "/")[1]


class PagePath:
    """A page's URL as path-scoped statements match it (a tdmrep.json ``location``, a ``Content-Usage`` rule, an
    RSL ``<content url>``): its path+query as :func:`url_path` reads it and that path's normal form, worked out
    once for every pattern, and its origin only if a pattern names one.

    ``url`` is the URL, or a canonical one, whose text is then only made if a pattern names an origin. ``path``:
    ``url_path`` of that URL when the caller has it already (:func:`canonical_path`), never another spelling.
    """

    __slots__ = ("_origin", "_url", "normal", "path")

    def __init__(self, url: str | CanonicalURL, path: str | None = None, normal: str | None = None) -> None:
        self._url = url
        if path is None:
            path = url_path(url if isinstance(url, str) else url.url)
        self.path = path
        self.normal = normal_path(path) if normal is None else normal  #: ``normal``: the caller's normal_path(path)
        self._origin: tuple[str | None] | None = None

    @property
    def origin(self) -> str | None:
        """:func:`origin_of` the URL."""
        if self._origin is None:
            url = self._url
            self._origin = (origin_of(url if isinstance(url, str) else url.url),)
        return self._origin[0]

