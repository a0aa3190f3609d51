"""The operator's refusal log (``CONSENTCRAWL_REFUSALS_LOG``): the refusals people published on their own pages,
one JSON object a line, read when a crawl starts and appended to as each new one is found, so a person who refused
is not fetched again by the next crawl either (docs/refusals.md).

A line that cannot be read is a configuration error naming the file and the line: a refusal must never be
skipped silently. The file is the operator's to edit: removing a line lifts that refusal.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from .errors import ConfigError, RecordsError
from .purposes import KNOWN_PURPOSES
from .refusals.book import Refusal

__all__ = ["RefusalLog", "read_refusals"]

_FIELDS = ("platform", "subject", "url", "form", "field", "raw", "purposes", "seen_at", "event")


def read_refusals(path: str | Path) -> list[Refusal]:
    """Every refusal in the log (none if the file does not exist yet). Raises ConfigError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:  # UnicodeDecodeError, or a NUL in the path
        raise ConfigError(f"cannot read the refusal log: {getattr(exc, 'strerror', None) or exc}",
                          source=str(path)) from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(_refusal(json.loads(line)))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            # the log is of the people who refused: the crawl's log line names the line, not its values
            raise RecordsError(f"not a refusal ({exc})", str(path), number, keep=_FIELDS) from None
    return out


def _refusal(entry: object) -> Refusal:
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in _FIELDS if k not in entry]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key in ("platform", "subject", "url", "form", "field", "raw", "event"):
        if not isinstance(entry[key], str) or (key in ("platform", "subject") and not entry[key]):
            raise ValueError(f"{key!r} must be a string")
    purposes = entry["purposes"]
    if not isinstance(purposes, list) or not purposes or not all(isinstance(p, str) for p in purposes):
        raise ValueError("'purposes' must be a list of purposes")
    unknown = set(purposes) - KNOWN_PURPOSES
    if unknown:
        raise ValueError(f"unknown purposes {', '.join(repr(p) for p in sorted(unknown))}")
    seen = datetime.fromisoformat(str(entry["seen_at"]).replace("Z", "+00:00"))
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=timezone.utc)
    return Refusal(entry["platform"], entry["subject"], entry["url"], entry["form"], entry["field"], entry["raw"],
                   frozenset(purposes), seen, entry["event"])


class RefusalLog:
    """Appends refusals to the log, each line on disk (fsync) before the refusal's deny is recorded."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[bytes] | None = self.path.open("ab", buffering=0)
        except OSError as exc:
            raise ConfigError(f"cannot open the refusal log: {exc.strerror or exc}", source=str(self.path)) from None

    def append(self, refusal: Refusal) -> None:
        """Raises OSError when the line cannot be written (the caller records why; the refusal still applies)."""
        if self._file is None:
            raise OSError(f"the refusal log {self.path} is closed")
        # a lone surrogate (a page's JSON escape) is not UTF-8: written as its JSON escape, as the audit log writes
        # it (audit.log._encode), it reads back the same
        data = (json.dumps(refusal.to_json(), ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        self._file.write(data)
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
