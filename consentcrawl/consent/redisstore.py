"""Authorization records in Redis: ``CONSENTCRAWL_AUTHORIZATIONS = "redis://host:6379/0"``, for crawls spread over
machines that must all stop fetching a person within a second of their withdrawal.

Key layout (``PREFIX`` is ``consentcrawl:authorizations`` unless the URL says ``?prefix=...``):

- ``PREFIX:records:{platform}:{subject key}``: a hash per person; each field is one record's identity (its
  ``record_id``, else a digest of its purposes and times, the rule the files use for duplicates), each value the
  record as JSON with the YAML format's fields. A withdrawal is a record of its own; nothing is ever overwritten.
- ``PREFIX:seq``: a counter, one more for every record written.
- ``PREFIX:changes``: a stream, one entry (``seq``, ``platform``, ``subject``) per record written, capped at about
  a million entries.
- ``PREFIX:subject_keys``: a hash, each platform's subject key rule as of its first import (``nfkc-casefold`` or
  ``nfkc``, :mod:`~consentcrawl.consent.keys`). People are placed by key, so records keyed under one rule are
  not found under another (a withdrawal written ``Alice`` while the platform was case-sensitive is not under
  ``alice``): a store read, or imported into, under a rule other than the recorded one fails, as an SQLite store
  does.

A record is written by one Lua script (hash, counter and stream together), so a reader never sees a record without
its stream entry; an import's records are written in one transaction (:func:`import_records`), all or nothing.
:class:`RedisStore` reads a person with ``HVALS`` into a bounded LRU, and follows the stream from a task on the
crawl's event loop with ``XREAD BLOCK``: each entry drops that person's answer and changes the version at once. Each
round also reads ``PREFIX:seq``; a gap in the entries' ``seq``, or a counter gone backwards (the stream trimmed past
us, the database flushed or replaced) drops every answer. When the server does not answer for 0.75 s, or a command
fails, every lookup raises :class:`~consentcrawl.errors.StoreUnavailable` (``error.store-unavailable``) until it
answers again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from .httpapi import close_with, public_url
from .keys import key_function, platform_objects, rule_of
from .records import AuthorizationRecord
from .remote import CACHE_SIZE, MIN_POLL, FeedStore, record_to_json, records_from_json

__all__ = ["DEFAULT_PREFIX", "RedisStore", "client_options", "import_records", "list_records"]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "consentcrawl:authorizations"
STREAM_MAXLEN = 1_000_000

#: KEYS: the person's hash, the counter, the stream, the import's flag; ARGV: field, record JSON, platform, subject
#: key, maxlen. Returns the record's seq, 0 when the hash already holds that very record (importing a file again),
#: -1 when it holds another record under the same identity (:data:`_GUARD` saw to it that none does), or -2 when a
#: guard of the same import found one: nothing of the import is written.
_WRITE = """
if redis.call('GET', KEYS[4]) ~= 'ok' then return -2 end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  if held == ARGV[2] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'seq', n, 'platform', ARGV[3], 'subject', ARGV[4])
return n
"""
#: KEYS: the import's flag, then the people's hashes; ARGV: each one's field and record JSON. The first record
#: (from 1) whose identity the store holds with another record, after which the flag says no; 0: none.
_GUARD = """
if redis.call('GET', KEYS[1]) ~= 'ok' then return 0 end
for i = 2, #KEYS do
  local held = redis.call('HGET', KEYS[i], ARGV[2 * i - 3])
  if held and held ~= ARGV[2 * i - 2] then
    redis.call('SET', KEYS[1], 'no', 'KEEPTTL')
    return i - 1
  end
end
return 0
"""
#: KEYS: the import's flag, the rules hash; ARGV: platform, its rule, and 1 to record it (else only check it). The
#: rule recorded when it is another (the flag then says no), else false.
_RULE = """
if redis.call('GET', KEYS[1]) ~= 'ok' then return false end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held and held ~= ARGV[2] then
  redis.call('SET', KEYS[1], 'no', 'KEEPTTL')
  return held
end
if ARGV[3] == '1' then redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) end
return false
"""


def client_options(timeout: float, **extra: Any) -> dict[str, Any]:
    """Options for an asynchronous client (this store's, and a distributed crawl's shared state): short timeouts;
    one immediate retry of a command whose pooled connection the server closed (a restart), so the first command
    on each pooled connection after a restart is not denied for a stale connection. A server still down fails
    the retry too: the caller denies."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 1), "retry_on_error": [RedisConnectionError], **extra}


