"""Platforms: who they are (registered domains), what they granted us, and which URLs fetch one person.

Pure data and lookups. Loading and validating ``platforms.yaml`` lives in :mod:`consentcrawl.terms.load`, a
single profile template and what it matches in :mod:`consentcrawl.terms.templates`.

Whose page a URL is (:meth:`Platform.read_subject`) is decided for every way a server could read the URL
(:mod:`consentcrawl.terms.readings`): when the readings disagree, or a path under a profile prefix names no one
the platform's subject regex accepts, the URL is ambiguous and the policy denies it. Ids compare by
:meth:`Platform.subject_key` (NFKC, and case-folded unless the platform declares ids case-sensitive). On a
case-insensitive platform an id that servers comparing ids in different ways read as different accounts
(:meth:`Platform.subject_conflict`: ``straße`` is ``strasse`` folded, ``straße`` lower-cased) is ambiguous too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from ..urls import CanonicalURL, raw_path_query
from .readings import (
    SubjectReading,
    case_conflict,
    caseless,
    decode,
    has_undecodable,
    is_plain,
    readings,
    strict_params,
    trimmed_id,
)
from .subject_regex import compile_subject_regex
from .templates import ProfileTemplate, reading_of_path

__all__ = [
    "NOT_A_PROFILE",
    "Platform",
    "PlatformAuthorization",
    "PlatformRegistry",
    "ProfileTemplate",
    "SubjectReading",
    "compile_subject_regex",
]

#: The reading of a URL that is no one's profile.
NOT_A_PROFILE = SubjectReading(None)

@dataclass(frozen=True)
class PlatformAuthorization:
    """Leg 2: the platform's grant to us (an agreement, API terms, a licence)."""

    purposes: frozenset[str]
    reference: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    fields: frozenset[str] | None = None  #: None = the agreement does not restrict fields
    #: the agreement (``reference``) lets this grant stand against a site's published signals (issue #13)
    overrides_signals: bool = False


#: a plain path whose first segment is a PHP script with a path after it (a front controller's route, PATH_INFO)
_FRONT_CONTROLLER = re.compile(r"/[^/]*\.php/.")
_ESCAPED_ESCAPE = re.compile(r"%25|%[uU][0-9A-Fa-f]{4}")


def _stranger_than_one_decoding(url: str, params_read: frozenset[str]) -> str:
    """Why a server that decodes differently from one UTF-8 pass could read ``url`` as someone else, or "".

    ``%25`` is an escape for a server that decodes twice (a front proxy, then the application), ``%uXXXX`` one for
    IIS, and bytes that are not UTF-8 (overlong ``%c0%af`` is ``/`` to some decoders) cannot be read safely. The
    readings model one decoding pass; rather than guess at every other decoder, such a URL is ambiguous. In the
    query only the parameters a template reads (``params_read``) count: a nested, twice-escaped ``?next=`` value is
    ordinary.
    """
    if "%" not in url:
        return ""
    try:
        path, query = raw_path_query(url)
    except ValueError:
        return ""
    read = [value for name, _, value in (pair.partition("=") for pair in re.split("[&;]", query))
            if params_read and caseless(decode(name).replace("+", " ")).strip() in params_read]
    text = "?".join([path, *read])
    if _ESCAPED_ESCAPE.search(text):
        return "an escaped escape (%25, %uXXXX): read differently by a server that decodes twice"
    if has_undecodable(decode(text)):
        return "escapes that are not UTF-8 (e.g. overlong forms)"
    return ""


