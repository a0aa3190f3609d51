"""The shared queue's holding queue: scrapy-redis's priority queue, popping into this worker's in-flight hash.

A request is popped and recorded as this worker's in one Lua script (``QUEUE:inflight:WORKER``), and forgotten
once this worker is done with it (the request object is gone: its response and everything its callback produced
are through). While the worker lives it refreshes ``QUEUE:alive:WORKER`` every second; the other workers put back
into the queue what a worker whose key has lapsed (``ALIVE_TTL``) still held, and whoever pops it decides it again
at send time, against consent as it is then. A request this worker was through with but had not yet forgotten
(kept alive by a reference cycle) is then fetched again: a duplicate, never an undecided fetch. A worker stopped
early puts back what it still holds.

An entry that is no request in the queue's format (:mod:`~consentcrawl.distributed.serializer`: a pickle, garbage)
is never loaded: it is moved to ``QUEUE:refused``, counted and logged, and the worker goes on. So is one for a
``file:`` URL (a file of whichever worker pops it: never decided, and no worker queues one).

A request this worker's spider cannot run (its callback or errback is a method another deploy of the spider has
and this one lacks) goes back to the queue for a worker that can, and this worker takes no more
(:class:`WorkerCannotRun`): it is misconfigured, and every request it popped would be lost to the others.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sys
import time
import weakref
from typing import Any

from scrapy import Request
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.request import request_from_dict
from scrapy_redis.queue import PriorityQueue  # type: ignore[import-untyped]

from .serializer import NotQueueable, PickledEntry, UnreadableEntry
from .shared import worker_alive_ttl, worker_id

logger = logging.getLogger("consentcrawl")


class WorkerCannotRun(Exception):
    """A request popped from the shared queue names what this worker's spider does not have: it was put back."""


#: seconds after a worker's last heartbeat before the others take back what it held
ALIVE_TTL = 5.0
BEAT = 1.0

#: KEYS: the queue (sorted set), this worker's in-flight hash. Pops the first request and records it as held.
_POP = """
local got = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #got == 0 then return false end
redis.call('ZREM', KEYS[1], got[1])
redis.call('HSET', KEYS[2], ARGV[1] .. got[2] .. ':' .. redis.sha1hex(got[1]), got[1])
return {got[1], got[2]}
"""
#: KEYS: a worker's in-flight hash, its alive key, the queue. ARGV: 1 to take back only if the worker is gone.
_RECLAIM = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local score = string.match(held[i], '^[^:]*:([^:]*):')
  redis.call('ZADD', KEYS[3], tonumber(score) or 0, held[i + 1])
end
redis.call('DEL', KEYS[1])
return #held / 2
"""
#: KEYS: this worker's in-flight hash, the queue. ARGV: fields popped here whose requests never reached this worker.
_PUT_BACK = """
local n = 0
for i = 1, #ARGV do
  local data = redis.call('HGET', KEYS[1], ARGV[i])
  if data then
    local score = string.match(ARGV[i], '^[^:]*:([^:]*):')
    redis.call('ZADD', KEYS[2], tonumber(score) or 0, data)
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


