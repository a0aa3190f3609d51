"""The ``CONSENTCRAWL_*`` settings: one table of name, kind and default, and one way to read each.

Every setting is read here, with Scrapy's typed getters (``getbool``, ``getfloat``, ``getlist``) where Scrapy has
one, so that ``-s NAME=VALUE`` on the command line, a settings module and a dict mean the same thing. A value a
getter cannot read is a :class:`~consentcrawl.errors.ConfigError` that names the setting and the value: a crawl
with a bad setting does not start, and says why in one line. What a value *means* (a known purpose, a product
token, a file that loads) is checked where it is used, in :mod:`consentcrawl.config`.

The table is the list of known names (any other ``CONSENTCRAWL_*`` name is an error) and is what
``docs/settings.md`` documents; a test keeps the two in step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from scrapy.settings import BaseSettings

from .checks import DEFAULT_CHECKS
from .errors import ConfigError

__all__ = ["COPIED_FROM", "KINDS", "MISSING", "SETTINGS", "Setting", "as_settings", "copied_from", "read", "set_as"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

#: what each kind of setting accepts, as the error for a value it cannot read says it
KINDS = {
    "text": "a string",
    "path": "a path",
    "paths": "a path, comma-separated paths or a list of paths",
    "names": "a name, comma-separated names or a list of names",
    "store": "a path, a URL or an import path",
    "bool": "true or false",
    "seconds": "a number of seconds",
    "count": "a whole number, 0 or more",
    "time": "an ISO-8601 time",
    "import path": "an import path",
    "import paths": "a list of import paths",
    "mapping": "a mapping (a dict, or a JSON object as text)",
}


@dataclass(frozen=True)
class Setting:
    """One setting: its name, its kind (a key of :data:`KINDS`), its default when unset, the most a number of
    seconds may be (more is lowered to it), and what the setting set to ``""`` or ``None`` stands for
    (``MISSING``: ``None`` is the default and ``""`` is read like any other value)."""

    name: str
    kind: str
    default: Any = None
    maximum: float | None = None
    empty: Any = MISSING


DAY = 86400

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("CONSENTCRAWL_PURPOSE", "text"),
    Setting("CONSENTCRAWL_PLATFORMS", "paths"),
    Setting("CONSENTCRAWL_AUTHORIZATIONS", "store", empty=None),
    Setting("CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV", "text", "CONSENTCRAWL_API_TOKEN", empty="CONSENTCRAWL_API_TOKEN"),
    Setting("CONSENTCRAWL_AUTHORIZATIONS_POLL", "seconds", 0.25, maximum=1),
    Setting("CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT", "seconds", 1, maximum=30),
    Setting("CONSENTCRAWL_AUTHORIZATIONS_CACHE_THRESHOLD", "count", 50_000, empty=None),
    Setting("CONSENTCRAWL_USER_AGENT_TOKEN", "text", "consentcrawl", empty="consentcrawl"),
    Setting("CONSENTCRAWL_MODE", "text", "enforce", empty="enforce"),
    Setting("CONSENTCRAWL_AUDIT_LOG", "path", "consentcrawl-audit.jsonl", empty=None),
    Setting("CONSENTCRAWL_AUDIT_FSYNC", "bool", True),
    Setting("CONSENTCRAWL_REFUSALS_LOG", "path", empty=None),  # docs/refusals.md
    Setting("CONSENTCRAWL_SUBJECT_FIELD", "text", "subject", empty="subject"),
    Setting("CONSENTCRAWL_PROVENANCE_FIELD", "text", "consentcrawl", empty=None),
    Setting("CONSENTCRAWL_ITEM_MENTIONS", "text", "withhold", empty="withhold"),  # docs/mentions.md
    Setting("CONSENTCRAWL_ROBOTS_TTL", "seconds", DAY, maximum=DAY),
    Setting("CONSENTCRAWL_ROBOTS_RETRY", "seconds", 60, maximum=DAY),
    Setting("CONSENTCRAWL_ROBOTS_RETRY_MAX", "seconds", 3600, maximum=DAY),
    Setting("CONSENTCRAWL_ROBOTS_STALE", "seconds", 7 * DAY, maximum=30 * DAY),
    Setting("CONSENTCRAWL_MAX_CRAWL_DELAY", "seconds", 30, maximum=DAY),
    Setting("CONSENTCRAWL_NOW", "time", empty=None),
    Setting("CONSENTCRAWL_LOGSTATS_INTERVAL", "seconds", 60, maximum=DAY, empty=0),
    Setting("CONSENTCRAWL_HTTP_HANDLER", "import path", empty=None),
    Setting("CONSENTCRAWL_HTTPS_HANDLER", "import path", empty=None),
    Setting("CONSENTCRAWL_LOG_FORMATTER", "import path", empty=None),
    Setting("CONSENTCRAWL_CHECKS", "import paths", DEFAULT_CHECKS),
    Setting("CONSENTCRAWL_PURGE_ON_CLOSE", "bool", False),
    Setting("CONSENTCRAWL_PURGE_TARGETS", "paths", (), empty=()),
    Setting("CONSENTCRAWL_PURGE_KEEP_SEEN", "bool", False),
    # operator signals (issue #13, docs/signals.md)
    Setting("CONSENTCRAWL_CONSERVATIVE", "bool", True),
    Setting("CONSENTCRAWL_STORES_ITEMS", "bool", True),
    Setting("CONSENTCRAWL_PURPOSE_DEFAULTS", "mapping", {}, empty={}),
    Setting("CONSENTCRAWL_RESEARCH_EXCEPTION", "mapping", {}, empty={}),
    Setting("CONSENTCRAWL_SIGNAL_LICENCES", "mapping", {}, empty={}),
    Setting("CONSENTCRAWL_CUSTOM_PURPOSES", "mapping", {}, empty={}),
    Setting("CONSENTCRAWL_ROBOTS_TAG_OPTIONS", "names", (), empty=()),
    # distributed crawls (issue #16, docs/distributed.md)
    Setting("CONSENTCRAWL_REDIS_URL", "text", empty=None),
    Setting("CONSENTCRAWL_REDIS_PREFIX", "text", "consentcrawl", empty="consentcrawl"),
    Setting("CONSENTCRAWL_REDIS_START_KEY", "text", empty=None),
    Setting("CONSENTCRAWL_REDIS_IDLE_CLOSE", "seconds", 0, maximum=DAY, empty=0),
    Setting("CONSENTCRAWL_REDIS_TIMEOUT", "seconds", 1, maximum=30),
    Setting("CONSENTCRAWL_SHARED_LOCK_TIMEOUT", "seconds", 30, maximum=600),
    Setting("CONSENTCRAWL_WORKER_ALIVE_TTL", "seconds", 5, maximum=3600),
)}


def as_settings(values: Mapping[str, Any] | BaseSettings) -> BaseSettings:
    """Scrapy settings as they are; a plain dict (the CLI's, a test's) wrapped so the same getters read it."""
    return values if isinstance(values, BaseSettings) else BaseSettings(dict(values))


def read(settings: BaseSettings, name: str) -> Any:
    """The value of setting ``name``, read as its kind; its default when unset.

    ``text``, ``path`` and ``store`` give a ``str``; ``paths`` and ``import paths`` a tuple; ``bool`` a bool;
    ``seconds`` a number from 0 up to the setting's maximum; ``time`` an aware ``datetime``; ``import path`` the
    object it names. Raises ConfigError naming the setting and the value it cannot read.
    """
    setting = SETTINGS[name]
    raw = settings.get(name)
    empty = raw is None or (isinstance(raw, str) and not raw.strip())
    if empty and setting.empty is not MISSING and name in settings:
        return setting.empty  # set to "" or None on purpose: "off", or the default where off makes no sense
    if raw is None:
        return setting.default
    source = set_as(settings, name)
    try:
        return _READERS[setting.kind](settings, setting, raw)
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(f"{raw!r} is not {KINDS[setting.kind]}", source=source) from None
    except ConfigError as exc:
        if exc.source != name or source == name:
            raise
        raise ConfigError(exc.message, source, exc.line) from None


#: the settings the add-on copied from Scrapy's own into consentcrawl's (``CONSENTCRAWL_LOG_FORMATTER`` from
#: ``LOG_FORMATTER``), each with the setting the user wrote the value in: an error names that one
COPIED_FROM = "_CONSENTCRAWL_COPIED_FROM"


def set_as(settings: BaseSettings, name: str) -> str:
    """The setting the user gave ``name``'s value as: Scrapy's own one the add-on copied it from, else ``name``."""
    copied = settings.get(COPIED_FROM)
    found = copied.get(name) if isinstance(copied, Mapping) else None
    return found if isinstance(found, str) else name


def copied_from(settings: BaseSettings, name: str, user_setting: str, priority: str) -> None:
    """Say that the add-on copied ``name``'s value from ``user_setting`` (see :func:`set_as`)."""
    copied = settings.get(COPIED_FROM)
    settings.set(COPIED_FROM, {**(copied if isinstance(copied, Mapping) else {}), name: user_setting}, priority)


