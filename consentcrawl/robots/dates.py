"""Reading an ``unavailable_after`` date, in whichever of the formats sites write it.

Google documents RFC 822, RFC 850 and ISO 8601 for ``unavailable_after``, and sites write other spellings too
(``25 Jun 2010``, ``June 25, 2010``); the ``Robots-Tag`` structured form writes it as an RFC 9651 Date
(``unavailable_after=@1277478000``, seconds since 1970). Reading a date is a job apart from parsing the rules
around it (:mod:`consentcrawl.robots.tags`): tried in order, an RFC 9651 Date, ISO 8601, then RFC 822/850/asctime
(``email.utils``, which knows ``PST`` and the like), then a bare day, month and year. No zone means UTC. A date
that cannot be read is None, and the caller ignores the rule: nothing here raises on any value (fuzzed with the
tags). Pure: no clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_DAY_MONTH_YEAR = re.compile(r"(?:[a-z]+,?\s+)?(\d{1,2})[\s-]+([a-z]{3,9})\.?[\s,-]+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"(?:[a-z]+,?\s+)?([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_SF_DATE = re.compile(r"@(-?\d{1,15})\Z")  #: RFC 9651 §3.3.7
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_date(value: str) -> datetime | None:
    """An ``unavailable_after`` date as an aware UTC datetime, or None when it cannot be read."""
    text = value.strip()[:100]
    if not text:
        return None
    sf_date = _SF_DATE.match(text)
    if sf_date:
        seconds = int(sf_date.group(1))
        try:
            return _EPOCH + timedelta(seconds=seconds)
        except OverflowError:  # before year 1 (long past) or after 9999 (not yet)
            return datetime.min.replace(tzinfo=timezone.utc) if seconds < 0 else None
    when: datetime | None = None
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        pass
    if when is None:
        try:
            parts = parsedate_tz(text)
            if parts is not None:
                when = datetime(*parts[:6], tzinfo=timezone(timedelta(seconds=parts[9] or 0)))
        except (ValueError, TypeError, IndexError, OverflowError):
            when = None
    if when is None:
        low = text.lower()
        m = _DAY_MONTH_YEAR.match(low)
        day, month, year = (m.group(1), m.group(2), m.group(3)) if m else (None, None, None)
        if m is None:
            m = _MONTH_DAY_YEAR.match(low)
            if m:
                month, day, year = m.group(1), m.group(2), m.group(3)
        month_number = _MONTHS.get((month or "")[:3])
        if m is None or month_number is None:
            return None
        try:
            when = datetime(int(year), month_number, int(day), tzinfo=timezone.utc)  # type: ignore[arg-type]
        except ValueError:
            return None
    try:
        return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