class HeldPriorityQueue(PriorityQueue):  # type: ignore[misc]
    """scrapy-redis's priority queue, popping into this worker's in-flight hash (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker = worker_id()
        self.inflight_key = f"{self.key}:inflight:{self.worker}"
        self.alive_key = f"{self.key}:alive:{self.worker}"
        self.alive_ttl = worker_alive_ttl(self.spider, ALIVE_TTL)
        self._pop = self.server.register_script(_POP)
        self._reclaim = self.server.register_script(_RECLAIM)
        self._put_back = self.server.register_script(_PUT_BACK)
        self.refused_key = f"{self.key}:refused"
        self.refused: dict[str, int] = {}  #: entries set aside, by kind (``pickled``, ``unreadable``)
        self._done: list[str] = []  #: fields of requests this worker is through with, to forget
        self._mine: set[str] = set()  #: fields of the requests this worker got and is not through with
        self._beaten = 0.0
        self._swept = 0.0

    def pop(self, timeout: int = 0) -> Any:
        self.housekeeping()
        while True:
            got = self._pop(keys=[self.key, self.inflight_key], args=["h:"])
            if not got:
                return None
            data, score = got
            field = f"h:{score.decode() if isinstance(score, bytes) else score}:{hashlib.sha1(data).hexdigest()}"
            self._mine.add(field)
            try:
                request = self._decode_request(data)
            except WorkerCannotRun:
                # not this worker's from here: if Redis refuses the put-back, the next sweep queues it again (and
                # a close leaves it where the others take it back), rather than deleting it with this worker's own
                self._mine.discard(field)
                self._put_back(keys=[self.inflight_key, self.key], args=[field])
                raise
            except Exception as exc:  # noqa: BLE001 - no worker can make a request of it: set aside, and said so
                self._set_aside(field, exc)
                continue
            weakref.finalize(request, self._done.append, field)
            return request

    def _set_aside(self, field: str, exc: Exception) -> None:
        """An entry no worker can make a request of (a pickle, garbage): moved to ``QUEUE:refused`` (its score
        kept), never loaded; counted, and the first of each kind logged."""
        kind = "pickled" if isinstance(exc, PickledEntry) else "unreadable"
        self._mine.discard(field)  # as for a request put back (:meth:`pop`)
        self._put_back(keys=[self.inflight_key, self.refused_key], args=[field])
        self.refused[kind] = self.refused.get(kind, 0) + 1
        crawler = getattr(self.spider, "crawler", None)
        if crawler is not None and crawler.stats is not None:
            crawler.stats.inc_value(f"consentcrawl/shared_queue/refused/{kind}")
        if self.refused[kind] == 1:
            # our own causes name no URL; Scrapy's (a request that cannot be built) may: the type alone
            cause = f"{type(exc).__name__}: {exc}" if isinstance(exc, UnreadableEntry) else type(exc).__name__
            logger.error("consentcrawl: an entry of the shared queue is %s (%s): not loaded, moved to %s "
                         "(later ones are counted: stat consentcrawl/shared_queue/refused/%s)",
                         "a pickle" if kind == "pickled" else "not a request this worker can read",
                         cause, self.refused_key, kind)

    def _encode_request(self, request: Any) -> Any:
        if names_a_local_file(request):  # this worker's own file: it sends it itself (the scheduler keeps it)
            raise NotQueueable("a file: URL names a file of this worker")
        try:
            return super()._encode_request(request)
        except Exception as exc:  # noqa: BLE001 - a value JSON cannot carry, a callback not of the spider
            raise NotQueueable(f"{type(exc).__name__}: {exc}") from None

    def _decode_request(self, encoded_request: bytes) -> Any:
        obj = self.serializer.loads(encoded_request)
        if isinstance(obj, dict):
            for name in ("callback", "errback"):
                method = obj.get(name)
                if isinstance(method, str) and not callable(getattr(self.spider, method, None)):
                    raise WorkerCannotRun(f"a request in the shared queue names the {name} {method!r}, which this "
                                          f"worker's spider ({type(self.spider).__name__}) does not have: the "
                                          "workers run different versions of the spider")
        if isinstance(obj, dict) and "_class" in obj:
            obj["_class"] = _request_class(obj["_class"])
        request = request_from_dict(obj, spider=self.spider)
        if names_a_local_file(request):
            raise UnreadableEntry("a file: URL: a file of whichever worker pops it, which no other worker queues")
        return request

    def housekeeping(self, force: bool = False) -> None:
        """Forget what is done, say this worker is alive, and take back what dead workers held."""
        now = time.monotonic()
        if self._done:
            done, self._done = self._done, []
            self.server.hdel(self.inflight_key, *done)
            self._mine.difference_update(done)
        if force or now - self._beaten >= BEAT:
            self.server.set(self.alive_key, 1, px=int(self.alive_ttl * 1000))
            self._beaten = now
        if force or now - self._swept >= BEAT:
            self._swept = now
            self._put_back_stranded()
            prefix = f"{self.key}:inflight:"
            for key in self.server.scan_iter(match=prefix + "*", count=100):
                name = (key.decode() if isinstance(key, bytes) else key)[len(prefix):]
                if name != self.worker:
                    taken = self._reclaim(keys=[key, f"{self.key}:alive:{name}", self.key], args=["1"])
                    if taken:
                        logger.warning("consentcrawl: worker %s is gone; %d request(s) it held are queued again, "
                                       "to be decided again", name, taken)

    def _put_back_stranded(self) -> None:
        """Queue again what this worker popped but never got: a pop whose answer was lost (a timeout) and that
        redis-py then sent again left the first request in the in-flight hash, where nothing would fetch it."""
        fields = {f.decode() if isinstance(f, bytes) else f for f in self.server.hkeys(self.inflight_key)}
        stranded = sorted(fields - self._mine - set(self._done))
        if stranded and self._put_back(keys=[self.inflight_key, self.key], args=stranded):
            logger.warning("consentcrawl: %d request(s) popped from the shared queue by this worker never reached "
                           "it (a lost answer); queued again, to be decided again", len(stranded))

    def release(self, finished: bool) -> None:
        """Closing: a crawl that finished (idle) is through with everything it held; one stopped early (a
        shutdown, ``CloseSpider``) puts back what it still holds, for another worker."""
        if finished:
            self._put_back_stranded()
            self.server.delete(self.inflight_key, self.alive_key)
            return
        gc.collect()  # requests caught in reference cycles (an exception's traceback) are through too
        self.housekeeping()
        taken = self._reclaim(keys=[self.inflight_key, self.alive_key, self.key], args=["0"])
        self.server.delete(self.alive_key)
        if taken:
            logger.info("consentcrawl: %d request(s) this worker held are queued again", taken)


def names_a_local_file(request: Request) -> bool:
    """Whether ``request`` reads a file of the machine that sends it (``file:``, as Scrapy picks its download
    handler): never decided (a local URL), so never taken from the shared queue, whose writer could name any file
    of the workers; a worker's own such request is sent by itself (:meth:`HeldPriorityQueue._encode_request`)."""
    return urlparse_cached(request).scheme == "file"


def _request_class(path: Any) -> type[Request]:
    """The request class an entry names (``FormRequest``, a project's own), found among the modules this worker has
    imported, never imported for it: Scrapy's ``request_from_dict`` would import any path and call it with the
    entry's values (``subprocess.Popen`` with ``args``)."""
    module, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
    found = getattr(sys.modules.get(module), name, None)
    if not (isinstance(found, type) and issubclass(found, Request)):
        raise UnreadableEntry(f"its request class {path!r} is not a request class this worker has loaded")
    return found

