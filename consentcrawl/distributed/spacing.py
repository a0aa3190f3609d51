"""``Crawl-delay`` (and ``Request-rate``, which the robots parser turns into a delay) kept across all workers.

One schedule per origin in Redis, read and written only by one Lua script, with Redis's own clock (``TIME``) so the
workers' clocks need not agree. Two steps per request, as in one process
(:class:`consentcrawl.handler.OriginSpacing`) but split so the gap holds at the moment of sending:

1. ``turn``: reserve the origin's next turn before waiting (turns ``delay`` apart, whichever worker asks), so
   requests arriving together are spaced one after the other, never released at once;
2. ``send``: immediately before the request goes to the network, after its decision: allowed only if the
   origin's last send, by any worker, is at least ``delay`` ago, and then it *is* the last send. A worker that
   came back late from its wait finds the next turn's owner already gone and waits again (and is decided again).

robots.txt and the signal files count as sends (robots.txt goes at once: it is how the delay is known). When a
fetch from an origin with a delay, or a robots.txt or signal-file fetch, ends, ``ended`` moves the origin's last
send to that moment: the delay counts from the end of one fetch to the start of the next, as in one process, so a
request that reached the server late does not bring the next one closer. Such a send also holds the origin
(``spacing:ORIGIN:holds``, a sorted set of the fetches' tokens, each until its download timeout has passed: a worker
killed mid-fetch) until that fetch ends: another worker's ``send`` meanwhile is told to wait, as a request of the
same worker waits for the fetch before it, so a slow fetch does not let the next one start before its end; a
robots.txt fetch that is not shared (another User-Agent, one fetched again mid-crawl) holds it as well.
``MARGIN`` is added to every gap: the time from the script's answer to the request reaching the server, which
differs from worker to worker.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from .shared import SharedState, worker_id

#: seconds added to every gap in the cluster (see the module doc)
MARGIN = 0.02
#: seconds a fetch holds its origin when its request names no download timeout (Scrapy's ``DOWNLOAD_TIMEOUT``)
DEFAULT_HOLD = 180.0

#: KEYS: the origin's next free turn, its last send (both in Redis microseconds), the fetches holding the origin (a
#: sorted set: token -> until when, µs). ARGV: mode, delay (µs), ttl (ms), the fetch's token, how long a fetch may
#: hold the origin (ms), '1' for a side fetch (robots.txt, a signal file).
#: turn: reserve the next turn, returns µs to wait. send: 0 and recorded if the gap is kept and no other fetch
#: holds the origin, else µs to wait (negative: to look again while another fetch holds it); a side fetch without
#: a delay goes at once, and holds the origin too. held: µs to look again while another fetch holds the origin,
#: else 0. free: the fetch was not sent after all. ended: the fetch ended now; the origin's last send moves to now
#: (and its next free turn to at least now + delay), and the fetch no longer holds the origin.
_SCHEDULE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delay = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local function others()
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local top = redis.call('ZREVRANGE', KEYS[3], 0, 1, 'WITHSCORES')
  for i = 1, #top, 2 do
    if top[i] ~= ARGV[4] then return math.max(math.min(tonumber(top[i + 1]) - now, delay), 1000) end
  end
  return 0
end
local function hold()
  local hold_ms = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], now + hold_ms * 1000, ARGV[4])
  if redis.call('PTTL', KEYS[3]) < hold_ms then redis.call('PEXPIRE', KEYS[3], hold_ms) end
end
if ARGV[1] == 'turn' then
  local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if last + delay > turn then turn = last + delay end
  if now > turn then turn = now end
  redis.call('SET', KEYS[1], turn + delay, 'PX', ttl)
  return turn - now
end
if ARGV[1] == 'held' then return others() end
if ARGV[1] == 'free' then
  redis.call('ZREM', KEYS[3], ARGV[4])
  return 0
end
if ARGV[1] == 'ended' then
  local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
  if now + delay > turn then redis.call('SET', KEYS[1], now + delay, 'PX', ttl) end
  redis.call('SET', KEYS[2], now, 'PX', ttl)
  redis.call('ZREM', KEYS[3], ARGV[4])
  return 0
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if delay > 0 then
  local wait = others()
  if wait > 0 then return -wait end
  if last + delay > now then return last + delay - now end
  hold()
elseif ARGV[6] == '1' then
  hold()
end
if now > last then redis.call('SET', KEYS[2], now, 'PX', ttl) end
return 0
"""