@dataclass(frozen=True)
class Platform:
    name: str
    domains: frozenset[str]  #: registered domains, lower-case, IDNA; IP addresses in canonical form
    authorization: PlatformAuthorization | None
    profiles: tuple[ProfileTemplate, ...] = ()
    subject_regex: str | None = None
    source: str = ""  #: file and line it was defined at, for evidence
    case_sensitive: bool = False  #: ids differing only in case are different people (default: the same person)
    #: the operator's research-exception statement and its reference for this platform's sites (issue #13): a
    #: TDMRep reservation then does not deny research here (``research_exception`` in ``platforms.yaml``)
    research_exception: tuple[str, str] | None = None
    #: the RSL licence the operator holds for this platform's sites and where it was recorded (``signal_licence``
    #: in ``platforms.yaml``: the reference, and the file and line); lifts an RSL ``server`` / ``<payment>``
    signal_licence: tuple[str, str] | None = None

    def subject_key(self, subject: str) -> str:
        """The key an id is compared, stored and looked up by: NFKC-normalised, then case-folded unless the
        platform's ids are case-sensitive (``Alice``, ``alice`` and a fullwidth ``ALICE`` are one person)."""
        if self.case_sensitive:
            return subject if subject.isascii() else unicodedata.normalize("NFKC", subject)
        return caseless(subject)

    def names_someone(self, text: str) -> bool:
        """Whether ``text``, all of it, is an id the platform's subject regex accepts (a request body's value:
        :mod:`consentcrawl.bodyreading`)."""
        return bool(text) and bool(self.profiles) and self.profiles[0].regex.fullmatch(text) is not None \
            and not has_undecodable(text)

    def subject_conflict(self, subject: str) -> str:
        """Why ``subject`` could name different accounts on a server of this platform, or "" (see
        :func:`~consentcrawl.terms.readings.case_conflict`). Its key is one person to us, but a server that
        compares ids by ``lower()`` has one account ``straße`` and another ``strasse``: a URL with such an id, a
        request or item naming it, and a grant written with it cannot be told to be that person's, and are denied.
        A ``case_sensitive`` platform compares ids as written (NFKC only): no id conflicts there."""
        return "" if self.case_sensitive else case_conflict(subject)

    def read_subject(self, url: str, canonical: CanonicalURL) -> SubjectReading:
        """Whose page ``url`` (canonical form ``canonical``, on this platform) is, read every way a server could
        read it: see :class:`~consentcrawl.terms.readings.SubjectReading`. Pure; a plain URL is read once."""
        if not self.profiles:
            return NOT_A_PROFILE
        quick, queries = self._quick
        if is_plain(url, canonical, queries):
            path = canonical.path
            lowered = path.lower()
            routed = _FRONT_CONTROLLER.match(lowered) is not None
            if not routed and not lowered.startswith(quick):
                return NOT_A_PROFILE
            params = strict_params(canonical.query) if queries else ()
            key, ambiguous, ident = self._read(tuple(path[1:].split("/")), params, None if routed else lowered)
            if ambiguous:
                return SubjectReading(None, True, ((canonical.path_query, None), *self._conflicts((ident,))))
            if key is None:
                return NOT_A_PROFILE
            trimmed = self._trimmed(canonical.path_query, key)
            return SubjectReading(key) if trimmed is None else SubjectReading(None, True, (
                (canonical.path_query, key), trimmed))
        stranger = _stranger_than_one_decoding(url, self._params_read)
        if stranger:
            return SubjectReading(None, True, ((canonical.path_query, None), (stranger, None)))
        results: dict[tuple[str, str | None], bool] = {}
        conflicting: dict[str | None, None] = {}
        for reading in readings(url, canonical):
            # a reading's own text, not the URL as written: ``%7E`` and a fullwidth tilde are a ``~`` to IIS too
            for as_short in (False, True) if "~" in reading.text else (False,):
                key, ambiguous, ident = self._read(reading.segments, reading.params, short=as_short)
                text = f"{reading.text} (8.3 short names)" if as_short else reading.text
                results[(text, key)] = results.get((text, key), False) or ambiguous
                if ambiguous:
                    conflicting[ident] = None
                trimmed = self._trimmed(text, key)
                if trimmed is not None:
                    results.setdefault(trimmed, False)
        keys = {key for _, key in results}
        if len(keys) > 1 or any(results.values()):
            return SubjectReading(None, True, (*results, *self._conflicts(conflicting)))
        key = keys.pop()
        return NOT_A_PROFILE if key is None else SubjectReading(key)

    def _trimmed(self, text: str, key: str | None) -> tuple[str, str | None] | None:
        """The reading of an application that trims the id (key ``key``, read in ``text``), when that is another
        person: ``/u/%20bob`` is bob's page to it (:func:`~consentcrawl.terms.readings.trimmed_id`). The key
        differs from ``key``, so the URL is ambiguous; both keys are evidence (a purge of either erases it)."""
        trimmed = trimmed_id(key) if key is not None else None
        if trimmed is None:
            return None
        return f"{text} (the id trimmed: {trimmed!r})", self.subject_key(trimmed) if trimmed else None

    @cached_property
    def _params_read(self) -> frozenset[str]:
        """The query parameters the templates read a person from, case-folded."""
        return frozenset(caseless(t.param) for t in self.profiles if t.param is not None)

    @cached_property
    def _quick(self) -> tuple[tuple[str, ...], bool]:
        """The templates' quick prefixes, and whether any template reads the query."""
        return tuple(t.quick for t in self.profiles), any(t.is_query for t in self.profiles)

    def _conflicts(self, idents: Iterable[str | None]) -> tuple[tuple[str, None], ...]:
        """Evidence entries (why, no key) for the ids among ``idents`` that :meth:`subject_conflict` rejects."""
        whys = (self.subject_conflict(ident) for ident in idents if ident is not None)
        return tuple((why, None) for why in dict.fromkeys(whys) if why)

    def _read(self, segments: tuple[str, ...], params: tuple[tuple[str, str], ...],
              lowered: str | None = None, *, short: bool = False) -> tuple[str | None, bool, str | None]:
        """The key one reading names (None: no one), whether it is ambiguous, and the id as written (when
        ambiguous: an id that conflicts, see :meth:`subject_conflict`, or None).

        A path after a PHP script (``/index.php/u/107``) is also read as the route it is to a front controller
        (WordPress, Laravel and Symfony serve ``PATH_INFO`` as the site's own path): a route that names a person
        makes the URL that person's page, and another person than the script's reading names makes it ambiguous
        (a route that names no one leaves the script's reading: ``/profile.php/x?id=5`` is 5's to PHP).
        ``lowered``: the lower-cased path of a plain URL, to skip templates it is not under at once. ``short``:
        a segment that may be the 8.3 short name of a template's literal segment is read as that segment (IIS
        serves a file under its short name too), see :func:`~consentcrawl.terms.templates.short_name_of`.
        """
        found = self._read_route(segments, params, lowered, short)
        if len(segments) > 1 and segments[0][-4:].lower() == ".php" and segments[1:] != ("",):
            routed = self._read(segments[1:], params, short=short)
            if routed[1] or (routed[0] is not None and found[0] is not None and routed[0] != found[0]):
                return None, True, routed[2] if routed[1] else None
            if routed[0] is not None and not found[1]:
                return routed
        return found

    def _read_route(self, segments: tuple[str, ...], params: tuple[tuple[str, str], ...],
                    lowered: str | None = None, short: bool = False) -> tuple[str | None, bool, str | None]:
        """:meth:`_read` for the path as it is."""
        found: str | None = None
        ident: str | None = None
        for template in self.profiles:
            if lowered is not None and not lowered.startswith(template.quick):
                continue
            idents, ambiguous = template.match(segments, params, short)
            if ambiguous:
                return None, True, None
            for text in idents:
                key = self.subject_key(text)
                if not text.isascii() and self.subject_conflict(text):
                    return None, True, text
                if found is None:
                    found, ident = key, text
                elif key != found:
                    return None, True, None
        return found, False, ident

    def is_profile_page(self, path: str) -> bool:
        """Whether a canonical path (``?query`` allowed) is a person's profile page itself, as a template writes it
        (``/@alice``, ``/@alice/``, ``/profile.php?id=alice``), not a page under it (``/@alice/posts``)."""
        reading = reading_of_path(path)
        segments = reading.segments[:-1] if reading.segments[-1:] == ("",) else reading.segments
        for template in self.profiles:
            idents, ambiguous = template.match(segments, reading.params)
            if idents and not ambiguous and (template.is_query
                                             or len(segments) == len(template.path) + 1 + len(template.after)):
                return True
        return False

    def subject_of(self, path: str) -> str | None:
        """The subject id a canonical path (``?query`` allowed) names, as written in it; None if it is not a
        profile URL or is ambiguous. The strict reading only: :meth:`read_subject` decides a URL."""
        reading = reading_of_path(path)
        key, ambiguous, ident = self._read(reading.segments, reading.params)
        return None if ambiguous or key is None else ident


@dataclass
class PlatformRegistry:
    """All configured platforms, looked up by registered domain."""

    platforms: dict[str, Platform] = field(default_factory=dict)
    _by_domain: dict[str, Platform] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for platform in self.platforms.values():
            for domain in platform.domains:
                self._by_domain[domain] = platform

    def by_domain(self, registered_domain: str) -> Platform | None:
        return self._by_domain.get(registered_domain)

    def domains(self) -> frozenset[str]:
        """Every platform's registered domains (and listed IP addresses)."""
        return frozenset(self._by_domain)

    def get(self, name: str) -> Platform | None:
        return self.platforms.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.platforms

    def __len__(self) -> int:
        return len(self.platforms)
