"""``consentcrawl authorizations import|validate|show|stats``: an operator's tools for authorization stores.

- ``import SRC DEST``: validate a YAML, CSV or JSONL file with the loaders a crawl uses and add its records to a
  writable store (``sqlite:///PATH``, ``redis://...``), all or nothing. A new (or empty) SQLite store is built by
  the bulk importer, with a progress bar; records added to a store that holds some are checked one by one against
  it. Importing a withdrawal into the store a crawl is using is how an operator stops collection live.
- ``validate SRC``: every error of a file, or what is wrong with an SQLite store (:mod:`consentcrawl.authvalidate`).
- ``show PLATFORM:SUBJECT``: one person's records and, for each purpose, whether they allow collection now.
- ``stats SRC``: counts by platform and purpose, withdrawn and expired records, and the store's version.

Error messages name the file and line and leave out record values (``'…'``): the output goes into terminals and
CI logs, and a value may be a person's id.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ConfigError, StoreUnavailable, redact

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


def add_authorizations(sub: Any) -> None:
    """The ``authorizations`` command and its actions."""
    from .authvalidate import cmd_validate
    parser = sub.add_parser("authorizations", help="manage authorization stores")
    actions = parser.add_subparsers(dest="action", required=True)

    def common(action: Any) -> None:
        action.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
        action.add_argument("--platforms", metavar="FILE", help="platform terms YAML the records are checked against")

    load = actions.add_parser("import", help="validate a YAML, CSV or JSONL file of authorization records and add "
                                             "them to an SQLite store (created if missing) or a Redis store")
    load.add_argument("source", metavar="SRC", help="a .yaml, .csv or .jsonl file of authorization records")
    load.add_argument("dest", metavar="sqlite:///DEST", help="the store (relative path; sqlite:////abs/path), or "
                                                             "redis://HOST:PORT/DB")
    common(load)
    load.set_defaults(func=cmd_import)

    validate = actions.add_parser("validate", help="check a file (every error, with its line) or an SQLite store")
    validate.add_argument("source", metavar="SRC", help="a .yaml, .csv or .jsonl file, or sqlite:///PATH")
    common(validate)
    validate.set_defaults(func=cmd_validate)

    show = actions.add_parser("show", help="one person's records and what they allow now")
    show.add_argument("person", metavar="PLATFORM:SUBJECT")
    show.add_argument("--authorizations", metavar="SRC", help="the store (default: CONSENTCRAWL_AUTHORIZATIONS)")
    show.add_argument("--now", metavar="TIME", help="as of this ISO-8601 time")
    show.add_argument("--json", action="store_true", help="print JSON")
    common(show)
    show.set_defaults(func=cmd_show)

    stats = actions.add_parser("stats", help="counts by platform and purpose, withdrawn, expired; store version")
    stats.add_argument("source", metavar="SRC", help="a .yaml, .csv or .jsonl file, or sqlite:///PATH")
    stats.add_argument("--now", metavar="TIME", help="as of this ISO-8601 time")
    stats.add_argument("--json", action="store_true", help="print JSON")
    common(stats)
    stats.set_defaults(func=cmd_stats)


def _platforms_for(args: argparse.Namespace) -> Any:
    from .cli import _platforms_for as platforms_for

    return platforms_for(args)


def _load_settings(module: str | None) -> dict[str, Any]:
    from .cli import load_settings

    return load_settings(module)


def config_words(platforms: Any) -> set[str]:
    """The configuration's own words, kept where a record's values are redacted (imported when needed: the CLI
    starts without the store modules)."""
    from .consent.formats import config_words as words

    return words(platforms)


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO-8601 time", source="--now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _is_sqlite(source: str) -> bool:
    return source.lower().startswith("sqlite:///")


def _local(source: str, verb: str) -> None:
    """``validate`` and ``stats`` read a file or an SQLite store: a remote one (Redis, a consent API) is said to be
    out of their reach, rather than read as a file of that name."""
    if source.lower().startswith(("redis://", "rediss://", "http://", "https://")):
        raise ConfigError(f"{verb} reads a .yaml, .csv or .jsonl file or an sqlite:/// store, not a remote store "
                          f"(ask it about one person with `consentcrawl authorizations show --authorizations "
                          f"{source} PLATFORM:SUBJECT`)", source="SRC")


# -- import ---------------------------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    """Validate SRC with the loaders a crawl uses, then add its records to DEST, all or nothing."""
    try:
        return _import(args)
    except ConfigError as exc:  # the file and line, without the record's values
        if exc.source is None or exc.source.startswith(("sqlite:", "redis", "--", "CONSENTCRAWL_", "DEST")):
            raise
        raise ConfigError(redact(exc.message, config_words(_platforms_for(args))), exc.source, exc.line) from None


def _import(args: argparse.Namespace) -> int:
    from .consent.formats import open_validator
    from .consent.progress import Progress
    from .consent.reading import open_hashed
    from .consent.sqlite_format import parse_sqlite_url
    from .consent.sqlite_parallel import import_jsonl, two_processes

    platforms = _platforms_for(args)
    redis = args.dest.lower().startswith(("redis://", "rediss://"))
    try:
        url = None if redis else parse_sqlite_url(args.dest)
    except ConfigError as exc:  # the parser names the setting; here the store is the command's DEST
        raise ConfigError(f"{exc.message} (or redis://HOST:PORT/DB)", "DEST") from None
    bulk = url is not None and not _holds_records(url.path)
    try:
        size = os.stat(args.source).st_size
        raw, buffered = open_hashed(args.source)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", args.source) from None
    progress = Progress(f"importing {args.source}", size)
    if bulk and two_processes(args.source, size):  # a large JSON Lines file: read and written on two cores
        raw.close()
        assert url is not None
        try:
            added = import_jsonl(url.path, args.source, platforms, progress=progress.update)
        except (sqlite3.Error, OSError) as exc:  # a full disk, say: the target is untouched until the rename
            raise _not_written(exc, url.source) from None
        return _imported(args, url.source, added, progress)

    def tick(count: int) -> None:
        progress.update(raw.position, count)

    with raw:
        validator = open_validator(args.source, platforms, dedup=not bulk)
        if bulk:
            validator.stage()  # the bulk importer takes rows, and finds the duplicates itself
        records = validator.records(buffered)
        if redis:
            from .consent.redisimport import import_records
            from .consent.redisstore import parse_redis_url

            result = import_records(args.dest, _ticking(records, tick), platforms=platforms.platforms)
            progress.finish(result.imported + result.skipped)
            print(f"imported {result.imported} record(s) from {args.source} into "
                  f"{parse_redis_url(args.dest).source} ({result.skipped} it already held)")
            return EXIT_OK
        assert url is not None
        try:
            if bulk:
                from .consent.sqlite_bulk import build_store

                added = build_store(url.path, records, platforms=platforms.platforms, tick=tick)
            else:
                from .consent.sqlite_write import import_records as add_records

                added = add_records(url, _ticking(records, tick), platforms=platforms.platforms)
        except (sqlite3.Error, OSError) as exc:  # not an SQLite file, another program's database, a full disk, a
            raise _not_written(exc, url.source) from None  # directory that takes no file: nothing written
    return _imported(args, url.source, added, progress)


def _not_written(exc: sqlite3.Error | OSError, dest: str) -> ConfigError:
    return ConfigError(f"cannot write into it ({type(exc).__name__}: {exc}); nothing was imported (is it a "
                       "consentcrawl authorization store?)", dest)


def _imported(args: argparse.Namespace, dest: str, added: Any, progress: Any) -> int:
    progress.finish(added.imported)
    print(f"imported {added.imported} record(s) from {args.source} into {dest}; it now holds "
          f"{added.records} record(s) of {added.keys} people")
    return EXIT_OK


def _holds_records(path: str) -> bool:
    """Whether an SQLite store at ``path`` exists with records in it (records are then added one by one). Another
    program's database is refused here: one whose table named ``records`` is empty would otherwise be taken for an
    empty store of ours, and a new store renamed over it."""
    from .consent.sqlite_files import read_only_uri
    from .consent.sqlite_write import refuse_foreign

    if not Path(path).exists() or Path(path).stat().st_size == 0:
        return False
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error:
        return True  # let the writer say what is wrong with it
    try:
        refuse_foreign(conn, path)
        return conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return True
    finally:
        conn.close()


def _ticking(records: Any, tick: Any) -> Any:
    count = 0
    for count, record in enumerate(records, start=1):
        if count % 10_000 == 0:
            tick(count)
        yield record


# -- show -----------------------------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from .checks.subject import judge_records
    from .consent.adapt import as_async_store
    from .consent.opening import open_store
    from .purposes import KNOWN_PURPOSES
    from .settings import as_settings, read

    platform_name, sep, subject = args.person.partition(":")
    if not sep or not platform_name or not subject:
        raise ConfigError(f"{args.person!r} is not PLATFORM:SUBJECT", source="PLATFORM:SUBJECT")
    platforms = _platforms_for(args)
    platform = platforms.get(platform_name)
    if platform is None:
        raise ConfigError(f"platform {platform_name!r} is not configured (configured: "
                          f"{', '.join(sorted(platforms.platforms)) or 'none'})", source="PLATFORM:SUBJECT")
    settings = _load_settings(args.settings)
    source = args.authorizations or read(as_settings(settings), "CONSENTCRAWL_AUTHORIZATIONS")
    if not source:
        raise ConfigError("no authorization store: give --authorizations SRC", source="--authorizations")
    now = _now(args.now)
    store = as_async_store(open_store(source, platforms, None, settings), platforms)
    from .commandloop import run_async

    async def look() -> tuple[Any, ...]:
        return await store.lookup(platform_name, platform.subject_key(subject))

    try:
        records = run_async(look, store)
    except StoreUnavailable as exc:
        print(f"consentcrawl: the store cannot answer: {exc}", file=sys.stderr)
        return EXIT_FOUND
    finally:
        close = getattr(store.store, "close", None)
        if callable(close):
            result = close()
            if hasattr(result, "__await__"):  # pragma: no cover - the async stores close in their own loop
                result.close()
    allowed = {}
    asked = platform.subject_conflict(subject)  # the id asked about may be two accounts: nothing stands for it

    def grants(record: Any) -> bool:  # a grant written as straße stands for no other spelling (as in a crawl)
        return not asked and not platform.subject_conflict(record.subject)

    for purpose in sorted(KNOWN_PURPOSES):
        live, reason = judge_records(records, purpose, now, grants)
        if asked:  # as a crawl decides it: before any record is read
            reason = "subject.ambiguous-url"
        allowed[purpose] = {"allowed": live is not None, "reason": "subject.authorized" if live else reason,
                            "record": live.source if live else None}
    if args.json:
        print(json.dumps({"platform": platform_name, "subject": subject, "now": now.isoformat(),
                          "store": store.source, "records": [_record_json(r, now) for r in records],
                          "purposes": allowed, "ambiguous": asked or None}, indent=2))
        return EXIT_OK
    print(f"{platform_name}:{subject} in {store.source}, as of {now.isoformat()}")
    if not records:
        print("  no records")
    for record in records:
        data = _record_json(record, now)
        print(f"  {data['source']}: {data['status']}; purposes {', '.join(data['purposes'])}; granted "
              f"{data['granted_at']}, expires {data['expires_at'] or 'never'}"
              + (f", revoked {data['revoked_at']}" if data["revoked_at"] else "")
              + f"; evidence {data['evidence']!r}")
    if asked:
        print(f"  the id asked about may be more than one account: {asked}")
    for record in records:
        if not grants(record) and not asked:
            print(f"  {record.source}: grants nothing for {subject!r}: {platform.subject_conflict(record.subject)}")
    print("now:")
    for purpose, verdict in allowed.items():
        print(f"  {purpose:<22} {'ALLOWED' if verdict['allowed'] else 'denied '}  {verdict['reason']}")
    return EXIT_OK


def _record_json(record: Any, now: datetime) -> dict[str, Any]:
    return {"source": record.source, "subject": record.subject, "status": record.status(now).value,
            "purposes": sorted(record.purposes), "granted_at": record.granted_at.isoformat(),
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
            "evidence": record.evidence, "record_id": record.record_id or None,
            "fields": sorted(record.fields) if record.fields is not None else None,
            "jurisdiction": record.jurisdiction or None}


# -- stats ----------------------------------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace) -> int:
    from .consent.stats import file_stats, sqlite_stats

    _local(args.source, "stats")
    now = _now(args.now)
    platforms = _platforms_for(args)
    if _is_sqlite(args.source):
        report = sqlite_stats(args.source, platforms, now)
    else:
        report = file_stats(args.source, platforms, now)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"{report['store']}: {report['records']} record(s) of {report['people']} people, as of {report['now']}")
    print(f"  version: {report['version']}")
    print(f"  withdrawn: {report['revoked']}   expired: {report['expired']}   live: {report['live']}")
    print("  by platform: " + (", ".join(f"{k} {v}" for k, v in report["platforms"].items()) or "none"))
    print("  by purpose:  " + (", ".join(f"{k} {v}" for k, v in report["purposes"].items()) or "none"))
    return EXIT_OK
