"""``Crawl-delay`` (and ``Request-rate``, which the robots parser turns into a delay) kept across all workers.

One schedule per origin in Redis, read and written only by one Lua script, with Redis's own clock (``TIME``) so the
workers' clocks need not agree. Two steps per request, as in one process
(:class:`consentcrawl.handler.OriginSpacing`) but split so the gap holds at the moment of sending:

1. ``turn``: reserve the origin's next turn before waiting (turns ``delay`` apart, whichever worker asks), so
   requests arriving together are spaced one after the other, never released at once;
2. ``send``: immediately before the request goes to the network, after its decision: allowed only if the
   origin's last send, by any worker, is at least ``delay`` ago, and then it *is* the last send. A worker that
   came back late from its wait finds the next turn's owner already gone and waits again (and is decided again).

robots.txt and the signal files count as sends (``send`` with no delay). When a fetch from an origin with a delay
ends, ``ended`` moves the origin's last send to that moment: the delay counts from the end of one fetch to the start
of the next, as in one process, so a request that reached the server late does not bring the next one closer.
``MARGIN`` is added to every gap: the time from the script's answer to the request reaching the server, which
differs from worker to worker.
"""

from __future__ import annotations

from .shared import SharedState

#: seconds added to every gap in the cluster (see the module doc)
MARGIN = 0.02

#: KEYS: the origin's next free turn, its last send (both in Redis microseconds). ARGV: mode, delay (µs), ttl (ms).
#: turn: reserve the next turn, returns µs to wait. send: 0 and recorded if the gap is kept, else µs to wait.
#: ended: a fetch ended now; the origin's last send moves to now (and its next free turn to at least now + delay).
_SCHEDULE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delay = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if ARGV[1] == 'turn' then
  local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if last + delay > turn then turn = last + delay end
  if now > turn then turn = now end
  redis.call('SET', KEYS[1], turn + delay, 'PX', ttl)
  return turn - now
end
if ARGV[1] == 'ended' then
  local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
  if now + delay > turn then redis.call('SET', KEYS[1], now + delay, 'PX', ttl) end
  redis.call('SET', KEYS[2], now, 'PX', ttl)
  return 0
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if delay > 0 and last + delay > now then return last + delay - now end
if now > last then redis.call('SET', KEYS[2], now, 'PX', ttl) end
return 0
"""


class SharedSpacing:
    """The cluster's per-origin schedule (see the module doc); every call may raise SharedStateUnavailable."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    async def _call(self, mode: str, origin: str, delay: float | None) -> float:
        gap = (delay + MARGIN) if delay else 0.0
        keep = int(max(gap * 2, 60) * 1000)
        keys = (self.shared.key("spacing", origin, "turn"), self.shared.key("spacing", origin, "sent"))
        micros = await self.shared.run(
            self.shared.script(_SCHEDULE)(keys, (mode, int(gap * 1_000_000), keep)), "keeping a Crawl-delay")
        return max(int(micros), 0) / 1_000_000

    async def reserve(self, origin: str, delay: float | None) -> float:
        """Reserve the origin's next turn; the seconds to wait for it (0: now)."""
        return await self._call("turn", origin, delay) if delay else 0.0

    async def send(self, origin: str, delay: float | None) -> float:
        """0 when a request to ``origin`` may go now (and it is recorded as sent), else the seconds to wait."""
        return await self._call("send", origin, delay)

    async def ended(self, origin: str, delay: float | None) -> None:
        """A fetch from ``origin`` ended now: its delay counts from here."""
        if delay:
            await self._call("ended", origin, delay)
