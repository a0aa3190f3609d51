"""The reason codes a :class:`~consentcrawl.decision.Decision` carries: stable, dotted ``<stage>.<code>``.

Dashboards, audit reports and lawyers' letters quote them, so a published code never changes meaning; a new
situation gets a new code. ``docs/reasons.md`` says what each one means and what evidence comes with it.
"""

from __future__ import annotations

# allows
TERMS_OFF_PLATFORM = "terms.off-platform"
SUBJECT_AUTHORIZED = "subject.authorized"
SUBJECT_NOT_A_PROFILE = "subject.not-a-profile"

# robots.txt
ROBOTS_DISALLOWED = "robots.disallowed"
ROBOTS_UNREACHABLE = "robots.unreachable"
ROBOTS_CRAWL_DELAY = "robots.crawl-delay"

# the platform's terms (leg 2)
TERMS_NOT_AUTHORIZED = "terms.not-authorized"
TERMS_PURPOSE = "terms.purpose"
TERMS_NOT_YET_VALID = "terms.not-yet-valid"
TERMS_EXPIRED = "terms.expired"
TERMS_IP_HOST = "terms.ip-host"

# what sites publish about use (consentcrawl.signals): a site-level statement, read before the fetch
TERMS_DEFAULT_DENY = "terms.default-deny"
TERMS_SIGNAL_TDMREP = "terms.signal.tdmrep"
TERMS_SIGNAL_CONTENT_USAGE = "terms.signal.content-usage"
TERMS_SIGNAL_CONTENT_SIGNAL = "terms.signal.content-signal"
TERMS_SIGNAL_RSL = "terms.signal.rsl"
TERMS_SIGNAL_AI_TXT = "terms.signal.ai-txt"
# a signal file that had to be read could not be (robots.txt-embedded signals fail with robots.unreachable)
TERMS_SIGNAL_UNAVAILABLE_TDMREP = "terms.signal-unavailable.tdmrep"
TERMS_SIGNAL_UNAVAILABLE_RSL = "terms.signal-unavailable.rsl"
TERMS_SIGNAL_UNAVAILABLE_AI_TXT = "terms.signal-unavailable.ai-txt"

# the person (leg 3)
SUBJECT_NO_AUTHORIZATION = "subject.no-authorization"
SUBJECT_PURPOSE = "subject.purpose"
SUBJECT_NOT_YET_VALID = "subject.not-yet-valid"
SUBJECT_EXPIRED = "subject.expired"
SUBJECT_REVOKED = "subject.revoked"
SUBJECT_UNKNOWN_PLATFORM = "subject.unknown-platform"
SUBJECT_AMBIGUOUS_URL = "subject.ambiguous-url"
SUBJECT_MISMATCH = "subject.mismatch"
#: an item that names no one and carries no page, whose page Scrapy does not name either (consentcrawl.itemsource)
SUBJECT_UNKNOWN_PAGE = "subject.unknown-page"
#: the person's own say on their profile page (consentcrawl.refusals), seen by this process or, in a distributed
#: crawl, by any worker (docs/distributed.md): it overrides any record
SUBJECT_REFUSED_ON_PAGE = "subject.refused-on-page"

# the response
RESPONSE_ROBOTS_TAG = "response.robots-tag"
RESPONSE_META_ROBOTS = "response.meta-robots"
RESPONSE_NOFOLLOW = "response.nofollow"
# the same signals, found on the response (ai.txt is a site file only)
RESPONSE_SIGNAL_TDMREP = "response.signal.tdmrep"
RESPONSE_SIGNAL_CONTENT_USAGE = "response.signal.content-usage"
RESPONSE_SIGNAL_CONTENT_SIGNAL = "response.signal.content-signal"
RESPONSE_SIGNAL_RSL = "response.signal.rsl"

# failures: every one denies
ERROR_BAD_URL = "error.bad-url"
ERROR_ROBOTS_MISSING = "error.robots-missing"
ERROR_STORE_UNAVAILABLE = "error.store-unavailable"
#: a distributed crawl's shared state (Redis: the cluster's robots.txt, Crawl-delay schedule, refusals) did not answer
ERROR_SHARED_STATE_UNAVAILABLE = "error.shared-state-unavailable"
ERROR_AUDIT_UNAVAILABLE = "error.audit-unavailable"
ERROR_INTERNAL = "error.internal"

#: the codes that allow; every other code denies
ALLOWS = frozenset({TERMS_OFF_PLATFORM, SUBJECT_AUTHORIZED, SUBJECT_NOT_A_PROFILE})
#: every code this version emits
ALL = frozenset(value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str))
