"""The Redis a distributed crawl shares its state through, and the rule for when it cannot be reached.

``CONSENTCRAWL_REDIS_URL`` names it; unset, scrapy-redis's ``REDIS_URL`` is used, so one setting points the queue
and the shared state at the same server. Neither set: no shared state, every worker keeps its own (one process).

Every command has a short timeout (``CONSENTCRAWL_REDIS_TIMEOUT``). A command that fails raises
:class:`SharedStateUnavailable`; the components turn it into a deny (``error.shared-state-unavailable``) and try
Redis again for the next request, so a worker resumes as soon as the server is back. Down and back are each logged
once, at WARNING and INFO.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ..consent.redisstore import client_options
from ..errors import ConfigError, ConsentError
from ..reasons import ERROR_SHARED_STATE_UNAVAILABLE
from ..settings import as_settings, read

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

logger = logging.getLogger("consentcrawl")

_T = TypeVar("_T")

#: the reason code of a decision that needed the shared state and could not have it
SHARED_STATE_UNAVAILABLE = ERROR_SHARED_STATE_UNAVAILABLE


class SharedStateUnavailable(ConsentError):
    """The shared Redis did not answer: what needed it is denied."""


def shared_redis_url(settings: BaseSettings) -> str | None:
    """``CONSENTCRAWL_REDIS_URL``, else ``REDIS_URL``; None when neither is set (no shared state)."""
    url = read(settings, "CONSENTCRAWL_REDIS_URL")
    if not url:
        url = settings.get("REDIS_URL") or None
    return url if isinstance(url, str) and url.strip() else None


#: the distributed crawl's settings besides the URL, read where they are used; checked with the rest at start-up
DISTRIBUTED_SETTINGS = ("CONSENTCRAWL_REDIS_PREFIX", "CONSENTCRAWL_REDIS_START_KEY", "CONSENTCRAWL_REDIS_IDLE_CLOSE",
                        "CONSENTCRAWL_REDIS_TIMEOUT", "CONSENTCRAWL_SHARED_LOCK_TIMEOUT",
                        "CONSENTCRAWL_WORKER_ALIVE_TTL")
#: the least ``CONSENTCRAWL_WORKER_ALIVE_TTL`` may be: twice the heartbeat (:data:`~consentcrawl.distributed.
#: heldqueue.BEAT`), so that a live worker's key does not lapse between two beats and the others do not take back
#: what it holds
MIN_ALIVE_TTL = 2.0


def check_distributed(get: Any) -> None:
    """Read every distributed setting (``get``: :func:`consentcrawl.settings.read` of one crawl's settings), so a
    bad value stops the crawl at start-up naming the setting."""
    url = get("CONSENTCRAWL_REDIS_URL")
    if url and urlsplit(url.strip()).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{public(url)!r} is not a redis://, rediss:// or unix:// URL",
                          source="CONSENTCRAWL_REDIS_URL")
    prefix = get("CONSENTCRAWL_REDIS_PREFIX")
    if not prefix.strip() or any(c.isspace() for c in prefix):
        raise ConfigError(f"{prefix!r} is not a key prefix (a word without spaces)", source="CONSENTCRAWL_REDIS_PREFIX")
    for name in DISTRIBUTED_SETTINGS[1:]:
        get(name)
    alive_ttl(get)


def alive_ttl(get: Any) -> float:
    """``CONSENTCRAWL_WORKER_ALIVE_TTL``: how long after a worker's last heartbeat the others take back what it
    held (``get``: :func:`consentcrawl.settings.read` of one crawl's settings)."""
    ttl = float(get("CONSENTCRAWL_WORKER_ALIVE_TTL"))
    if ttl < MIN_ALIVE_TTL:
        raise ConfigError(f"{ttl:g} is less than {MIN_ALIVE_TTL:g} seconds: a worker says it is alive every second, "
                          "and the others would take back what a live worker holds",
                          source="CONSENTCRAWL_WORKER_ALIVE_TTL")
    return ttl


def worker_alive_ttl(spider: Any, default: float) -> float:
    """The spider's crawl's ``CONSENTCRAWL_WORKER_ALIVE_TTL``; ``default`` for a worker whose settings cannot give one
    (checked at start-up, where a bad value stops the crawl naming it: only a crawl without the add-on, which takes
    nothing from the queue, gets here with one)."""
    settings = getattr(getattr(spider, "crawler", None), "settings", None)
    try:
        return alive_ttl(functools.partial(read, settings if settings is not None else as_settings({})))
    except ConfigError:
        return default


def worker_id() -> str:
    """This worker's name in shared keys and file names: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def expand_worker(path: str | None) -> str | None:
    """``{worker}`` and ``{pid}`` in a path (``CONSENTCRAWL_AUDIT_LOG``), so each worker writes its own file."""
    if not path or "{" not in path:
        return path
    return path.replace("{worker}", worker_id()).replace("{pid}", str(os.getpid()))


def worker_glob(path: str | None) -> str | None:
    """The pattern every worker's file of ``path`` matches (``{worker}`` and ``{pid}`` as ``*``); None when
    ``path`` names one file for every process."""
    if not path or ("{worker}" not in path and "{pid}" not in path):
        return None
    return path.replace("{worker}", "*").replace("{pid}", "*")


def public(url: str) -> str:
    """A Redis URL without its password, for logs and evidence."""
    from ..consent.httpapi import public_url

    return public_url(url)


class SharedState:
    """One asynchronous Redis client per crawler, with the key prefix and the down/up bookkeeping."""

    def __init__(self, url: str, prefix: str = "consentcrawl", timeout: float = 1.0) -> None:
        self.url = url
        self.source = public(url)
        self.prefix = prefix
        self.timeout = timeout
        self.worker = worker_id()
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self.down_since: float | None = None
        self.failures = 0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> SharedState | None:
        url = shared_redis_url(settings)
        if url is None:
            return None
        return cls(url, read(settings, "CONSENTCRAWL_REDIS_PREFIX"), read(settings, "CONSENTCRAWL_REDIS_TIMEOUT"))

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.url, **client_options(self.timeout))
        return self._client

    def script(self, source: str) -> Any:
        """The Lua ``source`` registered with the current client: called with ``(keys, args)``, it is sent by its
        SHA1 (EVALSHA), and loaded again when the server does not know it (NOSCRIPT: a restarted server), so the
        script text crosses the network once per server, not with every request."""
        client = self.client
        found = self._scripts.get(source)
        if found is None or found.registered_client is not client:
            found = self._scripts[source] = client.register_script(source)
        return found

    async def run(self, command: Awaitable[_T], what: str) -> _T:
        """Await one Redis command; any failure is :class:`SharedStateUnavailable` naming ``what`` and the cause."""
        try:
            result = await command
        except Exception as exc:  # noqa: BLE001 - connection refused, timeouts, a script error: all fail closed
            self.failures += 1
            if self.down_since is None:
                self.down_since = time.monotonic()
                logger.warning("consentcrawl: shared state %s unavailable (%s: %s): denying what needs it until "
                               "it answers", self.source, type(exc).__name__, exc)
            raise SharedStateUnavailable(f"shared state {self.source} unavailable while {what}: "
                                         f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if self.down_since is not None:
            logger.info("consentcrawl: shared state %s answers again after %.1f s", self.source,
                        time.monotonic() - self.down_since)
            self.down_since = None
        return result

    async def close(self) -> None:
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                logger.debug("consentcrawl: closing the shared state's connection failed", exc_info=True)
