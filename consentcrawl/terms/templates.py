"""Profile templates: which URL paths and queries fetch one person's data, and the id they name.

A template (``/u/{subject}``, ``/@{subject}``, ``/profile.php?id={subject}``) is parsed and checked once, when
``platforms.yaml`` is loaded, then matched against one reading of a URL at a time
(:mod:`consentcrawl.terms.readings`). Which template wins, and whose page a whole URL is, is the platform's
business (:meth:`consentcrawl.terms.platforms.Platform.read_subject`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..urls import canonicalize
from .readings import Reading, caseless, decode, has_undecodable, strict_reading
from .subject_regex import compile_subject_regex

__all__ = ["DEFAULT_SUBJECT_REGEX", "ProfileTemplate", "reading_of_path", "short_name_of"]

DEFAULT_SUBJECT_REGEX = "[^/]+"


@dataclass(frozen=True)
class ProfileTemplate:
    """A URL template such as ``/u/{subject}`` or ``/profile.php?id={subject}`` that fetches one person's data.

    Literal parts match case-insensitively and a template matches the path itself or anything below it
    (``/u/1001/followers`` is still about 1001): when in doubt, a URL counts as a profile. In a path template
    ``{subject}`` may share its segment with literal text (``/@{subject}``, ``/u/{subject}.json``); in a query
    template it is the whole value of one parameter, the path is literal, and other parameters of the URL are
    allowed in any order (those the template names must be there with its values).

    Matched against one :class:`~consentcrawl.terms.readings.Reading` at a time (:meth:`match`). All literal parts
    are kept decoded and folded (:func:`~consentcrawl.terms.readings.caseless`).
    """

    template: str
    regex: re.Pattern[str]  #: the subject regex, matched against the whole id (case-insensitively)
    path: tuple[str, ...] = ()  #: literal segments before the subject's segment (a query template: its whole path)
    head: str = ""  #: literal text before ``{subject}`` in its segment (``@`` in ``/@{subject}``)
    tail: str = ""  #: literal text after ``{subject}`` in its segment (``.json`` in ``/u/{subject}.json``)
    after: tuple[str, ...] = ()  #: literal segments after the subject's segment
    param: str | None = None  #: a query template: the parameter that names the subject
    params: tuple[tuple[str, str], ...] = ()  #: a query template: the other parameters it requires
    prefix: str = ""  #: the literal text before ``{subject}``, as written: the profile prefix
    #: a prefix every lower-case ASCII path under the profile prefix starts with (a query template: its path), so
    #: that a plain URL elsewhere is told apart with one ``str.startswith``
    quick: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.param is not None:
            quick = "/" + "/".join(self.path)
        else:
            quick = "/" + "".join(p + "/" for p in self.path) + self.head
        object.__setattr__(self, "quick", quick)

    @classmethod
    def compile(cls, template: str, subject_regex: str = DEFAULT_SUBJECT_REGEX) -> ProfileTemplate:
        """Parse and check a template; ValueError (or re.error) says why it could never match."""
        if template.count("{subject}") != 1:
            raise ValueError(f"profile template {template!r} must contain {{subject}} exactly once")
        if not template.startswith("/"):
            raise ValueError(f"profile template {template!r} must start with '/'")
        regex = compile_subject_regex(subject_regex)
        _check_canonical(template)
        if "?" in template:
            return cls._compile_query(template, regex)
        before, after = template.split("{subject}")
        if after.endswith("/"):
            after = after[:-1]  # "/profile/{subject}/": a trailing slash is no part of a canonical path
        *path, head = before[1:].split("/")
        tail, slash, rest = after.partition("/")
        return cls(
            template,
            regex,
            path=tuple(_literal(p) for p in path),
            head=_literal(head),
            tail=_literal(tail),
            after=tuple(_literal(p) for p in rest.split("/")) if slash else (),
            prefix=before,
        )

    @classmethod
    def _compile_query(cls, template: str, regex: re.Pattern[str]) -> ProfileTemplate:
        path, _, query = template.partition("?")
        if "{subject}" in path:
            raise ValueError(
                f"profile template {template!r}: with a query, {{subject}} must be the value of a query parameter "
                "(e.g. '/profile.php?id={subject}')"
            )
        param: str | None = None
        required: dict[str, str] = {}
        for item in query.split("&"):
            name, equals, value = item.partition("=")
            key = _literal(name)
            if not name or key == param or key in required:
                raise ValueError(f"profile template {template!r}: query parameter {name!r} is empty or given twice")
            if value == "{subject}":
                param = key
            elif "{subject}" in item:
                raise ValueError(
                    f"profile template {template!r}: {{subject}} must be the whole value of a query parameter "
                    f"(e.g. 'id={{subject}}'), not part of {item!r}"
                )
            else:
                required[key] = _literal(value) if equals else ""
        assert param is not None  # the one "{subject}" is in the query, and every other placement raised
        segments = () if path == "/" else tuple(_literal(p) for p in path[1:].split("/"))
        return cls(template, regex, path=segments, param=param, params=tuple(required.items()),
                   prefix=f"{path}?{query[:query.index('{subject}')]}")

    @property
    def is_query(self) -> bool:
        return self.param is not None

    def match(self, segments: tuple[str, ...], params: tuple[tuple[str, str], ...],
              short: bool = False) -> tuple[tuple[str, ...], bool]:
        """The ids one reading names through this template, and whether it is ambiguous under this template.
        ``short``: a literal segment may be written as its 8.3 short name (:func:`short_name_of`).

        Ambiguous: the reading is under the profile prefix but what stands for ``{subject}`` is empty, is not
        all matched by the subject regex, holds bytes that are not UTF-8, or (a query) a parameter the template
        requires has several values, or the id's parameter is written as a list (``id[]=``). Several ids (a
        repeated query parameter) are returned for the caller to compare by key. ``((), False)``: not this
        template's page.
        """
        path = self.path
        n = len(path)
        if len(segments) < n or (self.param is None and len(segments) == n):
            return (), False
        for i in range(n):
            if caseless(segments[i]) != path[i] and not (short and short_name_of(segments[i], path[i])):
                return (), False
        if self.param is not None:
            return self._match_query(params)
        field = segments[n]
        head = self.head
        if head:
            if caseless(field[:len(head)]) != head:
                # under the prefix only if folding changed the length (e.g. a ligature): then it cannot be cut
                return (), caseless(field).startswith(head)
            field = field[len(head):]
        tail = self.tail
        if tail:
            if len(field) > len(tail) and caseless(field[-len(tail):]) == tail:
                if not self._resolves(field[:-len(tail)]):
                    return (), True
                field = field[:-len(tail)]
            else:  # no suffix: not this template's page, but what follows the prefix must still be someone
                return (), not self._resolves(field)
        elif not self._resolves(field):
            return (), True
        after = self.after
        if after:
            if len(segments) <= n + len(after):
                return (), False
            for j, literal in enumerate(after, n + 1):
                if caseless(segments[j]) != literal and not (short and short_name_of(segments[j], literal)):
                    return (), False
        return (field,), False

    def _match_query(self, params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], bool]:
        name = self.param
        values = [v for k, v in params if caseless(k) == name]
        if any(caseless(k).startswith(f"{name}[") for k, _ in params):
            # ``id[]=104``, ``id[0]=104``: PHP, Rails and Express's ``qs`` read the parameter as a list (or a
            # map) of ids, which an application may read as its one element (``String(["104"])`` is ``"104"``,
            # ``User.find(["104"])`` finds 104): not one person for sure
            return (), True
        if not values:
            return (), False
        for required, literal in self.params:
            given = {caseless(v) for k, v in params if caseless(k) == required}
            if literal not in given:
                return (), False
            if len(given) > 1:
                return (), True
        if not all(self._resolves(v) for v in values):
            return (), True
        return tuple(dict.fromkeys(values)), False

    def _resolves(self, ident: str) -> bool:
        """Whether ``ident`` names exactly one person: the regex accepts all of it, it is UTF-8, and a server that
        reads ids as numbers reads the same id (not ``0101`` or ``1_01``, which ``int()`` reads as 101)."""
        return (bool(ident) and self.regex.fullmatch(ident) is not None and not has_undecodable(ident)
                and not _renumbered(ident))

    def subject_of(self, path: str) -> str | None:
        """The id a canonical path (``?query`` allowed) names through this template alone; None if it names no
        one or is ambiguous. Kept for callers of the single-template API; see :meth:`Platform.read_subject`."""
        reading = reading_of_path(path)
        idents, ambiguous = self.match(reading.segments, reading.params)
        return idents[0] if len(idents) == 1 and not ambiguous else None


#: an 8.3 short name: up to six characters (the long name's first ones, or two and four hex digits of its hash),
#: ``~`` and a number, and up to three of the extension's first characters
_SHORT_NAME = re.compile(r"([^.~]{1,6})~[0-9]{1,6}(?:\.([^.]{1,3}))?")
#: what Windows leaves out of a long name when it makes the short one
_NOT_IN_SHORT = str.maketrans("", "", " .\"*+,/:;<=>?[]|")


def short_name_of(segment: str, literal: str) -> bool:
    """Whether ``segment`` may be the 8.3 short name Windows gave the file or directory ``literal`` (a template's
    literal segment, folded), which IIS serves under it (``/PROFIL~1.ASP`` is ``/profile.aspx``, ``/PEOPLE~1`` is
    ``/people-profiles``; Microsoft KB 179148).

    Which short name a long name got is not known from outside (``~2`` after a clash, a hashed form after four,
    none at all where short names are switched off), so any short name that could be ``literal``'s counts: its
    base a prefix of the long name's (or two characters and hex digits), its extension a prefix of the long one's
    first three characters. Whether it is that short name is not known either: the caller reads such a segment
    both ways (:meth:`~consentcrawl.terms.platforms.Platform.read_subject`), and readings that disagree deny.
    """
    if "~" not in segment:
        return False
    found = _SHORT_NAME.fullmatch(caseless(segment))
    if found is None:
        return False
    stem, dot, extension = literal.lstrip(".").rpartition(".")
    if not dot:
        stem, extension = extension, ""
    stem = stem.translate(_NOT_IN_SHORT)
    base, given = found.group(1), found.group(2) or ""
    hashed = len(base) > 2 and base[:2] == stem[:2] and all(c in "0123456789abcdef" for c in base[2:])
    return (stem.startswith(base) or hashed) and extension.translate(_NOT_IN_SHORT)[:3].startswith(given)


#: what Python's int() (and most number parsers) accept: spaces, a sign, digits of any script, single '_'
_NUMBER = re.compile(r"\s*[+-]?\d+(?:_\d+)*\s*")


def _renumbered(ident: str) -> bool:
    """Whether a server that parses ids as numbers reads ``ident`` as another id (leading zeros, ``_``, a sign,
    spaces, digits of another script): two readings of one id, so it names no one for sure."""
    if ident.isdigit() and ident.isascii():
        return len(ident) > 1 and ident[0] == "0"
    if _NUMBER.fullmatch(ident) is None:
        return False
    try:
        return str(int(ident)) != ident
    except ValueError:  # pragma: no cover - _NUMBER is int()'s grammar
        return True


def _literal(text: str) -> str:
    """A template literal as readings are compared with it: decoded and folded."""
    return caseless(decode(text))


def _check_canonical(template: str) -> None:
    """ValueError unless the template's literal parts are written in canonical form, since a template is matched
    against canonical paths (``//``, ``/./``, a lower-case ``%2f``, a ``#`` or a ``/`` before the query in it
    would make it match nothing)."""
    placeholder = "0subject0"
    probe = template.replace("{subject}", placeholder)
    checked = probe[:-1] if probe.endswith("/") and "?" not in probe and len(probe) > 1 else probe
    try:
        canonical = canonicalize("http://template.invalid" + checked).path_query
    except ValueError as exc:
        raise ValueError(f"profile template {template!r} is not a valid URL path ({exc})") from None
    if canonical == checked:
        return
    advice = (f"; write {canonical.replace(placeholder, '{subject}')!r}" if placeholder in canonical
              else "; it can never match a URL")
    raise ValueError(
        f"profile template {template!r} is not in canonical form, so it would never match a canonical URL "
        f"(no '//', '/./', '/../', '#' or '/' before '?'; escapes upper-case and only where needed){advice}"
    )


def reading_of_path(path_query: str) -> Reading:
    """The strict reading of a canonical path (``?query`` allowed): how a template is tried on its own."""
    path, _, query = path_query.partition("?")
    return strict_reading(path or "/", query)
