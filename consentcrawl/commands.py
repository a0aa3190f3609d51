"""Scrapy's ``fetch``, ``view``, ``shell`` and ``parse`` commands, guarded in a project that uses consentcrawl
(registered by the ``scrapy.commands`` entry point; each is Scrapy's own, unchanged, in a project that does not).

Each downloads a URL with the project spider that claims its domain (or ``--spider NAME``), else with Scrapy's
``DefaultSpider``. A project that plugs consentcrawl in through :class:`~consentcrawl.ConsentSpider` alone (no
``ADDONS`` in its settings) thus downloaded a page consentcrawl refuses with a spider no check guards. Here the
spider a command uses is always guarded: one that is not a ``ConsentSpider`` (``DefaultSpider``, or a plain spider
named with ``--spider``) gets the add-on as a ``ConsentSpider`` does, its purpose from ``CONSENTCRAWL_PURPOSE``
(without one the crawl refuses to start and nothing is fetched). The URL is the user's, not the spider's: the
spider only lends its settings, and in a project that uses consentcrawl nothing is fetched undecided. The decision
is the crawl's (robots, terms, subject, at send time); a refused URL is named by its reason code only, and
``fetch``/``view`` exit 1.

Scrapy imports this module for every ``scrapy`` command (``scrapy version`` too), so it loads Scrapy's commands and
nothing of the crawl: what deciding needs is imported when a command runs, in a project that uses consentcrawl.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

from scrapy.commands import crawl, fetch, parse, shell, view
from scrapy.utils.misc import load_object

from ._scrapy_internals import ShownPage, guard_command_crawl

if TYPE_CHECKING:
    from argparse import Namespace

    from scrapy.http import Response
    from twisted.python.failure import Failure

__all__ = ["Crawl", "Fetch", "NoGivenURL", "Parse", "Shell", "View", "guarded", "runs_addon", "uses_consentcrawl",
           "warn_if_unguarded"]

logger = logging.getLogger("consentcrawl")


def uses_consentcrawl(settings: Any, spider_loader: Any) -> bool:
    """Whether the project plugs consentcrawl in: the add-on in its ``ADDONS``, or a ``ConsentSpider``. Neither can
    be without its module loaded (the spider loader has imported every spider module), so a project that does not
    use consentcrawl does not load it here."""
    addons = [load_object(path) for path in settings.getwithbase("ADDONS")]
    spiders = [spider_loader.load(name) for name in spider_loader.list()]
    addon, spider = sys.modules.get(f"{__package__}.addon"), sys.modules.get(f"{__package__}.spider")
    return (addon is not None and any(each is addon.Addon for each in addons)) or \
        (spider is not None and any(issubclass(each, spider.ConsentSpider) for each in spiders))


def runs_addon(settings: Any, spidercls: type) -> bool:
    """Whether a crawl of ``spidercls`` runs the add-on: in the project's ``ADDONS``, in the spider's
    ``custom_settings``, or brought by ``ConsentSpider.update_settings`` (the settings as the spider leaves them)."""
    spider = sys.modules.get(f"{__package__}.spider")
    if spider is not None and issubclass(spidercls, spider.ConsentSpider):
        return True  # it puts the add-on back whatever ADDONS says (and would say so twice here)
    mine = settings.copy()
    spidercls.update_settings(mine)  # type: ignore[attr-defined]
    addon = sys.modules.get(f"{__package__}.addon")
    return addon is not None and any(load_object(path) is addon.Addon and number is not None
                                     for path, number in mine.getwithbase("ADDONS").items())


def warn_if_unguarded(settings: Any, spider_loader: Any, name: str) -> None:
    """One WARNING when a project that uses consentcrawl (the add-on, a ``ConsentSpider``, or any ``CONSENTCRAWL_*``
    setting) runs a spider without the add-on: nothing that spider fetches is checked, and nothing else says so
    (the ``CONSENTCRAWL_*`` settings are read only by the add-on). ``scrapy crawl`` guards no spider by itself: a
    project may keep spiders that collect nothing about people."""
    try:
        spidercls = spider_loader.load(name)
    except KeyError:
        return  # Scrapy's own "Spider not found" follows
    ours = any(str(key).startswith("CONSENTCRAWL_") for key in settings)
    if not (ours or uses_consentcrawl(settings, spider_loader)) or runs_addon(settings, spidercls):
        return
    logger.warning("consentcrawl: spider %r runs WITHOUT consentcrawl: it is not a ConsentSpider and "
                   "consentcrawl.Addon is in neither the project's ADDONS nor its custom_settings, so nothing it "
                   "fetches is checked (robots.txt, terms, people) or audited, whatever the CONSENTCRAWL_* settings "
                   "say; put ADDONS = {\"consentcrawl.Addon\": 0} in the project settings to guard every spider",
                   name)


def guarded(spidercls: type) -> type:
    """``spidercls`` with the add-on: itself if it is a ConsentSpider, else a subclass that is one too, whose
    ``update_settings`` runs ConsentSpider's after the spider's own (the spider's comes first in the MRO, and one
    that does not call ``super()`` would leave the add-on out)."""
    from .spider import ConsentSpider

    if issubclass(spidercls, ConsentSpider):
        return spidercls

    def update_settings(cls: type, settings: Any) -> None:
        spidercls.update_settings.__func__(cls, settings)  # type: ignore[attr-defined]
        ConsentSpider.update_settings.__func__(cls, settings)  # type: ignore[attr-defined]

    return type(spidercls.__name__, (spidercls, ConsentSpider), {"update_settings": classmethod(update_settings)})


def reporting(spidercls: type, command: Any) -> type:
    """``spidercls`` whose start requests (the command's URL) tell ``command`` when consentcrawl refused them."""
    from scrapy import Request

    start_requests = spidercls.start  # type: ignore[attr-defined]

    async def start(self: Any) -> Any:
        async for each in start_requests(self):
            if isinstance(each, Request) and each.errback is None:
                each.errback = partial(_refused, command)
            yield each

    return type(spidercls.__name__, (spidercls,), {"start": start})


def _refused(command: Any, failure: Failure) -> Failure | None:
    """A refusal (a deny, or a configuration error): one WARNING line with the reason code (never the URL, never the
    page), and exit status 1."""
    from .middlewares import REFUSALS

    if not failure.check(*REFUSALS):  # a download error of an allowed page: Scrapy's own handling
        return failure
    logger.warning("%s: the page was not fetched (its URL and the evidence are in the audit log)", failure.value)
    command.exitcode = 1
    return None


#: the loggers Scrapy writes on as a command picks its spider, before anything is decided: ``More than one spider
#: can handle: <GET url> - a, b`` (``shell``) and ``Unable to find spider for: <url>`` (``parse``), at ERROR
PICKING_LOGGERS = ("scrapy.utils.spider", "scrapy.commands.parse")
#: how those lines begin (``parse``'s other lines, ``No response downloaded for``, are ParseCommandLine's)
_PICKING = ("More than one spider can handle", "Unable to find spider")
#: what those lines say in place of the URL
GIVEN_URL = "the URL given (in the audit log once it is decided)"


class NoGivenURL(logging.Filter):
    """Scrapy's lines naming the command's URL as it picks the spider name no URL at INFO or above: it may be a
    page consentcrawl refuses, and nothing is decided yet. The line as Scrapy wrote it goes to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not isinstance(record.args, dict) or \
                not str(record.msg).startswith(_PICKING):
            return True
        named = [key for key in ("request", "url") if key in record.args]
        if named:
            logging.getLogger(record.name).handle(logging.makeLogRecord(
                {**record.__dict__, "levelno": logging.DEBUG, "levelname": "DEBUG"}))
            record.args = {**record.args, **dict.fromkeys(named, GIVEN_URL)}
        return True


class _Guarded:
    """A command whose crawl is guarded in a project that uses consentcrawl."""

    _guarded = False
    crawler_process: Any
    settings: Any

    def run(self, args: list[str], opts: Namespace) -> None:
        process = self.crawler_process
        if process is not None and self.settings is not None and uses_consentcrawl(self.settings,
                                                                                   process.spider_loader):
            self._guarded = True
            guard_command_crawl(process, self._wrap)
            for name in PICKING_LOGGERS:
                logging.getLogger(name).addFilter(NoGivenURL())
        super().run(args, opts)  # type: ignore[misc]

    def _wrap(self, spidercls: type) -> type:
        return guarded(spidercls)


class Fetch(_Guarded, fetch.Command):
    def _wrap(self, spidercls: type) -> type:
        return reporting(guarded(spidercls), self)


class View(ShownPage, Fetch, view.Command):
    def show(self, response: Response, opts: Any) -> None:
        if not self._guarded:
            super().show(response, opts)
            return
        from .viewing import open_in_browser

        open_in_browser(response)


class Parse(_Guarded, parse.Command):
    """``scrapy parse``: what it prints of a callback's output is guarded by the add-on (``guard_parse_command``)."""


class Shell(_Guarded, shell.Command):
    def update_vars(self, vars: dict[str, Any]) -> None:
        """The shell's ``view(response)`` opens the page as ``scrapy view`` does."""
        super().update_vars(vars)
        if self._guarded:
            from .viewing import open_in_browser

            vars["view"] = open_in_browser


class Crawl(crawl.Command):
    """Scrapy's ``crawl``, unchanged but for :func:`warn_if_unguarded` before the crawl starts."""

    def run(self, args: list[str], opts: Namespace) -> None:
        if len(args) == 1 and self.crawler_process is not None and self.settings is not None:
            warn_if_unguarded(self.settings, self.crawler_process.spider_loader, args[0])
        super().run(args, opts)
