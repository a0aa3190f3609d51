"""What a spider's errback yields for a request consentcrawl refused: its items are dropped, its requests go on.

Scrapy calls a refused request's errback with the refusal (``ConsentDenied``), as for a request a downloader
middleware drops, and hands what the errback returns to the item pipelines and the scheduler *without* the spider
middlewares: the spider middleware that drops everything a denied page produced never sees it. An errback that
records failures (``{"url": failure.request.url}``) would write the profile URL of a person who did not authorize
the crawl into the feed. So, once a request is refused, its errback is wrapped: on a refusal, what it returns is
passed on without the items that name no person (each counted in ``consentcrawl/output_dropped``, as a denied
page's output is). An item that names its person (the subject field) goes on to the guard pipeline, which judges
it by that person's own authorization, unless it holds the refused request's URL (in any value, inside a text, a
list, a nested mapping; with or without its scheme, or its path alone, in any case): the guard would keep it on
the person it names, another one, and the URL with it. Requests go on, to be decided like any other. Every other
failure reaches the errback's output unchanged.

The errback is wrapped only when the request is refused, never before: a request waiting in a queue (``JOBDIR``,
a shared scrapy-redis queue) must keep an errback that names a spider method, or it cannot be stored; a request
made from a refused one is given its own errback back as it is scheduled (``unguard``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from itemadapter import ItemAdapter, is_item
from scrapy.exceptions import IgnoreRequest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ._scrapy_internals import awaited_by_caller

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.statscollectors import StatsCollector

DROPPED = "consentcrawl/output_dropped"


def guard_errback(request: Request, refusal: tuple[type[IgnoreRequest], ...], stats: StatsCollector | None,
                  subject_field: str | None) -> None:
    """Wrap ``request``'s errback, if it has one, so that its items for a ``refusal`` that name no person (no
    ``subject_field``) are dropped (see above)."""
    errback = request.errback
    if errback is None or isinstance(errback, _Guarded) or awaited_by_caller(request):
        return  # none, wrapped already, or ``scrapy shell``'s: its output goes to the shell, not the pipelines
    request.errback = _Guarded(errback, refusal, stats, subject_field)


def unguard(request: Request) -> None:
    """Give a request about to be queued its spider's own errback back: one made from a refused request
    (``failure.request.replace(url=...)``, ``copy()``) carries the wrapper, which no disk or shared queue can store.
    Refused again, it is wrapped again."""
    if isinstance(request.errback, _Guarded):
        request.errback = request.errback.errback


def _refused(error: BaseException | None, refusal: tuple[type[IgnoreRequest], ...]) -> bool:
    """Whether ``error`` is a refusal, or was raised from one: a project's downloader middleware may turn the
    refusal into an error of its own in ``process_exception`` (``raise DownloadFailed(...) from exception``)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, refusal):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class _Guarded:
    """An errback whose output for a refusal loses its items."""

    def __init__(self, errback: Callable[[Failure], Any], refusal: tuple[type[IgnoreRequest], ...],
                 stats: StatsCollector | None, subject_field: str | None) -> None:
        self.errback = errback
        self.refusal = refusal
        self.stats = stats
        self.subject_field = subject_field

    def __call__(self, failure: Failure) -> Any:
        output = self.errback(failure)
        if not _refused(failure.value, self.refusal):
            return output
        request = getattr(failure, "request", None)  # the scraper sets it before it calls the errback
        return _Refused(self, getattr(request, "url", None)).without_items(output)

    def dropped(self, obj: Any, url: str | None) -> bool:
        """Whether ``obj``, output for a refusal of ``url``, is an item to drop (counted)."""
        if is_item(obj) and (not self._names_a_person(obj) or url is None or _holds(obj, url_spellings(url))):
            if self.stats is not None:
                self.stats.inc_value(DROPPED)
            return True
        return False

    def _names_a_person(self, item: Any) -> bool:
        if not self.subject_field:
            return False
        try:
            return ItemAdapter(item).get(self.subject_field) not in (None, "")
        except Exception:  # noqa: BLE001 - an item that cannot be read names no one we can judge: dropped
            return False


class _Refused:
    """One refusal's errback output, without its items (:meth:`_Guarded.dropped`): the refused URL with it."""

    def __init__(self, guarded: _Guarded, url: str | None) -> None:
        self.guarded = guarded
        self.url = url

    def _dropped(self, obj: Any) -> bool:
        return self.guarded.dropped(obj, self.url)

    def without_items(self, output: Any) -> Any:
        if output is None or isinstance(output, Failure):
            return output
        if isinstance(output, Deferred):
            return output.addCallback(self.without_items)
        if hasattr(output, "__aiter__"):
            return self._async_without_items(output)
        if inspect.isawaitable(output):
            return self._awaited_without_items(output)
        if is_item(output):  # one item (a dict, an Item: iterable over their keys), as Scrapy reads it
            return None if self._dropped(output) else output
        if isinstance(output, Iterable) and not isinstance(output, (str, bytes)):
            return (obj for obj in output if not self._dropped(obj))
        return output

    async def _async_without_items(self, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for obj in output:
            if not self._dropped(obj):
                yield obj

    async def _awaited_without_items(self, output: Any) -> Any:
        result = self.without_items(await output)
        if hasattr(result, "__aiter__"):
            return [obj async for obj in result]
        return result


#: how deep :func:`_holds` looks into nested values (deeper: taken to hold it)
_DEPTH = 20


def url_spellings(url: str) -> tuple[str, ...]:
    """How a value may hold ``url``, casefolded: without its scheme, and by its path (with its query, where the
    person's id may be: ``/profile.php?id=107``) alone when it has one (it names the person on the platform:
    ``/u/107``)."""
    bare = url.split("://", 1)[-1].casefold()
    parts = urlsplit(url)
    path = (parts.path + (f"?{parts.query}" if parts.query else "")).casefold()
    return (bare, path) if len(path) > 1 else (bare,)


def _holds(value: Any, spellings: tuple[str, ...], depth: int = 0) -> bool:
    """Whether ``value`` holds one of the URL's ``spellings`` (:func:`url_spellings`: ``PEOPLE.EXAMPLE/u/107``,
    ``/U/107``): in a text or bytes, or in any key or value of a mapping, an item, a list, a tuple or a set within
    it. A value nested too deep, or one that cannot be read, is taken to hold it."""
    if depth > _DEPTH:
        return True
    try:
        if isinstance(value, str):
            text = value.casefold()
            return any(spelling in text for spelling in spellings)
        if isinstance(value, (bytes, bytearray)):
            return _holds(bytes(value).decode("utf-8", "replace"), spellings, depth + 1)
        if isinstance(value, Mapping) or (is_item(value) and not isinstance(value, type)):
            pairs = value.items() if isinstance(value, Mapping) else ItemAdapter(value).items()
            return any(_holds(k, spellings, depth + 1) or _holds(v, spellings, depth + 1) for k, v in pairs)
        if isinstance(value, (list, tuple, set, frozenset)):
            return any(_holds(v, spellings, depth + 1) for v in value)
    except Exception:  # noqa: BLE001 - what cannot be read cannot be shown not to hold it
        return True
    return False
