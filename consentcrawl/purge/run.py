"""A purge over several targets, and its receipts.

Targets are told apart by what they are: a directory is an HTTP cache; a file starting with SQLite's header is an
item database; otherwise the name's suffix says the feed format (``.jsonl``/``.jl``/``.ndjson``, ``.json``,
``.csv``; a compression suffix after it, ``.gz``, ``.bz2``, ``.xz``, is passed over: :mod:`.compressed`). Item
targets are purged first, so that ``--expired`` knows whose items expired before it reads the cache (whose
entries carry no ``expires_at``). The files media pipelines stored go last: the items read say which
(:mod:`.media`), and an item kept anywhere keeps the files it names.

One receipt per person (``platform:id``; ``null`` for expired items that name no one) goes into the audit log as
an ``AuditLog.event("purge-receipt", ...)`` line: the purge's id, what selected them, and per target its path,
kind, where the records were (line numbers, ``table#rowid``, cache entry paths, stored files; a media store adds
``shared`` and ``absent`` files), how many, their size and the
SHA-256 of their bytes (each target's module says which bytes), and the kept records that lost the person's
mentions (``mentions_withheld``, ``mentions_where``: :mod:`.mentioned`). It holds no personal data beyond the
subject id.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scrapy.utils.request import fingerprint as scrapy_fingerprint

from ..audit.log import AuditLog
from .common import PurgeFailed, Selection, TargetResult
from .compressed import SUFFIXES
from .feeds import purge_csv, purge_json, purge_jsonlines
from .httpcache import entries, purge_httpcache
from .jobdir import QUEUE_DIR, purge_jobdir
from .media import MediaStore, erase_media
from .seen import SEEN, AuditSpan, Fingerprint, purge_seen
from .sharedqueue import purge_shared_queue, shown
from .sharedseen import purge_shared_seen
from .space import check_room
from .sqlite_items import SQLITE_HEADER, purge_sqlite

__all__ = ["PurgeRun", "kind_of", "purge"]

_FEEDS: dict[str, Callable[..., TargetResult]] = {
    "jsonlines": purge_jsonlines, "json": purge_json, "csv": purge_csv, "sqlite": purge_sqlite,
    "httpcache": purge_httpcache,
}
_SUFFIXES = {".jsonl": "jsonlines", ".jl": "jsonlines", ".ndjson": "jsonlines", ".json": "json", ".csv": "csv"}


def kind_of(path: Path) -> str:
    """The kind of target ``path`` is; raises PurgeFailed for one that does not exist or is of no known kind."""
    if path.is_dir():
        if not entries(path) and any(p.is_file() for p in path.rglob("*")):
            raise PurgeFailed("a directory that holds no HTTP cache entry: name the files in it to purge")
        return "httpcache"
    if not path.exists():
        raise PurgeFailed("no such file or directory")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise PurgeFailed(f"cannot read it: {exc.strerror or exc}") from None
    if head == SQLITE_HEADER:
        return "sqlite"
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in SUFFIXES:  # items.jsonl.gz: compressed by a FEEDS postprocessing
        suffixes.pop()
    kind = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if kind is None:
        raise PurgeFailed("not a feed, an SQLite database or a cache directory this purge knows "
                          "(.jsonl, .jl, .ndjson, .json, .csv; each also with .gz, .bz2 or .xz)")
    return kind


@dataclass
class PurgeRun:
    purge_id: str
    results: list[TargetResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  #: (target, why)

    @property
    def ok(self) -> bool:
        return not self.failed and not any(r.failures for r in self.results)

    def problems(self) -> list[tuple[str, str]]:
        return self.failed + [(r.path, why) for r in self.results for why in r.failures]

    def people(self) -> list[str | None]:
        seen: dict[str | None, None] = {}
        for result in self.results:
            seen.update(dict.fromkeys(result.removed))
            seen.update(dict.fromkeys(result.mentions))
        return list(seen)

    @property
    def mentioning(self) -> int:
        """How many kept records, over every target, lost the selected people's mentions."""
        return sum(result.mentioning for result in self.results)


