"""A loopback HTTP server that is both an origin server and a plain-http forward proxy.

Crawlers reach made-up hosts such as ``http://microblog.example/`` by using this server as their HTTP proxy
(``http_proxy=http://127.0.0.1:PORT``): they send absolute-form requests (``GET http://microblog.example/u/1
HTTP/1.1``) and the server answers them itself. Requests in origin form (``GET /u/1``) are dispatched on their
``Host`` header. Either way one *app* answers, chosen by nothing but the request: an app is a callable
``app(request, headers) -> Response | None`` (:mod:`consentcrawl_demo.messages`).

Every request is logged, with its request target exactly as received, so tests can assert what was (and what was
never) asked for::

    with LocalServer(lambda request, headers: Response.text("down", 503)) as server:
        httpx.get("http://microblog.example/robots.txt", proxy=server.proxy)
        assert server.requested_urls() == ["http://microblog.example/robots.txt"]

Standard library only; used by ``consentcrawl demo`` and by the end-to-end tests. This module keeps the server's
life cycle and its request log; reading and writing HTTP is :mod:`consentcrawl_demo.wire`.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import time
from typing import Any

from .messages import App, LoggedRequest, Response
from .wire import ServerSocket

__all__ = ["App", "LocalServer", "LoggedRequest", "Response"]


class LocalServer:
    """Serve ``app`` on loopback, as origin server and plain-http forward proxy, in a background thread.

    ``with LocalServer(app) as server:`` starts it; ``server.proxy`` is what to give a client as its http proxy.
    Only loopback addresses are accepted; ``port=0`` picks a free port.
    """

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or not address.is_loopback:
            raise ValueError(f"LocalServer binds an IPv4 loopback address only, not {host!r}")
        self.app = app
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._errors: list[tuple[LoggedRequest, str]] = []
        self._connections: dict[threading.Thread, Any] = {}
        self._stopping = threading.Event()
        self._httpd: ServerSocket | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> LocalServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        self._stopping.clear()
        self._httpd = ServerSocket((self.host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="LocalServer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and every open connection, and join all the server's threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()  # ends serve_forever: no new connections
        with self._lock:
            connections = dict(self._connections)
        for sock in connections.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes handlers blocked reading a keep-alive connection
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for conn_thread in connections:
            conn_thread.join(max(0.0, deadline - time.monotonic()))
        httpd.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = self._thread = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LocalServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``"""
        return f"http://{self.host}:{self.port}"

    @property
    def proxy(self) -> str:
        """The value for ``http_proxy`` / ``httpx.Client(proxy=...)`` / Scrapy's ``meta['proxy']``."""
        return self.url

    # the request log

    def _record(self, request: LoggedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _record_error(self, request: LoggedRequest, text: str) -> None:
        with self._lock:
            self._errors.append((request, text))

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def errors(self) -> list[tuple[LoggedRequest, str]]:
        """(request, traceback) for every exception an app raised (answered with a 500)."""
        with self._lock:
            return list(self._errors)

    def requested_urls(self) -> list[str]:
        """``http://host[:port]/raw-path[?query]`` of every logged request, in arrival order."""
        return [request.url for request in self.requests]

    def clear(self) -> None:
        """Forget the logged requests and errors."""
        with self._lock:
            self._log.clear()
            self._errors.clear()


def serve_until_interrupted(server: LocalServer) -> int:
    """Keep a demo server running in the foreground until Ctrl-C or SIGTERM, then stop it; the exit code 0."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
