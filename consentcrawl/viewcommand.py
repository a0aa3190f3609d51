"""``scrapy view`` in a project that uses consentcrawl (registered as the ``view`` command by the
``scrapy.commands`` entry point; Scrapy's own command, unchanged, in a project that does not).

Scrapy's ``view`` (and ``fetch``) downloads the URL with the project spider that claims its domain, else with
Scrapy's ``DefaultSpider``. A project that plugs consentcrawl in through :class:`~consentcrawl.ConsentSpider`
alone (no ``ADDONS`` in its settings) thus downloaded a page consentcrawl refuses with a spider no check guards,
and opened it. Here the spider ``view`` uses is always guarded: a spider that is not a ``ConsentSpider`` gets the
add-on as a ``ConsentSpider`` does (its purpose from ``CONSENTCRAWL_PURPOSE``; without one the crawl refuses to
start and nothing is fetched).

The page opens in a browser, and the browser then loads what the page names (images, styles, scripts, frames,
other people's avatars) by itself, outside the crawl and its checks. The page is therefore written with a
``Content-Security-Policy`` that forbids every load but inline styles and ``data:`` images: it shows the text the
crawl collected, not what the browser would fetch next. A ``<meta http-equiv="refresh">`` is a navigation, which
no policy directive governs (the browser would go to the URL it names, another person's page, once its delay is
over): every ``http-equiv`` of the page but ``Content-Type`` is renamed so that the browser ignores it (by the
attribute's name, which an entity cannot spell, unlike its value).
"""

from __future__ import annotations

import re
from argparse import Namespace
from typing import Any

from scrapy.commands.view import Command as ScrapyView
from scrapy.http import HtmlResponse, Response
from scrapy.utils.misc import load_object

from ._scrapy_internals import ShownPage, guard_command_crawl

__all__ = ["NO_LOADS", "Command", "without_loads"]

#: what the browser may load for the page: nothing but inline styles and ``data:`` images
NO_LOADS = b"default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_DOCTYPE = re.compile(rb"\s*<!doctype[^>]*>", re.IGNORECASE)
#: an ``http-equiv`` attribute (a name, after the tag's or another attribute's end) other than ``Content-Type``
_HTTP_EQUIV = re.compile(rb"(?<=[\s/\"'])http-equiv(?=\s*=)(?!\s*=\s*[\"']?content-type[\"'\s/>])", re.IGNORECASE)
#: what such an attribute is renamed to: no browser reads it
_IGNORED = b"data-consentcrawl-ignored-http-equiv"


def without_loads(response: Response) -> Response:
    """An HTML page with a ``<meta>`` CSP that forbids the browser's own loads (after the doctype, as Scrapy puts
    its ``<base>``: the parser places both in the head) and none of its own ``http-equiv`` but ``Content-Type``
    (a refresh navigates); any other response as it is."""
    if not isinstance(response, HtmlResponse):
        return response
    body = _HTTP_EQUIV.sub(_IGNORED, response.body)
    doctype = _DOCTYPE.match(body)
    at = doctype.end() if doctype else 0
    meta = b'<meta http-equiv="Content-Security-Policy" content="' + NO_LOADS + b'">'
    return response.replace(body=body[:at] + meta + body[at:])


def uses_consentcrawl(settings: Any, spider_loader: Any) -> bool:
    """Whether the project plugs consentcrawl in: the add-on in its ``ADDONS``, or a ``ConsentSpider``."""
    from . import Addon, ConsentSpider

    if any(load_object(path) is Addon for path in settings.getwithbase("ADDONS")):
        return True
    return any(issubclass(spider_loader.load(name), ConsentSpider) for name in spider_loader.list())


def guarded(spidercls: type) -> type:
    """``spidercls`` with the add-on: itself if it is a ConsentSpider, else a subclass that is one too, whose
    ``update_settings`` runs ConsentSpider's after the spider's own (the spider's comes first in the MRO, and one
    that does not call ``super()`` would leave the add-on out)."""
    from . import ConsentSpider

    if issubclass(spidercls, ConsentSpider):
        return spidercls

    def update_settings(cls: type, settings: Any) -> None:
        spidercls.update_settings.__func__(cls, settings)  # type: ignore[attr-defined]
        ConsentSpider.update_settings.__func__(cls, settings)  # type: ignore[attr-defined]

    return type(spidercls.__name__, (spidercls, ConsentSpider), {"update_settings": classmethod(update_settings)})


class Command(ShownPage, ScrapyView):
    def run(self, args: list[str], opts: Namespace) -> None:
        process = self.crawler_process
        if process is not None and self.settings is not None and uses_consentcrawl(self.settings,
                                                                                   process.spider_loader):
            guard_command_crawl(process, guarded)
            self._no_loads = True
        super().run(args, opts)

    def shown(self, response: Response) -> Response:
        return without_loads(response) if getattr(self, "_no_loads", False) else response
