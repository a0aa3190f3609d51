"""A distributed crawl's shared queue in Redis (``--shared-queue REDIS_URL#KEY``): the people's requests go.

A distributed crawl keeps its queue in Redis (``SCHEDULER_PERSIST = True``, :mod:`consentcrawl.distributed`), so a
crawl stopped early leaves every request it queued there, as a paused crawl's ``JOBDIR`` keeps them on disk: each
one's URL, headers, meta and ``cb_kwargs``, the person's data at rest. The queue key (scrapy-redis's
``SCHEDULER_QUEUE_KEY``, ``SPIDER:requests`` by default) holds entries in consentcrawl's JSON format
(:mod:`consentcrawl.distributed.serializer`); beside it, ``KEY:inflight:WORKER`` hashes hold what each worker popped
(a killed worker's stay until another worker takes them back), and ``KEY:refused`` what the workers set aside.

Each entry is read as the ``JOBDIR`` purge reads a queued request (:func:`.queued.owner`: its URL with everything a
server reads a person from, every URL and item it carries; several people or none readable: *unsure*, it goes),
and the selected people's are removed by their exact bytes (``ZREM``, ``HDEL``): a worker popping meanwhile takes
the others untouched. The three places are read in one step (:data:`_SNAPSHOT`): a worker moves an entry between
them atomically, and read one after another, one put back behind the purge's read was in none. An entry of theirs
that moved between the read and its removal is looked for again where it went (a worker that sent it meanwhile
decided it at send time). An entry that is no request in that format (a pickle set aside in ``KEY:refused``) cannot be
told whose it is: it is kept, and the purge fails naming how many. The duplicates filter's fingerprints
(``SPIDER:dupefilter``) and the seeds list are purged after it (:mod:`.sharedseen`). A key that is no such queue,
or that does not exist with nothing a crawl of it leaves beside it (a typo), fails the purge naming it
(:func:`_confirm`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..distributed import serializer
from ..errors import ConfigError
from ..facts import FactReader
from .common import PurgeFailed, Selection, TargetResult
from .queued import UNSURE, owner

__all__ = ["glob_literal", "parse", "purge_shared_queue", "shown"]

KIND = "shared-queue"


#: KEYS: the queue, its ``refused`` set, the in-flight hashes. Everything the purge reads, in one step: the workers
#: move an entry between these (a pop, a put-back, a dead worker's taken back) atomically, so a purge that read them
#: one after another could miss one moving behind it and say done. The hashes are found by ``SCAN`` before and after
#: (:func:`_read`), not by ``KEYS`` here, which would block a shared Redis for as long as it has keys
_SNAPSHOT = """
local out = {redis.call('ZRANGE', KEYS[1], 0, -1), redis.call('ZRANGE', KEYS[2], 0, -1)}
for i = 3, #KEYS do
  table.insert(out, KEYS[i])
  table.insert(out, redis.call('HGETALL', KEYS[i]))
