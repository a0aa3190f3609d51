"""A command's event loop: the commands that decide (``check``, ``signals``, ``authorizations show``) ask robots.txt
and the store asynchronously, outside any crawl, and must close what they opened before the loop ends."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .consent.adapt import aclose_store

_T = TypeVar("_T")


def run_async(function: Callable[[], Coroutine[Any, Any, _T]], store: Any = None) -> _T:
    """Run a coroutine function to its end in an event loop of its own, then close ``store``: robots.txt and the
    store are asked asynchronously. Called from inside a running loop (a test, a notebook), it runs in a thread."""
    async def run() -> _T:
        try:
            return await function()
        finally:
            if store is not None:
                await aclose_store(store)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()
