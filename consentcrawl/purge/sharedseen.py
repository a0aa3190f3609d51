"""A distributed crawl's duplicates filter and seeds in Redis (beside ``--shared-queue REDIS_URL#KEY``): the purged
people's fingerprints, their claims and their seeds go.

**The dupefilter.** scrapy-redis's ``RFPDupeFilter``
(:class:`~consentcrawl.distributed.scheduler.ConsentRedisDupeFilter`) keeps ``SPIDER:dupefilter``
(``SCHEDULER_DUPEFILTER_KEY``), a set of the hex fingerprint of every request the cluster let into the queue,
and, for each one a worker added, a claim ``SPIDER:dupefilter:claim:FP`` for ten minutes. As in a ``JOBDIR``'s
``requests.seen`` (:mod:`.seen`), no URL can be read back from a fingerprint, but a
guessed one can be tested (fingerprint ``/u/1005``, ask the set), and the claim's key names the fingerprint too. So
the same fingerprints go (:func:`.seen.fingerprints`, with the crawl's fingerprinter: the removed queue entries, the
requests the audit logs name, the URLs the removed items held, the people's profile URLs), with their claims; and,
failing closed as there, when a fingerprint of the set is explained by none of these nor by a request known to be
someone else's, the whole set goes with every claim (unless ``--keep-seen``): the workers may fetch pages again,
each decided at send time. ``SREM`` and ``DEL`` take exact members and keys: a worker adding meanwhile keeps its
own.

**The seeds.** The list ``CONSENTCRAWL_REDIS_START_KEY`` (``%(name)s``: the spider's name) holds seeds not yet
popped: a URL, or ``{"url": ..., "meta": {...}}``. Each is read as a queued request (:func:`.queued.owner`), and the
selected people's are removed by their exact bytes (``LREM``).

The keys come from the queue's: ``SPIDER:requests`` (scrapy-redis's default ``SCHEDULER_QUEUE_KEY``) names the
spider. A queue key of another shape names no spider: its dupefilter and seeds cannot be found, and the purge says
so (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..facts import FactReader
from .common import PurgeFailed, Selection, TargetResult
from .queued import UNSURE, owner
from .seen import DROPPED, UNEXPLAINED, AuditSpan, Fingerprint, fingerprints, ranges
from .sharedqueue import glob_literal, parse, shown

__all__ = ["purge_shared_seen"]

DUPEFILTER, SEEDS = "shared-dupefilter", "shared-seeds"


def purge_shared_seen(spec: str, selection: Selection, fingerprint: Fingerprint, *, seeds_key: str | None = None,
                      dupefilter_key: str | None = None,
                      queued: Iterable[tuple[str | None, Mapping[str, Any]]] = (),
                      kept: Iterable[Mapping[str, Any]] = (), audit_logs: Iterable[Path | AuditSpan] = (),
                      keep_unattributed: bool = False, dry_run: bool = False) -> list[TargetResult]:
    """Purge the dupefilter and the seeds list of the queue ``spec`` names (module doc). ``seeds_key``,
    ``dupefilter_key``: the settings' templates (``%(name)s``, ``%(spider)s``); ``queued``, ``kept``: the queue's
    removed and kept requests (:func:`.sharedqueue.purge_shared_queue`). Raises :class:`PurgeFailed`."""
    url, key = parse(spec)
    spider, sep, last = key.rpartition(":")
    if not sep or last != "requests" or not spider:
        raise PurgeFailed(f"the queue key {key!r} is not SPIDER:requests: its dupefilter's fingerprints and its "
                          "seeds cannot be found, and were not purged")
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        results = [_dupefilter(client, spec, (dupefilter_key or "%(spider)s:dupefilter") % {"spider": spider},
                               selection, fingerprint, list(queued), kept, audit_logs, keep_unattributed, dry_run)]
        if seeds_key:
            results.append(_seeds(client, spec, seeds_key % {"name": spider}, selection, dry_run))
        return [r for r in results if r is not None]
    except redis.ResponseError as exc:
        raise PurgeFailed(f"Redis refused the dupefilter or the seeds: {str(exc).partition(' ')[0]}") from None
    except redis.RedisError as exc:
        raise PurgeFailed(f"Redis did not answer: {type(exc).__name__}") from None
    finally:
        client.close()


def _dupefilter(client: Any, spec: str, key: str, selection: Selection, fingerprint: Fingerprint,
                queued: list[tuple[str | None, Mapping[str, Any]]], kept: Iterable[Mapping[str, Any]],
                audit_logs: Iterable[Path | AuditSpan], keep_unattributed: bool, dry_run: bool) -> TargetResult | None:
    if client.type(key).decode() != "set":
        return None  # none (a crawl that never persisted), or not scrapy-redis's: nothing of ours to read
    members = sorted(client.smembers(key))
    result = TargetResult(f"{shown(spec).partition('#')[0]}#{key}", DUPEFILTER)
    held = [_fingerprint(member) for member in members]
    wanted, known = fingerprints(selection, fingerprint, result, set(held), queued=queued, kept=kept,
                                 audit_logs=audit_logs)
    gone: list[bytes] = []
    unexplained: list[int] = []
    for number, (member, fp) in enumerate(zip(members, held, strict=True), 1):
        if fp in wanted:
            result.remove(wanted[fp], f"{key}#{number}", member)
            gone.append(member)
        elif fp not in known:
            unexplained.append(number)
    drop = bool(unexplained) and bool(selection.people or queued) and not keep_unattributed
    everyone = [None, *selection.people.values()]
    dropped = [n for n, m in enumerate(members, 1) if drop and m not in gone]
    result.lists[UNEXPLAINED] = {who: ranges(unexplained) for who in everyone}
    result.lists[DROPPED] = {who: ranges(dropped) for who in everyone}
    result.kept = 0 if drop else len(members) - len(gone)
    if dry_run:
        return result
    if drop:
        client.delete(key)
        claims = list(client.scan_iter(match=f"{glob_literal(key)}:claim:*", count=1000))
    else:
        if gone:
            client.srem(key, *gone)
        claims = [f"{key}:claim:{member.decode('ascii', 'replace')}" for member in gone]
    for start in range(0, len(claims), 500):
        client.delete(*claims[start:start + 500])
    return result


def _fingerprint(member: bytes) -> bytes:
    """A member of the set as the fingerprinter gives it: the dupefilter stores ``fingerprint.hex()``; a member
    that is no hex is kept as it is (explained by nothing)."""
    try:
        return bytes.fromhex(member.decode("ascii"))
    except ValueError:
        return member


def _seeds(client: Any, spec: str, key: str, selection: Selection, dry_run: bool) -> TargetResult | None:
    if client.type(key).decode() != "list":
        return None
    result = TargetResult(f"{shown(spec).partition('#')[0]}#{key}", SEEDS)
    reader = FactReader(selection.platforms, "consentcrawl")
    unsure: list[str] = []
    for number, raw in enumerate(client.lrange(key, 0, -1), 1):
        who = _whose(raw, selection, reader)
        if who is None:
            result.kept += 1
            continue
        if not dry_run and not client.lrem(key, 1, raw):
            continue  # a worker popped it meanwhile: it is decided at send time
        where = f"{key}#{number}"
        result.remove(None if who == UNSURE else who, where, raw)
        if who == UNSURE:
            unsure.append(where)
    result.lists["unsure"] = dict.fromkeys([None, *selection.people.values()], unsure)
    return result


def _whose(raw: bytes, selection: Selection, reader: FactReader) -> str | None:
    """Whose a seed is, read as the worker reads it (:mod:`consentcrawl.distributed.seeds`): a URL, or JSON with a
    ``url`` and a ``meta``. One that is neither is unsure: it goes (the worker skips it anyway)."""
    try:
        text = raw.decode("utf-8").strip()
        entry = json.loads(text) if text.startswith("{") else {"url": text}
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            return UNSURE
        meta = entry.get("meta") or {}
        return owner({"url": entry["url"], "meta": meta if isinstance(meta, dict) else {}}, selection, reader,
                     len(raw))
    except (ValueError, RecursionError, PurgeFailed):
        return UNSURE

