"""CSV and JSON Lines authorization files as rows of ``(line, {field: Node}, {field: line of its key})``, the
shape :mod:`consentcrawl.consent.formats` validates (YAML's rows come from :mod:`consentcrawl.consent.yamlrows`).
JSON Lines are read line by line as bytes, and a common line (one object, no key twice) without ``json.loads``'s
Python layers (orjson): a file of millions of records is imported at the speed of this loop."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import json.scanner
import re
from collections.abc import Iterator
from typing import Any

from orjson import loads as _loads

from ..errors import ConfigError
from ..yamlsource import Node, NodeReader, type_name

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
REQUIRED_FIELDS = ("platform", "subject", "purposes", "granted_at", "evidence")
LIST_FIELDS = ("purposes", "fields")
_CSV_SPLIT = re.compile(r"[;\s]+")

Row = tuple[int, dict[Any, Node], dict[Any, int]]


def csv_rows(stream: Any, source: str, errors: list[ConfigError] | None = None) -> Iterator[Row]:
    for start, value in csv_values(stream, source, errors):
        fields = {key: wrap(item, start) for key, item in value.items()}
        yield start, fields, dict.fromkeys(fields, start)


def csv_values(stream: Any, source: str, errors: list[ConfigError] | None = None, *, header: list[str] | None = None,
               line: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line the row starts on, {column: value}) for each row: an empty cell is absent, a list column is split.
    ``header`` and ``line``: the stream is a part of the file starting on that line, after its header (rows
    appended to it)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    before = line - 1  # lines of the file before the stream
    previous_end = before  # the line the previous row ended on: the next row starts on the line after it
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, before + reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # blank line
            if header is None:
                header = _csv_header(cells, source, start)
                continue
            if len(cells) != len(header):
                mismatch = ConfigError(f"row has {len(cells)} cells but the header has {len(header)} columns",
                                       source, start)
                if errors is None:
                    raise mismatch
                errors.append(mismatch)
                continue
            fields: dict[str, Any] = {}
            for name, cell in zip(header, cells, strict=True):
                value = cell.strip()
                if not value:
                    continue  # an empty cell is an absent value
                fields[name] = [v for v in _CSV_SPLIT.split(value) if v] if name in LIST_FIELDS else value
            yield start, fields
    except csv.Error as exc:
        raise ConfigError(f"CSV syntax error: {exc}", source, previous_end + 1) from None  # where the row starts
    except UnicodeDecodeError:
        raise ConfigError("file is not valid UTF-8", source, previous_end + 1) from None
    finally:
        with contextlib.suppress(ValueError):  # the file was closed before this generator was
            text.detach()
    if header is None:
        raise ConfigError("file is empty: expected a header row naming the columns", source, 1)


def csv_header(head: bytes) -> list[str] | None:
    """The header of a CSV file that read cleanly, from its first bytes; None when they do not hold all of it."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(head), encoding="utf-8-sig", newline=""), strict=True)
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells):
                continue
            return [c.strip() for c in cells] if head.count(b"\n") >= reader.line_num else None  # its line ended
    except (csv.Error, UnicodeDecodeError):  # cut in the middle of a row or of a character
        return None
    return None


def _csv_header(cells: list[str], source: str, line: int) -> list[str]:
    reader = NodeReader(source)
    names = [c.strip() for c in cells]
    mapping = Node({n: Node(None, line) for n in names}, line, key_lines=dict.fromkeys(names, line))
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"column {twice[0]!r} appears twice in the header", source, line)
    reader.mapping(mapping, "the CSV header", allowed=RECORD_FIELDS, required=REQUIRED_FIELDS)
    return names


