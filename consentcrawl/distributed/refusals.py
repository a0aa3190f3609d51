"""On-page refusals seen by any worker, known to every worker within a second.

A refusal (a person's page that says "do not collect me") found by one worker is published with
:func:`publish_refusal`: one Lua script adds it to a set (``PREFIX:refused``, for workers that start later) and to a
stream (``PREFIX:refusals``), together. Every worker follows the stream with :class:`RefusalFeed` (``XREAD BLOCK``
from a task on the crawl's loop) and keeps the refused people in memory; the send-time handler asks
:meth:`RefusalFeed.refused` before deciding a request for a person.

Fail closed: when the feed has not heard from Redis for ``stale_after`` seconds (a refusal published meanwhile
could be missed), :meth:`RefusalFeed.check` asks Redis's set directly, and raises
:class:`~consentcrawl.distributed.shared.SharedStateUnavailable` when Redis cannot answer: every request that
names a person is then denied; requests that name nobody are not held up.

A person whose say could not be read where their profile said it is (their linked ActivityPub actor, unread:
:class:`~consentcrawl.refusals.book.Unread`) is published the same way, marked as such: every worker denies them
(``error.internal``), as the worker that could not read it does; otherwise another worker would fetch their pages.

``subject`` is the person's *key* (:meth:`consentcrawl.terms.platforms.Platform.subject_key`), as a
:class:`~consentcrawl.decision.Decision` names it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..reasons import ERROR_INTERNAL, SUBJECT_REFUSED_ON_PAGE
from ..refusals.book import ClusterSay
from ..tasks import stop_task
from .shared import SharedState, SharedStateUnavailable, client_options

logger = logging.getLogger("consentcrawl")

#: the reason code of a request for a person who refused on a page
REFUSED_ON_PAGE = SUBJECT_REFUSED_ON_PAGE
#: the reason code of a request for a person whose say a worker could not read (refusals.book.UNREAD_REASON)
UNREAD = ERROR_INTERNAL
STREAM_MAXLEN = 100_000

#: KEYS: the set, the stream. ARGV: member, evidence JSON, maxlen. Returns 1 if the refusal is new.
_PUBLISH = """
local new = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'member', ARGV[1])
return new
"""


def _member(platform: str, subject: str, unread: bool = False) -> str:
    return json.dumps([platform, subject, "unread"] if unread else [platform, subject])


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _person(member: str) -> tuple[tuple[str, str], bool]:
    """(platform, subject) of a member, and whether it is an unread say rather than a refusal."""
    platform, subject, *kind = json.loads(member)
    return (platform, subject), kind == ["unread"]


async def publish_refusal(shared: SharedState, platform: str, subject: str, evidence: Any, *,
                          unread: bool = False) -> bool:
    """Tell every worker that ``subject`` (a key) on ``platform`` refused (or, ``unread``, that their say could not
    be read); ``evidence`` (JSON-able: the page URL, the text found, the cause) is kept with it. True when it was
    not known before. Raises SharedStateUnavailable."""
    keys = (shared.key("refused"), shared.key("refusals"))
    new = await shared.run(shared.script(_PUBLISH)(keys, (_member(platform, subject, unread),
                                                          json.dumps(evidence, default=str), STREAM_MAXLEN)),
                           "publishing a refusal")
    return bool(new)


async def publish_profile_read(shared: SharedState, platform: str, subject: str, purpose: str) -> None:
    """Tell every worker of ``purpose`` that a page showing ``subject``'s profile was read for refusals
    (``PREFIX:profiles-read:PURPOSE``): a worker that collected their posts but never read their profile itself does
    not purge them at its close for that (:func:`profiles_read`). Per purpose: a refusal refuses some purposes
    (``#noai``), so a profile read for one says nothing about another. Raises SharedStateUnavailable."""
    await shared.run(shared.client.sadd(shared.key("profiles-read", purpose), _member(platform, subject)),
                     "publishing a profile read")


async def profiles_read(shared: SharedState, people: list[tuple[str, str]], purpose: str) -> set[tuple[str, str]]:
    """Those of ``people`` whose profile any worker of ``purpose`` read (:func:`publish_profile_read`), asked in
    batches. Raises SharedStateUnavailable."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(people), 1000):
        batch = people[start:start + 1000]
        flags = await shared.run(shared.client.smismember(shared.key("profiles-read", purpose),
                                                          [_member(*person) for person in batch]),
                                 "reading whose profile was read")
        found.update(person for person, flag in zip(batch, flags, strict=True) if flag)
    return found


class RefusalFeed:
    """Every refusal published in the cluster, followed from Redis (see the module doc)."""

    stale_after = 0.75  #: the 1-second bound, less the time a decision takes to reach the network

    def __init__(self, shared: SharedState, block: float = 0.2, clock: Any = time.monotonic) -> None:
        self.shared = shared
        self.block = block
        self.clock = clock
        self._refused: set[tuple[str, str]] = set()
        self._unread: set[tuple[str, str]] = set()  #: people whose say a worker could not read
        self._last_id: str | None = None
        self._heard: float | None = None  #: when Redis last answered the feed
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._stopped = False  #: stopped for good: a check made while closing does not start the feed again
        #: every person the cluster knows about at the close, with the evidence (:meth:`settle`); None: not read
        self.settled: dict[tuple[str, str], ClusterSay] | None = None

    def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task, "the refusals feed")
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ready(self, timeout: float = 1.0) -> None:
        """Wait (up to ``timeout``) until the feed has heard from Redis lately: at the start of a crawl."""
        self.start()
        deadline = self.clock() + timeout
        while (self._heard is None or self.clock() - self._heard > self.stale_after) and self.clock() < deadline:
            await asyncio.sleep(0.02)

    async def settle(self) -> None:
        """At the close, before :meth:`stop`: every person refused (or unread) in the cluster, with the evidence the
        publishing worker kept, read once from Redis's set into :attr:`settled`, so that a purge on close also
        erases what this worker collected of a person another worker found refusing. A Redis that cannot answer
        leaves it None (the purge says so)."""
        try:
            members = await self.shared.run(self.shared.client.hgetall(self.shared.key("refused")),
                                            "reading refusals at the close")
        except SharedStateUnavailable:
            return
        settled: dict[tuple[str, str], ClusterSay] = {}
        for member, evidence in members.items():
            try:
                person, unread = _person(_text(member))
                found = json.loads(_text(evidence))
            except (ValueError, TypeError):  # not a member this code writes: the person cannot be told
                continue
            settled[person] = ClusterSay(unread, found if isinstance(found, dict) else {})
        self.settled = settled

    async def check(self, platform: str, subject: str) -> str | None:
        """The reason to deny the person (refused, or their say unread by a worker), or None: from memory while the
        feed is current, else asked of Redis directly (a busy event loop or a slow round must not deny); raises
        SharedStateUnavailable when Redis cannot answer."""
        heard = self._heard
        person = (platform, subject)
        if heard is not None and self.clock() - heard <= self.stale_after:
            return REFUSED_ON_PAGE if person in self._refused else UNREAD if person in self._unread else None
        self.start()
        refused, unread = await self.shared.run(self.shared.client.hmget(
            self.shared.key("refused"), [_member(platform, subject), _member(platform, subject, True)]),
            "reading refusals")
        return REFUSED_ON_PAGE if refused is not None else UNREAD if unread is not None else None

    def refused(self, platform: str, subject: str) -> bool:
        """Whether the person refused, by what the feed knows; raises SharedStateUnavailable when it is stale."""
        heard = self._heard
        if heard is None or self.clock() - heard > self.stale_after:
            self.start()
            raise SharedStateUnavailable(f"the refusals feed of {self.shared.source} has not answered for "
                                         f"{self.stale_after} s")
        return (platform, subject) in self._refused

    async def _run(self) -> None:
        import redis.asyncio

        # a client of its own: a blocking XREAD must not hold up the other components' commands
        self._client = redis.asyncio.Redis.from_url(self.shared.url, **client_options(
            self.shared.timeout, socket_timeout=self.block + self.shared.timeout, decode_responses=True))
        while True:
            try:
                await self._round()
                self._heard = self.clock()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - down: refuse what needs us, and try again
                if self._heard is not None:
                    logger.warning("consentcrawl: the refusals feed of %s failed (%s): requests for people are "
                                   "denied until it answers", self.shared.source, type(exc).__name__)
                self._heard = None
                self._last_id = None
                await asyncio.sleep(min(self.block, 0.1))

    async def _round(self) -> None:
        client = self._client
        stream = self.shared.key("refusals")
        if self._last_id is None:  # from scratch: the set holds every refusal, the stream what follows
            last = await client.xrevrange(stream, count=1)
            members = [_person(m) for m in await client.hkeys(self.shared.key("refused"))]
            self._refused = {person for person, unread in members if not unread}
            self._unread = {person for person, unread in members if unread}
            self._last_id = last[0][0] if last else "0-0"
            return
        answer = await client.xread({stream: self._last_id}, count=1000, block=int(self.block * 1000))
        for entry_id, fields in (answer[0][1] if answer else []):
            person, unread = _person(fields["member"])
            (self._unread if unread else self._refused).add(person)
            self._last_id = entry_id
