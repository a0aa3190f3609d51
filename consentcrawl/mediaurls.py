"""The URLs an item hands Scrapy's media pipelines (``file_urls``, ``image_urls``), decided as links are.

A media pipeline does not always send a request for a URL it is given: FilesPipeline and ImagesPipeline put a
file already in their store, and younger than ``FILES_EXPIRES``, in the item without fetching it (``status:
uptodate``). Such a file was never decided at send time, and may be of a person who has withdrawn since it was
stored. So the guard decides each media URL of a kept item as the link check decides a link (terms and the
person, the records looked up when needed), and takes out those it denies before any media pipeline sees them.

The fields are only where Scrapy's pipelines read by default: a subclass may name a field of its own (its
``FILES_URLS_FIELD`` class attribute, a ``<CLASS>_FILES_URLS_FIELD`` setting) or build its requests from anything
(``get_media_requests``). What every media pipeline does pass through is ``media_to_download``, where it looks in
its store before it sends a request, and ``item_completed``, which every result reaches (Scrapy's ``MediaPipeline``
also hands a result it kept for the crawl to a later item without either of the others):
:func:`guard_stored_media` decides each file in both, and :func:`decide_media_requests`, from the guard, decides
the requests the media pipelines will make for an item first, with the person's records looked up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.pipelines.media import MediaPipeline
from scrapy.utils.defer import ensure_awaitable
from twisted.python.failure import Failure

from ._scrapy_internals import media_refused

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from .runtime import ConsentRuntime


def media_fields(settings: BaseSettings) -> tuple[str, ...]:
    """The item fields Scrapy's media pipelines read their URLs from, as they read their names."""
    return tuple(dict.fromkeys((settings.get("FILES_URLS_FIELD") or "file_urls",
                                settings.get("IMAGES_URLS_FIELD") or "image_urls")))


#: marks a pipeline method already guarded (a pipeline is seen again when a second crawl shares it)
_GUARDED = "_consentcrawl_guarded"


def is_media_pipeline(pipeline: Any) -> bool:
    """Whether ``pipeline`` works as Scrapy's media pipelines do: a ``MediaPipeline``, or a class of the project's
    own with the same protocol (``get_media_requests``, ``media_to_download``, ``item_completed``) that does not
    inherit from it (a copy of Scrapy's, say). Told by what it does, not by its class."""
    return isinstance(pipeline, MediaPipeline) or all(
        callable(getattr(pipeline, name, None)) for name in ("get_media_requests", "media_to_download",
                                                             "item_completed"))


def guard_stored_media(runtime: ConsentRuntime, pipelines: list[Any]) -> None:
    """Make every media pipeline among ``pipelines`` (the crawl's instances) decide a file before it is handed to
    an item, wherever the file comes from:

    - ``media_to_download``, where the pipeline looks in its store before it sends a request: a denied request is
      neither looked up nor sent, it fails as a filtered one (in report mode the store answers, and the deny is
      recorded). A file the store hands over (``uptodate``) is never sent, so the request phase's decision is made
      for it here: robots.txt and the site's signals as they are now (robots.txt fetched if the crawl has no fresh
      copy; unavailable, it denies), which may disallow a file they allowed when it was stored. A file the store
      does not have is sent, and decided there;
    - ``item_completed``, which every result reaches, the results Scrapy keeps for the whole crawl by request
      fingerprint (``SpiderInfo.downloaded``, handed to a later item without a request or a look in the store)
      among them: a file of a person who withdrew since it was fetched is taken out of the results.

    Each decision is made with the runtime of the crawl the call names (the spider in ``info``), not one captured
    when the pipeline was first seen. A deny is recorded once: the request it fails is never sent, so no send-time
    decision follows it."""
    for pipeline in pipelines:
        if not is_media_pipeline(pipeline):
            continue
        stored = pipeline.media_to_download
        if not getattr(stored, _GUARDED, False):
            pipeline.media_to_download = _decided_first(runtime, stored)
        completed = pipeline.item_completed
        if not getattr(completed, _GUARDED, False):
            pipeline.item_completed = _results_decided(runtime, completed)


def _runtime_of(info: Any, default: ConsentRuntime) -> ConsentRuntime | None:
    """The runtime of the crawl ``info`` (a media pipeline's ``SpiderInfo``) belongs to; ``default`` for one that
    names no crawler. None: that crawl's configuration is invalid (everything is refused)."""
    from .runtime import get_runtime

    crawler = getattr(getattr(info, "spider", None), "crawler", None)
    return default if crawler is None else get_runtime(crawler)