def purge(targets: Sequence[Path], selection: Selection, *, dry_run: bool = False,
          keep: Sequence[Path] = (), media: Sequence[MediaStore] = (),
          items: Iterable[Mapping[str, Any]] = (), jobdirs: Sequence[Path] = (),
          fingerprint: Fingerprint | None = None, audit_logs: Sequence[Path | AuditSpan] = (),
          keep_seen: bool = False, shared_queues: Sequence[str] = (), own_queues: bool = False,
          seeds_key: str | None = None, dupefilter_key: str | None = None) -> PurgeRun:
    """Purge ``targets`` of what ``selection`` selects. ``keep``: files that must not be purged (the audit log the
    receipts go to: it is the evidence, and holds subject ids, not people's data). ``media``: the media pipelines'
    stores, where the files the removed items name are erased last (:mod:`.media`); a removed item naming stored
    files of a kind no store is given for is a failure. ``items``: more items to read for the files they name
    (those a crawl scraped, whatever output they went to), as the targets' are read. ``jobdirs``: paused crawls'
    ``JOBDIR``s, whose queued requests of the selected people go (:mod:`.jobdir`), after the items (a URL a removed
    item holds is theirs there too); the caller holds their locks (:mod:`.joblock`: the CLI takes them, a crawl's
    purge on close runs under its own). Their ``requests.seen`` loses the selected people's fingerprints
    (:mod:`.seen`), computed with ``fingerprint`` (the crawl's fingerprinter; Scrapy's default when None), of the
    removed queued requests and of the requests ``audit_logs`` name; or, when a fingerprint there is explained by
    nothing, the whole file goes (unless ``keep_seen``). ``shared_queues``: distributed crawls' queues in Redis
    (``REDIS_URL#KEY``, :mod:`.sharedqueue`), whose entries of the selected people go; ``own_queues``: they are
    the calling crawl's own (a queue it emptied is no mistyped key). Their dupefilter loses the people's
    fingerprints as ``requests.seen`` does, and their seeds list (``seeds_key``) their seeds (:mod:`.sharedseen`;
    ``dupefilter_key``: scrapy-redis's ``SCHEDULER_DUPEFILTER_KEY``)."""
    run = PurgeRun(uuid.uuid4().hex)
    for kind in {store.kind for store in media if store.field}:  # a store's own result field stands for the default
        selection.media.fields.pop(kind, None)
    selection.media.fields.update({store.field: store.kind for store in media if store.field})
    for item in items:
        selection.item(item)
    kinds: list[tuple[Path, str]] = []
    kept = [os.path.realpath(p) for p in keep]
    for given in targets:
        # a symbolic link's target is what holds the data: replacing the link would leave it as it was
        path = Path(os.path.realpath(given))
        try:
            if str(path) in kept:
                raise PurgeFailed("this is the audit log the receipts go to: it is evidence, and is not purged")
            kinds.append((path, kind_of(path)))
        except PurgeFailed as exc:
            run.failed.append((str(given), str(exc)))
    ordered = [k for k in kinds if k[1] != "httpcache"] + [k for k in kinds if k[1] == "httpcache"]
    for path, kind in ordered:
        if kind == "httpcache":
            _add_expired(run, selection)
        try:
            run.results.append(_FEEDS[kind](path, selection, dry_run=dry_run))
        except PurgeFailed as exc:
            run.failed.append((str(path), str(exc)))
    for jobdir in jobdirs:
        _add_expired(run, selection)
        real = Path(os.path.realpath(jobdir))
        removed: list[tuple[str | None, dict[str, Any]]] = []
        left: list[dict[str, Any]] = []
        try:
            if (real / QUEUE_DIR).is_dir():  # room for the copies first: a purge that runs out part-way is half done
                check_room(real / QUEUE_DIR, real / SEEN)
            run.results.append(purge_jobdir(real, selection, dry_run=dry_run, removed=removed, kept=left))
        except PurgeFailed as exc:  # a queue that cannot be read: the job directory, requests.seen too, untouched
            run.failed.append((str(jobdir), str(exc)))
            continue
        try:
            seen = purge_seen(real, selection, fingerprint or scrapy_fingerprint, queued=removed, kept=left,
                              audit_logs=audit_logs, keep_unattributed=keep_seen, dry_run=dry_run)
        except PurgeFailed as exc:
            run.failed.append((str(real / SEEN), str(exc)))
            continue
        if seen is not None:
            run.results.append(seen)
    for spec in shared_queues:  # a distributed crawl's queue in Redis (.sharedqueue), read as a JOBDIR's queues
        _add_expired(run, selection)
        taken: list[tuple[str | None, dict[str, Any]]] = []
        left = []
        try:
            run.results.append(purge_shared_queue(spec, selection, dry_run=dry_run, own=own_queues,
                                                  removed=taken, kept=left))
        except PurgeFailed as exc:  # its dupefilter too, untouched: which fingerprints are whose is not known
            run.failed.append((shown(spec), str(exc)))
            continue
        try:
            run.results += purge_shared_seen(spec, selection, fingerprint or scrapy_fingerprint, seeds_key=seeds_key,
                                             dupefilter_key=dupefilter_key, queued=taken, kept=left,
                                             audit_logs=audit_logs, keep_unattributed=keep_seen, dry_run=dry_run)
        except PurgeFailed as exc:
            run.failed.append((shown(spec), str(exc)))
    results, failed = erase_media(list(media), selection.media, dry_run=dry_run)
    run.results += results
    run.failed += failed
    return run


def _add_expired(run: PurgeRun, selection: Selection) -> None:
    """With ``--expired``: the people whose items expired, so that their cached pages and queued requests go."""
    if selection.expired_at is None:
        return
    for result in run.results:
        for who in result.removed:
            if who is not None:
                platform, _, subject = who.partition(":")
                selection.add_person(platform, subject)


def receipts(run: PurgeRun, selection: str, people: Sequence[str | None],
             fields: Mapping[str | None, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One receipt per person in ``people`` (those asked for, and any others found), as event fields; ``fields``:
    a person's own (the purge on close: what selected them, and ``because``), over ``selection``."""
    everyone = list(dict.fromkeys([*people, *run.people()])) or [None]
    out: list[dict[str, Any]] = []
    for who in everyone:
        targets = []
        for result in run.results:
            removed = result.removed.get(who)
            targets.append({
                "path": result.path,
                "kind": result.kind,
                "removed": len(removed.where) if removed else 0,
                "where": removed.where if removed else [],
                "bytes": removed.size if removed else 0,
                "sha256": removed.digest.hexdigest() if removed else None,
                **{name: lists.get(who, []) for name, lists in result.lists.items()},
                "mentions_withheld": len(result.mentions.get(who, [])),
                "mentions_where": result.mentions.get(who, []),
            })
        out.append({
            "purge_id": run.purge_id,
            "subject": who,
            "selection": selection,
            **(fields or {}).get(who, {}),
            "targets": targets,
            "removed": sum(t["removed"] for t in targets),
            "mentions_withheld": sum(t["mentions_withheld"] for t in targets),
            "failed": [{"path": path, "why": why} for path, why in run.problems()],
        })
    return out


def write_receipts(log: AuditLog, fields: Sequence[dict[str, Any]], time: datetime) -> None:
    for receipt in fields:
        log.event("purge-receipt", receipt, time=time)
