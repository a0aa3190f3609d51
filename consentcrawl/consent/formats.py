"""The formats of an authorization file (YAML, CSV, JSONL): each becomes rows of fields with their lines, and
each row one validated :class:`~consentcrawl.consent.records.AuthorizationRecord` (:func:`_parse`).
:mod:`consentcrawl.consent.load` opens the files and follows them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..purposes import KNOWN_PURPOSES
from ..terms.platforms import PlatformRegistry
from ..yamlsource import Node, NodeReader, to_utc
from .filerows import (
    RECORD_FIELDS,
    REQUIRED_FIELDS,
    Row,
    csv_rows,
    csv_values,
    jsonl_rows,
    jsonl_values,
    wrap,
)
from .keys import KeyFunction, key_function
from .reading import open_hashed
from .records import AuthorizationRecord
from .sqlite_format import StagedRow
from .store import MemoryStore
from .yamlrows import yaml_rows

__all__ = ["RECORD_FIELDS", "iter_records"]

_FAST_KEYS = frozenset(RECORD_FIELDS)


@functools.lru_cache(maxsize=4096)
def _when_text(text: str) -> tuple[datetime, str] | None:
    try:
        when = to_utc(text)
    except ValueError:
        return None
    return when, when.isoformat()


def _when(value: Any) -> tuple[datetime, str] | None:
    """A time as the validator reads it and as the store keeps it, or None when it is not a plain, readable
    ISO-8601 string."""
    return _when_text(value) if type(value) is str else None


def _parse(path: str, source: str, platforms: PlatformRegistry) -> MemoryStore:
    """Every record of the file at ``path`` (named ``source`` in errors), validated, in a MemoryStore."""
    return MemoryStore(iter_records(path, source, platforms), source=source, platforms=platforms)


def iter_records(path: str, source: str, platforms: PlatformRegistry, *,
                 dedup: bool = True) -> Iterator[AuthorizationRecord]:
    """The file's records, validated, one at a time as the file is read (never the whole file in memory).

    ``dedup=False`` leaves duplicates to the caller (the bulk importer finds them in SQLite rather than in a dict
    of every record).
    """
    validator = open_validator(source, platforms, dedup=dedup)
    try:
        raw, buffered = open_hashed(path)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", source) from exc
    with raw:
        yield from validator.records(buffered)


def open_validator(source: str, platforms: PlatformRegistry, *, dedup: bool = True) -> _RecordReader:
    """The validator of the file named ``source`` (its format by its name); ``.records(stream)`` reads it."""
    rows_of = _rows_of(source)
    return _RecordReader(source, platforms, dedup=dedup, rows_of=rows_of)


def _rows_of(source: str) -> Callable[..., Iterator[Row]]:
    """The reader of the file's format, by its name; a name of no known format is a ConfigError."""
    suffix = Path(source).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml_rows
    if suffix == ".csv":
        return csv_rows
    if suffix == ".jsonl":
        return jsonl_rows
    raise ConfigError(
        f"unsupported authorization file type {suffix or '(none)'!r}: use .yaml, .yml, .csv or .jsonl", source
    )


# -- one validator for every format ----------------------------------------------------------------------------


