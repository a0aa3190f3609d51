"""Every way a server could read a URL's path and query: the input to "whose page is this?" — pure, no I/O.

The canonical form (:func:`consentcrawl.urls.canonicalize`) reads a URL as RFC 3986 says: ``%2F`` is data inside
a segment, ``;`` is an ordinary character, ``..`` is resolved before anything else. Real servers are more
lenient: many decode every escape once (``%2F``, ``%2E`` and ``%5C`` included) before they split the path, turn
``\\`` into ``/``, drop ``;`` path parameters (``/u/104;jsessionid=1``, ``/u/101/..;/104``), resolve dot-segments
after decoding and read ids with a Unicode-aware parser (fullwidth digits are digits). Such a server serves a
different person than the canonical form names for ``/u/101/..%2F107``. So a URL is read every way such a server
could read it (:func:`readings`), each reading is matched against the profile templates, and a URL whose
readings disagree is ambiguous: the policy denies it rather than guess.

A :class:`Reading` is a path as decoded segments plus the query as decoded ``(name, value)`` parameters. Most
URLs a crawl meets are plain (no ``%``, ``\\``, ``;``, non-ASCII, dot-segment, empty segment or trailing slash in
the path, and when the query matters none of ``%``, ``;`` or ``+`` in it): every lenient reading of those is the
strict one, so :func:`is_plain` lets callers read them once (:func:`strict_reading`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from ..urls import CanonicalURL, raw_path_query

__all__ = [
    "Reading",
    "SubjectReading",
    "case_conflict",
    "caseless",
    "decode",
    "has_undecodable",
    "is_plain",
    "readings",
    "render",
    "strict_params",
    "strict_reading",
    "trimmed_id",
]


@dataclass(frozen=True)
class SubjectReading:
    """Whose page a URL is, read every way a server could read it (:meth:`Platform.read_subject`).

    ``subject`` is the person's key (:meth:`Platform.subject_key`) when every reading names that same person, and
    None when no reading names anyone — or when the URL is ``ambiguous``: its readings name different people (or
    one names a person and another names none), or a reading has a path under a profile prefix that does not
    resolve to exactly one id the platform's subject regex accepts. ``readings`` is the evidence for an ambiguous
    URL: each distinct reading's path+query as it saw it and the key it named (None for none, or for a reading
    that could not be resolved); it is empty otherwise.
    """

    subject: str | None
    ambiguous: bool = False
    readings: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """One way to read a path and query.

    ``segments`` are the path's segments, decoded (a ``/`` inside one is data, as ``%2F`` is to a strict
    server); a trailing ``""`` is a trailing slash, and ``("",)`` is the root ``/``. ``params`` are the query's
    ``(name, value)`` pairs in order, decoded. ``text`` is the path+query as this reading saw it, for evidence.
    """

    text: str
    segments: tuple[str, ...]
    params: tuple[tuple[str, str], ...]


# -- decoding ------------------------------------------------------------------------------------------------------


def decode(text: str) -> str:
    """Percent-decode every escape once, as UTF-8; bytes that are not UTF-8 become lone surrogates
    (``surrogateescape``), so they can be told apart from text (:func:`has_undecodable`) and rendered back."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")


