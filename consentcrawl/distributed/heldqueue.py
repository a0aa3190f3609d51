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
``file:`` URL (a file of whichever worker pops it: never decided, and no worker queues one), and one naming as its
callback or errback an attribute of the spider no queued request may name (:mod:`~consentcrawl.distributed.callbacks`:
a Scrapy hook, a framework method, a non-method), never called. Each cause is kept in ``QUEUE:refused:causes``.

A request this worker's spider cannot run (its callback or errback is a method another deploy of the spider has
and this one lacks) goes back to the queue for a worker that can, and this worker takes no more
(:class:`WorkerCannotRun`): it is misconfigured, and every request it popped would be lost to the others. Once
``REFUSERS`` distinct workers lacked what an entry names and no live worker announces it (``QUEUE:callbacks``),
the entry is set aside instead, and the worker goes on: otherwise every worker would stop in turn.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import logging
import sys
import time
import weakref
from typing import Any

from scrapy import Request
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.request import request_from_dict
from scrapy_redis.queue import PriorityQueue  # type: ignore[import-untyped]

from .callbacks import MISSING, callback_names, refusal
from .serializer import NotQueueable, PickledEntry, UnreadableEntry
from .shared import worker_alive_ttl, worker_id

logger = logging.getLogger("consentcrawl")


