"""Stopping a background task for good, at the end of a crawl.

``task.cancel()`` is a request that can be lost. Python 3.11's ``asyncio.wait_for``, through which redis-py sends
every command, returns the command's result and drops a cancellation that arrives after the command has gone out
but before its caller resumed (CPython gh-86296, fixed in 3.12). A loop that follows Redis (the refusals feed, the
seed reader, an authorization store's change feed) then goes on as if it had never been cancelled, and a close
that awaits it waits for ever: the crawl never gets past its ``spider_closed`` handlers. The window is one turn
of the event loop, so it is hit mostly on a loaded machine.

:func:`stop_task` cancels until the task has ended. The loops it stops hold nothing to clean up when cancelled,
so a second cancellation cannot cut a cleanup short.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("consentcrawl")

#: how long a cancellation is given to land before it is made again
RETRY = 0.05


async def stop_task(task: asyncio.Task[Any], what: str, timeout: float = 5.0) -> bool:
    """Cancel ``task`` until it has ended (see the module doc); False, and said so, when it still runs after
    ``timeout`` seconds (it is then left behind rather than holding up the close)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.error("consentcrawl: %s did not stop within %.1f s of being cancelled; leaving it", what, timeout)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RETRY, remaining))
    if not task.cancelled():
        task.exception()  # retrieved: a loop that ended on an error has said so itself
    return True
