"""``consentcrawl purge``: erase people's data from feeds, SQLite item databases, the HTTP cache, the files media
pipelines stored (``--files-store``, ``--images-store``, or the settings' stores), a paused crawl's queued
requests (``--jobdir``) and a distributed crawl's (``--shared-queue``).

Exit codes: 0 done (everything selected is gone, receipts written), 1 something could not be purged (each named,
with why), 2 usage or configuration error (nothing touched).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AuditUnavailable, ConfigError
from .common import Selection
from .joblock import JobdirLock
from .media import MediaStore, stores_from_settings
from .run import PurgeRun, purge, receipts, write_receipts
from .seen import SEEN, Fingerprint, fingerprinter_for, notice
from .sharedqueue import KIND as SHARED_QUEUE
from .sharedqueue import parse as parse_queue
from .sharedqueue import shown
from .sharedseen import DUPEFILTER, SEEDS

__all__ = ["add_parser", "cmd_purge"]

EXIT_DONE, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("purge", help="erase people's data from feeds, SQLite item databases and the HTTP "
                                          "cache, with a receipt in the audit log")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", metavar="PLATFORM:ID", action="append",
                     help="the person whose data goes (repeat for several)")
    who.add_argument("--withdrawn", action="store_true",
                     help="everyone the authorization store says has withdrawn")
    who.add_argument("--expired", action="store_true", help="every item whose expires_at has passed")
    parser.add_argument("targets", metavar="TARGET", nargs="*", type=Path,
                        help="a feed (.jsonl, .json, .csv), an SQLite item database, or an HTTP cache directory")
    parser.add_argument("--jobdir", metavar="DIR", action="append", type=Path, default=[],
                        help="a paused crawl's JOBDIR: the people's requests waiting in its disk queues go "
                             "(repeat for several)")
    parser.add_argument("--shared-queue", metavar="REDIS_URL#KEY", action="append", default=[],
                        help="a distributed crawl's queue in Redis (KEY: SCHEDULER_QUEUE_KEY, SPIDER:requests): the "
                             "people's requests waiting there go (repeat for several)")
    parser.add_argument("--read-log", metavar="LOG", action="append", type=Path, default=[],
                        help="another audit log of the crawl (another worker's, a rotated one): the requests it "
                             "names explain a --jobdir's requests.seen too (repeat for several)")
    parser.add_argument("--keep-seen", action="store_true",
                        help="keep a --jobdir's requests.seen when some fingerprint there is explained by nothing "
                             "(by default the whole file goes: the purge cannot prove none is the people's)")
    parser.add_argument("--dry-run", action="store_true", help="print what would go; change and write nothing")
    parser.add_argument("--audit-log", metavar="LOG", help="where the receipt goes (default: CONSENTCRAWL_AUDIT_LOG)")
    parser.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
    parser.add_argument("--platforms", metavar="FILE", help="platform terms YAML (overrides the settings)")
    parser.add_argument("--authorizations", metavar="SRC", help="authorization records (overrides the settings)")
    parser.add_argument("--now", metavar="TIME", help="judge withdrawals and expiry as of this ISO-8601 time")
    parser.add_argument("--files-store", metavar="DIR", type=Path,
                        help="FilesPipeline's FILES_STORE: the files the removed items name go (default: the "
                             "settings' media pipelines and stores)")
    parser.add_argument("--images-store", metavar="DIR", type=Path,
                        help="ImagesPipeline's IMAGES_STORE: the images and thumbnails the removed items name go")
    parser.set_defaults(func=cmd_purge)


def _settings(args: argparse.Namespace) -> Any:
    from ..cli import settings_for
    from ..settings import as_settings

    # every setting: the media pipelines and their stores (ITEM_PIPELINES, FILES_STORE...) besides CONSENTCRAWL_*
    return as_settings(settings_for(args, everything=True))


def media_stores(args: argparse.Namespace, settings: Any) -> list[MediaStore]:
    """The stores whose files the removed items name: ``--files-store``/``--images-store``, each in place of the
    settings' store of its kind (the media pipelines in ITEM_PIPELINES, FILES_STORE, IMAGES_STORE)."""
    from scrapy.pipelines.images import ImagesPipeline

    from .media_names import FILES, IMAGES
    from .media_thumbs import thumb_namer

    given = {FILES: args.files_store, IMAGES: args.images_store}
    for kind, path in given.items():
        if path is not None and not path.is_dir():
            raise ConfigError(f"{path} is not a directory", source=f"--{kind}-store")
    stores = [s for s in stores_from_settings(settings) if given.get(s.kind) is None]
    for store in stores:
        if store.thumbs is not None:
            store.thumbs.build(settings)
    for kind, path in given.items():
        if path is not None:
            key = f"{kind.upper()}_RESULT_FIELD"
            stores.append(MediaStore(kind, str(path), f"--{kind}-store", str(settings.get(key) or kind),
                                     thumb_namer(ImagesPipeline, settings) if kind == IMAGES else None))
    return stores


