"""The URLs an item hands Scrapy's media pipelines (``file_urls``, ``image_urls``), decided as links are.

A media pipeline does not always send a request for a URL it is given: FilesPipeline and ImagesPipeline put a
file already in their store, and younger than ``FILES_EXPIRES``, in the item without fetching it (``status:
uptodate``). Such a file was never decided at send time, and may be of a person who has withdrawn since it was
stored. So the guard decides each media URL of a kept item as the link check decides a link (terms and the
person, the records looked up when needed), and takes out those it denies before any media pipeline sees them.

The fields are only where Scrapy's pipelines read by default: a subclass may name a field of its own (its
``FILES_URLS_FIELD`` class attribute, a ``<CLASS>_FILES_URLS_FIELD`` setting) or build its requests from anything
(``get_media_requests``). What every media pipeline does pass through is ``media_to_download``, where it looks in
its store before it sends a request: :func:`guard_stored_media` decides each request there, and one it denies is
not looked up but sent, so the send-time decision denies and records it as any request's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.pipelines.media import MediaPipeline
from scrapy.utils.defer import ensure_awaitable

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from .runtime import ConsentRuntime


def media_fields(settings: BaseSettings) -> tuple[str, ...]:
    """The item fields Scrapy's media pipelines read their URLs from, as they read their names."""
    return tuple(dict.fromkeys((settings.get("FILES_URLS_FIELD") or "file_urls",
                                settings.get("IMAGES_URLS_FIELD") or "image_urls")))


#: marks a ``media_to_download`` already guarded (a pipeline is seen again when a second crawl shares it)
_GUARDED = "_consentcrawl_guarded"


def guard_stored_media(runtime: ConsentRuntime, pipelines: list[Any]) -> None:
    """Make every media pipeline among ``pipelines`` (the crawl's instances) decide a request before it looks in
    its store: a denied one goes to the downloader instead of being answered from the store (in report mode the
    store answers, and the deny is recorded)."""
    for pipeline in pipelines:
        stored = getattr(pipeline, "media_to_download", None)
        if isinstance(pipeline, MediaPipeline) and stored is not None and not getattr(stored, _GUARDED, False):
            pipeline.media_to_download = _decided_first(runtime, stored)  # type: ignore[method-assign]


def _decided_first(runtime: ConsentRuntime, stored: Any) -> Any:
    async def media_to_download(request: Request, info: Any, *args: Any, **kwargs: Any) -> Any:
        if await runtime.decide_scheduled(request) is not None and runtime.enforce:
            return None  # sent, not looked up: the send-time decision denies it, and records why
        return await ensure_awaitable(stored(request, info, *args, **kwargs))

    setattr(media_to_download, _GUARDED, True)
    return media_to_download


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
