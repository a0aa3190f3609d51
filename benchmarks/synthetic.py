"""The synthetic platform's configuration and authorization records, shared by ``crawl.py`` and ``decisions.py``.

The platform is "chirp" at ``chirp.example`` (crawled as ``www.chirp.example``, sometimes ``m.chirp.example``),
served by ``platform_server.py``. People are numbered ``FIRST_ID + k``. A store of R records covers the even
``k`` below ``2 R``: half of the platform's first ``2 R`` profiles, the other half have no record at all.

Record ``i`` (0-based) is a research grant of person ``k = 2 i`` (evidence, record id, a year's validity), except:

- every 50th record (``i % 50 == 49``) is a withdrawal of the previous record's grant (same person, so that
  person has two records and is ``subject.revoked``) — the person ``2 i`` gets no record;
- every 37th grant has already expired (``subject.expired``);
- every 41st grant is for ``ai-training`` only (``subject.purpose``).

Everything is a pure function of ``i``, so a store of ten million records is generated without holding it.
"""

from __future__ import annotations

from platform_server import FIRST_ID, HOST

NOW = "2026-11-27T12:00:00Z"  #: decisions are made as of this time, so every run decides the same way
PLATFORM = "chirp"
MOBILE_HOST = "m.chirp.example"

PLATFORMS_YAML = f"""\
# The synthetic benchmark platform (benchmarks/synthetic.py).
platforms:
  {PLATFORM}:
    domains: [chirp.example]
    authorization:
      purposes: [research, archiving]
      reference: "Benchmark data access agreement CH-2026-1"
      valid_from: 2026-01-01
      valid_until: 2028-01-01
      fields: [name, bio, followers]
    profiles:
      - "/u/{{subject}}"
      - "/profile/{{subject}}"
    subject: "[0-9]+"
"""

_GRANTED = "2026-02-01T00:00:00+00:00"
_EXPIRES = "2027-02-01T00:00:00+00:00"
_EXPIRED = "2026-06-01T00:00:00+00:00"
_REVOKED = "2026-09-30T16:20:00+00:00"


def person_of_record(i: int) -> int:
    """``k`` of the person record ``i`` is about."""
    return 2 * (i - 1) if i % 50 == 49 else 2 * i


def row_at(i: int) -> tuple[str, str, str, str, str | None, str | None, str, str | None, str, str, str]:
    """Record ``i`` as an SQLite row (see ``consentcrawl.consent.sqlite.Row``)."""
    subject = str(FIRST_ID + person_of_record(i))
    if i % 50 == 49:  # a withdrawal of record i - 1
        return (PLATFORM, subject, "research", _GRANTED, _EXPIRES, _REVOKED,
                f"withdrawal by e-mail, ticket CH-W-{i:08d}", None, f"cf-{i:08d}", "EU", "")
    purposes = "ai-training" if i % 41 == 40 else "research"
    expires = _EXPIRED if i % 37 == 36 else _EXPIRES
    return (PLATFORM, subject, purposes, _GRANTED, expires, None, f"consent form CH-CF-{i:08d}",
            None, f"cf-{i:08d}", "EU", "")


def expected_reason(k: int, records: int) -> str:
    """The reason a decision about person ``k`` should give with a store of ``records`` records (for checks)."""
    if k % 2 or k >= 2 * records:
        return "subject.no-authorization"
    i = k // 2
    if i % 50 == 49:
        return "subject.no-authorization"
    if i + 1 < records and (i + 1) % 50 == 49:
        return "subject.revoked"
    if i % 41 == 40:
        return "subject.purpose"
    if i % 37 == 36:
        return "subject.expired"
    return "subject.authorized"


def profile_url(subject: int, host: str = HOST) -> str:
    return f"http://{host}/u/{subject}"
