"""The counts ``consentcrawl authorizations stats`` reports for a store: records and people, by platform and by
purpose, withdrawn, expired and live as of a time, and the store's version.

Counting a store is a job apart from the command line that prints it (:mod:`consentcrawl.authcli`): a file is
counted by reading it with the validators a crawl uses, an SQLite store by SQL over its tables, and both give the
same report (a dict, printed as text or JSON).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .formats import open_validator
from .keys import key_function
from .reading import DIGEST, open_hashed
from .records import RecordStatus
from .sqlite import SQLiteStore
from .sqlite_files import read_only_uri


def file_stats(source: str, platforms: Any, now: datetime) -> dict[str, Any]:
    """The counts of a YAML, CSV or JSONL file, read with the loaders a crawl uses; its version is its digest."""
    try:
        raw, buffered = open_hashed(source)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", source) from None
    by_platform: Counter[str] = Counter()
    by_purpose: Counter[str] = Counter()
    status: Counter[str] = Counter()
    people: set[int] = set()
    keys = {name: key_function(p) for name, p in platforms.platforms.items()}
    with raw:
        for record in open_validator(source, platforms).records(buffered):
            by_platform[record.platform] += 1
            by_purpose.update(record.purposes)
            status[record.status(now).value] += 1
            people.add(hash((record.platform, keys[record.platform](record.subject))))
        raw.drain()
        digest = raw.digest().hex()
    return _report(source, now, sum(by_platform.values()), len(people), by_platform, by_purpose,
                   status[RecordStatus.REVOKED.value], status[RecordStatus.EXPIRED.value],
                   status[RecordStatus.LIVE.value], f"{DIGEST} {digest}")


def sqlite_stats(source: str, platforms: Any, now: datetime) -> dict[str, Any]:
    """The counts of an SQLite store, by SQL over its tables (not record by record); opened first as a crawl
    opens it, so a store a crawl would refuse is refused here."""
    store = SQLiteStore(source, platforms.platforms)  # refuses what a crawl would refuse
    store.close()
    path = Path(store.path)
    at = now.isoformat()
    conn = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        by_platform = Counter(dict(conn.execute("SELECT platform, count(*) FROM records GROUP BY platform")))
        by_purpose: Counter[str] = Counter()
        for purposes, n in conn.execute("SELECT purposes, count(*) FROM records GROUP BY purposes"):
            for purpose in purposes.split():
                by_purpose[purpose] += n
        revoked, expired, live = conn.execute(
            "SELECT sum(revoked_at IS NOT NULL AND julianday(revoked_at) <= julianday(:now)), "
            "sum((revoked_at IS NULL OR julianday(revoked_at) > julianday(:now)) AND expires_at IS NOT NULL "
            "AND julianday(expires_at) <= julianday(:now)), "
            "sum((revoked_at IS NULL OR julianday(revoked_at) > julianday(:now)) AND julianday(granted_at) <= "
            "julianday(:now) AND (expires_at IS NULL OR julianday(expires_at) > julianday(:now))) FROM records",
            {"now": at}).fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.Error as exc:  # a page past the ones opening it reads (corrupt): as the crawl's open says it
        raise ConfigError(f"authorization store cannot be read: {type(exc).__name__}: {exc}", source) from None
    finally:
        conn.close()
    st = path.stat()
    version = (f"format {meta.get('version')}, file of {st.st_size} bytes modified "
               f"{datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat()}")
    return _report(source, now, int(meta.get("records", 0)), int(meta.get("keys", 0)), by_platform, by_purpose,
                   revoked or 0, expired or 0, live or 0, version)


def _report(store: str, now: datetime, records: int, people: int, by_platform: Counter[str],
            by_purpose: Counter[str], revoked: int, expired: int, live: int, version: str) -> dict[str, Any]:
    return {"store": store, "now": now.isoformat(), "version": version, "records": records, "people": people,
            "revoked": revoked, "expired": expired, "live": live,
            "platforms": dict(sorted(by_platform.items())), "purposes": dict(sorted(by_purpose.items()))}