class SharedSpacing:
    """The cluster's per-origin schedule (see the module doc); every call may raise SharedStateUnavailable."""

    def __init__(self, shared: SharedState, max_delay: float = 30.0) -> None:
        self.shared = shared
        #: the schedule's keys outlive the longest delay obeyed: a side fetch's end is recorded before its delay is
        #: known (``CONSENTCRAWL_MAX_CRAWL_DELAY``)
        self.keep_at_least = max(2 * max_delay, 60.0)

    async def _call(self, mode: str, origin: str, delay: float | None, token: str = "",
                    hold: float = DEFAULT_HOLD, side: bool = False) -> float:
        gap = (delay + MARGIN) if delay else 0.0
        keep = int(max(gap * 2, self.keep_at_least) * 1000)
        keys = (self.shared.key("spacing", origin, "turn"), self.shared.key("spacing", origin, "sent"),
                self.shared.key("spacing", origin, "holds"))
        args = (mode, int(gap * 1_000_000), keep, token, int((hold + gap) * 1000), "1" if side else "0")
        micros = await self.shared.run(self.shared.script(_SCHEDULE)(keys, args), "keeping a Crawl-delay")
        return int(micros) / 1_000_000 if mode == "send" else max(int(micros), 0) / 1_000_000

    async def reserve(self, origin: str, delay: float | None) -> float:
        """Reserve the origin's next turn; the seconds to wait for it (0: now)."""
        return await self._call("turn", origin, delay) if delay else 0.0

    async def send(self, origin: str, delay: float | None, token: str = "", hold: float = DEFAULT_HOLD,
                   side: bool = False) -> float:
        """0 when a request to ``origin`` may go now (it is recorded as sent, and with a delay, or as a ``side``
        fetch, its fetch holds the origin until :meth:`ended` with the same ``token``, or for ``hold`` seconds); else
        the seconds to wait, negative while another fetch holds the origin (its end, which moves the origin's clock,
        is not known yet). A side fetch without a delay (robots.txt) goes at once."""
        return await self._call("send", origin, delay, token, hold, side)

    async def until_free(self, origin: str, delay: float | None, token: str = "") -> None:
        """Return once no fetch but ``token``'s holds ``origin`` (it ended, or its hold lapsed)."""
        while delay and (wait := await self._call("held", origin, delay, token)) > 0:
            await asyncio.sleep(wait)

    async def free(self, origin: str, delay: float | None, token: str, side: bool = False) -> None:
        """The request ``token`` (a ``side`` fetch's) was recorded as sent but is not sent after all (decided again
        and denied): its fetch no longer holds ``origin``."""
        if delay or side:
            await self._call("free", origin, delay, token)

    async def ended(self, origin: str, delay: float | None, token: str = "", side: bool = False) -> None:
        """The fetch ``token`` from ``origin`` ended now: its delay counts from here (a side fetch's too, whose
        delay may not be known yet: the next request counts its own from here)."""
        if delay or side:
            await self._call("ended", origin, delay, token)


def fetch_token(request: Any) -> str:
    """The token a fetch holds its origin with: this worker's, this request object's."""
    return f"{worker_id()}:{id(request)}"


def fetch_hold(request: Any) -> float:
    """How long a fetch may hold its origin: its download timeout (Scrapy's ``DownloadTimeoutMiddleware`` puts it in
    the request's meta), after which a worker killed mid-fetch no longer holds the origin."""
    try:
        hold = float(request.meta.get("download_timeout") or DEFAULT_HOLD)
    except (TypeError, ValueError):
        return DEFAULT_HOLD
    # no timeout (inf) or not a number: the default, so a killed worker's hold still lapses and Redis gets an integer
    return max(hold, 0.0) if math.isfinite(hold) else DEFAULT_HOLD
