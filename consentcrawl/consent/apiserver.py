"""The reference consent API server: ``consentcrawl serve-authorizations SQLITE_OR_FILE``.

Serves the contract of ``docs/consent-api.md`` from any built-in store (a YAML, CSV or JSONL file, or an
``sqlite:///`` store), standard library only (``http.server``); a crawl never imports it.

The change feed: the server remembers the answer it gave for each person asked about (up to ``remember`` people)
and watches the store's version (every ``watch`` seconds, default 0.1). When the version changes it looks those
people up again and lists, under a new version, each one whose records differ. Versions are ``EPOCH.N``: ``EPOCH``
is new each time the server starts, so a client that followed another run of the server is told to reset, as is
one asking for a version older than the changes the server kept, or one it never gave. A person forgotten to make
room for another is a reset for everyone following from before. While the store cannot answer, every request is
a 503 naming the cause.

A bearer token is required when the environment variable named by ``--token-env`` (default
``CONSENTCRAWL_API_TOKEN``) is set. The request log (``logging``, DEBUG) names the path, never the query (it names a
person) nor the token.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, StoreUnavailable
from ..terms.platforms import PlatformRegistry
from .keys import casefold_key, key_function
from .records import AuthorizationRecord
from .remote import record_to_json

__all__ = ["AuthorizationServer", "Handler"]

logger = logging.getLogger(__name__)

KEPT_CHANGES = 10_000  #: change entries kept for clients that fall behind (older: a reset)


class AuthorizationServer:
    """Serve ``store`` (a built-in store: ``version`` and a plain ``lookup``) on ``host:port`` in a thread.

    ``with AuthorizationServer(store, platforms) as server:`` starts it (``port=0``: a free port), ``server.url``
    is the base URL. ``token``: the bearer token required (None: none)."""

    def __init__(self, store: Any, platforms: PlatformRegistry, host: str = "127.0.0.1", port: int = 0, *,
                 token: str | None = None, watch: float = 0.1, remember: int = 100_000) -> None:
        self.store = store
        self.platforms = platforms
        self.host, self._port = host, port
        self.token = token
        self.watch = watch
        self.remember = remember
        self.epoch = secrets.token_hex(4)
        self._lock = threading.RLock()
        self._counter = 0
        self._reset_at = 0  #: clients following from before this counter must reset
        self._changes: list[tuple[int, str, str]] = []  #: (counter, platform, subject key)
        self._answered: OrderedDict[tuple[str, str], tuple[AuthorizationRecord, ...]] = OrderedDict()
        self._store_version: Any = None
        self._error: str | None = None
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()

    @property
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler (a subclass may serve through its own, e.g. to log what it was sent)."""
        return _Handler

    # -- life cycle -----------------------------------------------------------------------------------------------

    def start(self) -> AuthorizationServer:
        handler = type("Handler", (self.handler_class,), {"api": self})
        self._httpd = ThreadingHTTPServer((self.host, self._port), handler)
        self._httpd.daemon_threads = True
        with self._lock:
            self._store_version = self._read_version()
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          name="consent-api", daemon=True),
                         threading.Thread(target=self._watch, name="consent-api-watch", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        self._stopping.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for conn in connections:  # kept-alive connections would go on being answered
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def __enter__(self) -> AuthorizationServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not running"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def version(self) -> str:
        return f"{self.epoch}.{self._counter}"

    # -- answering ------------------------------------------------------------------------------------------------

    def authorizations(self, platform: str, subject: str) -> dict[str, Any]:
        """The answer to ``/v1/authorizations``; raises StoreUnavailable."""
        with self._lock:
            self._follow()
            key = self._key(platform, subject)
            records = tuple(self.store.lookup(platform, key))
            self._answered[(platform, key)] = records
            self._answered.move_to_end((platform, key))
            if len(self._answered) > self.remember:
                self._answered.popitem(last=False)
                self._counter += 1
                self._reset_at = self._counter  # that person's changes can no longer be told
            return {"records": [record_to_json(r) for r in records], "version": self.version}

    def changes(self, since: str | None) -> dict[str, Any]:
        """The answer to ``/v1/changes``; raises StoreUnavailable."""
        with self._lock:
            self._follow()
            if since is None:
                return {"version": self.version, "changed": [], "reset": True}
            epoch, _, number = since.partition(".")
            if epoch != self.epoch or not number.isdigit() or not self._reset_at <= int(number) <= self._counter \
                    or (self._changes and int(number) < self._changes[0][0] - 1):
                return {"version": self.version, "changed": [], "reset": True}
            after = int(number)
            changed = [{"platform": p, "subject": s} for n, p, s in self._changes if n > after]
            return {"version": self.version, "changed": changed}

    def _key(self, platform: str, subject: str) -> str:
        known = self.platforms.get(platform)
        return key_function(known)(subject) if known is not None else casefold_key(subject)

    # -- following the store --------------------------------------------------------------------------------------

    def _read_version(self) -> Any:
        try:
            version = self.store.version
        except Exception as exc:  # noqa: BLE001 - a store that cannot say its version cannot answer
            self._failing(f"authorization store failed: {type(exc).__name__}: {exc}")
            return None
        return version

    def _watch(self) -> None:
        while not self._stopping.wait(self.watch):
            with self._lock:
                self._follow()

    def _follow(self) -> None:
        """Look again at everyone answered when the store's version changed (the caller holds the lock)."""
        version = self._read_version()
        if version is None or (version == self._store_version and self._error is None):
            if self._error is not None:
                raise StoreUnavailable(self._error)
            return
        changed: list[tuple[str, str]] = []
        try:
            for (platform, key), records in self._answered.items():
                now = tuple(self.store.lookup(platform, key))
                if now != records:
                    changed.append((platform, key))
        except StoreUnavailable as exc:
            self._failing(str(exc))
            raise StoreUnavailable(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the store's failure is every client's 503
            message = f"authorization store failed: {type(exc).__name__}: {exc}"
            self._failing(message)
            raise StoreUnavailable(message) from None
        if self._error is not None:
            logger.warning("authorization store %s answers again", getattr(self.store, "source", "?"))
            self._error = None
        self._store_version = version
        if changed:
            self._counter += 1
            for platform, key in changed:
                self._changes.append((self._counter, platform, key))
                del self._answered[(platform, key)]  # answered again when asked
            del self._changes[:-KEPT_CHANGES]

    def _failing(self, message: str) -> None:
        if self._error is None:
            logger.error("%s: answering 503 until it answers again", message)
        self._error = message


class _Handler(BaseHTTPRequestHandler):
    """Answers the contract's two GETs from :attr:`api`."""

    api: AuthorizationServer
    protocol_version = "HTTP/1.1"
    server_version = "consentcrawl-consent-api"
    #: headers and body go out in two writes: with Nagle's algorithm on, a kept-alive connection waits for the
    #: client's delayed ACK (40 ms on Linux) before the body
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if not self._authorized():
            self._send(401, {"error": "a bearer token is required"}, {"WWW-Authenticate": "Bearer"})
            return
        answer: Callable[[], dict[str, Any]]
        if parts.path.rstrip("/").endswith("/v1/authorizations"):
            platform, subject = query.get("platform"), query.get("subject")
            if not platform or not subject:
                self._send(400, {"error": "platform and subject are required"})
                return
            answer = lambda: self.api.authorizations(platform, subject)  # noqa: E731
        elif parts.path.rstrip("/").endswith("/v1/changes"):
            answer = lambda: self.api.changes(query.get("since") or None)  # noqa: E731
        else:
            self._send(404, {"error": "not found"})
            return
        try:
            body = answer()
        except StoreUnavailable as exc:
            self._send(503, {"error": str(exc)})
            return
        self._send(200, body)

    def setup(self) -> None:
        super().setup()
        with self.api._lock:
            self.api._connections.add(self.connection)

    def finish(self) -> None:
        with self.api._lock:
            self.api._connections.discard(self.connection)
        super().finish()

    def _authorized(self) -> bool:
        token = self.api.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), urlsplit(self.path).path)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        logger.debug("%s %s -> %s", self.address_string(), urlsplit(self.path).path, code)


Handler = _Handler  #: the request handler, for subclasses


def serve(source: str, platforms: PlatformRegistry, host: str, port: int, token_env: str) -> int:
    """``consentcrawl serve-authorizations``: serve until interrupted."""
    from ..config import open_store
    from .httpapi import is_loopback

    token = os.environ.get(token_env) or None
    if token is None and not is_loopback(host):
        # people's consent records (who, for what, where the consent is kept) are personal data
        raise ConfigError(f"serving consent records on {host!r}, off loopback, needs a bearer token: set "
                          f"${token_env} (and put TLS in front: a client sends its token off loopback only over "
                          "https)", source="--host")
    store = open_store(source, platforms)
    try:
        server = AuthorizationServer(store, platforms, host, port, token=token).start()
    except (OSError, OverflowError) as exc:  # the port is taken, out of range, the address not ours
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}", source="--port") from None
    print(f"serving the authorizations of {getattr(store, 'source', source)} at {server.url} "
          f"({'bearer token from $' + token_env if token else 'no token required'}); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
