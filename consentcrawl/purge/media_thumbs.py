"""The thumbnails of an image an ``ImagesPipeline`` stored, named as that pipeline names them.

An item's result names the full image's ``path`` only. Its thumbnails are named by the pipeline's
``thumb_path(request, thumb_id, response, info, item=item)``: by default ``thumbs/<size>/<SHA-1 of the URL>.jpg``
(the URL's hash, not the full image's name: a project's own ``file_path`` alone moves them away from the full
image's name), and anything at all in a subclass that overrides it. So the purge asks the pipeline: for each
thumbnail size it is configured with (``<CLASS>_IMAGES_THUMBS``, then ``IMAGES_THUMBS``, then the class's
``THUMBS``, as ``ImagesPipeline`` reads them), ``thumb_path`` with a request for the image's URL (from the
result) and the removed item's fields as read from the output.

The pipeline asked is the crawl's own instance in a purge on close (:meth:`ThumbNamer.use`); in the command, where
no crawl runs, one made as the crawl makes it, with the settings (:meth:`ThumbNamer.build`), or, when it needs more
of a crawler than its settings, one made without ``__init__``. It is made only when a thumbnail must be named (an
image a removed item names is being erased from a store that exists): its ``__init__`` is the project's code and
may have effects (``ImagesPipeline``'s makes ``IMAGES_STORE``), and a purge that erases no image must not run it.
It cannot be skipped when it is needed: a ``thumb_path`` of a subclass may read what its ``__init__`` set from the
settings, and an instance without it could name other paths than the crawl's, leaving the thumbnails behind. A
``thumb_path`` that cannot name the thumbnails so (it reads the response, or what its ``__init__`` would have set)
fails: they are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from .common import PurgeFailed

__all__ = ["ThumbNamer", "thumb_namer"]


class ThumbNamer:
    """Names an image's thumbnails with ``cls.thumb_path`` for each of ``sizes``."""

    def __init__(self, cls: type, sizes: tuple[str, ...]) -> None:
        self.cls = cls
        self.sizes = sizes
        self.instance: Any = None
        self._settings: Any = None  #: to build the instance with when it is first needed (:meth:`build`)

    @property
    def own(self) -> bool:
        """Whether the class names thumbnails its own way (it overrides ``thumb_path``)."""
        from scrapy.pipelines.images import ImagesPipeline

        return getattr(self.cls, "thumb_path", None) is not ImagesPipeline.thumb_path

    def use(self, instance: Any) -> None:
        """The crawl's own pipeline: asked instead of an instance made without ``__init__``."""
        if type(instance) is self.cls:
            self.instance = instance

    def build(self, settings: Any) -> None:
        """For the command, where no crawl runs: an instance made as the crawl makes it (``from_crawler``, given
        the settings) when a thumbnail is first named (module doc); only for a class that names thumbnails its own
        way (the default naming needs none). One that cannot be made so (it needs more of a crawler) is asked
        without its ``__init__``."""
        self._settings = settings

    def _built(self) -> None:
        settings, self._settings = self._settings, None
        if settings is None or not self.own or self.instance is not None:
            return
        from scrapy.utils.misc import build_from_crawler
        from scrapy.utils.request import RequestFingerprinter

        crawler: Any = SimpleNamespace(settings=settings, request_fingerprinter=RequestFingerprinter(), stats=None,
                                       spider=None, signals=None, engine=None)
        try:
            self.instance = build_from_crawler(self.cls, crawler)
        except Exception:  # noqa: BLE001 - the project's code; asked without __init__, and a failure is reported
            self.instance = None

    def names(self, url: str, item: Mapping[str, Any]) -> list[str]:
        """Each thumbnail's path in the store; PurgeFailed when ``thumb_path`` cannot name one."""
        from scrapy import Request

        self._built()
        pipeline = self.instance if self.instance is not None else object.__new__(self.cls)
        out = []
        for size in self.sizes:
            try:
                path = pipeline.thumb_path(Request(url), size, response=None, info=None, item=dict(item))
            except Exception as exc:  # noqa: BLE001 - the project's code: any failure means the names are unknown
                raise PurgeFailed(f"{self.cls.__name__}.thumb_path cannot name its thumbnails here "
                                  f"({type(exc).__name__}): they are not erased") from None
            if not isinstance(path, str):
                raise PurgeFailed(f"{self.cls.__name__}.thumb_path gave no path: its thumbnails are not erased")
            out.append(path)
        return out


def thumb_namer(cls: type, settings: Any) -> ThumbNamer:
    """The namer of an ``ImagesPipeline`` class, with its thumbnail sizes read as the pipeline reads them."""
    key = "IMAGES_THUMBS"
    own = settings.get(f"{cls.__name__.upper()}_{key}") if cls.__name__ != "ImagesPipeline" else None
    sizes = own or settings.get(key) or getattr(cls, "THUMBS", {}) or {}
    return ThumbNamer(cls, tuple(sorted(str(size) for size in dict(sizes))))
