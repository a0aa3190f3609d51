"""Errors that stop a crawl before it starts.

A configuration error always names the file and the line (or CSV row) it comes from, so a user can fix it
without reading a traceback.
"""

from __future__ import annotations


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


class StoreUnavailable(ConsentError):
    """An authorization store could not answer; every decision that needs it is a deny."""


class AuditUnavailable(ConsentError):
    """The audit log cannot be written: a decision that cannot be evidenced is not an allow."""
