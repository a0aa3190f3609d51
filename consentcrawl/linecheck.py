"""``CheckedLines``: the base of consentcrawl's log line filters, which fail closed.

A filter that raises does not drop its line quietly: :mod:`logging` lets the exception out of the ``log`` call, into
the code that logged (a middleware, the spider's callback, Scrapy's retry helper), which then fails in its own way
and may log the same values again. And the check that raised was the one that would have taken a person out of the
line. So each filter's check runs here: a line whose check raised (a bug, an argument whose ``str()`` raises, a URL
that cannot be read) is written at its level as :data:`UNCHECKED`, and the line as logged goes to DEBUG.
"""

from __future__ import annotations

import contextlib
import logging

#: a line whose check failed: it may name anyone
UNCHECKED = "a line consentcrawl could not check for the people it names; at DEBUG"
#: marks the DEBUG copy of a line, written through the same logger (it meets the filters again); shared by the
#: line filters, so that none rewrites another's copy
COPY = "_consentcrawl_copy"
#: marks a line whose DEBUG copy was written: a line two filters rewrite (the files pipeline's, on the loggers of
#: both ``RequestLines`` and ``PersonLines``) has one copy, of the line as logged, not a second of the first rewrite
COPIED = "_consentcrawl_copied"


def to_debug(record: logging.LogRecord) -> None:
    """The line as logged, at DEBUG, through its logger (before ``record`` is rewritten), once; not when the logger
    keeps no DEBUG lines (``Logger.handle`` does not ask): a library's logger set to INFO whose own handler writes
    whatever it is handed (SQLAlchemy's ``echo=True``) would write the person's data at once."""
    if getattr(record, COPIED, False):
        return
    setattr(record, COPIED, True)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(logging.DEBUG):
        logger.handle(logging.makeLogRecord(
            {**record.__dict__, "levelno": logging.DEBUG, "levelname": "DEBUG", COPY: True}))


def rewrite(record: logging.LogRecord, message: str, error: str | None = None) -> None:
    """``record`` says ``message``, with ``error`` as its exception's text (None: none), and no arguments; the line
    as logged goes to DEBUG first (:func:`to_debug`)."""
    to_debug(record)
    record.msg, record.args, record.exc_info, record.exc_text = message, None, None, error


def unchecked(record: logging.LogRecord) -> None:
    """``record`` says :data:`UNCHECKED`, without its arguments or traceback; the line as logged goes to DEBUG
    (if even that raises, it is lost: the line at its level is what must not name anyone)."""
    with contextlib.suppress(Exception):
        to_debug(record)
    record.msg, record.args, record.exc_info, record.exc_text = UNCHECKED, None, None, None


class CheckedLines(logging.Filter):
    """A line filter whose :meth:`check` fails closed (module doc); a DEBUG copy of a line is not checked again."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, COPY, False):
            return True
        try:
            return self.check(record)
        except Exception:  # noqa: BLE001 - a line that could not be checked is not written at its level
            unchecked(record)
            return True

    def check(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (as it may have been rewritten); may raise."""
        raise NotImplementedError