def has_undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (see :func:`decode`): such an id cannot be read safely."""
    return not text.isascii() and any("\udc80" <= c <= "\udcff" for c in text)


def _nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _stable(text: str, fold: Callable[[str], str]) -> str:
    """NFKC, then ``fold``, repeated until stable (black-letter H, U+210C, is ``H`` under NFKC and ``h`` once
    folded), so that the result is its own result."""
    folded = unicodedata.normalize("NFKC", text)
    for _ in range(4):
        again = unicodedata.normalize("NFKC", fold(folded))
        if again == folded:
            break
        folded = again
    return folded


def caseless(text: str) -> str:
    """NFKC, then case folding, repeated until stable, so that ``caseless(caseless(x)) == caseless(x)``: the key
    of a case-insensitive id, and how template literals are compared."""
    if text.isascii():
        return text.lower()
    return _stable(text, str.casefold)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def case_conflict(text: str) -> str:
    """Why servers whose ids are case-insensitive could read the id ``text`` as different accounts, or "".

    The key of a case-insensitive id is its full case folding (:func:`caseless`), but real servers compare ids
    in other ways: with ``str.lower`` (Unicode lower-casing, no folding) or by lower-casing ASCII letters only.
    For most ids all three agree. For some they do not: ``straße`` folds to ``strasse`` but stays ``straße``
    lower-cased, so a server comparing by ``lower()`` has two accounts where the key sees one person; ``Émile``
    is ``émile`` to a Unicode-aware server and another account to one that lower-cases ASCII only. Whose page
    such an id names, and whose grant covers it, cannot be told: every way of reading it is named here, and a
    caller denies. ASCII ids never conflict.
    """
    if text.isascii():
        return ""
    folded = _stable(text, str.casefold)
    lowered = _stable(text, str.lower)
    ascii_lowered = _stable(text, lambda t: t.translate(_ASCII_LOWER))
    if folded == lowered == ascii_lowered:
        return ""
    return (f"a case-insensitive id read differently by servers that compare ids differently: {folded!r} "
            f"case-folded (the key), {lowered!r} lower-cased, {ascii_lowered!r} with ASCII letters lower-cased")


#: what applications trim from both ends of an id: white space (Python's ``str.strip``, and so ``int()``) and the
#: control characters up to the space (Java's ``String.trim``, PHP's ``trim``: ``\0``, ``\x0B``)
_PADDING = re.compile(r"^[\s\x00-\x20]+|[\s\x00-\x20]+$")


def trimmed_id(ident: str) -> str | None:
    """The id ``ident`` as an application that trims its ids reads it, or None when it has nothing to trim. Such
    a server serves bob's page at ``/u/%20bob`` and ``/u/bob%09``: the untrimmed id is not one person's. Windows'
    rule for file names (trailing dots and spaces trimmed from every segment, :func:`_windows_name`) is a reading
    of the path; this one is the application's, at both ends of the id alone."""
    if not ident or not (ident[0] <= " " or ident[-1] <= " " or ident[0].isspace() or ident[-1].isspace()):
        return None
    return _PADDING.sub("", ident)


_RENDER = str.maketrans({"%": "%25", "/": "%2F", "?": "%3F", "#": "%23"})
_RENDER_PARAM = str.maketrans({"%": "%25", "&": "%26", "=": "%3D", "#": "%23"})


def _render_text(text: str, table: dict[int, str]) -> str:
    text = text.translate(table)
    if has_undecodable(text):
        text = "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c for c in text)
    return text


def render(segments: tuple[str, ...], params: tuple[tuple[str, str], ...]) -> str:
    """A path+query spelling of decoded segments and parameters (``/`` inside a segment shown as ``%2F``)."""
    path = "/" + "/".join(_render_text(s, _RENDER) for s in segments)
    if not params:
        return path
    return path + "?" + "&".join(f"{_render_text(k, _RENDER_PARAM)}={_render_text(v, _RENDER_PARAM)}"
                                 for k, v in params)


# -- the strict reading --------------------------------------------------------------------------------------------


def strict_params(query: str) -> tuple[tuple[str, str], ...]:
    """Form parameters split on ``&`` only, each name and value percent-decoded (``+`` stays ``+``)."""
    if not query:
        return ()
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((decode(name), decode(value)))
    return tuple(pairs)


def strict_reading(path: str, query: str = "") -> Reading:
    """The reading of an RFC 3986 server: the path split on ``/`` as written, each segment then decoded.

    ``path`` and ``query`` are canonical (:class:`~consentcrawl.urls.CanonicalURL`): no dot-segment, empty
    segment or trailing slash left to resolve.
    """
    segments = tuple(decode(s) for s in path[1:].split("/")) if "%" in path else tuple(path[1:].split("/"))
    return Reading(f"{path}?{query}" if query else path, segments, strict_params(query))