@dataclass(frozen=True)
class RedisURL:
    url: str  #: for the client: the URL without our own parameters
    prefix: str
    source: str  #: for evidence and logs: without a password

    def records_key(self, platform: str, key: str) -> str:
        return f"{self.prefix}:records:{platform}:{key}"

    @property
    def seq_key(self) -> str:
        return f"{self.prefix}:seq"

    @property
    def stream_key(self) -> str:
        return f"{self.prefix}:changes"

    @property
    def rules_key(self) -> str:
        return f"{self.prefix}:subject_keys"


def rule_mismatch(held: dict[str, str], platforms: Any) -> str | None:
    """Why the records of a platform cannot be read under the configured key rule, or None (the module doc)."""
    from .sqlite_format import _RULE_TEXT

    objects = platform_objects(platforms)
    for name, recorded in sorted(held.items()):
        platform = objects.get(name)
        if platform is not None and rule_of(platform) != recorded:
            return (f"indexes the subjects of platform {name!r} {_RULE_TEXT.get(recorded, recorded)}, but the "
                    f"platforms file makes them {_RULE_TEXT[rule_of(platform)]}: import the records into a new "
                    "prefix (?prefix=...)")
    return None


def parse_redis_url(url: str) -> RedisURL:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"{public_url(url)!r} is not a redis:// or rediss:// URL",
                          source="CONSENTCRAWL_AUTHORIZATIONS")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    if not prefix or any(c.isspace() for c in prefix):
        raise ConfigError("the prefix of a Redis store must be a word without spaces",
                          source="CONSENTCRAWL_AUTHORIZATIONS")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    return RedisURL(client_url, prefix, public_url(url))


def record_field(record: AuthorizationRecord) -> str:
    """The hash field of a record: its ``record_id``, else its grant (the duplicate rule of the files)."""
    if record.record_id:
        return f"id:{record.record_id}"
    grant = json.dumps([sorted(record.purposes), record.granted_at.isoformat(),
                        record.revoked_at.isoformat() if record.revoked_at else None])
    return "grant:" + hashlib.blake2b(grant.encode(), digest_size=12).hexdigest()