def purge_time(given: datetime | None) -> datetime:
    """The time withdrawals and expiries are judged at: the clock, or ``--now``/``CONSENTCRAWL_NOW`` when it is
    later. An earlier one (a replay setting left in the project, a ``--now`` typed for another purpose) would keep
    the data of a person who has withdrawn since, saying done: a purge never keeps what the clock says must go. It
    says so on stderr."""
    clock = datetime.now(timezone.utc)
    if given is None or given >= clock:
        return given or clock
    print(f"consentcrawl purge: --now/CONSENTCRAWL_NOW {given.isoformat()} is before the clock; withdrawals and "
          f"expiries are judged as of the clock, {clock.isoformat(timespec='seconds')}: a purge never keeps what "
          "has to go by now", file=sys.stderr)
    return clock


def build_selection(args: argparse.Namespace) -> tuple[Selection, str, list[str | None], Any, datetime]:
    """What the arguments select: (selection, its name, the people asked for, the settings, now)."""
    from ..config import DEFAULT_PLATFORMS
    from ..settings import read
    from ..terms.load import load_platforms

    settings = _settings(args)
    files = read(settings, "CONSENTCRAWL_PLATFORMS")
    if files is None:
        files = (str(DEFAULT_PLATFORMS),) if DEFAULT_PLATFORMS.exists() else ()
    if not files:
        raise ConfigError("no platforms file: whose page a URL is, and how ids compare, come from the platforms "
                          "(use --platforms FILE or --settings MODULE)", source="CONSENTCRAWL_PLATFORMS")
    platforms = load_platforms(list(files))
    now = purge_time(read(settings, "CONSENTCRAWL_NOW"))
    selection = Selection(platforms, subject_field=read(settings, "CONSENTCRAWL_SUBJECT_FIELD"),
                          provenance_field=read(settings, "CONSENTCRAWL_PROVENANCE_FIELD"))
    people: list[str | None] = []
    if args.subject:
        for text in args.subject:
            platform, sep, subject = text.partition(":")
            if not sep or not subject.strip():
                raise ConfigError(f"{text!r} is not PLATFORM:ID (e.g. microblog:1001)", source="--subject")
            if platform not in platforms:
                raise ConfigError(f"platform {platform!r} is not configured (configured: "
                                  f"{', '.join(sorted(platforms.platforms)) or 'none'})", source="--subject")
            people.append(selection.add_person(platform, subject.strip()))
        return selection, "subject", people, settings, now
    if args.expired:
        selection.expired_at = now
        return selection, "expired", people, settings, now
    from .withdrawn import all_records, withdrawn

    source = read(settings, "CONSENTCRAWL_AUTHORIZATIONS")
    if not source:
        raise ConfigError("--withdrawn needs the authorization store (use --authorizations SRC or --settings "
                          "MODULE)", source="CONSENTCRAWL_AUTHORIZATIONS")
    records = all_records(source, platforms, settings)
    for platform, subject in withdrawn(records, platforms, now):
        people.append(selection.add_person(platform, subject))
    return selection, "withdrawn", people, settings, now


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.targets and not args.jobdir and not args.shared_queue:
        raise ConfigError("nothing to purge: name a TARGET or a --jobdir DIR (or a --shared-queue REDIS_URL#KEY)",
                          source="consentcrawl purge")
    for spec in args.shared_queue:  # a usage error before anything is touched
        parse_queue(spec)
    for log in args.read_log:  # read for what it names: one that is not there would explain nothing, silently
        if not log.is_file():
            raise ConfigError(f"{log} is not a file", source="--read-log")
    selection, name, people, settings, _ = build_selection(args)
    media = media_stores(args, settings)
    # as the crawl computed the fingerprints in requests.seen: a fingerprinter that cannot be built stops here
    fingerprint = fingerprinter_for(settings, selection.platforms) if args.jobdir else None
    with contextlib.ExitStack() as held:
        for jobdir in args.jobdir:  # before anything is opened or read: a running crawl's JOBDIR is refused
            held.enter_context(JobdirLock.take(jobdir, "--jobdir", create=False))
        return _purge(args, selection, name, people, settings, media, fingerprint)


