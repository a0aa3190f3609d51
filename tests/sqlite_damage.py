"""Damaging an SQLite store's file below SQLite, as a torn write or a stale page would: a row lost from its leaf.

:func:`drop_row` removes one row's cell from the leaf page of the records table that holds it (its pointer taken
out of the cell pointer array, the count lowered). SQLite reads the page as valid: a lookup of the range simply does
not see that row (only ``PRAGMA quick_check``, a scan of the whole file, notices the unaccounted bytes).
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

_INTERIOR, _LEAF = 0x05, 0x0D


def _varint(page: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = page[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + i + 1
    raise AssertionError("unreachable")


def drop_row(path: Path, rowid: int, table: str = "records") -> None:
    """Remove row ``rowid`` of ``table`` from its leaf page, in place (no journal, no write-ahead log)."""
    conn = sqlite3.connect(path)
    try:
        page_number = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with path.open("r+b") as f:
        while True:
            f.seek((page_number - 1) * page_size)
            page = bytearray(f.read(page_size))
            head = 100 if page_number == 1 else 0
            kind, cells = page[head], struct.unpack(">H", page[head + 3:head + 5])[0]
            pointers = head + (12 if kind == _INTERIOR else 8)
            offsets = [struct.unpack(">H", page[pointers + 2 * i:pointers + 2 * i + 2])[0] for i in range(cells)]
            if kind == _INTERIOR:
                page_number = struct.unpack(">I", page[head + 8:head + 12])[0]  # the right-most child
                for offset in offsets:
                    key, _ = _varint(page, offset + 4)
                    if rowid <= key:
                        page_number = struct.unpack(">I", page[offset:offset + 4])[0]
                        break
                continue
            assert kind == _LEAF, f"page {page_number} is not a table b-tree page"
            for i, offset in enumerate(offsets):
                _size, at = _varint(page, offset)
                if _varint(page, at)[0] == rowid:
                    kept = offsets[:i] + offsets[i + 1:]
                    page[head + 3:head + 5] = struct.pack(">H", len(kept))
                    page[pointers:pointers + 2 * cells] = b"".join(struct.pack(">H", o) for o in kept) + b"\0\0"
                    f.seek((page_number - 1) * page_size)
                    f.write(page)
                    return
            raise AssertionError(f"row {rowid} is not in {table}")


def malform_root(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage, in place: SQLite reports "database disk image is
    malformed" when it reads the table (the store's ``meta`` or ``bloom`` as it opens or reloads, ``records`` on a
    lookup)."""
    conn = sqlite3.connect(path)
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x0d" + b"\xff" * (page_size - 1))
