"""Authorization records in Redis: ``CONSENTCRAWL_AUTHORIZATIONS = "redis://host:6379/0"``, for crawls spread over
machines that must all stop fetching a person within a second of their withdrawal.

Key layout (``PREFIX`` is ``consentcrawl:authorizations`` unless the URL says ``?prefix=...``):

- ``PREFIX:records:{platform}:{subject key}``: a hash per person; each field is one record's identity (its
  ``record_id``, else a digest of its purposes and times, the rule the files use for duplicates), each value the
  record as JSON with the YAML format's fields. A withdrawal is a record of its own; nothing is ever overwritten.
  Its field ``#rows`` counts the person's records (:func:`person_records`).
- ``PREFIX:seq``: a counter, one more for every record written.
- ``PREFIX:changes``: a stream, one entry (``seq``, ``platform``, ``subject``) per record written, capped at about
  a million entries.
- ``PREFIX:subject_keys``: a hash, each platform's subject key rule as of its first import (``nfkc-casefold`` or
  ``nfkc``, :mod:`~consentcrawl.consent.keys`). People are placed by key, so records keyed under one rule are
  not found under another (a withdrawal written ``Alice`` while the platform was case-sensitive is not under
  ``alice``): a store read, or imported into, under a rule other than the recorded one fails, as an SQLite store
  does.

A record is written by one Lua script (hash, its ``#rows``, counter and stream together), so a reader never sees a
record without its stream entry or its count; an import's records are written in one transaction, all or nothing
(:mod:`~consentcrawl.consent.redisimport`).
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, StoreDamaged, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from .httpapi import close_with, public_url
from .keys import platform_objects, rule_of
from .records import AuthorizationRecord
from .remote import CACHE_SIZE, MIN_POLL, FeedStore, records_from_json

__all__ = ["DEFAULT_PREFIX", "RedisStore", "client_options", "list_records"]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "consentcrawl:authorizations"
STREAM_MAXLEN = 1_000_000
#: the field of a person's hash counting their records (no record's field: those start ``id:`` or ``grant:``)
ROWS_FIELD = "#rows"

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
        self._damaged: set[tuple[str, str]] = set()  #: the people whose hash was found damaged (logged once)

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
            fields = await client.hgetall(self.url.records_key(platform, key))
        except Exception as exc:  # noqa: BLE001 - redis errors, timeouts, a closed connection
            raise StoreUnavailable(self._cause(exc)) from None
        try:
            items = [json.loads(value) for value in person_records(fields, self.source)]
        except StoreDamaged as exc:  # said once a person (no id: the log is no place for one), denied every time
            if (platform, key) not in self._damaged:
                self._damaged.add((platform, key))
                logger.error("%s", exc)
            raise
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
            held = await client.hgetall(self.url.rules_key)
            mismatch = rule_mismatch(held, self.platforms)
            if mismatch is None and seq:
                mismatch = await self._unruled(client, held)
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

    async def _unruled(self, client: Any, held: dict[str, str]) -> str | None:
        """Why a platform's records cannot be read: the store holds some, imported before the rule they were keyed
        by was recorded (``PREFIX:subject_keys``), so under which rule they were placed is unknown; or None. Read
        under another rule, a withdrawal keyed under the old one would not be found: deny until an import, having
        checked how they were keyed, records the rule (:mod:`~consentcrawl.consent.redisimport`)."""
        for name in sorted(platform_objects(self.platforms)):
            if name in held:
                continue
            async for _ in client.scan_iter(match=glob_prefix(self.url.records_key(name, "")), count=1000):
                return (f"holds records of platform {name!r} imported before their subject key rule was recorded, "
                        "so whether they were keyed as the platforms file says is unknown: import records of it again "
                        "(the import checks how they were keyed, then records the rule) or into a new prefix "
                        "(?prefix=...)")
        return None

    def _reset(self, seq: int, why: str) -> None:
        logger.warning("authorization store %s: %s; every remembered answer is dropped",
                                            self.source, why)
        self._last_id = None
        self._changed(None)

    def _fail(self, message: str) -> None:
        self._last_id = None  # start following afresh: what we missed is unknown
        super()._fail(message)


def person_records(fields: dict[Any, Any], source: str) -> list[str]:
    """The records of a person's hash (its values but ``#rows``). Raises StoreDamaged when they are not as many as
    ``#rows`` says: a record was removed by something else than the import's script (a withdrawal gone beside its
    grant would be an allow). A hash without ``#rows`` (written before it was kept) is read unchecked."""
    written = fields.get(ROWS_FIELD)
    records = [value for name, value in fields.items() if name != ROWS_FIELD]
    if written is not None and written != str(len(records)):
        raise StoreDamaged(f"authorization store {source} is damaged: {len(records)} record(s) of a person where "
                           f"the store wrote {written}: a record was removed outside `consentcrawl authorizations "
                           "import`; import the records into a new prefix (?prefix=...)")
    return records


def glob_prefix(head: str) -> str:
    """A ``SCAN MATCH`` pattern for the keys that start with ``head``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in head) + "*"


def open_redis_store(url: str, platforms: PlatformRegistry, settings: Any, crawler: Any = None) -> RedisStore:
    from ..settings import read

    store = RedisStore(url, platforms, poll=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_POLL"),
                       timeout=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT"))
    close_with(store, crawler)
    return store


def list_records(url: str, platforms: PlatformRegistry) -> list[AuthorizationRecord]:
    """Every record the Redis store at ``url`` holds, person by person (``SCAN`` over the records' hashes), each
    validated as a lookup's answer is: for ``consentcrawl purge --withdrawn``, which needs everyone who withdrew.
    Raises ConfigError naming the store when it cannot be read or holds a record that does not read cleanly."""
    import redis

    target = parse_redis_url(url)
    head = f"{target.prefix}:records:"
    pattern = glob_prefix(head)
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
            items = [json.loads(value) for value in person_records(client.hgetall(name), target.source)]
            out.extend(records_from_json(items, target.source, platforms, platform, rest[len(platform) + 1:]))
    except redis.RedisError as exc:
        raise ConfigError(f"cannot read {target.source}: {type(exc).__name__}: {exc}", target.source) from None
    except (ValueError, StoreUnavailable) as exc:  # not JSON, or a record that does not read cleanly
        raise ConfigError(f"{target.source} holds a record that cannot be read: {exc}", target.source) from None
    finally:
        client.close()
    return out


def __getattr__(name: str) -> Any:
    """The writing side lives in :mod:`consentcrawl.consent.redisimport`; its names are still importable here."""
    if name in ("RedisImportResult", "import_records"):
        from . import redisimport

        return getattr(redisimport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
