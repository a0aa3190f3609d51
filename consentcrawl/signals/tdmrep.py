"""W3C TDMRep (TDM Reservation Protocol, Community Group Final Report 2024): the well-known file, the headers, the
HTML meta tags, resolved per purpose.

- ``/.well-known/tdmrep.json`` is a JSON array of ``{"location", "tdm-reservation", "tdm-policy"}``. ``location``
  is a robots-style path pattern (``*``, ``$``), case-sensitive; the FIRST entry whose location matches wins, in
  array order. Decided before the fetch (site level, ``terms.signal.tdmrep``).
- Headers ``tdm-reservation: 0|1`` and ``tdm-policy: URL`` (names in any case) and HTML
  ``<meta name="tdm-reservation" content="1">`` / ``<meta name="tdm-policy" content="URL">``: read on the response
  (``response.signal.tdmrep``).
- Precedence for one resource: file < header < meta, field by field; a missing value never resets an earlier one.
- ``tdm-reservation`` must be the number 0 or 1: anything else (``"1"``, ``true``, ``2``, ``yes``) is a protocol
  error and reads as unset.
- 1 denies the TDM purposes (:data:`~consentcrawl.signals.purposes.TDM_PURPOSES`); ``research`` only while the
  operator records no research-exception statement with a reference (:class:`ResearchException`). 0 allows
  ai-training and research. ``tdm-policy`` is recorded as evidence with what its ODRL document says
  (:mod:`~consentcrawl.signals.odrl`, fetched by the adapters): an offer, not a licence, so 1 still denies.

Decisions where the report is silent: the first matching entry decides even when its reservation is invalid (no
fall-through to later entries); several header lines or meta tags with different valid values read as the most
restrictive (1); a ``location`` written as an absolute URL counts only on its own origin.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..pagehead import head_tags
from ._common import PagePath, PathPattern, header_lines, origin_of, url_path
from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .fetch import MAX_BYTES, SignalFile, SignalFileStatus
from .odrl import distinct, policy_evidence, policy_url
from .purposes import RESEARCH, TDM_PURPOSES, purposes_for

__all__ = ["ResearchException", "TdmRepEntry", "TdmRepFile", "parse_tdmrep_file", "response_policy_url",
           "response_tdmrep", "site_policy_urls", "site_tdmrep"]

SIGNAL = "tdmrep"
MAX_ENTRIES = 10_000  #: entries read from one file


@dataclass(frozen=True)
class ResearchException:
    """The operator's statement that its research falls under a TDM exception (e.g. DSM Directive art. 3).

    Only a statement with a reference counts (``platforms.yaml`` or settings, phase 2)."""

    statement: str
    reference: str
    source: str = ""  #: where the operator recorded it: the setting, or ``platforms.yaml`` and its line

    @property
    def valid(self) -> bool:
        return bool(str(self.statement).strip()) and bool(str(self.reference).strip())


@dataclass(frozen=True)
class TdmRepEntry:
    index: int  #: position in the array (0-based)
    location: str
    reservation: int | None  #: 0, 1, or None when missing or invalid
    policy: str | None
    raw: str  #: the entry as JSON
    error: str | None = None  #: why the reservation is unset
    #: a location written as a full URL counts only on its own origin ("" for one that cannot be read)
    origin: str | None = field(init=False, default=None, repr=False, compare=False)
    pattern: PathPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        location, origin = self.location, None
        if location.startswith(("http://", "https://")):
            origin, location = origin_of(location) or "", url_path(location)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "pattern", PathPattern(location))

    def matches(self, url: str | PagePath) -> bool:
        page = url if isinstance(url, PagePath) else PagePath(url)
        if self.origin is not None and self.origin != page.origin:
            return False
        return self.pattern.matches_page(page)


@dataclass(frozen=True)
class TdmRepFile:
    entries: tuple[TdmRepEntry, ...]
    notes: tuple[str, ...] = ()
    valid: bool = True  #: False when the body is not a JSON array

    def match(self, url: str | PagePath) -> TdmRepEntry | None:
        """The first entry, in array order, whose location matches ``url``."""
        page = url if isinstance(url, PagePath) else PagePath(url)
        for entry in self.entries:
            if entry.matches(page):
                return entry
        return None


def site_policy_urls(file: SignalFile | None) -> list[str]:
    """The ``tdm-policy`` documents a fetched tdmrep.json names (what a site-level fetcher fetches next, each once,
    at most :data:`~consentcrawl.signals.odrl.MAX_POLICIES`)."""
    if file is None or file.status is not SignalFileStatus.OK:
        return []
    return list(_policy_urls(file.url, file.body))


@lru_cache(maxsize=64)
def _policy_urls(base: str, body: bytes) -> tuple[str, ...]:
    """Remembered per file: the adapters ask for every decision whether the origin's policies are fetched."""
    return tuple(distinct(policy_url(base, e.policy) for e in parse_tdmrep_file(body).entries if e.policy))