def is_plain(url: str, canonical: CanonicalURL, query: bool = True) -> bool:
    """Whether every lenient reading of ``url`` is its strict reading, so that one reading decides it.

    True when the URL's path is written exactly as its canonical path (so no dot-segment, empty segment, trailing
    slash, backslash, escape or non-ASCII character) and holds no ``;``, and nothing a Windows server reads as
    another name: no ``:`` (an NTFS stream, ``::$DATA``), no ``~`` (an 8.3 short name), no segment ending in
    ``.`` (trimmed by Windows) and no ASP.NET cookieless segment (``/(S(...))/``). ``query``: whether the query matters
    (the platform has query templates); then it too must be written as its canonical form, with no ``%``, ``;``
    or ``+``.
    """
    path = canonical.path
    if ("%" in path or ";" in path or ":" in path or "~" in path or "./" in path or path[-1] == "."
            or ("(" in path and _COOKIELESS.search(path) is not None)):
        return False
    head = _PLAIN_HEAD.match(url)
    if head is None or not url.startswith(path, head.end()):
        return False
    end = head.end() + len(path)
    if not query:
        return url[end:end + 1] in ("", "?", "#")
    text = canonical.query
    if "%" in text or ";" in text or "+" in text:
        return False
    rest = url[end:]
    if text:
        return rest == "?" + text or rest.startswith(f"?{text}#")
    return rest == "" or rest[0] == "#"


#: scheme://authority with nothing that could start or change a path (no ``/ \\ ? # @ % ;``, no space).
_PLAIN_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\\?#@%;\s]*")


# -- lenient readings ----------------------------------------------------------------------------------------------


def _lenient_params(query: str) -> tuple[tuple[str, str], ...]:
    """Form parameters split on ``&`` and ``;``, ``+`` read as a space, decoded once, NFKC-normalised; a name cut
    at its first NUL and the spaces around it dropped, as PHP registers it (a C string: ``?id%00=107`` and
    ``?id%00x=107`` are its ``id``; it drops leading spaces: ``?%20id=107`` is its ``id`` too)."""
    if not query:
        return ()
    pairs = []
    for item in re.split("[&;]", query):
        if item:
            name, _, value = item.partition("=")
            name = _nfkc(decode(name.replace("+", " "))).partition("\x00")[0].strip()
            pairs.append((name, _nfkc(decode(value.replace("+", " ")))))
    return tuple(pairs)


#: characters that Windows "best-fit" conversion to a code page turns into ``\\`` (the yen and won signs, to
#: code pages 932 and 949, where that byte is the backslash), seen by an application reading the path in ANSI
_BEST_FIT_BACKSLASH = str.maketrans({"\u00a5": "\\", "\u20a9": "\\"})


def _windows_name(part: str) -> str:
    """A path segment as Windows opens it: an NTFS stream suffix cut off (``profile.aspx::$DATA`` is the file's
    own data, ``u::$INDEX_ALLOCATION`` the directory; a suffix without a ``$`` type, ``User:Alice``, names another
    stream, or is no stream at all to an application that routes the path; found after trailing dots and spaces,
    which Win32 trims from the path before NTFS reads it: ``profile.aspx::$DATA.``), then trailing dots and spaces
    trimmed (``profile.php.``, ``u%20``). A segment left with nothing but dots and spaces is a dot-segment. An ASP.NET
    cookieless segment (``(S(lit3py55t21z5v55vlm25s55))``, ``(A(...)F(...))``: a session id, an anonymous id, a
    forms ticket) is no part of the path to ASP.NET: it is dropped."""
    if part[:1] == "(" and _COOKIELESS.fullmatch(part):
        return ""
    name = _NTFS_STREAM.sub("", part.rstrip(". ")) if ":" in part else part  # Win32 trims them first too
    trimmed = name.rstrip(". ")
    if trimmed or not name:
        return trimmed
    return ".." if ".." in name else "."


def _windows_hint(path: str) -> bool:
    """Whether a Windows server could read the raw ``path`` differently from the other lenient readings: a ``:``,
    a segment ending in a dot or space, a character best-fit turns into a backslash (escaped or not), or an
    ASP.NET cookieless segment."""
    text = decode(path)
    return (":" in text or "\u00a5" in text or "\u20a9" in text or "\uff3c" in text
            or _WINDOWS_TRAILING.search(text) is not None or ("(" in text and _COOKIELESS.search(text) is not None))


_WINDOWS_TRAILING = re.compile(r"[. ](?:[/\\]|$)")
#: an NTFS stream suffix with its type: ``::$DATA``, ``:$DATA``, ``:name:$DATA``, ``:$I30:$INDEX_ALLOCATION``
_NTFS_STREAM = re.compile(r"(?::[^:]*)?:\$[A-Za-z0-9_]+$")
#: an ASP.NET cookieless segment: one or more ``X(value)`` in parentheses
_COOKIELESS = re.compile(r"\((?:[A-Za-z]\([^()/]*\))+\)")