class RedisStore(FeedStore):
    """The store for ``redis://`` and ``rediss://`` URLs (see the module doc)."""

    stale_after = 0.75  #: the 1-second bound, less the time a decision takes to reach the network

    def __init__(self, url: str, platforms: PlatformRegistry, *, poll: float = 0.25, timeout: float = 1.0,
                 cache_size: int = CACHE_SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = parse_redis_url(url)
        super().__init__(self.url.source, platforms, cache_size=cache_size, clock=clock)
        self.block = max(min(poll, self.stale_after / 3), MIN_POLL)  #: seconds an XREAD waits for news
        self.timeout = timeout
        self._client: Any = None
        self._last_id: str | None = None  #: the stream entry last read (None: start from scratch)
        self._last_seq = 0

    def __repr__(self) -> str:
        return f"<RedisStore {self.source}>"

    def _start(self) -> None:
        import redis.asyncio

        self._last_id = None
        self._client = redis.asyncio.Redis.from_url(
            self.url.url, **client_options(self.timeout, socket_timeout=self.block + self.timeout,
                                           decode_responses=True))

    async def _stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _cause(self, exc: BaseException) -> str:
        return f"authorization store {self.source} failed: {type(exc).__name__}: {exc}"

    async def _fetch(self, platform: str, key: str) -> tuple[AuthorizationRecord, ...]:
        client = self._client
        if client is None:
            raise StoreUnavailable(f"authorization store {self.source} is closed")
        try:
            values = await client.hvals(self.url.records_key(platform, key))
        except Exception as exc:  # noqa: BLE001 - redis errors, timeouts, a closed connection
            raise StoreUnavailable(self._cause(exc)) from None
        items = []
        for value in values:
            try:
                items.append(json.loads(value))
            except ValueError:
                raise StoreUnavailable(f"authorization store {self.source} holds a record of this person that is "
                                       "not JSON") from None
        return records_from_json(items, self.source, self.platforms, platform, key)

    async def _follow(self) -> None:
        client = self._client
        if client is None:
            raise StoreUnavailable(f"authorization store {self.source} is closed")
        stream = self.url.stream_key
        seq = int(await client.get(self.url.seq_key) or 0)
        if self._last_id is None:
            mismatch = rule_mismatch(await client.hgetall(self.url.rules_key), self.platforms)
            if mismatch is not None:
                raise StoreUnavailable(f"authorization store {self.source} {mismatch}")
            last = await client.xrevrange(stream, count=1)
            self._last_id = last[0][0] if last else "0-0"
            self._last_seq = int(last[0][1].get("seq", seq)) if last else seq
            self._changed(None)
            return
        if seq < self._last_seq:
            self._reset(seq, "its change counter went backwards (flushed or replaced)")
            return
        answer = await client.xread({stream: self._last_id}, count=1000, block=int(self.block * 1000))
        entries = answer[0][1] if answer else []
        changed: list[tuple[str, str]] = []
        for entry_id, fields in entries:
            entry_seq = int(fields.get("seq", 0))
            if entry_seq != self._last_seq + 1:
                self._reset(seq, "entries of its change stream are missing")
                return
            self._last_id, self._last_seq = entry_id, entry_seq
            changed.append((fields.get("platform", ""), fields.get("subject", "")))
        if changed:
            self._changed(changed)

    def _reset(self, seq: int, why: str) -> None:
        logger.warning("authorization store %s: %s; every remembered answer is dropped",
                                            self.source, why)
        self._last_id = None
        self._changed(None)

    def _fail(self, message: str) -> None:
        self._last_id = None  # start following afresh: what we missed is unknown
        super()._fail(message)


def open_redis_store(url: str, platforms: PlatformRegistry, settings: Any, crawler: Any = None) -> RedisStore:
    from ..settings import read

    store = RedisStore(url, platforms, poll=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_POLL"),
                       timeout=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT"))
    close_with(store, crawler)
    return store


@dataclass(frozen=True)
class RedisImportResult:
    imported: int
    skipped: int  #: records the store already held (the same record_id, or the same grant)


def import_records(url: str, records: Iterable[AuthorizationRecord], *, platforms: Any = None) -> RedisImportResult:
    """Write validated records into the Redis store at ``url`` (each with its change-stream entry, so every crawl
    following the store sees it within a second), all or nothing.

    Every record is read and checked first: a record the store already holds, byte for byte, is skipped and
    counted (importing the same file twice is harmless); another record under a held record's identity (its
    ``record_id``, else its grant) raises ConfigError naming its file and line, as files and SQLite stores refuse
    a duplicate (skipped, a withdrawal written onto a grant's record_id would be lost while the import said it
    succeeded); so does a bad record (``records`` raising), before anything is sent. The records then go in one
    ``MULTI``/``EXEC`` transaction whose scripts check the store first (each platform's key rule, each record's
    identity: :data:`_GUARD`) and write only if every check passed: a failure anywhere (a bad record, a duplicate,
    Redis away, the process killed before ``EXEC``) writes nothing. Redis runs the transaction as one command, so
    its other clients wait for it (a crawl following the store denies while its feed is late)."""
    import redis

    target = parse_redis_url(url)
    objects = platform_objects(platforms)
    client = redis.Redis.from_url(target.url, socket_timeout=60, socket_connect_timeout=5, decode_responses=True)
    try:
        return _write_all(client, target, objects, _plan(target, objects, records))
    except redis.RedisError as exc:
        raise ConfigError(f"cannot write into {target.source}: {type(exc).__name__}: {exc} (the import is one "
                          "transaction: written whole or not at all; import the file again, records the store "
                          "already holds are skipped)", target.source) from None
    finally:
        client.close()


#: records checked by one guard script of an import's transaction
_GUARD_BATCH = 1000
#: milliseconds an import's flag key lives if its transaction's last command (deleting it) never ran
IMPORT_FLAG_TTL = 600_000


@dataclass(frozen=True)
class _Planned:
    record: AuthorizationRecord
    records_key: str
    field: str
    data: str
    key: str  #: the subject key


def _plan(target: RedisURL, objects: dict[str, Any], records: Iterable[AuthorizationRecord]) -> list[_Planned]:
    """Each record with the hash and field it goes into, read to the end before anything is written (a bad record
    raises here); a record given twice is kept once, one changed under the same identity is refused."""
    from .sqlite_write import _error_at

    planned: dict[tuple[str, str], _Planned] = {}
    for record in records:
        key = key_function(objects.get(record.platform))(record.subject)
        item = _Planned(record, target.records_key(record.platform, key), record_field(record),
                        json.dumps(record_to_json(record), ensure_ascii=False, sort_keys=True), key)
        seen = planned.setdefault((item.records_key, item.field), item)
        if seen.data != item.data:
            raise _error_at(record, f"duplicate authorization record: {_same(record)} as another record of this "
                                    "import; write a change as a record of its own (nothing was written)")
    return list(planned.values())


def _same(record: AuthorizationRecord) -> str:
    return ("the same record_id " + repr(record.record_id) if record.record_id
            else "the same grant (purposes, granted_at, revoked_at)")


def _write_all(client: Any, target: RedisURL, objects: dict[str, Any], planned: list[_Planned]) -> RedisImportResult:
    """One transaction: a flag key set to ``ok``, the guards (each platform's rule, then every record's identity),
    the writes, each a no-op once a guard said no, and the flag deleted (see :func:`import_records`)."""
    from .sqlite_write import _error_at

    first: dict[str, AuthorizationRecord] = {}
    for item in planned:
        first.setdefault(item.record.platform, item.record)
    flag = f"{target.prefix}:import:{uuid.uuid4().hex}"
    guard, rule, write = (client.register_script(script) for script in (_GUARD, _RULE, _WRITE))
    with client.pipeline(transaction=True) as pipe:
        pipe.set(flag, "ok", px=IMPORT_FLAG_TTL)
        for platform in first:
            rule(keys=[flag, target.rules_key], args=[platform, rule_of(objects.get(platform)), 0], client=pipe)
        batches = [planned[i:i + _GUARD_BATCH] for i in range(0, len(planned), _GUARD_BATCH)]
        for batch in batches:
            guard(keys=[flag, *(item.records_key for item in batch)],
                  args=[v for item in batch for v in (item.field, item.data)], client=pipe)
        for platform in first:
            rule(keys=[flag, target.rules_key], args=[platform, rule_of(objects.get(platform)), 1], client=pipe)
        for item in planned:
            write(keys=[item.records_key, target.seq_key, target.stream_key, flag],
                  args=[item.field, item.data, item.record.platform, item.key, STREAM_MAXLEN], client=pipe)
        pipe.delete(flag)
        results = pipe.execute()
    rules, guards = results[1:1 + len(first)], results[1 + len(first):1 + len(first) + len(batches)]
    for platform, held in zip(first, rules, strict=True):
        mismatch = rule_mismatch({platform: held}, {platform: objects.get(platform)}) if held else None
        if mismatch is not None:
            raise _error_at(first[platform], f"{target.source} {mismatch} (nothing was written)")
    for batch, found in zip(batches, guards, strict=True):
        if found:
            item = batch[found - 1]
            # skipped as "already held", a changed record (a withdrawal written onto the grant's record_id) would
            # leave the old one answering: refuse it, as files and SQLite stores do
            raise _error_at(item.record, f"duplicate authorization record: {target.source} already holds another "
                                         f"record with {_same(item.record)}; write a change as a record of its own "
                                         "(nothing was written)")
    written = results[-1 - len(planned):-1] if planned else []
    if any(n < 0 for n in written):  # cannot be: a guard that found a conflict said so above
        raise ConfigError(f"{target.source} changed during the import's transaction", target.source)
    imported = sum(1 for n in written if n)
    return RedisImportResult(imported, len(written) - imported)


def list_records(url: str, platforms: PlatformRegistry) -> list[AuthorizationRecord]:
    """Every record the Redis store at ``url`` holds, person by person (``SCAN`` over the records' hashes), each
    validated as a lookup's answer is: for ``consentcrawl purge --withdrawn``, which needs everyone who withdrew.
    Raises ConfigError naming the store when it cannot be read or holds a record that does not read cleanly."""
    import redis

    target = parse_redis_url(url)
    head = f"{target.prefix}:records:"
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in head) + "*"
    names = sorted(platforms.platforms, key=len, reverse=True)  # ``a:b`` before ``a``: the longest name that fits
    client = redis.Redis.from_url(target.url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True)
    out: list[AuthorizationRecord] = []
    try:
        for name in sorted(client.scan_iter(match=pattern, count=1000)):
            rest = name[len(head):]
            platform = next((p for p in names if rest.startswith(p + ":")), None)
            if platform is None:
                raise ConfigError(f"{target.source} holds records of a platform that is not configured (key {name!r})",
                                  target.source)
            items = [json.loads(value) for value in client.hvals(name)]
            out.extend(records_from_json(items, target.source, platforms, platform, rest[len(platform) + 1:]))
    except redis.RedisError as exc:
        raise ConfigError(f"cannot read {target.source}: {type(exc).__name__}: {exc}", target.source) from None
    except (ValueError, StoreUnavailable) as exc:  # not JSON, or a record that does not read cleanly
        raise ConfigError(f"{target.source} holds a record that cannot be read: {exc}", target.source) from None
    finally:
        client.close()
    return out
