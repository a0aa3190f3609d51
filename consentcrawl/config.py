"""Reading the ``CONSENTCRAWL_*`` settings into one validated configuration.

Shared by the Scrapy add-on and the CLI so that both load, validate and default things the same way.
Everything here raises :class:`~consentcrawl.errors.ConfigError`; nothing half-loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import DEFAULT_CHECKS, load_check
from .consent.opening import open_store
from .consent.store import AuthorizationStore, SyncAuthorizationStore
from .distributed.shared import check_distributed, expand_worker
from .errors import ConfigError
from .purposes import check_purpose
from .refusallog import read_refusals
from .refusals.book import Refusal, RefusalBook
from .robots.body import SCRAPY_MAXSIZE
from .robots.tags import OPTIONAL_DENIALS
from .settings import SETTINGS, as_settings, read
from .signals.policy import SignalPolicy
from .signals.purposes import CONSERVATIVE_DEFAULTS, CustomPurpose
from .signals.tdmrep import ResearchException
from .terms.platforms import PlatformRegistry
from .urls import canonical_host

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from .deciding import Decider
    from .engine import PolicyEngine

logger = logging.getLogger("consentcrawl")

#: what ``CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV`` may name: POSIX shells' portable variable names
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

DEFAULT_PLATFORMS = Path("settings") / "platforms.yaml"
DEFAULT_TOKEN: str = SETTINGS["CONSENTCRAWL_USER_AGENT_TOKEN"].default
MODES = ("enforce", "report")
#: what the item guard does with an item that mentions a person who is not allowed (docs/mentions.md)
MENTION_ACTIONS = ("withhold", "drop")

#: every ``CONSENTCRAWL_*`` setting (the table in :mod:`consentcrawl.settings`); any other name with that prefix is a
#: configuration error (a misspelt setting must not silently leave, say, zero platforms configured)
KNOWN_SETTINGS = frozenset(SETTINGS)


@dataclass
class ConsentConfig:
    purpose: str
    platforms: PlatformRegistry
    #: the store as opened: asynchronous, or synchronous like the built-in ones (adapted where it is asked)
    store: AuthorizationStore | SyncAuthorizationStore | None
    token: str = DEFAULT_TOKEN
    audit_log: str | None = "consentcrawl-audit.jsonl"
    mode: str = "enforce"
    subject_field: str = "subject"
    provenance_field: str | None = "consentcrawl"
    #: ``withhold`` the mentions of people who are not allowed from an item, or ``drop`` the item
    item_mentions: str = "withhold"
    fixed_now: datetime | None = None
    robots_ttl: timedelta = timedelta(hours=24)
    robots_retry: timedelta = timedelta(seconds=60)
    robots_retry_max: timedelta = timedelta(hours=1)
    robots_stale: timedelta = timedelta(days=7)
    max_crawl_delay: float = 30.0
    audit_sync: bool = True
    logstats_interval: float = 60.0
    platform_files: tuple[str, ...] = ()
    authorizations_source: str | None = None
    #: the checks a decision runs, in order: classes (or check objects) named by ``CONSENTCRAWL_CHECKS``
    checks: tuple[Any, ...] = ()
    #: how operator signals are read (``CONSENTCRAWL_CONSERVATIVE`` and the settings after it)
    signal_policy: SignalPolicy = field(default_factory=SignalPolicy)
    #: the operator's refusal log (``CONSENTCRAWL_REFUSALS_LOG``): read at start, appended to on each new refusal
    refusals_log: str | None = None
    #: the refusals read from it when the configuration was built
    refusals: tuple[Refusal, ...] = ()
    #: Scrapy's ``DOWNLOAD_MAXSIZE``: what a page is decompressed within to be read (``0``: no limit), as Scrapy
    #: decompresses it for the spider (:func:`consentcrawl.signalphase.decode_limit`)
    download_maxsize: int = SCRAPY_MAXSIZE

    @property
    def enforce(self) -> bool:
        return self.mode == "enforce"

    def now(self) -> datetime:
        """The decision time: the real clock, or ``CONSENTCRAWL_NOW`` to replay a decision."""
        return self.fixed_now or datetime.now(timezone.utc)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | Any, purpose: str | None = None,
                      crawler: Crawler | None = None, purpose_source: str = "CONSENTCRAWL_PURPOSE") -> ConsentConfig:
        """Build from Scrapy settings (or a plain dict). ``purpose`` (a spider's attribute, ``check --purpose``)
        wins over the setting, and a bad one is named as ``purpose_source``; ``crawler``, when there is one, builds
        a store named by import path with its ``from_crawler``.

        Each value is read as the table in :mod:`consentcrawl.settings` says; what it means is checked here."""
        settings = as_settings(settings)
        check_names(settings)

        def get(name: str) -> Any:
            return read(settings, name)

        purpose_source = purpose_source if purpose else "CONSENTCRAWL_PURPOSE"  # where a bad one is to be fixed
        purpose = purpose or get("CONSENTCRAWL_PURPOSE")
        if not purpose:
            raise ConfigError("no purpose: set CONSENTCRAWL_PURPOSE or the spider's `purpose` attribute; "
                              "a crawl without a purpose cannot be judged and does not start",
                              source="CONSENTCRAWL_PURPOSE")
        mode = get("CONSENTCRAWL_MODE").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} (use 'enforce' or 'report')", source="CONSENTCRAWL_MODE")
        mentions = get("CONSENTCRAWL_ITEM_MENTIONS").strip().lower()
        if mentions not in MENTION_ACTIONS:
            raise ConfigError(f"unknown value {mentions!r} (use 'withhold' or 'drop')",
                              source="CONSENTCRAWL_ITEM_MENTIONS")
        token = get("CONSENTCRAWL_USER_AGENT_TOKEN").strip()
        if not token or not all(c.isalnum() or c in "-_" for c in token):
            raise ConfigError(f"{token!r} is not a product token (letters, digits, '-' and '_' only)",
                              source="CONSENTCRAWL_USER_AGENT_TOKEN")
        value = settings.get("CONSENTCRAWL_PLATFORMS")
        platform_files = get("CONSENTCRAWL_PLATFORMS")
        if platform_files is None and DEFAULT_PLATFORMS.exists():
            platform_files = (str(DEFAULT_PLATFORMS),)
        asked_for_none = (isinstance(value, (list, tuple)) and not value) or (isinstance(value, str)
                                                                            and value.strip() == "[]")
        if not platform_files and not asked_for_none:
            # unset with no settings/platforms.yaml here, or "" (a shell variable that was not set): a crawl that
            # checks no platform's terms and no person must be asked for, not stumbled into
            raise ConfigError("no platform configured: set it to your platforms.yaml (or to an empty list, [], "
                              "for a crawl of sites on no platform: robots.txt and the sites' own signals are "
                              "checked, no terms)",
                              source="CONSENTCRAWL_PLATFORMS")
        for name in ("CONSENTCRAWL_HTTP_HANDLER", "CONSENTCRAWL_HTTPS_HANDLER", "CONSENTCRAWL_LOG_FORMATTER"):
            get(name)  # loaded by the handler (the log formatter), which reports a bad one; read here for `check` too
        for name in ("CONSENTCRAWL_PURGE_ON_CLOSE", "CONSENTCRAWL_PURGE_TARGETS", "CONSENTCRAWL_PURGE_KEEP_SEEN"):
            get(name)  # read by the purge-on-close extension; a bad value stops the crawl before it starts
        checks = load_checks(get("CONSENTCRAWL_CHECKS"))
        policy = signal_policy(get)
        purpose = crawl_purpose(purpose, policy, purpose_source)
        values = dict(
            audit_log=expand_worker(get("CONSENTCRAWL_AUDIT_LOG")),  # {worker}: one file per worker process
            subject_field=get("CONSENTCRAWL_SUBJECT_FIELD"),
            provenance_field=get("CONSENTCRAWL_PROVENANCE_FIELD"),
            fixed_now=get("CONSENTCRAWL_NOW"),
            robots_ttl=timedelta(seconds=get("CONSENTCRAWL_ROBOTS_TTL")),
            robots_retry=timedelta(seconds=get("CONSENTCRAWL_ROBOTS_RETRY")),
            robots_retry_max=timedelta(seconds=get("CONSENTCRAWL_ROBOTS_RETRY_MAX")),
            robots_stale=timedelta(seconds=get("CONSENTCRAWL_ROBOTS_STALE")),
            max_crawl_delay=float(get("CONSENTCRAWL_MAX_CRAWL_DELAY")),
            audit_sync=get("CONSENTCRAWL_AUDIT_FSYNC"),
            refusals_log=get("CONSENTCRAWL_REFUSALS_LOG"),
            logstats_interval=float(get("CONSENTCRAWL_LOGSTATS_INTERVAL")),
            download_maxsize=download_maxsize(settings),
        )
        from .terms.load import load_platforms

        platforms = load_platforms(list(platform_files)) if platform_files else PlatformRegistry({})
        if not len(platforms):
            logger.warning("consentcrawl: no platform configured (CONSENTCRAWL_PLATFORMS = []): robots.txt and the "
                           "sites' own signals are checked, no platform's terms, and no URL is anyone's profile")
        if get("CONSENTCRAWL_PURGE_ON_CLOSE"):
            from .purge.denied import check_purge_on_close

            check_purge_on_close(platforms)
        source = get("CONSENTCRAWL_AUTHORIZATIONS")
        for name in ("CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV", "CONSENTCRAWL_AUTHORIZATIONS_POLL",
                     "CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT", "CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD"):
            get(name)  # read by the remote stores; checked here whatever the store
        check_token_env(get("CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV"))
        check_distributed(get)
        store = open_store(source, platforms, crawler, settings) if source else None
        refusals_log = values["refusals_log"]
        refusals = (tuple(keyed_refusals(read_refusals(refusals_log), platforms, str(refusals_log)))
                    if refusals_log else ())
        return cls(
            purpose=purpose,
            platforms=platforms,
            store=store,
            token=token.lower(),
            mode=mode,
            item_mentions=mentions,
            platform_files=tuple(platform_files or ()),
            authorizations_source=source or None,
            checks=checks,
            signal_policy=policy,
            refusals=refusals,
            **values,
        )


def download_maxsize(settings: Any) -> int:
    """Scrapy's ``DOWNLOAD_MAXSIZE`` (its default where unset, as in a ``check`` outside a project); a value that
    is not a whole number raises ConfigError naming it (Scrapy's own middlewares would fail on it too)."""
    try:
        return int(settings.getint("DOWNLOAD_MAXSIZE", SCRAPY_MAXSIZE))
    except (TypeError, ValueError):
        raise ConfigError(f"not a number of bytes: {settings.get('DOWNLOAD_MAXSIZE')!r}",
                          source="DOWNLOAD_MAXSIZE") from None


def keyed_refusals(refusals: Iterable[Refusal], platforms: PlatformRegistry, source: str = "the refusal log"
                   ) -> Iterator[Refusal]:
    """The refusals of the log with each subject as its platform's key (``Bob`` is ``bob`` where ids are
    case-insensitive), and each platform as configured: the log is the operator's to edit, and the book finds a
    person by platform and key. A platform name that matches configured platforms only when case is ignored
    (``Fediverse``) is each of them: honouring a refusal can only deny more. One naming no configured platform
    (another crawl's, sharing the log) cannot deny anyone here: a WARNING says how many, and which names."""
    folded: dict[str, list[str]] = {}
    for name in platforms.platforms:
        folded.setdefault(name.casefold(), []).append(name)
    unknown: dict[str, int] = {}
    for refusal in refusals:
        names = [refusal.platform] if refusal.platform in platforms else folded.get(refusal.platform.casefold(), [])
        if not names:
            unknown[refusal.platform] = unknown.get(refusal.platform, 0) + 1
            yield refusal
        for name in names:
            # spaces around an id the operator wrote by hand (`" bob"`) are no part of it: read only as written, the
            # line would deny no one, silently. Still as written too: a platform's ids may hold a space, and the
            # crawl logs the key it read in the URL (`/u/%20bob`): that key stays refused
            subject_key = platforms.platforms[name].subject_key
            for key in dict.fromkeys((subject_key(refusal.subject.strip()), subject_key(refusal.subject))):
                yield (refusal if (name, key) == (refusal.platform, refusal.subject)
                       else dataclasses.replace(refusal, platform=name, subject=key))
    if unknown:
        logger.warning("consentcrawl: %d refusal(s) in %s name a platform this crawl does not configure (%s): they "
                       "deny no one here", sum(unknown.values()), source,
                       ", ".join(f"{name!r} x{count}" for name, count in sorted(unknown.items())))


def build_engine(config: ConsentConfig, crawler: Crawler | None = None) -> PolicyEngine:
    """The one engine factory: a crawl and ``consentcrawl check`` decide with the same engine, so they agree.

    Each check is built the way Scrapy builds a component when there is a crawler (``from_crawler`` if the class
    has one, else the class called with no arguments), and by calling the class without one (``check``); an object
    in the list is used as it is.
    """
    from .engine import PolicyEngine

    checks = [_build_check(c, crawler) for c in (config.checks or load_checks(None))]
    return PolicyEngine(config.platforms, config.token, max_crawl_delay=config.max_crawl_delay, checks=checks,
                        signal_policy=config.signal_policy, refusals=RefusalBook(config.refusals))


def settings_crawler(settings: Mapping[str, Any]) -> Crawler:
    """A Crawler that is never crawled (no engine, no stats): ``consentcrawl check`` lends it to each check's
    ``from_crawler``, so that a check reading its own settings (a do-not-collect list) decides as in the crawl."""
    from scrapy import Spider
    from scrapy.crawler import Crawler

    return Crawler(Spider, dict(settings))


def build_decider(config: ConsentConfig, crawler: Crawler | None = None) -> Decider:
    """The engine of :func:`build_engine` with the configured store: what a crawl and ``consentcrawl check`` ask."""
    from .deciding import Decider

    return Decider(build_engine(config, crawler), config.store)


def check_token_env(name: str) -> None:
    """An environment variable's name a shell can export: any other name is never set, so the consent API would be
    asked without the token the operator meant to give it (and deny every person, for a reason far from here)."""
    if not _ENV_NAME.fullmatch(name):
        hint = " (write the name without '$')" if name.startswith("$") else ""
        raise ConfigError(f"{name!r} is not an environment variable's name: letters, digits and '_', not starting "
                          f"with a digit{hint}", source="CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV")


def signal_policy(get: Any) -> SignalPolicy:
    """The operator-signal settings as one :class:`SignalPolicy`; a bad value raises ConfigError naming it."""
    defaults = dict(CONSERVATIVE_DEFAULTS)
    for purpose, value in get("CONSENTCRAWL_PURPOSE_DEFAULTS").items():
        if purpose not in CONSERVATIVE_DEFAULTS:
            known = ", ".join(sorted(CONSERVATIVE_DEFAULTS))
            raise ConfigError(f"unknown purpose {purpose!r} (known purposes: {known})",
                              source="CONSENTCRAWL_PURPOSE_DEFAULTS")
        text = str(value).strip().lower() if not isinstance(value, bool) else ("allow" if value else "deny")
        if text not in ("allow", "deny"):
            raise ConfigError(f"the default for {purpose!r} is {value!r}: use 'allow' or 'deny'",
                              source="CONSENTCRAWL_PURPOSE_DEFAULTS")
        defaults[purpose] = text == "allow"
    exception = None
    raw = get("CONSENTCRAWL_RESEARCH_EXCEPTION")
    if raw:
        unknown = set(raw) - {"statement", "reference"}
        statement, reference = raw.get("statement"), raw.get("reference")
        if (unknown or not isinstance(statement, str) or not statement.strip()
                or not isinstance(reference, str) or not reference.strip()):
            raise ConfigError("give both 'statement' and 'reference' (non-empty text) and nothing else"
                              + (f"; unknown key(s): {', '.join(sorted(unknown))}" if unknown else ""),
                              source="CONSENTCRAWL_RESEARCH_EXCEPTION")
        exception = ResearchException(statement.strip(), reference.strip(), "CONSENTCRAWL_RESEARCH_EXCEPTION")
    licences: dict[str, str] = {}
    for host, reference in get("CONSENTCRAWL_SIGNAL_LICENCES").items():
        try:
            name = canonical_host(host) if isinstance(host, str) else ""
        except ValueError:
            name = ""
        if not name or "*" in name or not isinstance(reference, str) or not reference.strip():
            hint = "; a host covers its subdomains, so write the host without '*'" if "*" in str(host) else ""
            raise ConfigError(f"{host!r}: {reference!r} is not a host name and a licence reference (text){hint}",
                              source="CONSENTCRAWL_SIGNAL_LICENCES")
        licences[name] = reference.strip()
    options = frozenset(o.strip().lower() for o in get("CONSENTCRAWL_ROBOTS_TAG_OPTIONS"))
    if options - OPTIONAL_DENIALS.keys():
        raise ConfigError(f"unknown option(s) {', '.join(sorted(options - OPTIONAL_DENIALS.keys()))} (known: "
                          f"{', '.join(sorted(OPTIONAL_DENIALS))})", source="CONSENTCRAWL_ROBOTS_TAG_OPTIONS")
    return SignalPolicy(conservative=get("CONSENTCRAWL_CONSERVATIVE"), stores_items=get("CONSENTCRAWL_STORES_ITEMS"),
                        defaults=defaults, research_exception=exception, licences=licences,
                        custom=custom_purposes(get("CONSENTCRAWL_CUSTOM_PURPOSES")), robots_tag_options=options)


def custom_purposes(raw: Mapping[str, Any]) -> tuple[CustomPurpose, ...]:
    """``CONSENTCRAWL_CUSTOM_PURPOSES``: name -> the built-in purposes it counts as (a list, or comma-separated
    text). A name that is built in, a purpose list that is empty or names an unknown purpose is a ConfigError."""
    out = []
    for name, value in raw.items():
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name!r}: {value!r} is not a list of purposes", source="CONSENTCRAWL_CUSTOM_PURPOSES")
        try:
            out.append(CustomPurpose(name.strip(), frozenset(i.strip() for i in items if i.strip())))
        except ValueError as exc:
            raise ConfigError(str(exc), source="CONSENTCRAWL_CUSTOM_PURPOSES") from None
    return tuple(out)


def crawl_purpose(purpose: Any, policy: SignalPolicy, source: str = "CONSENTCRAWL_PURPOSE") -> str:
    """The crawl's purpose: a built-in one, or one declared in ``CONSENTCRAWL_CUSTOM_PURPOSES``. Anything else is a
    ConfigError: a purpose nobody said how to judge is not guessed at (the crawl does not start)."""
    if isinstance(purpose, str) and any(c.name == purpose for c in policy.custom):
        return purpose
    try:
        return check_purpose(purpose)
    except ValueError as exc:
        raise ConfigError(f"{exc}; a purpose of your own must be declared in CONSENTCRAWL_CUSTOM_PURPOSES with the "
                          "built-in purposes it counts as", source=source) from None


def load_checks(value: Any) -> tuple[Any, ...]:
    """The checks ``CONSENTCRAWL_CHECKS`` names: a list (or a comma-separated string) of import paths."""
    if value is None:
        value = DEFAULT_CHECKS
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"{value!r} is not a list of import paths", source="CONSENTCRAWL_CHECKS") from None
    if not items:
        raise ConfigError("no checks: every decision would fail; leave the setting out for the built-in checks",
                          source="CONSENTCRAWL_CHECKS")
    checks = []
    for item in items:
        try:
            check = load_check(item)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"cannot load check {item!r}: {exc}", source="CONSENTCRAWL_CHECKS") from None
        if not callable(getattr(check, "check", None)):
            raise ConfigError(f"{item!r} is not a check: it has no check(ctx) method (docs/checks.md)",
                              source="CONSENTCRAWL_CHECKS")
        checks.append(check)
    return tuple(checks)


def _build_check(check: Any, crawler: Crawler | None) -> Any:
    if not isinstance(check, type):
        return check
    try:
        if crawler is not None:
            from scrapy.utils.misc import build_from_crawler

            return build_from_crawler(check, crawler)
        return check()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a check that cannot be built stops the crawl, naming the setting
        raise ConfigError(f"cannot build check {check.__module__}.{check.__qualname__}: "
                          f"{type(exc).__name__}: {exc}", source="CONSENTCRAWL_CHECKS") from None


def check_names(settings: Mapping[str, Any] | Any) -> None:
    """An unknown ``CONSENTCRAWL_*`` name is an error naming the closest known setting."""
    for name in list(settings):
        if isinstance(name, str) and name.startswith("CONSENTCRAWL_") and name not in KNOWN_SETTINGS:
            close = difflib.get_close_matches(name, sorted(KNOWN_SETTINGS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown setting{hint}", source=name)