class WorkerCannotRun(Exception):
    """A request popped from the shared queue names what this worker's spider does not have: it was put back."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names  #: the callback and errback names it lacks


class NotACallback(UnreadableEntry):
    """An entry names as its callback or errback an attribute of the spider no request may name (callbacks.py)."""


#: what :meth:`HeldPriorityQueue._set_aside` logs an entry of each kind as
_KINDS = {"pickled": "a pickle", "unreadable": "not a request this worker can read",
          "callback": "a request naming as its callback what no queued request may",
          "unrunnable": "a request naming a callback no live worker's spider has"}
#: distinct workers that lacked a callback before entries naming it may be set aside (when no live worker has it)
REFUSERS = 2
#: seconds the workers that lacked a callback an entry names are remembered
TRIED_TTL = 86400.0
#: seconds after a worker's last heartbeat before the others take back what it held
ALIVE_TTL = 5.0
BEAT = 1.0

#: KEYS: the queue (sorted set), this worker's in-flight hash. ARGV: the field's prefix, this pop's number in the
#: worker. Pops the first request and records it as held, under a field of its own (``h:SCORE:SHA1:N``): two
#: identical entries in flight (the same request queued again) are two records, each forgotten when it is through.
_POP = """
local got = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #got == 0 then return false end
redis.call('ZREM', KEYS[1], got[1])
redis.call('HSET', KEYS[2], ARGV[1] .. got[2] .. ':' .. redis.sha1hex(got[1]) .. ':' .. ARGV[2], got[1])
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
        self.callbacks_key = f"{self.key}:callbacks"  #: by worker: the callbacks its spider has (JSON)
        self._announced: str | None = None  #: the callbacks this worker's spider has (JSON), said each beat
        self.refused: dict[str, int] = {}  #: entries set aside, by kind (``pickled``, ``unreadable``)
        self._done: list[str] = []  #: fields of requests this worker is through with, to forget
        self._mine: set[str] = set()  #: fields of the requests this worker got and is not through with
        self._pops = itertools.count()  #: numbers this worker's in-flight records apart (see ``_POP``)
        self._beaten = 0.0
        self._swept = 0.0

    def pop(self, timeout: int = 0) -> Any:
        while True:
            # each round: a long run of entries set aside holds the event loop, and the heartbeat task with it; a
            # heartbeat that lapsed meanwhile would have the others take back, and fetch again, what this one holds
            self.housekeeping()
            number = next(self._pops)
            got = self._pop(keys=[self.key, self.inflight_key], args=["h:", number])
            if not got:
                return None
            data, score = got
            score = score.decode() if isinstance(score, bytes) else score
            field = f"h:{score}:{hashlib.sha1(data).hexdigest()}:{number}"
            self._mine.add(field)
            try:
                request = self._decode_request(data)
            except WorkerCannotRun as exc:
                # not this worker's from here: if Redis refuses the put-back, the next sweep queues it again (and
                # a close leaves it where the others take it back), rather than deleting it with this worker's own
                self._mine.discard(field)
                if self._nobody_runs(exc):
                    self._set_aside(field, data, exc, "unrunnable")
                    continue
                self._put_back(keys=[self.inflight_key, self.key], args=[field])
                raise
            except Exception as exc:  # noqa: BLE001 - no worker can make a request of it: set aside, and said so
                self._set_aside(field, data, exc)
                continue
            weakref.finalize(request, self._done.append, field)
            return request

    def _set_aside(self, field: str, data: bytes, exc: Exception, kind: str | None = None) -> None:
        """An entry no worker can make a request of (a pickle, garbage, a callback no request may name, one no
        worker can run): moved to ``QUEUE:refused`` (its score kept), never loaded; its cause kept in
        ``QUEUE:refused:causes`` (by the entry's SHA-1); counted, and the first of each kind logged."""
        kind = kind or ("pickled" if isinstance(exc, PickledEntry) else "callback" if isinstance(exc, NotACallback)
                        else "unreadable")
        self._mine.discard(field)  # as for a request put back (:meth:`pop`)
        self._put_back(keys=[self.inflight_key, self.refused_key], args=[field])
        # our own causes name no URL; Scrapy's (a request that cannot be built) may: the type alone
        cause = f"{type(exc).__name__}: {exc}" if isinstance(exc, (UnreadableEntry, WorkerCannotRun)) else \
            type(exc).__name__
        self.server.hset(f"{self.refused_key}:causes", hashlib.sha1(data).hexdigest(), f"{kind}: {cause}")
        self.refused[kind] = self.refused.get(kind, 0) + 1
        crawler = getattr(self.spider, "crawler", None)
        if crawler is not None and crawler.stats is not None:
            crawler.stats.inc_value(f"consentcrawl/shared_queue/refused/{kind}")
        if self.refused[kind] == 1:
            logger.error("consentcrawl: an entry of the shared queue is %s (%s): not loaded, moved to %s "
                         "(later ones are counted: stat consentcrawl/shared_queue/refused/%s)",
                         _KINDS[kind], cause, self.refused_key, kind)

    def _nobody_runs(self, exc: WorkerCannotRun) -> bool:
        """Whether an entry this worker's spider cannot run is to be set aside rather than put back: once
        ``REFUSERS`` distinct workers lacked what it names (``QUEUE:cannot_run:NAMES``, by the names, so every
        entry naming them goes, not one per worker stopped) and no live worker's spider has it
        (``QUEUE:callbacks``). Until then the worker puts it back and stops: a deploy that can may be on its way."""
        lacked = f"{self.key}:cannot_run:{','.join(exc.names)}"
        self.server.sadd(lacked, self.worker)
        self.server.pexpire(lacked, int(TRIED_TTL * 1000))
        if self.server.scard(lacked) < REFUSERS:
            return False
        needed = set(exc.names)
        for worker, names in self.server.hgetall(self.callbacks_key).items():
            name = worker.decode() if isinstance(worker, bytes) else worker
            if name == self.worker:
                continue
            if not self.server.exists(f"{self.key}:alive:{name}"):
                self.server.hdel(self.callbacks_key, worker)  # a worker gone: what it could run counts no more
                continue
            try:
                has = set(json.loads(names))
            except ValueError:
                has = set()
            if needed <= has:
                return False
        return True

    def _encode_request(self, request: Any) -> Any:
        if names_a_local_file(request):  # this worker's own file: it sends it itself (the scheduler keeps it)
            raise NotQueueable("a file: URL names a file of this worker")
        try:
            obj = request.to_dict(spider=self.spider)
            for name in ("callback", "errback"):  # what no worker would run from the queue (callbacks.py)
                cause = None if obj.get(name) is None else refusal(self.spider, obj[name])
                if cause is not None:
                    raise NotQueueable(f"its {name} is not one the queue carries: {cause}")
            return self.serializer.dumps(obj)
        except NotQueueable:
            raise
        except Exception as exc:  # noqa: BLE001 - a value JSON cannot carry, a callback not of the spider
            raise NotQueueable(f"{type(exc).__name__}: {exc}") from None

    def _decode_request(self, encoded_request: bytes) -> Any:
        obj = self.serializer.loads(encoded_request)
        if isinstance(obj, dict):
            missing, names = [], []
            for name in ("callback", "errback"):
                method = obj.get(name)
                cause = None if method is None else refusal(self.spider, method)
                if cause == MISSING:
                    missing.append(f"the {name} {method!r}")
                    names.append(str(method))
                elif cause is not None:
                    raise NotACallback(f"it names as its {name} what no request may: {cause}")
            if missing:
                raise WorkerCannotRun(f"a request in the shared queue names {' and '.join(missing)}, which this "
                                      f"worker's spider ({type(self.spider).__name__}) does not have: the workers "
                                      "run different versions of the spider", names)
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
            if self._announced is None:
                self._announced = json.dumps(callback_names(self.spider))
            # what this deploy can run, for a worker that cannot (:meth:`_nobody_runs`), said with every beat: a
            # worker that found this one's key lapsed (a late beat) forgot it, and this one is alive again
            beat = self.server.pipeline(transaction=False)
            beat.hset(self.callbacks_key, self.worker, self._announced)
            beat.set(self.alive_key, 1, px=int(self.alive_ttl * 1000))
            beat.execute()
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
            self.server.hdel(self.callbacks_key, self.worker)
            return
        gc.collect()  # requests caught in reference cycles (an exception's traceback) are through too
        self.housekeeping()
        taken = self._reclaim(keys=[self.inflight_key, self.alive_key, self.key], args=["0"])
        self.server.delete(self.alive_key)
        self.server.hdel(self.callbacks_key, self.worker)
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