def _reservation(value: Any) -> tuple[int | None, str | None]:
    if type(value) is int and value in (0, 1):  # bool is an int subclass: true/false are errors
        return value, None
    if value is None:
        return None, "tdm-reservation missing"
    return None, f"tdm-reservation {json.dumps(value)[:40]} is not 0 or 1 (protocol error: unset)"


def parse_tdmrep_file(body: bytes | str) -> TdmRepFile:
    """Parse ``/.well-known/tdmrep.json``. Never raises: anything that is not a JSON array has no entries.

    Remembered per body (a fetched file is parsed once, not once per request)."""
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    return _parse_tdmrep(body)


@lru_cache(maxsize=64)
def _parse_tdmrep(body: bytes | str) -> TdmRepFile:
    try:
        if isinstance(body, (bytes, bytearray, memoryview)):
            data = json.loads(bytes(body))  # UTF-8 (a byte order mark too), UTF-16 or UTF-32, as json tells
        else:
            data = json.loads(body)
    except (ValueError, RecursionError, TypeError) as exc:
        return TdmRepFile((), (f"not JSON ({type(exc).__name__})",), valid=False)
    if not isinstance(data, list):
        return TdmRepFile((), (f"not a JSON array but {type(data).__name__}",), valid=False)
    entries: list[TdmRepEntry] = []
    notes: list[str] = []
    for index, item in enumerate(data[:MAX_ENTRIES]):
        if not isinstance(item, dict):
            notes.append(f"entry {index}: not an object, ignored")
            continue
        location = item.get("location")
        if not isinstance(location, str) or not location:
            notes.append(f"entry {index}: no location, ignored")
            continue
        reservation, error = _reservation(item.get("tdm-reservation"))
        policy = item.get("tdm-policy")
        try:
            raw = json.dumps(item, ensure_ascii=False)
        except (ValueError, RecursionError):
            raw = repr(item)
        entries.append(TdmRepEntry(index, location, reservation, policy if isinstance(policy, str) else None,
                                   raw[:300], error))
        if error and "missing" not in error:
            notes.append(f"entry {index}: {error}")
    if len(data) > MAX_ENTRIES:
        notes.append(f"only the first {MAX_ENTRIES} entries were read")
    return TdmRepFile(tuple(entries), tuple(notes))


def _findings(reservation: int, statement: Statement, exception: ResearchException | None,
              policy: str | None) -> list[Finding]:
    out: list[Finding] = []
    if reservation == 1:
        for purpose in sorted(purposes_for(SIGNAL, "tdm-reservation=1")):
            if purpose == RESEARCH and exception is not None and exception.valid:
                out.append(Finding(purpose, SignalVerdict.UNKNOWN, statement,
                                   f"research exception recorded: {exception.statement} ({exception.reference})"
                                   + (f" in {exception.source}" if exception.source else "")))
                continue
            note = f"rights reserved; tdm-policy {policy} is an offer, not a licence" if policy else "rights reserved"
            out.append(Finding(purpose, SignalVerdict.DENY, statement, note))
    else:
        for purpose in sorted(purposes_for(SIGNAL, "tdm-reservation=0")):
            out.append(Finding(purpose, SignalVerdict.ALLOW, statement, "rights not reserved"))
    return out


def site_tdmrep(file: SignalFile | None, url: str, *, research_exception: ResearchException | None = None,
                policies: Mapping[str, SignalFile] | None = None) -> SignalResult:
    """The well-known file's verdict for ``url``, decided before the fetch.

    ``None`` or a 4xx file: no statement. An unavailable file (5xx, timeout): the TDM purposes are denied with
    ``terms.signal-unavailable.tdmrep``. ``policies``: the ``tdm-policy`` documents fetched, by URL, cited in the
    evidence (:func:`~consentcrawl.signals.odrl.policy_evidence`); they never change the verdict.
    """
    if file is None or file.status is SignalFileStatus.ABSENT:
        return SignalResult(SIGNAL, Level.SITE, source=file.url if file else "", fetched_at=file.fetched_at
                            if file else None, notes=("no tdmrep.json",) if file else ())
    if file.status is SignalFileStatus.UNAVAILABLE:
        return SignalResult(SIGNAL, Level.SITE, unavailable=file.cause or "unavailable", covers=TDM_PURPOSES,
                            source=file.url, fetched_at=file.fetched_at)
    parsed = parse_tdmrep_file(file.body)
    if file.cut and not parsed.valid:  # a JSON array cut at the size limit never parses: the reservation is unread
        return SignalResult(SIGNAL, Level.SITE, unavailable=f"tdmrep.json is longer than {MAX_BYTES} bytes and its "
                            f"first {MAX_BYTES} are not a whole JSON array ({'; '.join(parsed.notes)})",
                            covers=TDM_PURPOSES, source=file.url, fetched_at=file.fetched_at)
    entry = parsed.match(url)
    if entry is None or entry.reservation is None:
        notes = parsed.notes + ((f"entry {entry.index} matches: {entry.error}",) if entry and entry.error else ())
        return SignalResult(SIGNAL, Level.SITE, source=file.url, fetched_at=file.fetched_at, notes=notes)
    detail: dict[str, Any] = {"location": entry.location, "entry": entry.index, "tdm_reservation": entry.reservation}
    if entry.policy:
        detail["tdm_policy"] = entry.policy
        detail.update(policy_evidence(policy_url(file.url, entry.policy), policies))
    statement = Statement(SIGNAL, Level.SITE, file.url, f"tdmrep.json[{entry.index}]", entry.raw, file.fetched_at,
                          detail)
    return SignalResult(SIGNAL, Level.SITE, tuple(_findings(entry.reservation, statement, research_exception,
                                                            entry.policy)),
                        source=file.url, fetched_at=file.fetched_at, notes=parsed.notes)


