"""The formats of an authorization file (YAML, CSV, JSONL): each becomes rows of fields with their lines, and
each row one validated :class:`~consentcrawl.consent.records.AuthorizationRecord` (:func:`_parse`).
:mod:`consentcrawl.consent.load` opens the files and follows them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..terms.platforms import PlatformRegistry
from ..yamlsource import Node, NodeReader, parse_yaml, type_name
from .keys import key_function
from .records import AuthorizationRecord
from .store import MemoryStore

__all__ = ["RECORD_FIELDS"]

#: The keys (YAML, JSONL) or columns (CSV) of an authorization record.
RECORD_FIELDS = (
    "platform",
    "subject",
    "purposes",
    "granted_at",
    "expires_at",
    "revoked_at",
    "evidence",
    "fields",
    "record_id",
    "jurisdiction",
)
_REQUIRED = ("platform", "subject", "purposes", "granted_at", "evidence")
_LIST_FIELDS = ("purposes", "fields")
_CSV_SPLIT = re.compile(r"[;\s]+")


def _parse(text: str, source: str, platforms: PlatformRegistry) -> MemoryStore:
    rows = _rows_of(source)(text, source)
    reader = _RecordReader(source, platforms)
    records = [reader.record(line, fields, key_lines) for line, fields, key_lines in rows]
    return MemoryStore(records, source=source, platforms=platforms)


def _rows_of(source: str) -> Callable[[str, str], list[_Row]]:
    """The reader of the file's format, by its name; a name of no known format is a ConfigError."""
    suffix = Path(source).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _yaml_rows
    if suffix == ".csv":
        return _csv_rows
    if suffix == ".jsonl":
        return _jsonl_rows
    raise ConfigError(
        f"unsupported authorization file type {suffix or '(none)'!r}: use .yaml, .yml, .csv or .jsonl", source
    )


# -- each format becomes rows of (line, {field: Node}, {field: line of its key}) --------------------------------

_Row = tuple[int, dict[Any, Node], dict[Any, int]]


def _yaml_rows(text: str, source: str) -> list[_Row]:
    root = parse_yaml(text, source)
    reader = NodeReader(source)
    if root is None:
        raise ConfigError("file is empty: expected a mapping with the top key 'authorizations:'", source, 1)
    top = reader.mapping(root, "the file", allowed=("authorizations",), required=("authorizations",))
    entries = top["authorizations"]
    if not entries.is_sequence:
        raise reader.error(
            f"'authorizations' must be a list of records (each starting with '- '), got {type_name(entries.value)}",
            entries,
        )
    rows: list[_Row] = []
    for entry in entries.value:
        if not entry.is_mapping:
            raise reader.error(f"each authorization record must be a mapping, got {type_name(entry.value)}", entry)
        rows.append((entry.line, entry.value, entry.key_lines))
    return rows


def _csv_rows(text: str, source: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_Row] = []
    header: list[str] | None = None
    previous_end = 0  # reader.line_num after the previous row: the next row starts on the line after it
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # blank line
            if header is None:
                header = _csv_header(cells, source, start)
                continue
            if len(cells) != len(header):
                raise ConfigError(f"row has {len(cells)} cells but the header has {len(header)} columns", source, start)
            fields: dict[Any, Node] = {}
            for name, cell in zip(header, cells, strict=True):
                value = cell.strip()
                if not value:
                    continue  # an empty cell is an absent value
                if name in _LIST_FIELDS:
                    fields[name] = Node([Node(v, start) for v in _CSV_SPLIT.split(value) if v], start)
                else:
                    fields[name] = Node(value, start)
            rows.append((start, fields, dict.fromkeys(fields, start)))
    except csv.Error as exc:
        raise ConfigError(f"CSV syntax error: {exc}", source, previous_end + 1) from None  # where the row starts
    if header is None:
        raise ConfigError("file is empty: expected a header row naming the columns", source, 1)
    return rows


def _csv_header(cells: list[str], source: str, line: int) -> list[str]:
    reader = NodeReader(source)
    names = [c.strip() for c in cells]
    mapping = Node({n: Node(None, line) for n in names}, line, key_lines=dict.fromkeys(names, line))
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"column {twice[0]!r} appears twice in the header", source, line)
    reader.mapping(mapping, "the CSV header", allowed=RECORD_FIELDS, required=_REQUIRED)
    return names


def _jsonl_rows(text: str, source: str) -> list[_Row]:
    rows: list[_Row] = []
    # split on "\n" only: str.splitlines() would also split on U+2028, which JSON strings may hold raw
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as exc:
            raise ConfigError(f"duplicate key {exc.args[0]!r} in the JSON object", source, number) from None
        except ValueError as exc:  # json.JSONDecodeError, or a number JSON cannot hold
            raise ConfigError(f"invalid JSON: {exc}", source, number) from None
        if not isinstance(value, dict):
            raise ConfigError(f"each line must be a JSON object, got {type_name(value)}", source, number)
        fields = {key: _wrap(item, number) for key, item in value.items()}
        rows.append((number, fields, dict.fromkeys(fields, number)))
    return rows


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _wrap(value: Any, line: int) -> Node:
    if isinstance(value, list):
        return Node([_wrap(v, line) for v in value], line)
    if isinstance(value, dict):
        return Node({k: _wrap(v, line) for k, v in value.items()}, line, key_lines=dict.fromkeys(value, line))
    return Node(value, line)


# -- one validator for every format ----------------------------------------------------------------------------


class _RecordReader(NodeReader):
    def __init__(self, source: str, platforms: PlatformRegistry) -> None:
        super().__init__(source)
        self.platforms = platforms
        self.seen: dict[tuple[Any, ...], int] = {}

    def record(self, line: int, fields: dict[Any, Node], key_lines: dict[Any, int]) -> AuthorizationRecord:
        for key in _REQUIRED:
            if key in fields and fields[key].value is None:
                raise self.error(f"{key!r} is required and must not be null", fields[key])
        # null means absent ("revoked_at: null")
        present = {k: v for k, v in fields.items() if v.value is not None or k not in RECORD_FIELDS}
        self.mapping(
            Node(present, line, key_lines=key_lines), "the authorization record", RECORD_FIELDS, _REQUIRED, line
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
        if same in self.seen:
            what = f"record_id {record_id!r}" if record_id else "platform, subject, purposes, granted_at and revoked_at"
            raise self.error(
                f"duplicate authorization record: same {what} as the record on line {self.seen[same]} "
                f"(lines {self.seen[same]} and {line})",
                line,
            )
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
            raise self.error(f"{what} {node.raw!r} is read by YAML as the number {value}; quote it", node)
        return self.string(node, what).strip()
