"""Errors that stop a crawl before it starts.

A configuration error always names the file and the line (or CSV row) it comes from, so a user can fix it
without reading a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection


class ConsentError(Exception):
    """Base class of consentcrawl's own errors."""


class ConfigError(ConsentError):
    """Invalid configuration: the crawl (or the CLI) refuses to start.

    ``source`` is a file path or a setting name, ``line`` the 1-based line (or CSV row) when known.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}, line {self.line}: " if self.line is not None else f"{self.source}: "
        return f"{where}{self.message}"

    def logged(self) -> str:
        """The text for a log line (see :class:`RecordsError`)."""
        return str(self)


class RecordsError(ConfigError):
    """A ConfigError about a file of authorization records: its message may quote a record's values (a subject id,
    an evidence note), which may be a person's data. Raised where the crawl opens such a file; the crawl's log
    line names the file and the line but not the values (:meth:`logged`), while a CLI user, who is reading their
    own file, sees them."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None, *,
                 keep: Collection[str] = ()) -> None:
        super().__init__(message, source, line)
        self.keep = keep  #: the configuration's own words, kept in :meth:`logged`

    def logged(self) -> str:
        return str(ConfigError(redact(self.message, self.keep), self.source, self.line))


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def redact(message: str, keep: Collection[str] = ()) -> str:
    """An error message without the values it quotes (they may be subject ids or evidence): ``'…'``; the words in
    ``keep`` (the configuration's own: field names, purposes, platform names) stay, and so do a parser's tokens
    (one to three marks that are neither letters, digits nor spaces)."""
    return _QUOTED.sub(lambda match: match.group(0) if match.group(0)[1:-1] in keep or _SYNTAX.fullmatch(
        match.group(0)[1:-1]) else "'…'", message)


#: a quoted token of a parser's message (YAML's "expected ',' or ']'"): punctuation only, no one's data
_SYNTAX = re.compile(r"[^\w\s]{1,3}")


class StoreUnavailable(ConsentError):
    """An authorization store could not answer; every decision that needs it is a deny."""


class StoreDamaged(StoreUnavailable):
    """A store found its own file damaged (a lookup found part of a person's rows, or SQLite a malformed page):
    the same deny, counted in ``consentcrawl/authorizations/damaged``."""


class AuditUnavailable(ConsentError):
    """The audit log cannot be written: a decision that cannot be evidenced is not an allow."""


def cannot_read(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """The message for a configuration file that cannot be read. A missing one named by a relative path says which
    directory it was looked for in: ``scrapy crawl`` runs from any folder below ``scrapy.cfg``, and paths in the
    settings are the working directory's, not the project's."""
    message = f"cannot read file: {getattr(exc, 'strerror', None) or exc}"
    if isinstance(exc, FileNotFoundError) and not os.path.isabs(path):
        message += f" (relative to the working directory, {os.getcwd()})"
    return message