def _field(values: Iterable[str]) -> tuple[int | None, list[str]]:
    """Several header lines or meta tags: the most restrictive valid value; invalid ones are noted."""
    found: set[int] = set()
    errors: list[str] = []
    for value in values:
        v = value.strip()
        if v in ("0", "1"):
            found.add(int(v))
        else:
            errors.append(f"tdm-reservation {v[:40]!r} is not 0 or 1 (protocol error: unset)")
    return (max(found) if found else None), errors


@dataclass
class _Said:
    """The TDMRep fields a response carries: header lines and meta tags, as published."""

    header_res: list[str]
    header_pol: list[str]
    meta_res: list[str] = field(default_factory=list)
    meta_pol: list[str] = field(default_factory=list)
    meta_raw: list[str] = field(default_factory=list)


def _read(headers: Any, body: bytes | str | None, encoding: str) -> _Said:
    said = _Said([v for _l, _n, v in header_lines(headers, frozenset({"tdm-reservation"}))],
                 [v.strip() for _l, _n, v in header_lines(headers, frozenset({"tdm-policy"})) if v.strip()])
    if body is not None:
        for tag, attrs, raw in head_tags(body, encoding):
            if tag != "meta":
                continue
            name = attrs.get("name", "").strip().lower()
            if name == "tdm-reservation" and "content" in attrs:
                said.meta_res.append(attrs["content"])
                said.meta_raw.append(raw)
            elif name == "tdm-policy" and attrs.get("content", "").strip():
                said.meta_pol.append(attrs["content"].strip())
    return said


def response_policy_url(url: str, headers: Any = None, body: bytes | str | None = None,
                        encoding: str = "utf-8") -> str | None:
    """The ``tdm-policy`` a response names itself (meta before header), as an absolute URL: what the response
    phase fetches before :func:`response_tdmrep` cites it."""
    said = _read(headers, body, encoding)
    return policy_url(url, said.meta_pol[0] if said.meta_pol else said.header_pol[0] if said.header_pol else None)


def response_tdmrep(url: str, headers: Any = None, body: bytes | str | None = None, *,
                    file: SignalFile | None = None, fetched_at: datetime | None = None, encoding: str = "utf-8",
                    research_exception: ResearchException | None = None,
                    policies: Mapping[str, SignalFile] | None = None) -> SignalResult:
    """The response's verdict, precedence file < header < meta, field by field.

    The result replaces the site-level one in :func:`~consentcrawl.signals.combine.combine` (``replaces_site``),
    because a header or meta tag may relax the file for this resource; it is only a statement of its own when the
    header or the meta tag sets a value. ``policies``: as for :func:`site_tdmrep`.
    """
    said = _read(headers, body, encoding)
    h_value, h_errors = _field(said.header_res)
    m_value, m_errors = _field(said.meta_res)
    notes = [f"header {e}" for e in h_errors] + [f"meta {e}" for e in m_errors]

    file_value: int | None = None
    file_policy: str | None = None
    file_entry: TdmRepEntry | None = None
    if file is not None and file.status is SignalFileStatus.OK:
        file_entry = parse_tdmrep_file(file.body).match(url)
        if file_entry is not None:
            file_value, file_policy = file_entry.reservation, file_entry.policy

    own = said.meta_pol[0] if said.meta_pol else said.header_pol[0] if said.header_pol else None
    policy = own or file_policy
    if m_value is not None:
        value, where, raw = m_value, "meta tdm-reservation", " ".join(said.meta_raw)
    elif h_value is not None:
        value, where, raw = h_value, "header tdm-reservation", ", ".join(said.header_res)
    else:
        return SignalResult(SIGNAL, Level.RESPONSE, source=url, fetched_at=fetched_at, notes=tuple(notes))
    detail: dict[str, Any] = {"tdm_reservation": value}
    if policy:
        detail["tdm_policy"] = policy
        base = url if own else file.url if file is not None else url
        detail.update(policy_evidence(policy_url(base, policy), policies))
    if file_value is not None and file_value != value and file_entry is not None:
        detail["overrides"] = f"tdmrep.json[{file_entry.index}] tdm-reservation {file_value}"
    statement = Statement(SIGNAL, Level.RESPONSE, url, where, raw, fetched_at, detail)
    return SignalResult(SIGNAL, Level.RESPONSE, tuple(_findings(value, statement, research_exception, policy)),
                        source=url, fetched_at=fetched_at, notes=tuple(notes), replaces_site=True)
