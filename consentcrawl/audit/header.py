"""What a crawl's ``chain-start`` line says about its configuration: everything that affects a decision.

A third party holding the same platforms file, authorization file and settings can recompute ``config_sha256``
(SHA-256 of the ``config`` object's canonical JSON: sorted keys, no spaces, UTF-8) and see that the log was
written under them. Files are named with the SHA-256 of their bytes as read when the crawl started; a store that is
a service (``http(s)://``, ``redis://``, a class) by its address only (its answers are in each decision's
evidence). Credentials in a store's URL are never written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .chain import canonical_json

if TYPE_CHECKING:
    from ..config import ConsentConfig


def chain_header(config: ConsentConfig, settings: Any) -> dict[str, Any]:
    """The fields a crawl adds to its ``chain-start`` line: ``consentcrawl``, ``config`` and ``config_sha256``."""
    from .. import __version__  # the package imports this module while it loads

    described = describe_config(config, settings)
    return {"consentcrawl": __version__, "config_sha256": hashlib.sha256(canonical_json(described)).hexdigest(),
            "config": described}


def describe_config(config: ConsentConfig, settings: Any) -> dict[str, Any]:
    policy = config.signal_policy
    exception = policy.research_exception
    return {
        "purpose": config.purpose,
        "mode": config.mode,
        "user_agent_token": config.token,
        "user_agent": str(settings.get("USER_AGENT") or ""),
        "platforms": [_file(p) for p in config.platform_files],
        "authorizations": _store(config.authorizations_source),
        "checks": [_name(c) for c in config.checks],
        "subject_field": config.subject_field,
        "provenance_field": config.provenance_field,
        "item_mentions": config.item_mentions,
        "now": config.fixed_now.isoformat() if config.fixed_now else None,
        "robots": {"ttl": config.robots_ttl.total_seconds(), "retry": config.robots_retry.total_seconds(),
                   "retry_max": config.robots_retry_max.total_seconds(),
                   "stale": config.robots_stale.total_seconds(), "max_crawl_delay": config.max_crawl_delay},
        "signals": {"conservative": policy.conservative, "stores_items": policy.stores_items,
                    "defaults": dict(sorted(policy.defaults.items())),
                    "research_exception": ({"statement": exception.statement, "reference": exception.reference}
                                           if exception else None),
                    "licences": dict(sorted(policy.licences.items())),
                    "custom_purposes": {c.name: sorted(c.counts_as) for c in policy.custom},
                    "robots_tag_options": sorted(policy.robots_tag_options)},
        "audit_fsync": config.audit_sync,
    }


#: files bigger than this are described by size and modification time, not hashed: a 10-million-record store
#: would otherwise add seconds to every crawl's start (its records' own evidence still names the file and line)
HASH_LIMIT = 256 << 20


def _file(path: str) -> dict[str, Any]:
    try:
        st = Path(path).stat()
        if st.st_size > HASH_LIMIT:
            return {"path": path, "sha256": None, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "note": f"over {HASH_LIMIT >> 20} MiB: described by size and modification time, not hashed"}
        digest = hashlib.sha256()
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return {"path": path, "sha256": digest.hexdigest()}
    except OSError as exc:  # read a moment ago by the loader; say so rather than fail the crawl's start over it
        return {"path": path, "sha256": None, "error": exc.strerror or str(exc)}


def _store(source: str | None) -> dict[str, Any] | None:
    if not source:
        return None
    if "://" not in source:
        if Path(source).is_file():
            return {"kind": "file", **_file(source)}
        return {"kind": "class", "path": source}
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from ..consent.sqlite_format import parse_sqlite_url

        path = parse_sqlite_url(source).path  # opened a moment ago: it parses
        return {"kind": "sqlite", **_file(path)}
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return {"kind": scheme, "url": urlunsplit((scheme, netloc, parts.path, "", ""))}


def _name(check: Any) -> str:
    cls = check if isinstance(check, type) else type(check)
    return f"{cls.__module__}.{cls.__qualname__}"
