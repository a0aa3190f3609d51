"""Feeds: JSON Lines, JSON (an array, as Scrapy's ``json`` exporter writes it) and CSV.

Each record is found by its byte span, judged on its parsed fields, and either copied verbatim or left out; the
file is rewritten only when something goes or changes (:func:`~consentcrawl.purge.common.atomic_replace`). The
hash in the receipt is over each removed record's bytes as they were in the file (a JSON Lines line with its
``\\n``, a JSON element without the separator around it, a CSV record with its line ending), in file order.

A feed a ``FEEDS`` ``postprocessing`` plugin compressed (gzip, bzip2, xz) is purged through its compression
(:mod:`.compressed`): its records are read decompressed, the hash is over their decompressed bytes, and what is
kept is compressed again as it was.

A kept record that names a selected person by their page's URL (a ``friends`` list, a bio's link) loses those
mentions (:mod:`.mentioned`) and is written anew, as Scrapy's exporter writes a record of its format; a kept record
that names no one selected keeps its bytes.

Limits: a JSON array loses, with each removed element, the separator before it (the one after it for the first
element); every other byte stays. A record that cannot be parsed (a JSON Lines line, a CSV record, the end of a
JSON array cut short), that has a key twice (each reader keeps another of its values), or that has neither a
subject nor a provenance, is kept and reported (the run exits 1): it cannot be told whose it is. Whose a record
is is read from the subject, ``platform`` and provenance fields only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .common import DuplicateKey, PurgeFailed, Selection, TargetResult, atomic_replace, loads, spans
from .compressed import Compression, opened
from .mentioned import in_kept, withheld, withheld_in_cells

__all__ = ["purge_csv", "purge_json", "purge_jsonlines"]

#: a record with a key twice (:class:`~.common.DuplicateKey`)
_TWICE = "has a key twice (readers differ on which value it holds): cannot tell whose it is or whom it names, kept"


def _read(path: Path, kind: str) -> tuple[bytes, TargetResult, Compression | None]:
    """The feed's bytes (decompressed: :mod:`.compressed`), its result (``kind``, ``+gzip`` for a gzip one), and
    how it was compressed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PurgeFailed(f"cannot read it: {exc.strerror or exc}") from None
    data, compression = opened(raw)
    return data, TargetResult(str(path), f"{kind}+{compression.name}" if compression else kind), compression


def _finish(path: Path, result: TargetResult, kept: list[bytes], dry_run: bool,
            compression: Compression | None) -> TargetResult:
    if (result.count or result.mentions) and not dry_run:
        links = path.stat().st_nlink
        atomic_replace(path, [compression.compress(b"".join(kept))] if compression else kept)
        if links > 1:  # the other names of the file still hold the old bytes
            result.failures.append(f"it had {links - 1} other hard link(s): they still hold the removed records")
    return result


def purge_jsonlines(path: Path, selection: Selection, *, dry_run: bool = False) -> TargetResult:
    data, result, compression = _read(path, "jsonlines")
    kept: list[bytes] = []
    for number, (start, end) in enumerate(spans(data), 1):
        line = data[start:end]
        if not line.strip():
            kept.append(line)
            continue
        try:
            fields = loads(line)
        except DuplicateKey:
            result.failures.append(f"line {number} {_TWICE}")
            kept.append(line)
            continue
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            result.failures.append(f"line {number} is not JSON: not checked, kept")
            kept.append(line)
            continue
        goes, who = _judged(selection, fields, result, f"line {number}")
        if goes:
            result.remove(who, number, line)
            continue
        result.kept += 1
        changed, lost = in_kept(result, number, withheld, selection, fields)
        if lost:
            body = line.rstrip(b"\r\n")
            line = _dumps(changed, body.isascii()).encode("utf-8") + line[len(body):]
        kept.append(line)
    return _finish(path, result, kept, dry_run, compression)


def _dumps(value: Any, ascii_only: bool, was: str = "") -> str:
    """A record that lost mentions, written as Scrapy's JSON exporters write an item (non-ASCII escaped when the
    record had none unescaped: ``FEED_EXPORT_ENCODING`` unset), indented as the record ``was`` (the JSON exporter
    writes each item with ``json.dumps(indent=FEED_EXPORT_INDENT)``: its second line starts with the indent)."""
    lines = was.split("\n", 2)
    indent = lines[1][:len(lines[1]) - len(lines[1].lstrip(" \t"))] if len(lines) > 1 else ""
    return json.dumps(value, ensure_ascii=ascii_only, indent=indent or None)


def purge_json(path: Path, selection: Selection, *, dry_run: bool = False) -> TargetResult:
    data, result, compression = _read(path, "json")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PurgeFailed(f"not UTF-8 at byte {exc.start}: not checked") from None
    elements, torn = _array_elements(text)
    if torn:
        result.failures.append(torn)
    # byte offsets: encoding each kept piece of valid UTF-8 gives back exactly the bytes it was decoded from
    offsets = _byte_offsets(text, [p for span in elements for p in span])
    gone: list[int] = []
    rewritten: dict[int, str] = {}
    for index, (start, end) in enumerate(elements):
        try:
            fields = loads(text[start:end])
        except DuplicateKey:
            result.failures.append(f"element {index + 1} {_TWICE}")
            continue
        goes, who = _judged(selection, fields, result, f"element {index + 1}")
        if goes:
            result.remove(who, index + 1, data[offsets[start]:offsets[end]])
            gone.append(index)
            continue
        result.kept += 1
        changed, lost = in_kept(result, index + 1, withheld, selection, fields)
        if lost:
            rewritten[index] = _dumps(changed, text[start:end].isascii(), text[start:end])
    return _finish(path, result, [p.encode("utf-8") for p in _without(text, elements, set(gone), rewritten)],
                   dry_run, compression)


