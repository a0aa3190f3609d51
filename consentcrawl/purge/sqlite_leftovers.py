"""What an SQLite database keeps of deleted rows outside its tables, cleared in the purge's transaction.

Deleting a row under ``secure_delete`` zeroes its cells and the pages it frees, but three things copy a row's
values elsewhere in the file, and outlive the delete:

- **Index samples.** ``ANALYZE`` in a build with STAT4 (or the older STAT3) stores sampled index keys in
  ``sqlite_stat4`` (``sqlite_stat3``): a person's id or URL, if their row was sampled. The samples only tune the
  query planner (``sqlite_stat1``'s counts stay): they all go, and the next ``ANALYZE`` samples what is left.
- **Full-text indexes.** An FTS3/4/5 table keeps every token of the text it indexed in its shadow tables
  (``*_data``, ``*_segments``...). A row deleted from the index leaves a delete marker, and the token itself stays
  in the old segment until segments merge; an index over an external content table (``content='items'``) is not
  changed at all by a delete from that table unless the project's triggers tell it. So each full-text index of
  the database is merged (``optimize``: deleted entries are dropped) or, over an external content table, rebuilt
  from that table (``rebuild``). A contentless index (``content=''``) cannot be rebuilt and does not say what it
  holds: it is reported.
- **Free pages from before.** Pages the crawl's pipeline freed before the purge (an ``INSERT OR REPLACE``, an
  update that moved a row) keep their bytes unless the database had ``secure_delete`` on then. They are taken
  into a scratch table and given back zeroed (:func:`scrub_free_pages`), so no old copy of a row is left in them.

A journal left beside the database (``journal_mode=PERSIST`` keeps ``-journal`` after each transaction, with the
pages before it) is written over and deleted by the purge's own transaction, which runs in SQLite's default
``DELETE`` journal mode; a WAL is checkpointed and truncated (:mod:`.sqlite_items`).
"""

from __future__ import annotations

import re
import sqlite3

from .common import TargetResult

__all__ = ["clear_leftovers"]

#: ``USING fts5(...)``, ``fts4``, ``fts3``: the module of a full-text virtual table
_FTS = re.compile(r"\bUSING\s+(fts[345])\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
#: the ``content=`` option of an FTS4/5 table: external content (a table's name) or none (``''``)
_CONTENT = re.compile(r"""(?:^|,)\s*content\s*=\s*(?:'((?:[^']|'')*)'|"((?:[^"]|"")*)"|([^\s,)]+))""",
                      re.IGNORECASE)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clear_leftovers(conn: sqlite3.Connection, result: TargetResult) -> None:
    """Clear the copies of the rows just deleted or changed (module doc), in the purge's open transaction."""
    names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for stat in ("sqlite_stat4", "sqlite_stat3"):
        if stat in names:
            conn.execute(f"DELETE FROM {stat}")
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                                  "ORDER BY name").fetchall():
        found = _FTS.search(sql)
        if found is None:
            continue
        module, arguments = found.group(1).lower(), found.group(2)
        content = _CONTENT.search(arguments) if module != "fts3" else None
        source = next((g for g in content.groups() if g is not None), None) if content else None
        if source == "":
            result.failures.append(f"full-text index {name!r} is contentless (content=''): the tokens of the "
                                   "removed rows it may hold cannot be told apart or rebuilt")
            continue
        command = "rebuild" if source else "optimize"
        try:
            conn.execute(f"INSERT INTO {_quote(name)}({_quote(name)}) VALUES (?)", (command,))
        except sqlite3.Error as exc:  # a tokenizer this SQLite does not have, an external table that is gone
            result.failures.append(f"full-text index {name!r}: cannot {command} it ({exc}): it may still hold "
                                   "tokens of the removed rows")
    scrub_free_pages(conn)


def scrub_free_pages(conn: sqlite3.Connection) -> None:
    """Zero the database's free pages: a scratch table takes them (a zero-filled blob as large as they are; SQLite
    allocates free pages first) and is dropped under ``secure_delete``, which zeroes them as they are freed."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if not free:
        return
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("CREATE TABLE consentcrawl_purge_scrub (b BLOB)")
    left = free * size
    while left > 0:  # in blobs well under SQLite's largest (SQLITE_MAX_LENGTH, 1 GB by default)
        conn.execute("INSERT INTO consentcrawl_purge_scrub VALUES (zeroblob(?))", (min(left, _BLOB),))
        left -= _BLOB
    conn.execute("DROP TABLE consentcrawl_purge_scrub")


#: the largest blob the scrub writes at once
_BLOB = 64 * 1024 * 1024
