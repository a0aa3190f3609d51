"""Who has withdrawn, as an authorization store says: every person with a withdrawal in force for a purpose.

A withdrawal is in force at ``now`` when, for a purpose it names, :func:`~consentcrawl.checks.subject.judge_records`
finds no live grant newer than it: the person is ``subject.revoked`` for that purpose, as a crawl would judge
them. Their data goes whatever purpose it was collected for (the purge does not read the purpose of each item).

Only stores that can list their records: files (YAML, CSV, JSONL), ``sqlite:///``, ``redis://`` (a ``SCAN`` over the
people's hashes) and a store class whose instances are iterable. The consent API's contract
(``docs/consent-api.md``) answers per person and says what changed, never who exists: for such a store the purge
stops with a usage error naming it (name the people with ``--subject``), never a purge of no one.
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


def all_records(source: str, platforms: PlatformRegistry, settings: Any) -> list[AuthorizationRecord]:
    """Every record the store ``source`` (CONSENTCRAWL_AUTHORIZATIONS) holds; ConfigError, naming the store, for
    one that cannot list them or cannot be read."""
    from ..consent.httpapi import public_url
    from ..consent.opening import open_store

    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("redis", "rediss"):
        from ..consent.redisstore import list_records

        return list_records(source, platforms)
    if scheme in ("http", "https"):
        raise ConfigError(f"the consent API at {public_url(source)} cannot list who has withdrawn (its contract "
                          "answers one person at a time, and what changed): name the people with --subject",
                          source="CONSENTCRAWL_AUTHORIZATIONS")
    store = open_store(source, platforms, settings=settings)
    try:
        return _listed(store, source)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _listed(store: Any, source: str) -> list[AuthorizationRecord]:
    from ..consent.sqlite import SQLiteStore
    from ..consent.sqlite_files import read_only_uri
    from ..consent.sqlite_format import COLUMNS, checked_rows

    if isinstance(store, SQLiteStore):
        rows: list[tuple[Any, ...]] = []
        try:
            conn = sqlite3.connect(read_only_uri(store.path), uri=True)
            try:
                problem = checked_rows(conn, store._contents, COLUMNS, rows)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the authorization store: {exc}", source=source) from None
        if problem is not None:  # a row lost below SQLite (a withdrawal above all): stop, rather than purge too few
            raise ConfigError(f"the authorization store is damaged: {problem}; rebuild it from its source file",
                              source)
        try:
            return [store._record(row) for row in rows]
        except ValueError as exc:
            raise ConfigError(f"the authorization store is damaged: a row cannot be read: {exc}", source) from None
    if isinstance(store, Iterable):
        return list(store)
    raise ConfigError(f"the authorization store {type(store).__module__}.{type(store).__qualname__} cannot list "
                      "its records (it is not iterable): name the people with --subject", source=source)


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
