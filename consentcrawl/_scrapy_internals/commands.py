"""Scrapy internals of its commands: ``scrapy parse``'s callbacks' output guarded and its no-response line read,
the spider class ``fetch``/``view``/``shell`` crawl with, the page ``view`` opens, ``open_in_browser``'s opener
(see the package doc)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response
    from twisted.internet.defer import Deferred


#: the attribute that marks a ``scrapy parse`` command whose callbacks' output is guarded already
_PARSE_GUARDED = "_consentcrawl_guarded"


def guard_parse_command(request: Request, guard: Callable[[Response, list[Any]], Awaitable[list[Any]]]) -> bool:
    """If ``request`` is the one ``scrapy parse`` starts with, pass what its callbacks yield through ``guard``;
    whether it is (and was not guarded yet).

    ``scrapy parse`` calls the spider's callback itself, inside a wrapper it sets as the request's callback, and
    keeps the callback's items and requests to print them (``# Scraped Items``, ``# Requests``): the spider
    middlewares see only what the wrapper hands back, and the item pipelines never see the items it prints
    (``--pipelines`` runs them, then prints every item all the same). Its command object keeps the wrapper's
    state; its ``run_callback`` is the one place every callback's output passes, so it is wrapped there, once.
    Scrapy has no public hook for it: the command is found in the wrapper's closure (``self``).
    """
    callback = request.callback
    code = getattr(callback, "__code__", None)
    # by the module the function was written in: functools.update_wrapper gives it the spider method's names
    if code is None or code.co_name != "callback" or getattr(callback, "__globals__", {}).get("__name__") != \
            PARSE_LOGGER:
        return False
    cells = dict(zip(code.co_freevars, getattr(callback, "__closure__", None) or (), strict=False))
    command = cells["self"].cell_contents if "self" in cells else None
    if command is None or getattr(command, _PARSE_GUARDED, False) or not hasattr(command, "run_callback"):
        return False
    run_callback = command.run_callback

    def guarded(response: Response, callback: Any, cb_kwargs: dict[str, Any] | None = None) -> Deferred[Any]:
        from scrapy.utils.defer import deferred_from_coro

        output = run_callback(response, callback, cb_kwargs)
        return output.addCallback(lambda result: deferred_from_coro(guard(response, list(result or ()))))

    command.run_callback = guarded
    setattr(command, _PARSE_GUARDED, True)
    return True


#: the module of Scrapy's parse command, and its logger
PARSE_LOGGER = "scrapy.commands.parse"
#: what it logs at ERROR, after the crawl, when the URL it was given downloaded nothing
_PARSE_NO_RESPONSE = "No response downloaded for: %(url)s"


def parse_command_url(record: logging.LogRecord) -> str | None:
    """The URL of ``scrapy parse``'s ``No response downloaded for: <url>`` line; None for any other line."""
    if record.name != PARSE_LOGGER or record.msg != _PARSE_NO_RESPONSE or not isinstance(record.args, dict):
        return None
    url = record.args.get("url")
    return url if isinstance(url, str) else None


class ShownPage:
    """A mixin for Scrapy's ``view`` command: the downloaded page goes to the command's :meth:`show`, which opens it.
    Scrapy's ``fetch``/``view`` commands hand the response to their private ``_print_response``, with no public
    hook between the download and the browser."""

    def show(self, response: Response, opts: Any) -> None:
        super()._print_response(response, opts)  # type: ignore[misc]

    def _print_response(self, response: Response, opts: Any) -> None:
        self.show(response, opts)


def guard_open_in_browser(opener: Callable[[str], Any]) -> None:
    """Scrapy's ``open_in_browser`` (``scrapy.utils.response``), called without an opener, opens the file it wrote
    through ``opener`` instead of ``webbrowser.open``. A spider's module holds the function itself (imported before
    any add-on runs), so its default argument is the one thing every caller shares: the private ``_openfunc``'s
    default is replaced, for the whole process (the function offers no other hook). Once set, it stays set."""
    from scrapy.utils import response as scrapy_response

    function = scrapy_response.open_in_browser
    if function.__defaults__ != (opener,):
        function.__defaults__ = (opener,)


def guard_command_crawl(process: Any, wrap: Callable[[type], type]) -> None:
    """Scrapy's ``fetch``, ``view`` and ``shell`` commands choose the spider class inside their ``run`` (the project
    spider that claims the URL's domain, ``--spider NAME``, else ``DefaultSpider``) and build its crawler with no
    hook in between (``fetch`` through ``crawler_process.crawl``, ``shell`` through the private
    ``_create_crawler``, which ``crawl`` calls too): this process's ``_create_crawler`` (this instance only) builds
    the crawler of ``wrap(spidercls)`` instead."""
    create = process._create_crawler

    def create_wrapped(spidercls: Any) -> Any:
        if isinstance(spidercls, str):
            spidercls = process.spider_loader.load(spidercls)
        return create(wrap(spidercls))

    process._create_crawler = create_wrapped
