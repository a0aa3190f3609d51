"""``PersonLines``: a line at INFO or above that names, as text, a person the crawl may not collect names the reason
code instead; the line as written goes to DEBUG.

The filters of :mod:`consentcrawl.requestlines`, :mod:`consentcrawl.downloadlines` and the log formatter rewrite
the lines Scrapy writes about a request, knowing the request. Other lines name a person in text alone:

- an item's data: Scrapy's ``Dropped: <exception>\\n<item>`` (WARNING), ``Error processing <item>`` (ERROR) and a
  media pipeline's ``found errors processing <item>`` (ERROR), when report mode let a denied person's item through
  the guard (or the item names someone who is not allowed: the guard's verdict on the item being processed,
  :mod:`consentcrawl.deniedpeople`); the item is replaced by the reason code, the ``DropItem`` by its type (Scrapy's
  own example drops with ``f"Duplicate item found: {item!r}"``), and the traceback goes to DEBUG; a line of the
  project's loggers written while the pipelines process such an item is replaced whole;
- an exception raised in a signal handler (``Error caught on signal handler``, ERROR, with the exception): a
  project's ``raise ValueError(f"... {request.url}")`` in a ``request_dropped`` or ``item_scraped`` handler;
- ``UrlLengthMiddleware``'s ``Ignoring link (url length > N): <url>`` (INFO), ``MetaCopyDetectionMiddleware``'s
  ``target request: <GET url>`` (WARNING) and ``SitemapSpider``'s ``Ignoring invalid sitemap: <response>``
  (WARNING), which report mode reaches with a denied person's URL, and the first two a request a project's spider
  middleware adds below the link check; the files pipeline's ``referred in <referer>``;
- CookiesMiddleware's ``Invalid cookie found in request <GET url>`` (WARNING), the scheduler's ``Unable to serialize
  request: <GET url>`` (WARNING, with ``SCHEDULER_DEBUG`` and a ``JOBDIR``: report mode queues a denied person's
  request), the engine's ``Error while reading start items and requests: <exception>`` (ERROR), and asyncio's
  and Twisted's errors about a task or a Deferred whose failure no one awaited (ERROR, with its exception);
- the project's own lines: the spider's logger (an errback's ``self.logger.error(failure)``, whose message can
  hold the URL: a timeout's does), the root logger (a spider's ``logging.warning(...)``) and the loggers of the
  project's modules, among them one it passes to ``get_retry_request`` (its ``Gave up retrying <GET url>`` is
  rewritten as :class:`RequestLines` rewrites RetryMiddleware's own);
- every other line that reaches the root logger's handlers but Scrapy's and consentcrawl's: a logger made after
  the spider opened, another library's (a database library's ``echo`` of a pipeline's query). A filter on a
  logger sees only that logger's own lines, so the filter is on the root logger's handlers too, from the moment
  the crawler exists (:meth:`PersonLines.install`): a ``ConsentSpider``'s ``__init__`` writes before the crawl's
  settings are applied, when no one is decided and the platforms are not read: each URL and path is then
  ``undecided``. A handler added while the crawl runs, and :data:`logging.lastResort`, get the filter as the first
  line at INFO or above that would reach them is made (:mod:`consentcrawl.loghandlers`).

In the message and in the exception's text, each URL of a checked scheme is taken out when
:func:`~consentcrawl.deniedpeople.url_reason` says it is not an allowed person's (``undecided`` when unsure), or
that the site's robots.txt or signals the crawl holds refuse the page, and each id of a person this crawl denied
that stands as a word of its own, read as a lenient server reads it (``stopped at 107``, ``/u/107``, ``u107``,
``0107``, ``%31%30%37``: :meth:`~consentcrawl.deniedpeople.DeniedPeople.ids_out`; not in a traceback's ``File ...,
line 107``); a path written without its host (``following /u/107``: a relative link logged before its request is
decided, when the person is not among the denied yet) is read on each platform's host, and one that begins with a
platform's host (``people.example/u/108``, its slashes doubled or written as backslashes too) as that URL with its
scheme. What it cannot see: a person's name or other data in free
text that is not an item the guard judged; the lines a spider that is not a ``ConsentSpider`` writes in its
``__init__`` (the add-on starts after it); a line of a logger whose class makes its records without the record
factory, or after a project replaced the factory with one that does not call the one it found.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import traceback
from typing import TYPE_CHECKING, Any

from scrapy import signals

from .deniedpeople import ID_STAND_IN, UNDECIDED, item_line_reason, item_reason, url_reason
from .heldlocks import crawl_alive
from .linecheck import CheckedLines, rewrite
from .loghandlers import OnHandlers, all_handlers, unwatch, watch
from .personurls import FRAME, scheme_urls, without_path, without_url, written_paths
from .requestlines import RequestLines
from .runtime import built_runtime, get_runtime
from .scrapylines import PERSON_LINE_LOGGERS, is_retry_line

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from scrapy.crawler import Crawler

    from .deniedpeople import DeniedPeople
    from .runtime import ConsentRuntime

#: what stands in a line for a URL of a person consentcrawl did not allow
URL_STAND_IN = "<a URL consentcrawl did not allow ({reason}); at DEBUG>"
#: what stands in a line for an item the guard did not allow (report mode lets it through)
ITEM_STAND_IN = "an item consentcrawl did not allow ({reason}; its data at DEBUG)"
#: a line of the project's written while the pipelines process such an item: any of its text may be the item's
PROJECT_ITEM_LINE = "a line written while the pipelines processed " + ITEM_STAND_IN
#: what stands for the traceback of a line about such an item
ITEM_TRACEBACK = "(the traceback is at DEBUG: raised while the pipelines processed " + ITEM_STAND_IN + ")"
#: the top-level names of loggers that are not the project's (Scrapy's own are chosen one by one)
_NOT_THE_PROJECTS = frozenset({"scrapy", "twisted", "consentcrawl", "asyncio", "py"})
#: the crawler's filter (one per crawl)
_ATTR = "_consentcrawl_person_lines"
#: the root logger, by the name its records carry: a spider's ``logging.warning(...)`` (as Scrapy's docs show) is
#: the project's line too
ROOT_LOGGER = "root"


class PersonLines(CheckedLines):
    """On the loggers whose lines name people as text, and on the root logger's handlers, for one crawl (module
    doc)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__()
        self.crawler = crawler
        self.alive = crawl_alive(crawler)
        self.requests = RequestLines(crawler)  # a retry line on the project's logger, read as on Scrapy's
        self.loggers: list[str] = []
        self.handlers: list[logging.Handler] = []
        self.on_handlers = OnHandlers(self)
        self.closed = False
        self.engine_started = False  #: ``engine_started`` came: ``engine_stopped`` will
        self._mark = f"_consentcrawl_person_checked_{id(self)}"

    @classmethod
    def install(cls, crawler: Crawler) -> PersonLines:
        """The crawl's filter, once, from the moment its crawler exists (``ConsentSpider.from_crawler``, before the
        spider's ``__init__``; the add-on's ``from_crawler`` for another spider): on the root logger's handlers,
        which see every logger's lines, those of loggers made later and of other libraries included, and on the
        handlers other loggers have; taken off once the engine has stopped (:meth:`close`). :meth:`opened` puts it on
        the loggers."""
        lines = getattr(crawler, _ATTR, None)
        if isinstance(lines, cls):
            return lines
        lines = cls(crawler)
        setattr(crawler, _ATTR, lines)
        lines.on_root_handlers()
        watch(lines)
        crawler.signals.connect(lines.close, signal=signals.spider_closed)
        crawler.signals.connect(lines.started, signal=signals.engine_started)
        return lines

    def on_root_handlers(self) -> None:
        """On the root logger's handlers (and every other logger's) as they are now: the crawler replaces Scrapy's
        own (with the crawl's settings: ``scrapy.utils.log.install_scrapy_root_handler``) after the spider is made,
        before the engine, whose first component (consentcrawl's download handler) puts the filter on the new
        one."""
        self._put(())

    def opened(self) -> None:
        """As the spider opens: on Scrapy's loggers of those lines (after :class:`RequestLines`, put on the files
        pipeline's as the log formatter is made: it rewrites the request that line names first), on the loggers
        of the project's modules that exist, and on the handlers made since (a pipeline's ``open_spider`` that
        turns a library's ``echo`` on)."""
        self._put([*PERSON_LINE_LOGGERS, *project_loggers(self.crawler)])

    def _put(self, loggers: Iterable[str]) -> None:
        for name in loggers:
            if name not in self.loggers:
                self.loggers.append(name)
                logging.getLogger(name).addFilter(self)
        with contextlib.suppress(Exception):  # a handler that takes no filter: each line it gets is "not checked"
            self.on(all_handlers())

    def on(self, handlers: Iterable[logging.Handler]) -> None:
        """On ``handlers``, those it is not on yet; none once closed. A line made in another thread puts it on
        while the crawl closes: what it put on after :meth:`close` looked is taken off again here. A handler
        whose ``addFilter`` raises does not stop the others; the first error is raised at the end, so the line
        being logged (``loghandlers._cover``) is written as not checked."""
        error: Exception | None = None
        for handler in handlers:
            if handler not in self.handlers and not self.closed:
                try:
                    handler.addFilter(self.on_handlers)
                except Exception as raised:  # noqa: BLE001 - any handler's own refusal
                    error = error or raised
                    continue
                self.handlers.append(handler)
                if self.closed:
                    handler.removeFilter(self.on_handlers)
        if error is not None:
            raise error

    @classmethod
    def release(cls, crawler: Crawler) -> None:
        """Take the crawl's filter off, for a crawl whose start failed: no ``spider_closed`` comes for it, and the
        filter (on the root logger's handlers, in the process's log record factory) would stay, with its crawler,
        for the rest of the process (``Addon._released_on_failed_start``)."""
        lines = getattr(crawler, _ATTR, None)
        if isinstance(lines, cls):
            lines.stopped()

    def close(self, spider: Any = None) -> None:
        """The spider closes: the filter stays on until the engine has stopped, and is taken off then (:meth:`stopped`,
        connected now: after every ``engine_stopped`` handler connected before). Lines are written after
        ``spider_closed`` reached this: the other ``spider_closed`` handlers' (the spider's ``closed()``, a project
        extension's closing report, PeriodicLog's last line) and Scrapy's stats dump. A spider closed before its
        engine started gets no ``engine_stopped``: off now."""
        if self.engine_started:
            self.crawler.signals.connect(self.stopped, signal=signals.engine_stopped)
        else:
            self.stopped()

    def started(self) -> None:
        """The engine started: this crawl's filter reads the lines with its runtime from now on, so the ended
        crawls' people are no longer hidden by theirs (:func:`~consentcrawl.afterlines.forget`). Not when its
        crawler is made: a crawl whose start fails never reads a line, and until its runtime is built its filter
        lets a line through or reads it knowing no one."""
        from .afterlines import forget  # here: it imports this module, whose helpers it reads lines with

        self.engine_started = True
        forget()

    def stopped(self) -> None:
        """Off: the people the crawl denied stay hidden in the lines written as its tasks and Deferreds are
        collected (:mod:`consentcrawl.afterlines`)."""
        from .afterlines import keep  # here: it imports this module, whose helpers it reads lines with

        self.closed = True  # before the handlers are looked at (see on)
        unwatch(self)
        for name in self.loggers:
            logging.getLogger(name).removeFilter(self)
        for handler in list(self.handlers):
            handler.removeFilter(self.on_handlers)
        keep(built_runtime(self.crawler))

    def check(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or not self.alive() or getattr(record, self._mark, False):
            return True
        setattr(record, self._mark, True)  # checked once, on a logger or on the first handler
        crawler = self.crawler
        spider = getattr(record, "spider", None)
        if spider is not None and spider is not crawler.spider and not (
                crawler.spider is None and isinstance(spider, crawler.spidercls)):  # its __init__'s lines
            return True  # another crawl's line, in the same process
        if not crawler.settings.frozen:  # the crawl's settings are not applied yet: no one is decided
            self._check(None, record)
            return True
        if is_retry_line(record):
            return self.requests.check(record)
        runtime = get_runtime(crawler)
        if runtime is None:
            return True
        self._check(runtime, record)
        return True

    def _check(self, runtime: ConsentRuntime | None, record: logging.LogRecord) -> None:
        said, error_said = record.getMessage(), exception_text(record)
        item = item_line_reason() if _names_item(record) else item_reason()
        args = record.args
        message = said
        if item is not None and record.name not in PERSON_LINE_LOGGERS:  # the project's: its text is any of the item
            message = PROJECT_ITEM_LINE.format(reason=item)
        elif item is not None and isinstance(args, dict) and "item" in args:  # Scrapy's: its template, without them
            error = args.get("exception")
            message = str(record.msg) % {**args, "item": ITEM_STAND_IN.format(reason=item), "exception": (
                f"{type(error).__name__} (its message at DEBUG)" if isinstance(error, BaseException) else error)}
        message = scrubbed(runtime, message)
        error = error_said
        if error is not None:
            error = ITEM_TRACEBACK.format(reason=item) if item is not None else scrubbed(runtime, error, frames=True)
        if message != said or error != error_said:
            rewrite(record, message, error)


def _names_item(record: logging.LogRecord) -> bool:
    """Whether the line names an item (Scrapy's item lines pass it as an argument and in ``extra``)."""
    return (isinstance(record.args, dict) and "item" in record.args) or "item" in record.__dict__


def exception_text(record: logging.LogRecord) -> str | None:
    """The line's traceback as a formatter writes it; not kept on a line left as it is (its handlers' formatters
    format it their own way)."""
    if record.exc_text:
        return record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    return None


def scrubbed(runtime: ConsentRuntime | None, text: str, *, frames: bool = False) -> str:
    """``text`` without the URLs and ids of people the crawl does not allow (module doc); ``frames``: a traceback,
    whose frame lines keep their numbers. Without a runtime (a line written before the crawl's settings are
    applied: the spider's ``__init__``), whose page a URL or path is cannot be read: each is ``undecided``.
    The URLs and paths are found as the item guard finds mentions (:mod:`consentcrawl.personurls`)."""
    text = urls_out(text, functools.partial(url_reason, runtime) if runtime is not None else lambda _: UNDECIDED)
    text = _paths_out(runtime, text, frames)
    return people_out(runtime.denied_people if runtime is not None else None, text, frames=frames)


def urls_out(text: str, reason_of: Callable[[str], str | None]) -> str:
    """``text`` with each URL of a checked scheme that ``reason_of`` gives a reason for replaced by the stand-in."""
    for url in scheme_urls(text):
        reason = reason_of(url)
        if reason is not None:
            text = without_url(text, url, URL_STAND_IN.format(reason=reason))
    return text


def people_out(people: DeniedPeople | None, text: str, *, frames: bool = False) -> str:
    """``text`` without the ids of ``people`` (:meth:`~consentcrawl.deniedpeople.DeniedPeople.ids_out`);
    ``frames``: a traceback, whose frame lines keep their numbers."""
    if not people:
        return text
    if not frames:
        return people.ids_out(text, ID_STAND_IN)
    lines = text.split("\n")
    return "\n".join(line if FRAME.match(line) else people.ids_out(line, ID_STAND_IN) for line in lines)


def _paths_out(runtime: ConsentRuntime | None, text: str, frames: bool) -> str:
    """``text`` without the paths written without their host (a relative link as the page has it, ``/u/107``,
    ``//host/u/107``, ``../u/107``, ``u/107`` or ``./107``: :func:`~consentcrawl.personurls.written_paths`) that
    name a person not allowed on any platform's host: a project logs the link it is about to follow before its
    request is decided (the person is not among the denied yet)."""
    for path, urls in written_paths(runtime.config.platforms if runtime is not None else None, text, frames=frames):
        reason = next((found for found in map(functools.partial(url_reason, runtime), urls) if found),
                      None) if runtime is not None else UNDECIDED
        if reason is not None:
            text = without_path(text, path, URL_STAND_IN.format(reason=reason))
    return text


def project_loggers(crawler: Crawler) -> list[str]:
    """The spider's logger, the root logger and every logger that exists of the project's modules: the spider's, and
    those of the crawl's components (pipelines, middlewares, extensions) that are not Scrapy's or consentcrawl's."""
    spider = crawler.spider
    tops = {type(spider).__module__.split(".")[0]} if spider is not None else set()
    for name in ("ITEM_PIPELINES", "DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "EXTENSIONS", "ADDONS"):
        for path in crawler.settings.getdict(name):
            tops.add((path if isinstance(path, str) else getattr(path, "__module__", "")).split(".")[0])
    for module in crawler.settings.getlist("SPIDER_MODULES"):
        tops.add(module.split(".")[0])
    tops -= _NOT_THE_PROJECTS | {""}
    names = [name for name, found in list(logging.Logger.manager.loggerDict.items())
             if isinstance(found, logging.Logger) and name.split(".")[0] in tops]
    spiders = [spider.name] if spider is not None and getattr(spider, "name", None) else []
    return [*names, ROOT_LOGGER, *spiders]
