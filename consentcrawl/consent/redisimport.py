"""Importing records into a Redis store (``consentcrawl authorizations import SRC redis://...``), all or nothing.

The key layout is :mod:`~consentcrawl.consent.redisstore`'s. A record is written by one Lua script (hash, counter
and stream together, :data:`_WRITE`), so a reader never sees a record without its stream entry; an import's
records are written in one transaction whose guard scripts check the store first (:func:`import_records`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .keys import key_function, platform_objects, rule_of
from .records import AuthorizationRecord
from .redisstore import (
    ROWS_FIELD,
    STREAM_MAXLEN,
    RedisURL,
    glob_prefix,
    parse_redis_url,
    record_field,
    rule_mismatch,
)
from .remote import record_to_json
from .sqlite_format import _RULE_TEXT

__all__ = ["RedisImportResult", "import_records"]

#: KEYS: the person's hash, the counter, the stream, the import's flag; ARGV: field, record JSON, platform, subject
#: key, maxlen, the count's field. Returns the record's seq, 0 when the hash already holds that very record
#: (importing a file again), -1 when it holds another record under the same identity (:data:`_GUARD` saw to it that
#: none does), or -2 when a guard of the same import found one: nothing of the import is written. The count goes up
#: by one (a count that is already wrong stays wrong: the loss stays seen); a hash without one is counted whole.
_WRITE = """
if redis.call('GET', KEYS[4]) ~= 'ok' then return -2 end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  if held == ARGV[2] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[1], ARGV[6]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[6], 1)
else
  redis.call('HSET', KEYS[1], ARGV[6], redis.call('HLEN', KEYS[1]))
end
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
        planned = _plan(target, objects, records)
        _check_unruled(client, target, objects, {item.record.platform for item in planned})
        return _write_all(client, target, objects, planned)
    except redis.RedisError as exc:
        raise ConfigError(f"cannot write into {target.source}: {type(exc).__name__}: {exc} (the import is one "
                          "transaction: written whole or not at all; import the file again, records the store "
                          "already holds are skipped)", target.source) from None
    finally:
        client.close()


def _check_unruled(client: Any, target: RedisURL, objects: dict[str, Any], platforms: set[str]) -> None:
    """A platform whose records the store holds from before their key rule was recorded gets the rule of this
    import only if every one of them is keyed by it (a withdrawal keyed under another rule would not be found):
    else the import is refused, naming the key, and nothing is written."""
    held = client.hgetall(target.rules_key)
    for name in sorted(platforms - set(held)):
        keyfn = key_function(objects.get(name))
        head = target.records_key(name, "")
        for hash_key in client.scan_iter(match=glob_prefix(head), count=1000):
            key = hash_key[len(head):]
            for name, value in client.hgetall(hash_key).items():
                if name == ROWS_FIELD:
                    continue
                try:
                    subject = json.loads(value)["subject"]
                except (ValueError, KeyError, TypeError):
                    subject = None
                if not isinstance(subject, str) or keyfn(subject) != key:
                    raise ConfigError(f"{target.source} holds records of platform {name!r} imported before their "
                                      f"subject key rule was recorded, and the one under {hash_key!r} is not keyed "
                                      f"as the platforms file says ({_RULE_TEXT[rule_of(objects.get(name))]}): "
                                      "import the records into a new prefix (?prefix=...); nothing was written",
                                      target.source)


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
                  args=[item.field, item.data, item.record.platform, item.key, STREAM_MAXLEN, ROWS_FIELD],
                  client=pipe)
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