class _RecordReader(NodeReader):
    def __init__(self, source: str, platforms: PlatformRegistry, *, dedup: bool = True,
                 rows_of: Callable[..., Iterator[Row]] | None = None) -> None:
        super().__init__(source)
        self.platforms = platforms
        self.dedup = dedup
        self.rows_of = rows_of  #: the file format's reader (None: by the file's name, when it is read)
        self.seen: dict[tuple[Any, ...], int] = {}
        self.staged = False  #: see :meth:`stage`
        self._patterns: dict[str, tuple[Any, KeyFunction]] = {}
        self._purposes: dict[tuple[str, ...], tuple[frozenset[str], str]] = {}
        self._fields: dict[tuple[str, ...], tuple[frozenset[str], str]] = {}

    def records(self, stream: Any, errors: list[ConfigError] | None = None, *, line: int = 1, offset: int = 0,
                header: list[str] | None = None) -> Iterator[AuthorizationRecord]:
        """The validated records of a binary stream of the file, as they are read.

        With ``errors`` (``authorizations validate``), a record's error is added to it and reading goes on with
        the next record; an error that leaves the rest unreadable (a YAML or CSV syntax error) ends the reading.
        Once :meth:`stage` was called, a plainly valid JSONL line or CSV row is given as a :data:`StagedRow`.
        ``line`` and ``offset`` are where a JSONL or CSV stream starts in the file (records appended to it), and
        ``header`` a CSV file's header (:func:`~consentcrawl.consent.filerows.csv_header`) when the stream is not
        the file's start.
        """
        rows_of = self.rows_of or _rows_of(self.source)
        try:
            if rows_of is jsonl_rows or rows_of is csv_rows:
                values = (jsonl_values(stream, self.source, errors, line=line, offset=offset)
                          if rows_of is jsonl_rows else csv_values(stream, self.source, errors, header=header,
                                                                   line=line))
                for number, value in values:
                    record: Any = self.fast_row(number, value) if self.staged else self.fast(number, value)
                    if record is None:
                        fields = {key: wrap(item, number) for key, item in value.items()}
                        record = self._checked(number, fields, dict.fromkeys(fields, number), errors)
                    if record is not None:
                        yield record
            else:
                for line, fields, key_lines in rows_of(stream, self.source, errors):
                    record = self._checked(line, fields, key_lines, errors)
                    if record is not None:
                        yield record
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or exc}", self.source) from exc
        except ConfigError as exc:
            if errors is None:
                raise
            errors.append(exc)

    def _checked(self, line: int, fields: dict[Any, Node], key_lines: dict[Any, int],
                 errors: list[ConfigError] | None) -> AuthorizationRecord | None:
        if errors is None:
            return self.record(line, fields, key_lines)
        try:
            return self.record(line, fields, key_lines)
        except ConfigError as exc:
            errors.append(exc)
            return None

    def forget_duplicates(self) -> None:
        """Stop looking for duplicates (and forget the records seen): the caller finds them from here on."""
        self.dedup = False
        self.seen.clear()

    def stage(self) -> None:
        """From here on, give a plainly valid JSONL line as the bulk importer stores it (:data:`StagedRow`, no
        :class:`AuthorizationRecord` built), and leave duplicates to it (:meth:`forget_duplicates`)."""
        self.forget_duplicates()
        self.staged = True

    def fast(self, line: int, value: dict[str, Any]) -> AuthorizationRecord | None:
        """The record of a JSON object (or a CSV row's values) that is plainly valid, else None (then
        :meth:`record` says what is wrong)."""
        plain = self._plain(line, value)
        if plain is None:
            return None
        platform, subject, purposes, granted, expires, revoked, evidence, fields, record_id, jurisdiction, _ = plain
        return AuthorizationRecord(platform, subject, purposes[0], granted[0], expires and expires[0],
                                   revoked and revoked[0], evidence, fields and fields[0], record_id,
                                   f"{self.source}:{line}", jurisdiction)

    def fast_row(self, line: int, value: dict[str, Any]) -> StagedRow | None:
        """:meth:`fast`, as the bulk importer stores it: (subject key, row), without building the record."""
        plain = self._plain(line, value)
        if plain is None:
            return None
        platform, subject, purposes, granted, expires, revoked, evidence, fields, record_id, jurisdiction, key = plain
        return key, (platform, subject, purposes[1], granted[1], expires and expires[1], revoked and revoked[1],
                     evidence, fields and fields[1], record_id, jurisdiction, f"{self.source}:{line}")

    def _plain(self, line: int, value: dict[str, Any]) -> tuple[Any, ...] | None:
        """The parts of a plainly valid JSON object's record, each time, purpose set and field set paired with
        the text the store keeps of it (both cached: most records share them), and the subject key; else None.

        Checks exactly what :meth:`record` checks, with less ceremony: what it cannot settle quickly it leaves
        (tests/test_jsonl_fast.py compares both on generated lines)."""
        if not _FAST_KEYS.issuperset(value):
            return None
        platform_name, subject, purposes, evidence = (value.get("platform"), value.get("subject"),
                                                      value.get("purposes"), value.get("evidence"))
        if not (type(platform_name) is str and type(subject) is str and type(evidence) is str
                and type(purposes) is list and evidence.strip()):
            return None
        known = self._patterns.get(platform_name)
        if known is None:
            platform = self.platforms.get(platform_name)
            if platform is None:
                return None
            known = self._patterns[platform_name] = (
                re.compile(platform.subject_regex or "[^/]+", re.IGNORECASE | re.DOTALL), key_function(platform))
        subject = subject.strip()
        if not subject or known[0].fullmatch(subject) is None:
            return None
        purpose_set = self._purposes.get(tuple(purposes))
        if purpose_set is None:
            if not purposes or not all(type(p) is str and p.strip() for p in purposes):
                return None
            if len(set(purposes)) != len(purposes) or not KNOWN_PURPOSES.issuperset(purposes):
                return None
            purpose_set = self._purposes[tuple(purposes)] = (frozenset(purposes), " ".join(sorted(set(purposes))))
        granted_at = _when(value.get("granted_at"))
        if granted_at is None:
            return None
        expires_at = revoked_at = None
        raw = value.get("expires_at")
        if raw is not None:
            expires_at = _when(raw)
            if expires_at is None or expires_at[0] <= granted_at[0]:
                return None
        raw = value.get("revoked_at")
        if raw is not None:
            revoked_at = _when(raw)
            if revoked_at is None:
                return None
        allowed_fields = None
        raw = value.get("fields")
        if raw is not None:
            if type(raw) is not list:
                return None
            allowed_fields = self._fields.get(tuple(raw))
            if allowed_fields is None:
                if not all(type(f) is str and f.strip() for f in raw) or len(set(raw)) != len(raw):
                    return None
                allowed_fields = self._fields[tuple(raw)] = (frozenset(raw),
                                                             json.dumps(sorted(raw), ensure_ascii=False))
        record_id = value.get("record_id")
        if record_id is None:
            record_id = ""
        elif type(record_id) is int:
            record_id = str(record_id)
        elif type(record_id) is not str or not record_id.strip():
            return None
        else:
            record_id = record_id.strip()
        jurisdiction = value.get("jurisdiction")
        if jurisdiction is None:
            jurisdiction = ""
        elif type(jurisdiction) is not str or not jurisdiction.strip():
            return None
        key = known[1](subject)
        if self.dedup:
            same: tuple[Any, ...] = ((platform_name, key, "id", record_id) if record_id
                                     else (platform_name, key, "grant", purpose_set[0], granted_at[0],
                                           revoked_at and revoked_at[0]))
            if same in self.seen:
                return None
            self.seen[same] = line
        return (platform_name, subject, purpose_set, granted_at, expires_at, revoked_at, evidence, allowed_fields,
                record_id, jurisdiction, key)

    def record(self, line: int, fields: dict[Any, Node], key_lines: dict[Any, int]) -> AuthorizationRecord:
        for key in REQUIRED_FIELDS:
            if key in fields and fields[key].value is None:
                raise self.error(f"{key!r} is required and must not be null", fields[key])
        # null means absent ("revoked_at: null")
        present = {k: v for k, v in fields.items() if v.value is not None or k not in RECORD_FIELDS}
        self.mapping(
            Node(present, line, key_lines=key_lines), "the authorization record", RECORD_FIELDS, REQUIRED_FIELDS, line
        )
        platform_name = self.string(present["platform"], "'platform'")
        platform = self.platforms.get(platform_name)
        if platform is None:
            configured = ", ".join(sorted(self.platforms.platforms)) or "none"
            raise self.error(
                f"a subject with no platform: platform {platform_name!r} is not configured in the platforms file "
                f"(configured: {configured})",
                present["platform"],
            )
        subject = self.identifier(present["subject"], "'subject'")
        pattern = platform.subject_regex or "[^/]+"
        if not re.fullmatch(pattern, subject, re.IGNORECASE | re.DOTALL):
            raise self.error(
                f"subject {subject!r} does not look like a subject id of platform {platform_name!r} "
                f"(expected to match {pattern!r})",
                present["subject"],
            )
        purposes = self.purposes(present["purposes"], "'purposes'")
        granted_at = self.when(present["granted_at"], "'granted_at'")
        expires_at = revoked_at = None
        if "expires_at" in present:
            expires_at = self.when(present["expires_at"], "'expires_at'")
            if expires_at <= granted_at:
                raise self.error(
                    f"'expires_at' ({expires_at.isoformat()}) must be after 'granted_at' ({granted_at.isoformat()})",
                    present["expires_at"],
                )
        if "revoked_at" in present:
            revoked_at = self.when(present["revoked_at"], "'revoked_at'")
        evidence = self.string(present["evidence"], "'evidence' (where the consent is kept)")
        allowed_fields = None
        if "fields" in present:
            allowed_fields = frozenset(t for t, _ in self.string_list(present["fields"], "'fields'", allow_empty=True))
        record_id = self.identifier(present["record_id"], "'record_id'") if "record_id" in present else ""
        jurisdiction = self.string(present["jurisdiction"], "'jurisdiction'") if "jurisdiction" in present else ""

        # The same record twice is a copy-paste slip or a merge gone wrong; a withdrawal (revoked_at) is a record
        # of its own, so it is part of the key when there is no record_id. The person is their subject key:
        # "Alice" and "alice" are one person on a case-insensitive platform.
        subject_key = key_function(platform)(subject)
        same: tuple[Any, ...] = (
            (platform_name, subject_key, "id", record_id)
            if record_id
            else (platform_name, subject_key, "grant", purposes, granted_at, revoked_at)
        )
        if not self.dedup:
            pass
        elif same in self.seen:
            what = f"record_id {record_id!r}" if record_id else "platform, subject, purposes, granted_at and revoked_at"
            raise self.error(
                f"duplicate authorization record: same {what} as the record on line {self.seen[same]} "
                f"(lines {self.seen[same]} and {line})",
                line,
            )
        else:
            self.seen[same] = line
        return AuthorizationRecord(
            platform=platform_name,
            subject=subject,
            purposes=purposes,
            granted_at=granted_at,
            expires_at=expires_at,
            revoked_at=revoked_at,
            evidence=evidence,
            fields=allowed_fields,
            record_id=record_id,
            jurisdiction=jurisdiction,
            source=f"{self.source}:{line}",
        )

    def identifier(self, node: Node, what: str) -> str:
        """A string id; an integer is accepted as its digits (YAML's ``007`` stays ``"007"``)."""
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool):
            if node.raw is None:  # JSON: the number as written
                return str(value)
            if node.raw.isascii() and node.raw.isdigit():
                return node.raw
            # the number quoted too: it is the value (a phone number), redacted from a log line (errors.redact)
            raise self.error(f"{what} {node.raw!r} is read by YAML as the number '{value}'; quote it", node)
        return self.string(node, what).strip()


def config_words(platforms: PlatformRegistry) -> set[str]:
    """The words an error about a records file may quote that are the configuration's, never a record's: field
    names, purposes, platform names and their subject patterns (kept when the values are redacted)."""
    words = {*RECORD_FIELDS, *(f"'{f}'" for f in RECORD_FIELDS), *KNOWN_PURPOSES, "authorizations", "authorizations:"}
    for name, platform in platforms.platforms.items():
        words.add(name)
        words.add(platform.subject_regex or "[^/]+")
    return words