def _purge(args: argparse.Namespace, selection: Selection, name: str, people: list[str | None], settings: Any,
           media: list[MediaStore], fingerprint: Fingerprint | None) -> int:
    from ..audit.log import AuditLog
    from ..settings import read

    log = None
    if not args.dry_run:
        path = args.audit_log or read(settings, "CONSENTCRAWL_AUDIT_LOG")
        if not path:
            raise ConfigError("no audit log for the receipt (use --audit-log LOG)", source="CONSENTCRAWL_AUDIT_LOG")
        # opened before anything is removed: a purge with nowhere to put its receipt fails first
        log = AuditLog(path, header={"writer": "consentcrawl purge", "selection": name,
                                     "targets": [str(t) for t in [*args.targets, *args.jobdir]]
                                     + [shown(spec) for spec in args.shared_queue]})
    if name == "withdrawn" and not people:
        print("no withdrawal in force: nothing to purge")
    keep = [log.path] if log is not None and log.path is not None else []
    if people or name == "expired":
        # the crawl's log names the requests it decided for each person: their fingerprints leave requests.seen
        logs = [Path(p) for p in dict.fromkeys([args.audit_log, read(settings, "CONSENTCRAWL_AUDIT_LOG"),
                                                *args.read_log]) if p]
        run = purge(args.targets, selection, dry_run=args.dry_run, keep=keep, media=media, jobdirs=args.jobdir,
                    fingerprint=fingerprint, audit_logs=logs, keep_seen=args.keep_seen,
                    shared_queues=args.shared_queue, seeds_key=read(settings, "CONSENTCRAWL_REDIS_START_KEY"),
                    dupefilter_key=settings.get("SCHEDULER_DUPEFILTER_KEY"))
    else:
        run = PurgeRun("-")
    report(run, args.dry_run)
    status = EXIT_DONE if run.ok else EXIT_FAILED
    if log is not None:
        fields = receipts(run, name, people) if people or run.results else []
        try:
            write_receipts(log, fields, datetime.now(timezone.utc))
            log.close()
        except AuditUnavailable as exc:
            _receipt_lost(log, fields, exc)
            return EXIT_FAILED
        print(f"receipt: {log.path}")
    return status


def _receipt_lost(log: Any, fields: list[dict[str, Any]], exc: AuditUnavailable) -> None:
    """The data is gone but its proof is not in the log: say so, and print the receipts (subject ids and hashes,
    no personal data) so the operator can keep them; the removed bytes cannot be hashed again."""
    try:
        log.close()
    except AuditUnavailable:
        pass
    print(f"consentcrawl purge: the data above was removed, but its receipt could not be written to {log.path}: "
          f"{exc}. Keep the receipt(s) below: they are the only record of what was removed. A line the log took "
          "only part of is cut off (and recorded) by its next writer; `consentcrawl audit verify` shows it until "
          "then.", file=sys.stderr)
    for receipt in fields:
        print(json.dumps({"event": "purge-receipt", **receipt}, sort_keys=True), file=sys.stderr)


def report(run: PurgeRun, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for result in run.results:
        jobdir = result.kind in ("jobdir", SHARED_QUEUE, SEEDS)
        seen = result.kind in (SEEN, DUPEFILTER)
        for who, removed in result.removed.items():
            where = ", ".join(map(str, removed.where[:10])) + (", ..." if len(removed.where) > 10 else "")
            whose = who or ("unsure whose" if jobdir else "no one named")
            unit = "request" if jobdir else "fingerprint" if seen else "record"
            print(f"{result.path} ({result.kind}): {verb} {len(removed.where)} {unit}(s) of {whose} ({where})")
        said = notice(result, escape="--keep-seen", dry_run=dry_run) if seen else None
        if said:
            print(f"consentcrawl purge: {said}", file=sys.stderr)
        for name, lists in [] if jobdir or seen else result.lists.items():  # a media store's files
            for who, names in lists.items():
                print(f"{result.path} ({result.kind}): {len(names)} {name} file(s) of {who or 'no one named'} not "
                      f"removed ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
        for who, records in result.mentions.items():  # kept records that lost the person's mentions
            print(f"{result.path} ({result.kind}): {'would withhold' if dry_run else 'withheld'} the mentions of "
                  f"{who} in {len(records)} kept record(s) ({', '.join(map(str, records[:10]))}"
                  f"{', ...' if len(records) > 10 else ''})")
        if not result.removed and not result.mentions and not said:
            print(f"{result.path} ({result.kind}): nothing to remove")
    for path, why in run.problems():
        print(f"consentcrawl purge: {path}: {why}", file=sys.stderr)
