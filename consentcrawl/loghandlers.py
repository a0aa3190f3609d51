"""Every handler a log line reaches gets the live crawls' person filter (:mod:`consentcrawl.personlines`).

A filter on a logger sees that logger's own lines only; a filter on a handler sees every line that reaches it:
those of loggers made later and of other libraries. So the filter is put on the root logger's handlers and every
other logger's (:func:`all_handlers`), and, for handlers added while a crawl runs and :data:`logging.lastResort`,
on those each line at INFO or above is about to reach as it is made (the log record factory, :func:`watch`).
"""

from __future__ import annotations

import logging
from typing import Any

from .linecheck import unchecked

__all__ = ["OnHandlers", "all_handlers", "unwatch", "watch"]

#: the root logger, by the name its records carry
ROOT_LOGGER = "root"
#: the loggers whose lines the filter on the root logger's handlers leaves: Scrapy's (those that name people have
#: the filter on the logger) and consentcrawl's own
_NOT_ON_HANDLERS = ("scrapy", "consentcrawl")


class OnHandlers(logging.Filter):
    """A crawl's :class:`~consentcrawl.personlines.PersonLines` on a handler: every line that reaches it but
    Scrapy's and consentcrawl's (a filter on a handler sees the lines of every logger, those made after the spider
    opened and other libraries' included: a database library's echo of a pipeline's query). Lines below INFO cost
    a comparison."""

    def __init__(self, lines: Any) -> None:
        super().__init__()
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or record.name.partition(".")[0] in _NOT_ON_HANDLERS:
            return True
        return self.lines.filter(record)


def all_handlers() -> list[logging.Handler]:
    """The root logger's handlers and those of every other logger that exists (SQLAlchemy's ``echo`` puts a handler
    of its own on its logger, which writes the line before the root's handlers see it), and :data:`logging.lastResort`
    (what writes a line at WARNING or above whose logger has no handler and does not propagate)."""
    loggers = [found for found in list(logging.Logger.manager.loggerDict.values()) if isinstance(found, logging.Logger)]
    found = [handler for logger in (logging.getLogger(), *loggers) for handler in logger.handlers]
    return list(dict.fromkeys([*found, *_last_resort()]))


def _last_resort() -> list[logging.Handler]:
    return [logging.lastResort] if logging.lastResort is not None else []


# -- handlers added while the crawl runs -----------------------------------------------------------------------------
#
# A handler added after the spider opened (a pipeline that makes its database engine, ``echo=True``, on its first
# item; another crawl's crawler, which replaces Scrapy's root handler with its own) would write a line before any
# filter saw it. So every line at INFO or above, as it is made (the log record factory, which every logger's line
# goes through before its handlers), puts the live crawls' filters on the handlers that line is about to reach.

#: the crawls whose filter is on (in the order they started)
_LIVE: list[Any] = []


class _Link:
    """consentcrawl's log record factory, over ``below``: the factory that was in place when it went on (Python's,
    or another library's), which makes the record; while a crawl's filter is on, each line at INFO or above then
    puts the live crawls' filters on the handlers it is about to reach.

    Each link keeps its own ``below``, so that the chain stays whole whatever wraps it: another library's factory
    (a log context library, on for a block) that wrapped it calls it, and it calls the one beneath it. A link that
    another library's wraps cannot be taken out as the crawls end (the library holds it, and puts it back when it
    is done): it passes the call down, covering only while a crawl runs, and the next crawl to end with it on top
    takes it out."""

    __slots__ = ("below",)

    def __init__(self, below: Any) -> None:
        self.below = below

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.below(*args, **kwargs)
        if _LIVE and record.name and isinstance(record.levelno, int) and record.levelno >= logging.INFO:
            _cover(record)  # not makeLogRecord's (no name, no level): it is not a line being made
        return record


def watch(lines: Any) -> None:
    """Cover the handlers lines reach for ``lines`` (a crawl's filter) until :func:`unwatch`."""
    if lines not in _LIVE:
        _LIVE.append(lines)
    found = logging.getLogRecordFactory()
    if not isinstance(found, _Link):  # not on top: the first crawl, or another library put its own or Python's
        logging.setLogRecordFactory(_Link(found))  # back, or wraps ours (which stays beneath it, covering too)


def unwatch(lines: Any) -> None:
    if lines in _LIVE:
        _LIVE.remove(lines)
    found = logging.getLogRecordFactory()
    while not _LIVE and isinstance(found, _Link):  # ours on top: taken out, what it went over put back
        logging.setLogRecordFactory(found.below)
        found = found.below


def _cover(record: logging.LogRecord) -> None:
    try:
        reached = _reached(record.name)
        for lines in list(_LIVE):
            if lines.alive():  # not before its crawl starts (``get_crawler`` applies the settings first)
                lines.on(reached)
    except Exception:  # noqa: BLE001 - a line whose handlers could not be covered is not written at its level
        unchecked(record)


def _reached(name: str) -> list[logging.Handler]:
    """The handlers a line of the logger ``name`` reaches (as ``Logger.callHandlers`` walks them)."""
    logger: Any = logging.root if name == ROOT_LOGGER else logging.Logger.manager.loggerDict.get(name)
    found: list[logging.Handler] = []
    while isinstance(logger, logging.Logger):
        found += logger.handlers
        logger = logger.parent if logger.propagate else None
    return [*found, *_last_resort()]