def jsonl_values(stream: Any, source: str, errors: list[ConfigError] | None = None, *, line: int = 1,
                  offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for each non-blank line. A binary stream splits on ``\\n`` only (``str.splitlines()``
    would also split on U+2028, which JSON strings may hold raw). ``line`` and ``offset`` are where the stream
    starts in the file (an appended part).

    A file with no line but blank ones is an error, as an empty YAML or CSV file is: an empty file is more often
    a file cut short, or one being rewritten, than a list of no one (that would read as everyone withdrawn)."""
    common = _common_object
    found = line > 1 or offset > 0  #: a part after the file's start: its start was not empty
    for number, raw in enumerate(stream, start=line):
        value = common(raw) if number > 1 else None
        if value is None:
            try:
                value = _json_line(raw, number, offset, source)
            except ConfigError as exc:
                if errors is None:
                    raise
                errors.append(exc)
                value = None
        offset += len(raw)
        if value is not None:
            found = True
            yield number, value
        elif not found and raw.strip():
            found = True  # a line in error (collected): not an empty file
    if not found:
        empty = ConfigError("file is empty: expected one JSON object per line (a file of no records: a .yaml file "
                            "holding authorizations: [], or a .csv file of only its header row)", source, 1)
        if errors is None:
            raise empty
        errors.append(empty)


def _common_object(raw: bytes) -> dict[str, Any] | None:
    """The object on a common line (one object from its first byte, no key twice, no float, nothing nested but a
    list of scalars, no escaped quote), read by orjson (the standard scanner took most of a big import's reading);
    None for anything else, which :func:`_json_line` then reads with :mod:`json` and says what is wrong with. Not
    for line 1 (a byte order mark).

    What is given is exactly what :mod:`json` reads: orjson refuses some lines that :mod:`json` reads (a lone
    surrogate, NaN, trailing Unicode spaces: they go to :func:`_json_line`), and reads an integer beyond 64 bits as
    a float, which is why a float is not taken from it (tests/test_jsonl_fast.py compares both on such lines)."""
    if raw[:1] != b"{":
        return None
    try:
        value = _loads(raw)
    except ValueError:  # orjson.JSONDecodeError: invalid UTF-8 or JSON, nested too deep, or a number it cannot hold
        return None
    if type(value) is not dict:
        return None
    # Every key and string value written adds two quotes (an escaped quote one more): when the quotes are exactly
    # those of the object read, no key was written twice (its second value would have replaced the first).
    quotes = 2 * len(value)
    scalar = _EXACT
    for item in value.values():
        kind = type(item)
        if kind is str:
            quotes += 2
        elif kind is list:
            for each in item:
                if type(each) is str:
                    quotes += 2
                elif type(each) not in scalar:
                    return None
        elif kind not in scalar:
            return None
    if raw.count(b'"') != quotes:
        return None
    return value


#: the values orjson and json read alike (a float may be a big integer to json)
_EXACT = frozenset({str, int, bool, type(None)})


def _json_line(raw: bytes, number: int, offset: int, source: str) -> dict[str, Any] | None:
    """The object on one line of a JSONL file (None for a blank line); a ConfigError naming the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"file is not valid UTF-8 (byte {offset + exc.start})", source, number) from None
    if number == 1 and line.startswith("\ufeff"):
        line = line[1:]
    if not line.strip():
        return None
    try:
        value = _plain_json(line, 0)
        if type(value) is dict and len(_JSON_KEY.findall(line)) != len(value):
            value = _strict_json(line)  # maybe a key given twice (or a nested object): read it key by key
    except _DuplicateKey as exc:
        raise ConfigError(f"duplicate key {exc.args[0]!r} in the JSON object", source, number) from None
    except ValueError as exc:  # json.JSONDecodeError, or a number JSON cannot hold
        raise ConfigError(f"invalid JSON: {exc}", source, number) from None
    except RecursionError:  # arrays or objects nested thousands deep: no record is
        raise ConfigError("invalid JSON: nested too deeply", source, number) from None
    if not isinstance(value, dict):
        raise ConfigError(f"each line must be a JSON object, got {type_name(value)}", source, number)
    return value


#: every key of a JSON object ends with this; a line with no more of them than its object has keys has no key twice
_JSON_KEY = re.compile(r'"\s*:')
_scan_once = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _plain_json(line: str, start: int) -> Any:
    """One JSON value filling ``line`` (json.loads without its Python layers); a ValueError like json.loads's."""
    try:
        value, end = _scan_once(line, len(line) - len(line.lstrip()))
    except StopIteration:
        return json.loads(line)  # raises the error json.loads gives
    if line[end:].strip():
        return json.loads(line)
    return value


def _strict_json(line: str) -> Any:
    return json.loads(line, object_pairs_hook=_no_duplicate_keys)


def jsonl_rows(stream: Any, source: str, errors: list[ConfigError] | None = None) -> Iterator[Row]:
    for number, value in jsonl_values(stream, source, errors):
        fields = {key: wrap(item, number) for key, item in value.items()}
        yield number, fields, dict.fromkeys(fields, number)


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def wrap(value: Any, line: int) -> Node:
    if isinstance(value, list):
        return Node([wrap(v, line) for v in value], line)
    if isinstance(value, dict):
        return Node({k: wrap(v, line) for k, v in value.items()}, line, key_lines=dict.fromkeys(value, line))
    return Node(value, line)
