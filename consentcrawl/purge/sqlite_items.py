"""SQLite item databases: the rows of the selected people deleted in one transaction, nothing of them left.

**Which tables hold items.** A table (not a view, not an SQLite internal one) with a column named like the
subject field (``CONSENTCRAWL_SUBJECT_FIELD``, default ``subject``) or the provenance field
(``CONSENTCRAWL_PROVENANCE_FIELD``, default ``consentcrawl``, holding the provenance as JSON text). A row is read
like an item: its subject column with its ``platform`` column (or the provenance's platform), and the provenance.
A database with no such table is reported: nothing in it can be told to be anyone's.

**No byte left.** The delete runs with ``PRAGMA secure_delete=ON``, so SQLite overwrites the deleted cells and
freed pages (table and index alike) with zeros, and a database in WAL mode is checkpointed and its WAL truncated
afterwards. What the file keeps of them elsewhere (index samples, full-text tokens, pages freed before the
purge) is cleared in the same transaction (:mod:`.sqlite_leftovers`). SQLite's own transaction is the atomic
step (the file is not replaced: a pipeline may hold it open).

**Mentions.** A kept row whose columns name a selected person by their page's URL loses those mentions
(:mod:`.mentioned`: a column of JSON text is changed as JSON, other text as text) in the same transaction, under
the same ``secure_delete``: the old cell's bytes are overwritten.

**The receipt's hash** is over one line per removed row, in table then rowid order:
``json.dumps({"table": T, "rowid": R, "row": {column: value}}, ensure_ascii=False, separators=(",", ":"))``
plus ``\\n``, a BLOB written as ``{"hex": "..."}``: rows have no bytes of their own in the file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..consent.sqlite_files import uri_path
from .common import PurgeFailed, Selection, TargetResult
from .mentioned import in_kept, withheld_in_row
from .sqlite_leftovers import clear_leftovers

__all__ = ["purge_sqlite", "row_bytes"]

SQLITE_HEADER = b"SQLite format 3\x00"


def row_bytes(table: str, rowid: int, row: dict[str, Any]) -> bytes:
    """The bytes a removed row counts as in the receipt's hash (see the module doc)."""
    values = {k: ({"hex": v.hex()} if isinstance(v, bytes) else v) for k, v in row.items()}
    text = json.dumps({"table": table, "rowid": rowid, "row": values}, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def purge_sqlite(path: Path, selection: Selection, *, dry_run: bool = False) -> TargetResult:
    result = TargetResult(str(path), "sqlite")
    try:
        mode = "ro" if dry_run else "rw"
        conn = sqlite3.connect(f"file:{uri_path(path)}?mode={mode}", uri=True, isolation_level=None, timeout=5)
    except sqlite3.Error as exc:
        raise PurgeFailed(f"cannot open it: {exc}") from None
    try:
        return _purge(conn, result, selection, dry_run)
    except sqlite3.Error as exc:
        raise PurgeFailed(f"SQLite error: {exc} (nothing deleted)") from None
    finally:
        conn.close()


def _purge(conn: sqlite3.Connection, result: TargetResult, selection: Selection, dry_run: bool) -> TargetResult:
    wanted = {selection.subject_field, selection.provenance_field} - {None}
    tables: list[tuple[str, list[str]]] = []
    others: list[tuple[str, list[str], str]] = []  # tables of no item: (name, columns, kind)
    kinds = _kinds(conn)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                "ORDER BY name"):
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(name)})")]
        if wanted & set(columns):
            tables.append((name, columns))
        elif kinds.get(name, "table") != "virtual":  # a virtual table's rows are in its shadow tables
            others.append((name, columns, kinds.get(name, "table")))
    if not tables:
        raise PurgeFailed(f"no table with a {selection.subject_field!r} or {selection.provenance_field!r} column: "
                          "cannot tell whose rows are in it")
    if not dry_run:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in tables:
            try:
                rows = conn.execute(f"SELECT rowid, * FROM {_quote(table)} ORDER BY rowid").fetchall()
            except sqlite3.OperationalError as exc:  # a WITHOUT ROWID table
                result.failures.append(f"table {table!r}: cannot address its rows ({exc}): not checked")
                continue
            gone: list[int] = []
            for rowid, *values in rows:
                row = dict(zip(columns, values, strict=True))
                goes, who = selection.item(row)
                if goes:
                    result.remove(who, f"{table}#{rowid}", row_bytes(table, rowid, row))
                    gone.append(rowid)
                    continue
                result.kept += 1
                changed, _ = in_kept(result, f"{table}#{rowid}", withheld_in_row, selection, row)
                if changed and not dry_run:
                    assignments = ", ".join(f"{_quote(column)} = ?" for column in changed)
                    conn.execute(f"UPDATE {_quote(table)} SET {assignments} WHERE rowid = ?",
                                 [*changed.values(), rowid])
            if gone and not dry_run:
                conn.executemany(f"DELETE FROM {_quote(table)} WHERE rowid = ?", [(r,) for r in gone])
        for table, columns, kind in others:
            _withhold_in(conn, result, selection, table, columns, kind, dry_run)
        if not dry_run and (result.count or result.mentions):
            clear_leftovers(conn, result)  # index samples, full-text tokens, free pages (.sqlite_leftovers)
        if not dry_run:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if not dry_run and (result.count or result.mentions):
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                result.failures.append("the WAL could not be checkpointed (another connection reads it): the "
                                       "removed rows may remain in the -wal file until it is")
    return result


def _kinds(conn: sqlite3.Connection) -> dict[str, str]:
    """Each table's kind (``table``, ``virtual``, ``shadow``: a virtual table's own storage), as SQLite 3.37 and
    later tell it; before, a virtual table is told by its ``CREATE VIRTUAL TABLE``, a shadow table not at all."""
    try:
        return {name: kind for schema, name, kind, *_ in conn.execute("PRAGMA table_list") if schema == "main"}
    except sqlite3.Error:
        return {name: "virtual" for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%'")}


def _withhold_in(conn: sqlite3.Connection, result: TargetResult, selection: Selection, table: str,
                 columns: list[str], kind: str, dry_run: bool) -> None:
    """A table of no item (a pipeline's ``links`` beside its ``items``): whose its rows are cannot be told, but a
    selected person's page URL in them is their data as in an item's column, and is withheld from it. A table that
    cannot be changed here (a virtual table's shadow table: its index would no longer match; one without rowids)
    and names them is reported."""
    try:
        rows = conn.execute(f"SELECT rowid, * FROM {_quote(table)} ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:  # a WITHOUT ROWID table: read, not changed
        rows = [(None, *values) for values in conn.execute(f"SELECT * FROM {_quote(table)}")]
    cannot = 0
    for rowid, *values in rows:
        row = dict(zip(columns, values, strict=True))
        if kind != "table" or rowid is None:
            try:
                cannot += bool(withheld_in_row(selection, row)[1])
            except RecursionError:
                cannot += 1
            continue
        changed, lost = in_kept(result, f"{table}#{rowid}", withheld_in_row, selection, row)
        if lost and not dry_run:
            assignments = ", ".join(f"{_quote(column)} = ?" for column in changed)
            conn.execute(f"UPDATE {_quote(table)} SET {assignments} WHERE rowid = ?", [*changed.values(), rowid])
    if cannot:
        result.failures.append(f"table {table!r}: {cannot} row(s) name a selected person by their page's URL and "
                               "cannot be changed here (a virtual table's storage, or a table without rowids): kept")
