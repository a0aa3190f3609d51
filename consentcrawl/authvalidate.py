"""``consentcrawl authorizations validate SRC``: what is wrong with an authorization file or store, all of it.

A file is read with the loaders a crawl uses, past a record's error: every error is printed with its file and line
(exit 1 when there is one), its record's values left out (``'…'``: the output goes into terminals and CI logs), and a
warning for each grant written with an id servers compare differently (``straße``: it grants nothing, see
``Platform.subject_conflict``). An SQLite store is opened as a crawl opens it and checked page by page
(``PRAGMA quick_check``), then every person's rows against the count each of them holds.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from .authcli import EXIT_FOUND, EXIT_OK, _is_sqlite, _local, _platforms_for, config_words
from .errors import ConfigError, redact

__all__ = ["cmd_validate"]


def cmd_validate(args: argparse.Namespace) -> int:
    _local(args.source, "validate")
    if _is_sqlite(args.source):
        return _validate_sqlite(args)
    from .consent.formats import open_validator
    from .consent.reading import open_hashed

    platforms = _platforms_for(args)
    errors: list[ConfigError] = []
    validator = open_validator(args.source, platforms)
    try:
        raw, buffered = open_hashed(args.source)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", args.source) from None
    count = 0
    idle: list[str] = []
    with raw:
        for record in validator.records(buffered, errors):
            count += 1
            if record.revoked_at is None and not record.subject.isascii():
                platform = platforms.get(record.platform)
                if platform is not None and platform.subject_conflict(record.subject):
                    idle.append(f"{record.source}: warning: the subject ('…') is an id that servers comparing ids "
                                f"by case folding and by lower() read as different accounts: on the case-insensitive "
                                f"platform {record.platform!r} this grant grants nothing (docs/reasons.md#subject)")
    keep = config_words(platforms)
    for error in errors:
        print(_located(error, keep))
    for line in idle:  # valid, and fail closed in a crawl: said so the operator learns why nothing is collected
        print(line)
    verdict = "valid" if not errors else f"{len(errors)} error(s)"
    grants = f"; {len(idle)} grant(s) that grant nothing" if idle else ""
    print(f"{args.source}: {count} valid record(s){grants}; {verdict}", file=sys.stderr)
    return EXIT_FOUND if errors else EXIT_OK


def _located(error: ConfigError, keep: set[str]) -> str:
    where = f"{error.source}:{error.line}" if error.line is not None else f"{error.source}"
    return f"{where}: {redact(error.message, keep)}"


def _validate_sqlite(args: argparse.Namespace) -> int:
    from .consent.sqlite import SQLiteStore
    from .consent.sqlite_files import read_only_uri
    from .consent.sqlite_format import checked_rows

    platforms = _platforms_for(args)
    store = SQLiteStore(args.source, platforms.platforms)  # a store that does not open is a ConfigError
    try:
        conn = sqlite3.connect(read_only_uri(store.path), uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems == ["ok"] and store._contents.counted:  # a row lost in a way SQLite cannot see
                lost = checked_rows(conn, store._contents, "id, platform, subject")
                problems = ["ok"] if lost is None else [f"damaged: {lost}"]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    finally:
        store.close()
    if problems != ["ok"]:
        for problem in problems:
            print(f"{args.source}: {problem}")
        return EXIT_FOUND
    print(f"{args.source}: valid ({store.records} record(s) of {store.keys} people)", file=sys.stderr)
    return EXIT_OK