def _text(settings: BaseSettings, setting: Setting, raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError(raw)
    return raw


def _path(settings: BaseSettings, setting: Setting, raw: Any) -> str:
    if not isinstance(raw, (str, os.PathLike)):
        raise TypeError(raw)
    return os.fsdecode(raw)


def _paths(settings: BaseSettings, setting: Setting, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, os.PathLike):
        return (os.fsdecode(raw),)
    if isinstance(raw, str) and raw.strip() == "[]":  # `-s NAME=[]`: the empty list a settings module writes so
        return ()
    if not isinstance(raw, (str, list, tuple)):
        raise TypeError(raw)
    items = [os.fsdecode(p) if isinstance(p, os.PathLike) else p for p in settings.getlist(setting.name)]
    if not all(isinstance(p, str) for p in items):
        raise TypeError(raw)
    return tuple(p.strip() for p in items if p.strip())


_LEGACY_BOOLS = {"yes": True, "on": True, "no": False, "off": False, "": False}


def _bool(settings: BaseSettings, setting: Setting, raw: Any) -> bool:
    try:
        return settings.getbool(setting.name)
    except ValueError:
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", *_LEGACY_BOOLS):
            # the spellings consentcrawl accepted before it read booleans with Scrapy's getbool
            text = raw.strip().lower()
            return text == "true" or _LEGACY_BOOLS.get(text, False)
        raise


def _seconds(settings: BaseSettings, setting: Setting, raw: Any) -> float:
    if isinstance(raw, bool):
        raise TypeError(raw)
    seconds = settings.getfloat(setting.name)
    if math.isnan(seconds):
        raise ValueError(raw)
    if seconds < 0:
        raise ConfigError(f"{raw!r} must not be negative", source=setting.name)
    return min(seconds, setting.maximum) if setting.maximum is not None else seconds


def _count(settings: BaseSettings, setting: Setting, raw: Any) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise TypeError(raw)
    count = int(raw.strip()) if isinstance(raw, str) else int(raw)
    if count < 0:
        raise ValueError(raw)
    return count


def _time(settings: BaseSettings, setting: Setting, raw: Any) -> datetime:
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, str):
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    else:
        raise TypeError(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _import_path(settings: BaseSettings, setting: Setting, raw: Any) -> Any:
    from scrapy.utils.misc import load_object

    if not isinstance(raw, (str, type)):
        raise TypeError(raw)
    try:
        value = load_object(raw)
    except (ImportError, NameError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import {raw!r}: {exc}", source=setting.name) from None
    if not isinstance(value, type):  # a module or a function: Scrapy would fail building it, with a traceback
        raise ConfigError(f"{raw!r} is not a class", source=setting.name)
    return value


def _import_paths(settings: BaseSettings, setting: Setting, raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, (str, list, tuple)):
        raise TypeError(raw)
    return tuple(p.strip() if isinstance(p, str) else p for p in settings.getlist(setting.name)
                 if not isinstance(p, str) or p.strip())


def _mapping(settings: BaseSettings, setting: Setting, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, (str, Mapping, BaseSettings)):
        raise TypeError(raw)
    value = settings.getdict(setting.name)
    if not all(isinstance(k, str) for k in value):
        raise TypeError(raw)
    return dict(value)


_READERS = {
    "text": _text,
    "path": _path,
    "store": _path,
    "paths": _paths,
    "names": _paths,  # read like a list of paths: strings, comma-separated or a list
    "bool": _bool,
    "seconds": _seconds,
    "count": _count,
    "time": _time,
    "import path": _import_path,
    "import paths": _import_paths,
    "mapping": _mapping,
}