def _lenient_segments(path: str, *, separators: bool, parameters: str, nfkc_first: bool,
                      windows: bool = False) -> tuple[str, ...]:
    """The segments a lenient server reads in ``path`` (which starts with ``/``).

    ``separators``: every escape is decoded before the path is split, so ``%2F`` and ``%5C`` (and ``\\``) separate
    segments and ``%2E%2E`` is a dot-segment; otherwise each segment is decoded after splitting. ``parameters``:
    ``;`` and what follows it are dropped from every segment (``..;`` is ``..``), as written (``"raw"``: before
    decoding, as Tomcat does) or once decoded (``"decoded"``: ``%3B`` too); ``""``: kept. ``nfkc_first``: NFKC
    before splitting and resolving (a fullwidth solidus separates, two fullwidth full stops are ``..``);
    otherwise each resolved segment is normalised. ``windows``: as IIS on Windows opens a path (documented in
    Microsoft's "Naming Files, Paths, and Namespaces" and KB 188806): each segment without an NTFS stream suffix
    and trailing dots and spaces (:func:`_windows_name`), and with ``separators``, a backslash that NFKC or
    best-fit made (a fullwidth ``\uff3c``, ``\u00a5``) separates too.
    Dot-segments are resolved after decoding and dropping parameters; empty segments are skipped, but a trailing
    slash is kept (``/u/`` is not ``/u``: it is a path under the profile prefix ``/u/``).
    """
    if parameters == "raw":
        path = "/".join(p.partition(";")[0] for p in path.split("/"))
    if separators:
        text = decode(path).replace("\\", "/")
        if nfkc_first:
            text = _nfkc(text)
        if windows:
            text = text.translate(_BEST_FIT_BACKSLASH).replace("\\", "/")
        parts = text.split("/")[1:]
    else:
        parts = [decode(p) for p in path.split("/")[1:]]
        if nfkc_first:
            parts = [_nfkc(p) for p in parts]
    if parameters == "decoded":
        parts = [p.partition(";")[0] for p in parts]
    if windows:
        parts = [_windows_name(p) for p in parts]
    stack: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if stack:
                stack.pop()
            continue
        stack.append(part)
    if not stack or (parts and parts[-1] in ("", ".", "..")):
        stack.append("")
    if not nfkc_first:
        stack = [_nfkc(s) for s in stack]
    return tuple(stack)


def readings(url: str, canonical: CanonicalURL) -> Iterator[Reading]:
    """Every distinct reading of ``url`` (whose canonical form is ``canonical``): the strict one first.

    Then the lenient ones, read from the path+query as written (what a client that sends the URL unnormalised
    sends) and from the canonical one (what a client that resolves dot-segments first sends), each with every
    combination of: decoding before splitting or per segment, dropping ``;`` parameters (before or after decoding)
    or not, NFKC before or after resolving. The query of a lenient reading is split on ``&`` and ``;`` with ``+``
    as a space.
    Then, where a Windows server could read the path otherwise (:func:`_windows_hint`), each of those again as
    IIS opens it (``windows`` in :func:`_lenient_segments`).
    Combinations that cannot differ for this URL (no ``%``, no ``;``, nothing non-ASCII) are not generated.
    """
    strict = strict_reading(canonical.path, canonical.query)
    yield strict
    seen = {(strict.segments, strict.params)}
    raw_path, raw_query = raw_path_query(url)
    sources = [(raw_path, raw_query)]
    if (canonical.path, canonical.query) != (raw_path, raw_query):
        sources.append((canonical.path, canonical.query))
    for path, query in sources:
        params = _lenient_params(query)
        escaped = "%" in path
        parameter_modes = ("", "decoded", "raw") if ";" in path else ("", "decoded") if "%3B" in path.upper() else ("",)
        windows_modes = (False, True) if _windows_hint(path) else (False,)
        for separators in (False, True) if escaped else (False,):
            for parameters in parameter_modes:
                for nfkc_first in (False, True) if escaped or not path.isascii() else (False,):
                    for windows in windows_modes:
                        segments = _lenient_segments(path, separators=separators, parameters=parameters,
                                                     nfkc_first=nfkc_first, windows=windows)
                        if (segments, params) not in seen:
                            seen.add((segments, params))
                            yield Reading(render(segments, params), segments, params)
