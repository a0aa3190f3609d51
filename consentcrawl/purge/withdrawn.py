"""Who has withdrawn, as an authorization store says: every person with a withdrawal in force for a purpose.

A withdrawal is in force at ``now`` when, for a purpose it names, :func:`~consentcrawl.checks.subject.judge_records`
finds no live grant newer than it: the person is ``subject.revoked`` for that purpose, as a crawl would judge
them. Their data goes whatever purpose it was collected for (the purge does not read the purpose of each item).

Only stores that can list their records: files (YAML, CSV, JSONL), ``sqlite:///`` and anything iterable. A consent
API or Redis answers per person; for those, name the people with ``--subject``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..checks.subject import judge_records
from ..consent.keys import key_function
from ..consent.records import AuthorizationRecord
from ..errors import ConfigError
from ..terms.platforms import PlatformRegistry

__all__ = ["all_records", "withdrawn"]


def all_records(store: Any, source: str) -> list[AuthorizationRecord]:
    """Every record ``store`` holds; ConfigError for a store that cannot list them."""
    from ..consent.sqlite import SQLiteStore
    from ..consent.sqlite_files import uri_path
    from ..consent.sqlite_format import COLUMNS

    if isinstance(store, SQLiteStore):
        from pathlib import Path

        try:
            conn = sqlite3.connect(f"file:{uri_path(Path(store.path))}?mode=ro", uri=True)
            try:
                rows = conn.execute(f"SELECT {COLUMNS} FROM records ORDER BY id").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the authorization store: {exc}", source=source) from None
        return [store._record(row) for row in rows]
    if isinstance(store, Iterable):
        return list(store)
    raise ConfigError("this store cannot list its records (a consent API, Redis): name the people with --subject",
                      source=source)


def withdrawn(records: Iterable[AuthorizationRecord], platforms: PlatformRegistry,
              now: datetime) -> list[tuple[str, str]]:
    """(platform, subject as written) of each person with a withdrawal in force at ``now``, in record order."""
    people: dict[tuple[str, str], list[AuthorizationRecord]] = {}
    for record in records:
        key = key_function(platforms.get(record.platform))(record.subject)
        people.setdefault((record.platform, key), []).append(record)
    out: list[tuple[str, str]] = []
    for theirs in people.values():
        revoked = {p for r in theirs if r.revoked_at is not None and r.revoked_at <= now for p in r.purposes}
        if any(judge_records(theirs, purpose, now) == (None, "subject.revoked") for purpose in sorted(revoked)):
            first = theirs[0]
            out.append((first.platform, first.subject))
    return out