def _decided_first(runtime: ConsentRuntime, stored: Any) -> Any:
    from .runtime import is_checked_url

    async def media_to_download(request: Request, info: Any, *args: Any, **kwargs: Any) -> Any:
        deciding = _runtime_of(info, runtime)
        if deciding is None:
            raise media_refused("configuration error")
        denied = await deciding.decide_scheduled(request)
        if denied is not None and deciding.enforce:
            deciding.remember_refusal(request, denied)
            raise media_refused(str(denied.reason))
        result = await ensure_awaitable(stored(request, info, *args, **kwargs))
        if result is not None and is_checked_url(request.url):  # handed over from the store, never sent
            decision = await deciding.prefilter(request)
            if deciding.drops(decision):
                raise media_refused(str(decision.reason))
        return result

    setattr(media_to_download, _GUARDED, True)
    return media_to_download


def _results_decided(runtime: ConsentRuntime, completed: Any) -> Any:
    """``item_completed`` is called without being awaited (``MediaPipeline.process_item`` returns what it returns):
    each result is decided with what the engine knows now, the person's records looked up for this item already
    by :func:`decide_media_requests`. A result it cannot decide without a lookup (the store changed since) is not
    handed on: failed closed, counted, not guessed."""
    from .deciding import Undecided

    def item_completed(results: list[Any], item: Any, info: Any) -> Any:
        deciding = _runtime_of(info, runtime)
        kept = []
        for result in results:
            ok, value = result if isinstance(result, tuple) and len(result) == 2 else (False, None)
            if not ok:  # a failure: no file to hand on (a deny before the send is one, recorded already)
                kept.append(result)
                continue
            url = value.get("url") if isinstance(value, Mapping) else None
            if deciding is None:
                reason = "configuration error"
            elif not isinstance(url, str):
                reason = "a media result that names no URL"  # whose file it is cannot be told: not handed on
            else:
                made = _decided_now(deciding, url)
                reason = "" if made is None else "undecided" if isinstance(made, Undecided) else str(made.reason)
            if not reason or (deciding is not None and not deciding.enforce):
                kept.append(result)
                continue
            if deciding is not None:
                deciding.count("consentcrawl/items/media_results_removed")
            kept.append((False, Failure(media_refused(reason))))
        return completed(kept, item, info)

    setattr(item_completed, _GUARDED, True)
    return item_completed


def _decided_now(runtime: ConsentRuntime, url: str) -> Any:
    """The scheduling check of ``url`` without a lookup: a deny, ``Undecided``, or None (allowed)."""
    from .scheduling import bad_url

    try:
        request = Request(url)
    except (TypeError, ValueError) as exc:
        return runtime.record(bad_url(url, exc), url, None, "schedule")
    return runtime.decide_scheduled_now(request)


async def decide_media_requests(runtime: ConsentRuntime, item: Any, pipelines: list[Any]) -> None:
    """Decide every request the crawl's media pipelines will make for ``item`` (their ``get_media_requests``), with
    the person's records looked up now: a deny is recorded here, once, and the pipelines' own checks (above) find
    it again without a lookup. A pipeline whose ``get_media_requests`` fails is left to fail in its own turn."""
    for pipeline in pipelines:
        if not is_media_pipeline(pipeline):
            continue
        try:
            requests = list(pipeline.get_media_requests(item, getattr(pipeline, "spiderinfo", None)) or ())
        except Exception:  # noqa: BLE001 - the pipeline raises it again when the item reaches it
            continue
        for request in requests:
            if isinstance(request, Request):
                await runtime.decide_scheduled(request)


async def keep_allowed_media(runtime: ConsentRuntime, adapter: Any, names: Any, fields: tuple[str, ...]) -> None:
    """Take out of ``adapter``'s media ``fields`` every URL the link check denies (in report mode, only record
    it). A URL that is not a string, or that Scrapy cannot make a request of, is taken out too."""
    for field in fields:
        if field not in names:
            continue
        urls = adapter.get(field)
        if not isinstance(urls, (list, tuple)) or not urls:
            continue
        kept = [url for url in urls if await _allowed(runtime, url)]
        if len(kept) != len(urls):
            runtime.count("consentcrawl/items/media_urls_removed", len(urls) - len(kept))
            if runtime.enforce:
                adapter[field] = kept if isinstance(urls, list) else type(urls)(kept)


async def _allowed(runtime: ConsentRuntime, url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        request = Request(url)
    except (TypeError, ValueError):
        return False
    return await runtime.decide_scheduled(request) is None
