"""The send-time step of a distributed crawl: the cluster's ``Crawl-delay``, refusals, then the decision.

Called by :class:`consentcrawl.handler.ConsentDownloadHandler` for every checked request when a shared Redis is
configured, in place of its in-process spacing:

1. a person who refused on a page seen by any worker is denied (``subject.refused-on-page``), and so is one whose
   linked actor a worker could not read (``error.internal``);
2. the origin's next turn is reserved in the cluster's schedule and waited for (:mod:`.spacing`);
3. the authoritative decision is made, with the clock read after the wait;
4. the send is recorded in the schedule only if the gap since the origin's last send, by any worker, is kept and
   no other fetch from the origin is going (it then holds the origin until it ends); otherwise a ``send-deferred``
   event names the allow that did not go, and the request waits again (for another worker's fetch to end: not one
   of its ``MAX_ROUNDS``) and is decided again; so is one that changed while the send was recorded (code holding
   it, run by the event loop meanwhile): what is sent is the request as it was decided.

Any Redis error denies the request (``error.shared-state-unavailable``, recorded with its cause); the next request
asks Redis again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from scrapy.exceptions import IgnoreRequest

from ..decision import Evidence, Stage, deny
from ..middlewares import ConsentDenied
from ..scheduling import error_cause
from .refusals import REFUSED_ON_PAGE
from .shared import SHARED_STATE_UNAVAILABLE, SharedStateUnavailable
from .spacing import fetch_hold, fetch_token

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request

    from ..decision import Decision
    from ..runtime import ConsentRuntime

#: decisions made for one request before it is given up on (another worker keeps taking the origin's turns)
MAX_ROUNDS = 20


async def send_shared(runtime: ConsentRuntime, request: Request, origin_delay: tuple[str | None, float | None],
                      off_the_clock: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
                      ) -> None:
    """Return when ``request`` may go to the network now; raise ConsentDenied when it must not (see the module
    doc). Each wait for the cluster's schedule is in ``off_the_clock()`` (the request holds its origin's turn in
    this process meanwhile: :meth:`~consentcrawl.originspacing.OriginSpacing.off_the_clock`)."""
    distributed = runtime.distributed
    assert distributed is not None
    origin, delay = origin_delay
    try:
        await _refusal(runtime, request)
        if origin is not None:
            wait = await distributed.spacing.reserve(origin, delay)
            if wait > 0:
                runtime.count("consentcrawl/crawl_delay/waited")
                with off_the_clock():
                    await asyncio.sleep(wait)
        rounds = 0
        while rounds < MAX_ROUNDS:
            decision = await runtime.decide_send(request)  # reads the clock now, after the wait
            if runtime.drops(decision):
                raise ConsentDenied(decision)
            if origin is None:
                return
            token = fetch_token(request)
            wait = await distributed.spacing.send(origin, delay, token, fetch_hold(request))
            if wait == 0 and (not decision.allowed or runtime.as_decided(request)):  # a deny: report mode sends it
                return
            if wait == 0:  # changed while the send was recorded (code holding it): decided again as it now is
                rounds += 1
                runtime.send_deferred(decision, request, 0.0)
                continue
            runtime.count("consentcrawl/crawl_delay/waited_again")
            runtime.send_deferred(decision, request, abs(wait))
            with off_the_clock():
                if wait < 0:  # another worker's fetch holds the origin: not a round; it ends, or its hold lapses
                    await distributed.spacing.until_free(origin, delay, token)
                else:
                    rounds += 1
                    await asyncio.sleep(wait)
            await _refusal(runtime, request)
        raise SharedStateUnavailable(f"no turn for the origin after {MAX_ROUNDS} tries")
    except SharedStateUnavailable as exc:
        decision = await _record(runtime, request, deny(Stage.ERROR, SHARED_STATE_UNAVAILABLE,
                                                        evidence=(error_cause(exc, "shared state"),)))
        if runtime.drops(decision):
            raise ConsentDenied(decision) from None


async def side_shared(runtime: ConsentRuntime, request: Request, origin: str, delay: float | None,
                      off_the_clock: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
    """One of our side requests (robots.txt, a signal file) takes the cluster's turn for ``origin`` (robots.txt,
    without a delay, goes at once), and holds the origin until it ends (:func:`ended_shared`); each wait in
    ``off_the_clock()``, as in :func:`send_shared`. Its failure fails the side request (IgnoreRequest): what its
    file covers is denied as unavailable."""
    assert runtime.distributed is not None
    try:
        spacing = runtime.distributed.spacing
        wait = await spacing.reserve(origin, delay)
        token, rounds = fetch_token(request), 0
        while rounds < MAX_ROUNDS:
            with off_the_clock():
                if wait > 0:
                    runtime.count("consentcrawl/crawl_delay/waited")
                    await asyncio.sleep(wait)
                elif wait < 0:  # another worker's fetch holds the origin: not a round
                    await spacing.until_free(origin, delay, token)
            wait = await spacing.send(origin, delay, token, fetch_hold(request), side=True)
            if wait == 0:
                return
            rounds += wait > 0
        raise SharedStateUnavailable(f"no turn for the origin after {MAX_ROUNDS} tries")
    except SharedStateUnavailable as exc:
        raise IgnoreRequest(f"consentcrawl: {exc}") from None


async def ended_shared(runtime: ConsentRuntime, request: Request, origin: str, delay: float | None,
                       side: bool = False) -> None:
    """Tell the cluster a fetch from ``origin`` (a ``side`` fetch: robots.txt, a signal file) ended now
    (:meth:`.spacing.SharedSpacing.ended`). The page is here already: when Redis does not answer, the miss is
    counted and the origin stays held until the fetch's hold lapses (its download timeout and the delay), which only
    slows the origin."""
    distributed = runtime.distributed
    assert distributed is not None
    try:
        await distributed.spacing.ended(origin, delay, fetch_token(request), side)
    except SharedStateUnavailable:
        runtime.count("consentcrawl/crawl_delay/end_unrecorded")


async def unsent_shared(runtime: ConsentRuntime, request: Request, origin: str | None, delay: float | None,
                        side: bool = False) -> None:
    """``request``, recorded as sent to ``origin`` by :func:`send_shared` or a side request's turn, is not sent after
    all (decided again and denied, or refused at its send): its fetch no longer holds the origin. When Redis does not
    answer, the hold lapses with the request's download timeout."""
    distributed = runtime.distributed
    if distributed is None or origin is None:
        return
    try:
        await distributed.spacing.free(origin, delay, fetch_token(request), side)
    except SharedStateUnavailable:
        runtime.count("consentcrawl/crawl_delay/end_unrecorded")


