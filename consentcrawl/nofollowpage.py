"""The ``nofollow`` page whose callback is running: its links sent through ``crawler.engine.crawl(...)`` are not
followed either.

A page's links are dropped in the spider middleware when the page said ``nofollow`` (robots meta, ``X-Robots-Tag``).
A callback may send requests without yielding them: ``self.crawler.engine.crawl(response.follow(href))`` skips the
spider middlewares and reaches the scheduler through the engine's ``request_scheduled`` signal alone, where nothing
says which page the link was on (no ``Referer``: Scrapy's RefererMiddleware is a spider middleware too).

A callback may also download a page in line, ``await self.crawler.engine.download_async(response.follow(href))``:
past the scheduler, with no ``request_scheduled``. The engine's ``download_async`` is guarded the same way, by the
task that awaits it (:func:`_downloads_guarded`), or by the context a coroutine callback's task started it in
(``asyncio.gather`` runs each download in a task of its own) while that callback runs (:data:`_STARTED_IN`).

``engine.crawl`` sends ``request_scheduled`` synchronously, from the callback's own code, and Scrapy runs that code
in known tasks: a callback that returns (a list, say) is called in the task that processes its response
(``Scraper._scrape``, after the spider middlewares' ``process_spider_input``), a coroutine callback (``async def``
that returns) runs in a task of its own that Scrapy starts for it (``deferred_from_coro``), and a generator's body
runs as its output is read, in the tasks that read it (``CONCURRENT_ITEMS`` of them), each step read through the
spider middleware nearest the callback, consentcrawl's. So the task that runs a nofollow page's callback is known to be
that page's while it does (:func:`reading`, :func:`read_steps`), and the schedule guard refuses a request scheduled
from it (:func:`sent_by_nofollow_page`), as the spider middleware refuses the same link yielded
(``response.nofollow``, recorded in the ``output`` phase). By task, not by context variable: a context is copied
into whatever is scheduled from it (a download the engine starts then, whose redirect is no link of the page's).

Not known to be the page's: a request kept and sent later (from another page's callback, ``spider_idle``), or from
a task the callback starts itself (``asyncio.create_task``, the deprecated ``engine.download``, which starts one):
see README's "Not guaranteed".
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._scrapy_internals import guard_engine_download, spider_default_callback

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response

    from .decision import Decision
    from .runtime import ConsentRuntime

#: the nofollow page each task is running the callback of (a task that ends leaves)
_PAGES: weakref.WeakKeyDictionary[asyncio.Task[Any], Response] = weakref.WeakKeyDictionary()
#: the nofollow page whose coroutine or async generator callback is running, with the task running it, set only
#: while the callback's code runs (never in the task that processes its output: a media pipeline's download of an
#: item's file is no link): a task it starts to download in line (``asyncio.gather(engine.download_async(...))``)
#: copies it, and is the page's while the callback's task still runs it (:func:`_downloading_for`). Read by the
#: in-line download guard alone: the engine's own downloads, scheduled from the callback's context, are no link
_STARTED_IN: ContextVar[tuple[Response, asyncio.Task[Any]] | None] = ContextVar("consentcrawl_nofollow_started_in",
                                                                              default=None)


def reading(runtime: ConsentRuntime, response: Response) -> None:
    """``response`` is handed to its callback now, in this task (which only waits for the callback's output once it
    has returned): the task is the page's if it said nofollow (a set lookup otherwise), and so is the task a
    coroutine the callback returns runs in (:func:`_coroutine_marked`)."""
    if _STARTED_IN.get() is not None:  # a context the engine carried on from a nofollow callback's: not this page's
        _STARTED_IN.set(None)
    if runtime.nofollow(response.request) and (task := asyncio.current_task()) is not None:
        _PAGES[task] = response
        _coroutine_marked(runtime, response)
        _downloads_guarded(runtime)


def _downloads_guarded(runtime: ConsentRuntime) -> None:
    """The engine's ``download_async`` (public: a callback awaits it to download a page in line, past the scheduler
    and so past ``request_scheduled``) refuses a request from a task running a nofollow page's callback, as the
    schedule guard does; once per engine (``_scrapy_internals.guard_engine_download``)."""

    def check(request: Request) -> None:
        # awaited from the callback's code: this runs in the callback's task before the download starts its own
        if (refused := sent_by_nofollow_page(runtime, request, _downloading_for())) is not None and runtime.enforce:
            from .middlewares import ConsentDenied  # the middlewares import this module

            raise ConsentDenied(refused)

    guard_engine_download(runtime.crawler, check)


def _coroutine_marked(runtime: ConsentRuntime, response: Response) -> None:
    """The request's callback (Scrapy reads it next, after the spider middlewares' ``process_spider_input``) made
    one whose coroutine, if it returns one, marks its own task as the page's while it runs. The request gets its own
    callback back as the callback is called: a copy, a retry or a queue on disk sees the spider's."""
    request = response.request
    assert request is not None
    original = request.callback
    called = original or spider_default_callback(runtime.crawler)
    if not callable(called):
        return

    def callback(*args: Any, **kwargs: Any) -> Any:
        request.callback = original
        output = called(*args, **kwargs)
        return _marked(response, output) if inspect.iscoroutine(output) else output

    request.callback = callback


@contextmanager
def _task_marked(response: Response) -> Iterator[None]:
    """The running task marked as ``response``'s (and the tasks it starts, through :data:`_STARTED_IN`) while the
    block runs."""
    task = asyncio.current_task()
    if task is None:
        yield
        return
    _PAGES[task] = response
    token = _STARTED_IN.set((response, task))
    try:
        yield
    finally:
        _PAGES.pop(task, None)
        _STARTED_IN.reset(token)


async def _marked(response: Response, coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``coroutine`` awaited with its task (the one Scrapy starts for it) marked as ``response``'s."""
    with _task_marked(response):
        return await coroutine


async def read_steps(response: Response, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A nofollow page's callback ``output``, each step read with the reading task marked as the page's."""
    while True:
        with _task_marked(response):
            try:
                obj = await output.__anext__()
            except StopAsyncIteration:
                return
        yield obj


def _downloading_for() -> Response | None:
    """The nofollow page a task started by its callback downloads for (:data:`_STARTED_IN`), while the callback's
    own task still runs it; None otherwise."""
    started = _STARTED_IN.get()
    if started is None:
        return None
    page, task = started
    return page if _PAGES.get(task) is page else None


def sent_by_nofollow_page(runtime: ConsentRuntime, request: Request,
                          started_by: Response | None = None) -> Decision | None:
    """The deny (recorded, ``response.nofollow``) of ``request`` if the task scheduling it is running a nofollow
    page's callback (or was started by one still running: ``started_by``), else None."""
    task = asyncio.current_task()
    page = _PAGES.get(task) if task is not None else None
    page = page or started_by
    if page is None or not runtime.nofollow(page.request):
        return None
    return runtime.record_nofollow(request, page)