end
return out
"""
#: how many times the queue is read again while the people's entries move between the purge's read and removal
_PASSES = 3


def purge_shared_queue(spec: str, selection: Selection, *, dry_run: bool = False, own: bool = False,
                       removed: list[tuple[str | None, dict[str, Any]]] | None = None,
                       kept: list[dict[str, Any]] | None = None) -> TargetResult:
    """Remove the selected people's entries from the queue ``spec`` names (``REDIS_URL#KEY``). ``own``: the queue
    is the calling crawl's (its purge on close), so one that is gone was emptied, not mistyped (:func:`_confirm`).
    ``removed`` gets (whose, request) of each entry removed, ``kept`` each request left (their fingerprints are
    told apart in the dupefilter, :mod:`.sharedseen`)."""
    url, key = parse(spec)
    result = TargetResult(shown(spec), KIND)
    try:
        import redis
    except ImportError:
        raise PurgeFailed("needs redis-py: pip install 'consentcrawl[distributed]'") from None
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    reader = FactReader(selection.platforms, "consentcrawl")
    unsure: list[str] = []
    try:
        _confirm(client, key, own)
        snapshot = client.register_script(_SNAPSHOT)
        for _ in range(_PASSES):  # again while entries of theirs moved under the purge (a worker's pop, put-back)
            result.kept, unreadable, moved = 0, 0, 0
            left: list[dict[str, Any]] = []
            for name, entries in _places(key, _read(client, snapshot, key)):
                for number, (field, raw) in enumerate(entries, 1):
                    who, request = _whose(raw, selection, reader)
                    if who == _UNREADABLE:
                        unreadable += 1
                        continue
                    if who is None:
                        result.kept += 1
                        left.append(request)
                        continue
                    if not (dry_run or (client.zrem(name, raw) if field is None else client.hdel(name, field))):
                        moved += 1  # read again: found where it went (a worker that sent it decided it then)
                        continue
                    where = f"{name}#{number}"
                    result.remove(None if who == UNSURE else who, where, raw)
                    if removed is not None:
                        removed.append((None if who == UNSURE else who, request))
                    if who == UNSURE:
                        unsure.append(where)
            if not moved:
                break
        if kept is not None:
            kept += left
    except redis.ResponseError as exc:  # its first word is Redis's error code (WRONGTYPE, NOPERM): no credential
        raise PurgeFailed(f"Redis refused to read the queue: {str(exc).partition(' ')[0]}") from None
    except redis.RedisError as exc:
        raise PurgeFailed(f"Redis did not answer: {type(exc).__name__}") from None
    finally:
        client.close()
    if moved:
        result.failures.append(f"{moved} of the people's entr{'y' if moved == 1 else 'ies'} kept moving between "
                               f"workers over {_PASSES} reads: purge again once the workers have stopped")
    if unreadable:
        result.failures.append(f"{unreadable} entr{'y' if unreadable == 1 else 'ies'} not in consentcrawl's queue "
                               "format (a pickle set aside): cannot tell whose, kept")
    result.lists["unsure"] = dict.fromkeys([None, *selection.people.values()], unsure)
    return result


def _confirm(client: Any, key: str, own: bool) -> None:
    """Raises PurgeFailed, naming the key, unless ``key`` is a scrapy-redis queue as consentcrawl's workers keep it:
    the queue and ``KEY:refused`` sorted sets (a ``PriorityQueue``'s), the in-flight entries hashes. A key of another
    type (a string, a list: another key named by mistake, or a ``FifoQueue``'s) is no queue this purge can read. A
    queue that does not exist, with no key beside it that a crawl of it leaves (``KEY:...``: its in-flight hashes,
    ``KEY:refused``, the workers' ``KEY:callbacks``; and ``SPIDER:dupefilter`` for a ``SPIDER:requests`` key, which a
    persisting crawl keeps), is a typo or another database, not an emptied queue: a purge that found nothing there
    would say done of an erasure done nowhere. Unless ``own``: the crawl that purges on close ran that queue."""
    kind = client.type(key).decode()
    places = [(key, kind), (f"{key}:refused", client.type(f"{key}:refused").decode())]
    places += [(name.decode("utf-8", "replace"), client.type(name).decode())
               for name in client.scan_iter(match=f"{glob_literal(key)}:inflight:*", count=1000)]
    for name, held in places:
        wanted = "hash" if ":inflight:" in name[len(key):] else "zset"
        if held not in (wanted, "none"):
            raise PurgeFailed(f"{name!r} is not a scrapy-redis queue's: it is a Redis {held}, not a "
                              f"{'sorted set' if wanted == 'zset' else wanted} (the queue is scrapy-redis's "
                              "PriorityQueue); nothing removed")
    if kind != "none" or own:
        return
    spider, sep, last = key.rpartition(":")
    beside = [f"{key}:*"] + ([f"{spider}:dupefilter"] if sep and last == "requests" else [])
    if any(True for _ in client.scan_iter(match=f"{glob_literal(key)}:*", count=1000)) \
            or (len(beside) > 1 and client.exists(beside[1])):
        return
    raise PurgeFailed(f"no key {key!r} in this Redis database, nor any a crawl of that queue leaves beside it "
                      f"({', '.join(beside)}): a mistyped key or database? nothing removed")


#: an entry that is no request in consentcrawl's queue format
_UNREADABLE = "(unreadable)"


def _whose(raw: bytes, selection: Selection, reader: FactReader) -> tuple[str | None, dict[str, Any]]:
    """Whose an entry is (:func:`.queued.owner`), or :data:`_UNREADABLE`, and the request it holds."""
    try:
        request = serializer.loads(raw)
        if not isinstance(request, dict) or not isinstance(request.get("url"), str):
            raise serializer.UnreadableEntry("not a request")
        return owner(request, selection, reader, len(raw)), request
    except (serializer.UnreadableEntry, PurgeFailed):
        return _UNREADABLE, {}


def _read(client: Any, snapshot: Any, key: str) -> list[Any]:
    """The queue, its refused set and every in-flight hash, read in one step. The hashes are named by a ``SCAN``
    before it; one a ``SCAN`` after it finds that the first did not (a worker's first pop, moving an entry out of
    the queue between the two) means the read is made again: a hash made after the second ``SCAN`` began holds
    only what the read found in the queue."""
    pattern = f"{glob_literal(key)}:inflight:*"
    names = sorted(set(client.scan_iter(match=pattern, count=1000)))
    while True:
        read = snapshot(keys=[key, f"{key}:refused", *names])
        now = sorted(set(client.scan_iter(match=pattern, count=1000)))
        if set(now) <= set(names):
            return list(read)
        names = sorted(set(names) | set(now))


def _places(key: str, read: list[Any]) -> list[tuple[str, list[tuple[Any, bytes]]]]:
    """The snapshot's keys and their entries: (a hash field, or None for a sorted set's member; the entry)."""
    queue, refused, *held = read
    places: list[tuple[str, list[tuple[Any, bytes]]]] = [
        (key, [(None, raw) for raw in queue]), (f"{key}:refused", [(None, raw) for raw in refused])]
    for name, flat in zip(held[::2], held[1::2], strict=True):
        places.append((name.decode("utf-8", "replace"), list(zip(flat[::2], flat[1::2], strict=True))))
    return places


def parse(spec: str) -> tuple[str, str]:
    """The Redis URL and the queue key ``REDIS_URL#KEY`` names; a ConfigError for anything else."""
    url, _, key = spec.partition("#")
    if not url.startswith(("redis://", "rediss://", "unix://")) or not key:
        raise ConfigError(f"{shown(spec)!r} is not REDIS_URL#KEY (KEY: the queue's key, scrapy-redis's "
                          "SCHEDULER_QUEUE_KEY, SPIDER:requests by default)", source="--shared-queue")
    try:
        import redis
    except ImportError:  # said when the queue is purged (needs redis-py)
        return url, key
    try:  # a connection built (not opened) as redis-py builds it from the URL: a port that is no number, a query
        client = redis.Redis.from_url(url)  # parameter it has no use for, is a usage error, not a traceback later
        client.connection_pool.make_connection().disconnect()
        client.close()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{shown(spec)!r}: not a Redis URL redis-py can use ({type(exc).__name__})",
                          source="--shared-queue") from None
    return url, key


#: query parameters redis-py reads as credentials (``redis://host/0?password=...``; any ``*password*`` too:
#: ``ssl_password``)
_CREDENTIALS = frozenset({"password", "username"})


def shown(spec: str) -> str:
    """``REDIS_URL#KEY`` without a user or password, in its user part or its query (redis-py reads
    ``?password=``): a receipt, a message holds no credential."""
    url, _, key = spec.partition("#")
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:  # a URL urllib cannot split: nothing of it shown
        return f"(an unreadable Redis URL)#{key}"
    query = urlencode([(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
                       if name.lower() not in _CREDENTIALS and "password" not in name.lower()])
    return f"{urlunsplit((parts.scheme, netloc, parts.path, query, ''))}#{key}"


def glob_literal(key: str) -> str:
    """``key`` as a literal in a Redis ``SCAN MATCH`` pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in key)
