"""Authorization records behind an HTTP consent API: ``CONSENTCRAWL_AUTHORIZATIONS = "https://crm.example/consent"``.

The contract (``docs/consent-api.md``), relative to the base URL:

- ``GET {base}/v1/authorizations?platform=P&subject=S`` → ``{"records": [...], "version": "..."}``: every record
  of one person, with the fields of the YAML format; ``S`` is the subject key (see ``docs/consent-api.md``). An
  answer at a version not seen before is a change: every remembered answer goes.
- ``GET {base}/v1/changes?since=V`` → ``{"version": "...", "changed": [{"platform": P, "subject": S}, ...]}``: the
  people whose records changed after version ``V``; without ``since`` (or with ``"reset": true`` in the answer)
  the client forgets everything it remembered.

:class:`HTTPConsentStore` polls the change feed every ``CONSENTCRAWL_AUTHORIZATIONS_POLL`` seconds
(default 0.25) from a task on the crawl's event loop, so a withdrawal shows within the 2-second bound, and keeps
a bounded LRU of answers the feed invalidates (:mod:`consentcrawl.consent.remote`). Requests go through
``httpx.AsyncClient`` (which honours ``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY``; a loopback base URL is
always asked directly) with a timeout
(``CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT``, default 1 s) and one retry of a refused connection or a 5xx.

A bearer token is read from the environment variable named by ``CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV`` (default
``CONSENTCRAWL_API_TOKEN``), sent only when that variable is set, and never logged nor put in evidence. A
timeout, a 5xx, a 401 or 403, anything but JSON of the contract's shape: the lookup raises
:class:`~consentcrawl.errors.StoreUnavailable` with the cause (a deny with ``error.store-unavailable``); when the
change feed fails, every lookup does until it answers again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from .records import AuthorizationRecord
from .remote import CACHE_SIZE, MIN_POLL, FeedStore, records_from_json

__all__ = ["DEFAULT_TOKEN_ENV", "HTTPConsentStore", "is_loopback"]

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "CONSENTCRAWL_API_TOKEN"
DEFAULT_POLL = 0.25
DEFAULT_TIMEOUT = 1.0
RETRIES = 1  #: a refused connection or a 5xx is tried once more, after a short pause


def public_url(url: str) -> str:
    """``url`` without a user or password in it (what evidence and logs may name)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HTTPConsentStore(FeedStore):
    """The store for ``http://`` and ``https://`` base URLs (see the module doc)."""

    stale_after = 1.5  #: the 2-second bound, less the time a decision takes to reach the network

    def __init__(self, base: str, platforms: PlatformRegistry, *, poll: float = DEFAULT_POLL,
                 timeout: float = DEFAULT_TIMEOUT, token_env: str = DEFAULT_TOKEN_ENV,
                 cache_size: int = CACHE_SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{public_url(base)!r} is not an http(s) URL of a consent API",
                              source="CONSENTCRAWL_AUTHORIZATIONS")
        if parts.query or parts.fragment:
            raise ConfigError("the consent API's base URL takes no query or fragment",
                              source="CONSENTCRAWL_AUTHORIZATIONS")
        super().__init__(public_url(base).rstrip("/"), platforms, cache_size=cache_size, clock=clock)
        self.base = base.rstrip("/")
        self.poll = max(poll, MIN_POLL)
        self.timeout = timeout
        self.token_env = token_env
        token = os.environ.get(token_env) or None
        if token is not None and parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(f"a token is set in ${token_env} but the consent API's URL is http://, not https://: "
                              "the token would cross the network in clear text", source="CONSENTCRAWL_AUTHORIZATIONS")
        self._headers = {"Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client: httpx.AsyncClient | None = None
        self._since: str | None = None  #: the feed's version last seen (None: start from scratch)
        self._api_version: str | None = None  #: the API's version last seen, in a lookup's answer or the feed's
        self._told_unversioned = False  #: an answer without a version was logged

    def __repr__(self) -> str:  # never the headers
        return f"<HTTPConsentStore {self.source}>"

    # -- the network ----------------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._since = None
        host = urlsplit(self.base).hostname or ""
        # a loopback API is this machine's: never asked through a proxy, which would ask its own loopback (another
        # store, or nothing) and carry the token over the network in clear text, where http:// is allowed for it
        direct = {f"all://{f'[{host}]' if ':' in host else host}": None} if is_loopback(host) else None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), headers=self._headers,
                                         follow_redirects=False, trust_env=True, mounts=direct)

    async def _stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """One GET of the contract, as JSON; raises StoreUnavailable naming the cause (never the token, never the
        query: it names a person)."""
        client = self._client
        if client is None:
            raise StoreUnavailable(f"authorization store {self.source} is closed")
        where = f"authorization store {self.source} ({path})"
        cause = "did not answer"
        for attempt in range(RETRIES + 1):
            if attempt:
                await asyncio.sleep(0.05)
            try:
                response = await client.get(self.base + path, params=params)
            except httpx.TimeoutException as exc:
                raise StoreUnavailable(f"{where} did not answer within {self.timeout:g} s "
                                       f"({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                cause = f"cannot be reached: {type(exc).__name__}: {exc}"
                continue
            status = response.status_code
            if status in (401, 403):
                told = "a token" if "Authorization" in self._headers else f"no token (${self.token_env} is not set)"
                raise StoreUnavailable(f"{where} refused us: HTTP {status}; we sent {told}")
            if status >= 500:
                cause = f"answered HTTP {status}"
                continue
            if status != 200:
                raise StoreUnavailable(f"{where} answered HTTP {status}")
            try:
                data = response.json()
            except ValueError:
                raise StoreUnavailable(f"{where} answered with something that is not JSON "
                                       f"({response.headers.get('content-type', 'no content type')})") from None
            if not isinstance(data, dict):
                raise StoreUnavailable(f"{where} answered with JSON that is not an object")
            return data
        raise StoreUnavailable(f"{where} {cause}")

    async def _fetch(self, platform: str, key: str) -> tuple[AuthorizationRecord, ...]:
        data = await self._get("/v1/authorizations", {"platform": platform, "subject": key})
        if "records" not in data or not isinstance(data.get("version", ""), str):
            raise StoreUnavailable(f"authorization store {self.source} answered without 'records' or with a "
                                   "'version' that is not a string")
        records = records_from_json(data["records"], self.source, self.platforms, platform, key)
        if data.get("version"):
            self._at_version(data["version"])
        else:
            self._unversioned()
        return records

    def _unversioned(self) -> None:
        """A lookup's answer without a ``version`` (the contract requires one): nothing says which state of the
        records it is, so nothing proves it is still current later. It is used for its own lookup only: the store's
        version changes, so neither the answer nor a decision made of it is remembered (every lookup asks the API).
        Said once, at WARNING."""
        if not self._told_unversioned:
            self._told_unversioned = True
            logger.warning("authorization store %s answers lookups without a 'version' (docs/consent-api.md): its "
                           "answers are not remembered, every lookup asks it", self.source)
        self._changed(())

    def _at_version(self, version: str) -> None:
        """A lookup's answer at ``version``: one the store has not seen is a change the feed may not have told yet,
        so every remembered answer goes and the store's version changes (equal versions promise equal answers,
        docs/consent-api.md); the lookup that brought it is not remembered either (:meth:`FeedStore.lookup`'s
        generation). Nor is one at a version the change feed is not at (a replica behind the feed, or ahead of a
        stuck one), though seen before: the feed would not tell when it went stale (a lagging replica's grant,
        remembered after the feed had said the person withdrew), so the store's version changes, and nothing made
        of it is remembered either."""
        if self._api_version is not None and version != self._api_version:
            self._changed(None)
        elif version != self._since:
            self._changed(())
        self._api_version = version

    async def _follow(self) -> None:
        since = self._since
        data = await self._get("/v1/changes", {"since": since} if since is not None else {})
        version, changed = data.get("version"), data.get("changed", [])
        if not isinstance(version, str) or not version:
            raise StoreUnavailable(f"authorization store {self.source} (/v1/changes) answered without a 'version' "
                                   "string")
        if not isinstance(changed, list) or not all(
                isinstance(c, dict) and isinstance(c.get("platform"), str) and isinstance(c.get("subject"), str)
                for c in changed):
            raise StoreUnavailable(f"authorization store {self.source} (/v1/changes) answered with 'changed' that "
                                   "is not a list of {platform, subject}")
        if since is None or data.get("reset") is True:
            if since is not None:
                logger.info("authorization store %s reset its change feed: every remembered answer is dropped",
                            self.source)
            self._changed(None)
        elif changed:
            self._changed((c["platform"], c["subject"]) for c in changed)
        elif version != since:
            self._changed(())  # a new version with nothing listed: nothing to drop, but say it changed
        if since is None or version != since or data.get("reset") is True:
            self._api_version = version  # what is remembered from now on is as of the feed's version
        self._since = version

    def _pause(self) -> float:
        return self.poll

    def _fail(self, message: str) -> None:
        self._since = None  # after a failure, start the feed again from scratch: what we missed is unknown
        super()._fail(message)


def open_http_store(url: str, platforms: PlatformRegistry, settings: Any, crawler: Any = None) -> HTTPConsentStore:
    """The store ``CONSENTCRAWL_AUTHORIZATIONS`` names, its settings read from ``settings``; closed when the
    crawler's engine stops."""
    from ..settings import read

    store = HTTPConsentStore(url, platforms, poll=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_POLL"),
                             timeout=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_TIMEOUT"),
                             token_env=read(settings, "CONSENTCRAWL_AUTHORIZATIONS_TOKEN_ENV"))
    close_with(store, crawler)
    return store


def close_with(store: FeedStore, crawler: Any) -> None:
    """Stop the store's feed task when the crawler's engine stops."""
    if crawler is None:
        return
    from scrapy import signals

    async def stopped() -> None:
        await store.aclose()

    crawler.signals.connect(stopped, signal=signals.engine_stopped, weak=False)
