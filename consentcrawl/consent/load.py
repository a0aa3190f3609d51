"""Load and validate authorization records (leg 3: each person's authorization to us) from YAML, CSV or JSONL.

Consent has to be demonstrable, so a record we cannot read exactly is worse than no record: a wrong date or a
misspelt purpose silently widens or narrows what may be collected about a person. Every mistake therefore stops
the crawl with a :class:`~consentcrawl.errors.ConfigError` naming the file and the line (for CSV, the line the
row starts on, the header being line 1).

Times: a date means midnight UTC; a date-time without an offset is read as UTC. All stored times are aware UTC.

A crawl opens the file as a :class:`FileStore` (:func:`load_authorizations`): checked strictly once at startup,
then followed while the crawl runs, so that a withdrawal added to the file applies within a fraction of a second.
Records are indexed by subject key (:mod:`consentcrawl.consent.keys`) and keep the subject as written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from ..yamlsource import Node, NodeReader, decode_text, parse_yaml, read_text, type_name
from .keys import key_function
from .records import AuthorizationRecord
from .store import MemoryStore, new_version

__all__ = ["CHECK_INTERVAL", "RECORD_FIELDS", "FileStore", "load_authorizations", "read_authorizations"]

logger = logging.getLogger(__name__)

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

#: seconds between two looks at the file (a lookup looks when this much time has passed since the last look)
CHECK_INTERVAL = 0.25
#: a file modified less than this long before it was read may change again without its size or times changing
#: (file times have a granularity: ext4 takes them from a clock that ticks every few ms, HFS+ every second); such
#: a file is read again, and compared byte for byte, until it has been quiet this long
_RACY_NS = 2_000_000_000


def load_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                        interval: float = CHECK_INTERVAL) -> FileStore:
    """Open a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file of authorization records as a live store.

    The file is read and checked now: any mistake is a ConfigError naming the file and line, and the crawl does
    not start. After that the store follows the file (see :class:`FileStore`).
    """
    return FileStore(path, platforms, interval=interval)


def read_authorizations(path: str | os.PathLike[str], platforms: PlatformRegistry) -> MemoryStore:
    """Read authorization records from a ``.yaml``/``.yml``, ``.csv`` or ``.jsonl`` file once, into a MemoryStore.

    Records are checked against ``platforms`` (a subject on an unconfigured platform, or whose id does not match
    the platform's ``subject`` pattern, is an error). A withdrawal is a record of its own, never merged: history
    stays append-only.
    """
    _rows_of(str(path))  # an unsupported file type is named before the file is read
    return _parse(read_text(os.fspath(path)), str(path), platforms)


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


# -- a file store follows its file --------------------------------------------------------------------------------

_Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    """What changes when a file is written in place or another file is renamed over it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileStore:
    """A YAML, CSV or JSONL file of authorization records, followed while the crawl runs.

    The file is read whole into a :class:`MemoryStore`. After that, a lookup looks at the file (``os.stat``) when
    ``interval`` seconds (default 0.25) have passed since the last look; when its device, inode, size or times
    changed, the file is read again and, if it reads cleanly, its records replace the old ones and
    :attr:`version` changes. A withdrawal appended to the file (or a new file renamed over it) therefore applies
    within ``interval`` plus the time to read it, far inside the 2-second bound of live stores.

    A read that fails (the file deleted or unreadable, a syntax or validation error, a file caught half-written)
    makes every lookup raise :class:`~consentcrawl.errors.StoreUnavailable` until the file reads cleanly again:
    the records last read are not used, since the file that should hold them is broken (it may hold a withdrawal
    that cannot be read). The failure is logged once at ERROR with the full error; the exception's message names
    the file and the line but quotes no values (it goes into evidence, and values may be subject ids).

    Lookups are safe from several threads; one thread reads the file while the others wait for it.
    """

    def __init__(self, path: str | os.PathLike[str], platforms: PlatformRegistry, *,
                 interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = os.fspath(path)
        self.source = str(path)
        self.platforms = platforms
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        _rows_of(self.source)  # an unsupported file type stops the crawl before the file is read
        try:
            st = os.stat(self.path)
            data = Path(self.path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or exc}", self.source) from exc
        self._memory = _parse(decode_text(data, self.source), self.source, platforms)
        self._version: int = self._memory.version
        self._seen = _signature(st)  #: the file as of the last read
        self._digest: bytes | None = _digest(data)  #: its bytes as of the last read (None: not read)
        self._racy = _is_racy(st)
        self._error: str | None = None  #: why lookups fail, while they do
        self._os_error = False  #: the failure is the file system's (a missing file): look again every time
        self._next_check = self._clock() + interval
        self.reloads = 0  #: successful reloads since the store was opened

    # -- the protocol -------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def lookup(self, platform: str, subject: str) -> tuple[AuthorizationRecord, ...]:
        """All records of one person on one platform; raises StoreUnavailable while the file does not read."""
        if self._clock() >= self._next_check:
            self._check()
        error = self._error
        if error is not None:
            raise StoreUnavailable(error)
        return self._memory.lookup(platform, subject)

    def __iter__(self) -> Iterator[AuthorizationRecord]:
        """Every record of the last clean read, in file order."""
        return iter(self._memory)

    def __len__(self) -> int:
        return len(self._memory)

    @property
    def available(self) -> bool:
        return self._error is None

    # -- following the file -------------------------------------------------------------------------------------

    def _check(self) -> None:
        with self._lock:
            if self._clock() < self._next_check:
                return  # another thread looked while this one waited for the lock
            try:
                self._look()
            finally:
                self._next_check = self._clock() + self.interval

    def _look(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        signature = _signature(st)
        if signature == self._seen and not self._racy and not self._os_error:
            return  # unchanged since it was last read
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            self._fail(f"cannot be read ({exc.strerror or type(exc).__name__})",
                       f"cannot read file: {exc.strerror or exc}", os_error=True)
            return
        digest = _digest(data)
        self._seen, self._racy = signature, _is_racy(st)
        if digest == self._digest and not self._os_error:
            return  # the same bytes as last read (touched, copied over with the same content, a racy look)
        self._digest = digest  # these bytes are not parsed again: they either read cleanly or fail below
        try:
            memory = _parse(decode_text(data, self.source), self.source, self.platforms)
        except ConfigError as exc:
            where = f", line {exc.line}" if exc.line is not None else ""
            self._fail(f"does not read cleanly{where}: {_redact(exc.message)}", str(exc), os_error=False)
            return
        except Exception as exc:  # noqa: BLE001 - a bug or a resource limit: the old records must not be used
            self._fail(f"could not be read ({type(exc).__name__})", repr(exc), os_error=False)
            return
        self._memory = memory  # the records first, then the version: a version never names older records
        self._version = memory.version
        self.reloads += 1
        if self._error is not None:
            logger.warning("authorization file %s reads cleanly again (%d records): lookups answer again",
                           self.source, len(memory))
            self._error, self._os_error = None, False

    def _fail(self, why: str, detail: str, *, os_error: bool) -> None:
        was = self._error
        self._error = f"authorization file {self.source} {why}"  # before the version changes
        self._os_error = os_error
        if os_error:
            self._digest = None  # whatever comes back is read and checked again
        if was is None:
            self._version = new_version()
            logger.error("authorization file %s: %s; every lookup fails (decisions that need it deny) until it "
                         "reads cleanly again", self.source, detail)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _is_racy(st: os.stat_result) -> bool:
    return time.time_ns() - st.st_mtime_ns < _RACY_NS


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _redact(message: str) -> str:
    """An error message without the values it quotes (they may be subject ids or evidence): ``'…'``."""
    return _QUOTED.sub("'…'", message)


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
