"""``AfterCrawls``: a line written after a crawl ended names none of the people it denied.

A crawl's :class:`~consentcrawl.personlines.PersonLines` comes off once its engine has stopped (it holds the crawl's
crawler and runtime, and the process may go on to other crawls). Lines about the crawl's work are still written
after that: asyncio's ``Task exception was never retrieved`` and Twisted's ``Unhandled error in Deferred`` are
written as the task or the Deferred is garbage-collected (a spider that keeps its tasks in a list: when the spider
is collected, or the list cleared), with the exception, whose message a project writes a URL into. So as a crawl's
filter comes off, the people it denied stay hidden in the lines of those two loggers until the next crawl of the
process has started its engine (:func:`forget`; its own filter reads the lines from then on, each URL decided as
that crawl decides, and it is kept in turn as it ends; not as its crawler is made: a crawl whose start fails never
reads one): each denied person's id that stands as a word
(:meth:`~consentcrawl.deniedpeople.DeniedPeople.ids_out`, which reads ``/u/107``, ``0107`` and ``%31%30%37`` as a
lenient server does) and each URL that names one of them on one of the crawl's platforms. It only hides; the line
as written goes to DEBUG, as :class:`PersonLines` writes it.

What it cannot see: a person the crawl never decided (``undecided`` while the crawl ran: whose records are not
known cannot be asked once it has ended), a path written without its host that names no denied id, the lines of
other loggers after the crawl (the project's own code runs then as the project's), and, while the next crawl
runs, a bare id that crawl does not deny. As that crawl ends, the people set aside are hidden again, but for those
it allows by the records it holds. Kept: the people and platforms of the process's ended crawls (less those a later
crawl allowed), not their crawlers or stores.
"""
from __future__ import annotations

import functools
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .deciding import Undecided
from .facts import FactReader
from .linecheck import CheckedLines, rewrite
from .personlines import exception_text, people_out, urls_out

if TYPE_CHECKING:
    from .deniedpeople import DeniedPeople
    from .runtime import ConsentRuntime

__all__ = ["AFTER_LOGGERS", "AfterCrawls", "forget", "keep"]

#: the loggers of the lines written as a task or a Deferred is collected
AFTER_LOGGERS = ("asyncio", "twisted")


class AfterCrawls(CheckedLines):
    """On :data:`AFTER_LOGGERS`, from the end of the process's first crawl that denied someone (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        #: the ended crawls whose people are hidden: what each denied, how it read URLs
        self.crawls: list[tuple[DeniedPeople, FactReader, str]] = []
        #: the ended crawls set aside while a later crawl runs (its own filter reads the lines): hidden again as it
        #: ends, but for the people it allows
        self.waiting: list[tuple[DeniedPeople, FactReader, str]] = []

    def keep(self, runtime: ConsentRuntime) -> None:
        waiting, self.waiting = self.waiting, []
        for people, reader, purpose in waiting:
            self._hide(people.without(functools.partial(_allows, runtime)), reader, purpose)
        config = runtime.config
        self._hide(runtime.denied_people, FactReader(config.platforms, ""), config.purpose)

    def set_aside(self) -> None:
        self.waiting += self.crawls
        self.crawls = []

    def _hide(self, people: DeniedPeople, reader: FactReader, purpose: str) -> None:
        if not people or any(kept is people for kept, _, _ in self.crawls):
            return
        self.crawls.append((people, reader, purpose))
        for name in AFTER_LOGGERS:
            logging.getLogger(name).addFilter(self)  # once: a filter already on is not added again

    def check(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO or not self.crawls:
            return True
        said, error_said = record.getMessage(), exception_text(record)
        message, error = self.scrubbed(said, frames=False), error_said
        if error is not None:
            error = self.scrubbed(error, frames=True)
        if message != said or error != error_said:
            rewrite(record, message, error)
        return True

    def scrubbed(self, text: str, *, frames: bool) -> str:
        for people, reader, purpose in list(self.crawls):
            text = urls_out(text, functools.partial(_denied_at, people, reader, purpose))
            text = people_out(people, text, frames=frames)
        return text


def _allows(runtime: ConsentRuntime, platform: str, subject: str) -> bool:
    """Whether the crawl of ``runtime`` (ended) allows the person, by the records it holds; not when it cannot tell."""
    config = runtime.config
    try:
        decided = runtime.decider.now(lambda answers: runtime.engine.decide_subject(
            platform or None, subject, config.purpose, config.now(), answers))
    except Exception:  # noqa: BLE001 - a person whose decision cannot be made now stays hidden
        return False
    return not isinstance(decided, Undecided) and decided.allowed


def _denied_at(people: DeniedPeople, reader: FactReader, purpose: str, url: str) -> str | None:
    """The reason ``people`` holds for the person ``url`` names on one of the crawl's platforms; None for anyone
    else (their ids are taken out all the same by :func:`people_out`)."""
    try:
        facts = reader.facts(url, purpose, datetime.now(timezone.utc))
    except ValueError:  # a URL that cannot be read names no one this can tell
        return None
    if facts.platform is None or facts.subject is None:
        return None
    return people.reason(facts.platform.name, facts.subject)


#: the process's one filter
AFTER = AfterCrawls()


def keep(runtime: ConsentRuntime | None) -> None:
    """A crawl's filter comes off: the people it denied stay hidden in the lines written after it (module doc)."""
    if runtime is not None:
        AFTER.keep(runtime)


def forget() -> None:
    """A crawl's engine started: its own filter reads the lines from now on, as that crawl decides (module doc).
    An ended crawl's people hidden from its lines would be hidden from this one's too, where this one allows them:
    they are set aside, and hidden again as it ends, but for the people it allows."""
    AFTER.set_aside()