async def _refusal(runtime: ConsentRuntime, request: Request) -> None:
    """Deny a request for a person the cluster knows refused, or whose say a worker could not read (raises
    SharedStateUnavailable when it cannot know)."""
    distributed = runtime.distributed
    assert distributed is not None
    facts, _ = runtime.facts_for(request, request.url, runtime.config.now())
    if facts is None or facts.platform is None or facts.subject is None:
        return  # nobody named (or an unreadable URL, which the decision denies)
    reason = await distributed.refusals.check(facts.platform.name, facts.subject)
    if reason is None:
        return
    source = distributed.shared.source
    if reason == REFUSED_ON_PAGE:
        stage, evidence = Stage.SUBJECT, Evidence("refusal", source, {"seen_by": "a worker"})
    else:  # a worker could not read what the person says (refusals.book.Unread)
        stage, evidence = Stage.ERROR, Evidence("error", source, {
            "error": "ActorUnread", "seen_by": "a worker",
            "while": "reading the ActivityPub actor the person's profile links to"})
    decision = await _record(runtime, request, deny(stage, reason, subject=facts.subject,
                                                    platform=facts.platform.name, evidence=(evidence,)))
    if runtime.drops(decision):
        raise ConsentDenied(decision)


async def _record(runtime: ConsentRuntime, request: Request, decision: Decision) -> Decision:
    now = runtime.config.now()
    facts, _ = runtime.facts_for(request, request.url, now)
    decision = await runtime.record_grouped(decision, request.url, facts.canonical.url if facts else None,
                                            "request", time=now)
    runtime._remember(request, request.url, decision)
    return decision