def _judged(selection: Selection, fields: Any, result: TargetResult, where: str) -> tuple[bool, str | None]:
    """Whether a record goes, and whose it is. A record with neither a subject nor a provenance (a feed exported
    with ``FEED_EXPORT_FIELDS`` or ``fields`` that leave both out, an item that named no one on a person's page,
    which the guard judged as theirs), or that is no object, cannot be told whose it is: it is kept and
    reported."""
    if isinstance(fields, dict) and (fields.get(selection.subject_field) not in (None, "")
                                     or selection.provenance_of(fields)):
        return selection.item(fields)
    result.failures.append(f"{where} names no one by its {selection.subject_field!r} or "
                           f"{selection.provenance_field!r} field: cannot tell whose it is, kept")
    return False, None


def _without(text: str, elements: list[tuple[int, int]], gone: set[int], rewritten: dict[int, str]) -> list[str]:
    """``text`` without the elements ``gone``, each with one separator: the one before it, or for the elements
    before the first one kept, the ones after them (so the array stays valid JSON); the elements ``rewritten``
    (that lost mentions) written anew."""
    if not gone and not rewritten:
        return [text]
    first_kept = next((i for i in range(len(elements)) if i not in gone), len(elements))
    cuts: list[tuple[int, int, str]] = []
    if first_kept > 0:
        end = elements[first_kept][0] if first_kept < len(elements) else elements[-1][1]
        cuts.append((elements[0][0], end, ""))
    cuts += [(elements[i - 1][1], elements[i][1], "") for i in sorted(gone) if i > first_kept]
    cuts += [(*elements[i], new) for i, new in rewritten.items()]
    pieces: list[str] = []
    position = 0
    for start, end, new in sorted(cuts):
        pieces += [text[position:start], new]
        position = end
    pieces.append(text[position:])
    return pieces


def _array_elements(text: str) -> tuple[list[tuple[int, int]], str | None]:
    """(start, end) character offsets of each element of the top-level JSON array ``text`` is, and what is wrong
    with its end, if anything (a feed cut short: its complete elements are still read, the rest is kept)."""
    decoder = json.JSONDecoder()
    i = _skip_space(text, 0)
    if i >= len(text) or text[i] != "[":
        raise PurgeFailed("not a JSON array: not checked")
    i = _skip_space(text, i + 1)
    elements: list[tuple[int, int]] = []
    if i < len(text) and text[i] == "]" and not text[i + 1:].strip():
        return elements, None
    while True:
        try:
            _, end = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            break
        elements.append((i, end))
        i = _skip_space(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_space(text, i + 1)
            continue
        if i < len(text) and text[i] == "]" and not text[i + 1:].strip():
            return elements, None
        break
    return elements, (f"invalid JSON at character {i} (a feed cut short?): the rest of the file is not checked, "
                      "kept")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _byte_offsets(text: str, positions: list[int]) -> dict[int, int]:
    result: dict[int, int] = {}
    last_char = last_byte = 0
    for position in sorted(set(positions)):
        last_byte += len(text[last_char:position].encode("utf-8"))
        last_char = position
        result[position] = last_byte
    return result


def purge_csv(path: Path, selection: Selection, *, dry_run: bool = False) -> TargetResult:
    data, result, compression = _read(path, "csv")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PurgeFailed(f"not UTF-8 at byte {exc.start}: not checked") from None
    records = _csv_records(text)
    if not records:
        return result
    header = _cells(text[slice(*records[0])])
    names = {selection.subject_field, selection.provenance_field}
    if not names & set(header):
        raise PurgeFailed(f"no {selection.subject_field!r} or {selection.provenance_field!r} column: cannot tell "
                          "whose records are in it")
    kept: list[str] = [text[slice(*records[0])]]
    for number, (start, end) in enumerate(records[1:], 2):
        record = text[start:end]
        if not record.strip():
            kept.append(record)
            continue
        cells = _cells(record)
        if len(cells) != len(header):
            result.failures.append(f"record {number} has {len(cells)} cells, the header {len(header)}: not checked, "
                                   "kept")
            kept.append(record)
            continue
        fields: dict[str, Any] = {n: (c if c != "" else None) for n, c in zip(header, cells, strict=True)}
        goes, who = _judged(selection, fields, result, f"record {number}")
        if goes:
            result.remove(who, number, record.encode("utf-8"))
            continue
        result.kept += 1
        changed, lost = in_kept(result, number, withheld_in_cells, selection, cells)
        kept.append(_csv_record(changed, record) if lost else record)
    return _finish(path, result, [piece.encode("utf-8") for piece in kept], dry_run, compression)


def _csv_record(cells: list[str], record: str) -> str:
    """A kept record that lost mentions, written anew as Scrapy's CSV exporter writes one, its line ending kept."""
    body = record.rstrip("\r\n")
    out = io.StringIO()
    csv.writer(out, lineterminator=record[len(body):]).writerow(cells)
    return out.getvalue()


def _csv_records(text: str) -> list[tuple[int, int]]:
    """(start, end) of each CSV record, its line ending included: a line break inside quotes is data."""
    records: list[tuple[int, int]] = []
    start = 0
    quoted = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            quoted = not quoted  # "" inside a quoted cell toggles twice
        elif c == "\n" and not quoted:
            records.append((start, i + 1))
            start = i + 1
        i += 1
    if start < n:
        records.append((start, n))
    return records


def _cells(record: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(record, newline="")))
    return rows[0] if rows else []
