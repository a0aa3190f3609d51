"""A loopback HTTP server that is both an origin server and a plain-http forward proxy.

Crawlers reach made-up hosts such as ``http://microblog.example/`` by using this server as their HTTP proxy
(``http_proxy=http://127.0.0.1:PORT``): they send absolute-form requests (``GET http://microblog.example/u/1
HTTP/1.1``) and the server answers them itself. Requests in origin form (``GET /u/1``) are dispatched on their
``Host`` header. Either way one *app* answers, chosen by nothing but the request: an app is a callable
``app(request, headers) -> Response | None``.

Every request is logged, with its request target exactly as received, so tests can assert what was (and what was
never) asked for::

    with LocalServer(Router.static("microblog.example", "/robots.txt", 503, b"down")) as server:
        httpx.get("http://microblog.example/robots.txt", proxy=server.proxy)
        assert server.requested_urls() == ["http://microblog.example/robots.txt"]

Standard library only; used by ``consentcrawl demo`` and by the end-to-end tests.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["App", "LocalServer", "LoggedRequest", "Response", "Router"]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

#: Headers the server always sets itself; an app's values for them are ignored.
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "date"})
_NO_BODY_STATUSES = frozenset({204, 304})


# --------------------------------------------------------------------------- requests and responses


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server received it.

    ``target`` is the raw request target (absolute or origin form, un-normalised). ``host`` is lower-cased, without
    port or trailing dot, taken from the absolute URI or else from the Host header; ``host_header`` is that header
    as sent. ``path`` and ``query`` are raw too (percent-escapes kept); ``time`` is ``time.time()`` at arrival.
    """

    method: str
    host: str
    target: str
    path: str
    query: str
    time: float
    host_header: str = ""
    port: int | None = None
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @property
    def url(self) -> str:
        """``scheme://host[:port]/raw-path[?query]``; the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        port = f":{self.port}" if self.port is not None and self.port != default else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}{port}{self.path}{query}"

    @property
    def decoded_path(self) -> str:
        """The path percent-decoded, as an origin server would route it."""
        return unquote(self.path)

    @property
    def absolute_form(self) -> bool:
        """True when the client sent an absolute URI, i.e. used this server as its proxy."""
        return "://" in self.target.split("?", 1)[0]

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a request header (case-insensitive)."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default


@dataclass
class Response:
    """What an app answers. ``body`` may be ``str`` (sent as UTF-8); ``delay`` seconds pass before answering.

    Content-Length is always computed by the server; an app's Content-Length / Transfer-Encoding are ignored.
    """

    status: int = 200
    headers: Headers = field(default_factory=dict)
    body: bytes | str = b""
    delay: float = 0.0

    @classmethod
    def html(cls, body: str, status: int = 200, headers: Headers | None = None) -> Response:
        return cls(status, _merge({"Content-Type": "text/html; charset=utf-8"}, headers), body)

    @classmethod
    def text(cls, body: str, status: int = 200, headers: Headers | None = None) -> Response:
        return cls(status, _merge({"Content-Type": "text/plain; charset=utf-8"}, headers), body)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls.text(f"Redirecting to {location}\n", status, {"Location": location})

    def header_pairs(self) -> list[tuple[str, str]]:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(str(k), str(v)) for k, v in items]

    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)


def _merge(base: dict[str, str], extra: Headers | None) -> list[tuple[str, str]]:
    pairs = list(base.items())
    if extra:
        extra_pairs = list(extra.items() if isinstance(extra, Mapping) else extra)
        overridden = {k.lower() for k, _ in extra_pairs}
        pairs = [(k, v) for k, v in pairs if k.lower() not in overridden] + extra_pairs
    return pairs


#: ``app(request, headers)``: ``headers`` has lower-cased names (repeated headers joined with ", ").
#: Returning ``None`` closes the connection without an answer.
App = Callable[[LoggedRequest, dict[str, str]], Response | None]


# --------------------------------------------------------------------------- routing


class _hybridmethod:
    """A method that, called on the class, runs on a fresh instance (``Router.static(...)`` builds a router)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, cls: type) -> Callable[..., Any]:
        target = obj if obj is not None else cls()
        return self.func.__get__(target, cls)


@dataclass(frozen=True)
class _Route:
    host: str | None
    path: str | None
    prefix: bool
    handler: App

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and not fnmatch.fnmatchcase(host, self.host):
            return False
        if self.path is None:
            return True
        return path.startswith(self.path) if self.prefix else path == self.path


class Router:
    """Dispatch on (host, path) to handlers, first match wins; unmatched requests go to ``fallback`` (else 404).

    Host patterns are lower-case fnmatch patterns (``"microblog.example"``, ``"*.microblog.example"``) or None for
    any host. Paths are matched against the percent-decoded path without the query: exactly, or as a prefix with
    ``prefix=True``; None matches any path. ``static`` and ``drop`` work on the class too, returning a new router::

        app = Router(fallback=site).static("microblog.example", "/robots.txt", 503, b"down")
    """

    def __init__(self, fallback: App | None = None) -> None:
        self.routes: list[_Route] = []
        self.fallback = fallback

    def add(self, host: str | None, path: str | None, handler: App, *, prefix: bool = False) -> Router:
        """Add a route; returns the router for chaining."""
        self.routes.append(_Route(host.lower() if host else None, path, prefix, handler))
        return self

    def route(self, host: str | None, path: str | None, *, prefix: bool = False) -> Callable[[App], App]:
        """Decorator form of :meth:`add`."""

        def decorate(handler: App) -> App:
            self.add(host, path, handler, prefix=prefix)
            return handler

        return decorate

    @_hybridmethod
    def static(
        self,
        host: str | None,
        path: str | None,
        status: int = 200,
        body: bytes | str = b"",
        headers: Headers | None = None,
        *,
        prefix: bool = False,
        delay: float = 0.0,
    ) -> Router:
        """Answer (host, path) with a fixed response (text/plain unless ``headers`` say otherwise)."""
        response = Response(status, _merge({"Content-Type": "text/plain; charset=utf-8"}, headers), body, delay)
        return self.add(host, path, lambda request, headers: response, prefix=prefix)

    @_hybridmethod
    def drop(self, host: str | None, path: str | None, *, prefix: bool = False) -> Router:
        """Close the connection without answering requests for (host, path)."""
        return self.add(host, path, lambda request, headers: None, prefix=prefix)

    def __call__(self, request: LoggedRequest, headers: dict[str, str]) -> Response | None:
        path = request.decoded_path
        for route in self.routes:
            if route.matches(request.host, path):
                return route.handler(request, headers)
        if self.fallback is not None:
            return self.fallback(request, headers)
        return Response.text(f"no route for {request.url}\n", 404)


# --------------------------------------------------------------------------- parsing helpers


def _split_hostport(value: str) -> tuple[str, int | None]:
    """``"Example.COM:8080"`` -> ``("example.com", 8080)``; IPv6 literals in brackets; bad ports -> None."""
    value = value.strip()
    host, port = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end != -1:
            host, port = value[1:end], value[end + 1 :].removeprefix(":")
    elif value.count(":") == 1:
        host, port = value.split(":")
    return host.lower().rstrip("."), int(port) if port.isdigit() else None


def _parse_target(method: str, target: str, host_header: str) -> tuple[str, str, int | None, str, str]:
    """(scheme, host, port, path, query) of a request target in any of the four RFC 9112 forms."""
    if method == "CONNECT":  # authority form
        host, port = _split_hostport(target)
        return "https", host, port, "", ""
    if target.startswith("/") or target == "*":  # origin / asterisk form: the Host header names the host
        host, port = _split_hostport(host_header)
        path, _, query = target.partition("#")[0].partition("?")
        return "http", host, port, path, query
    parts = urlsplit(target)  # absolute form: the client is using us as its proxy
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        host, port = _split_hostport(host_header)
    return (parts.scheme or "http").lower(), host, port, parts.path or "/", parts.query


# --------------------------------------------------------------------------- the HTTP machinery


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consentcrawl-demo/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request on stderr."""

    def handle_one_request(self) -> None:
        """Like the stdlib's, but every method goes to the app."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._dispatch()
            self.wfile.flush()
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(1026).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length and length.strip().isdigit() else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        words = self.requestline.split()
        target = words[1] if len(words) > 1 else ""  # raw: self.path has had "//" collapsed by the stdlib
        pairs = tuple((k, v) for k, v in self.headers.items())
        headers: dict[str, str] = {}
        for key, value in pairs:
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        host_header = headers.get("host", "")
        scheme, host, port, path, query = _parse_target(self.command, target, host_header)
        try:
            body = self._read_body()
        except ValueError:
            body = b""
            self.close_connection = True
        request = LoggedRequest(
            self.command, host, target, path, query, time.time(), host_header, port, scheme, pairs, body
        )
        owner._record(request)

        if self.command == "CONNECT":
            response: Response | None = Response.text("this proxy does not tunnel (CONNECT)\n", 405)
        else:
            try:
                response = owner.app(request, headers)
            except Exception:  # noqa: BLE001 - an app bug must show in the test, not kill the server
                owner._record_error(request, traceback.format_exc())
                response = Response.text("internal server error\n", 500)
        if response is None:
            self._abort()
            return
        if response.delay > 0 and owner._stopping.wait(response.delay):
            self._abort()  # stopping: do not answer late
            return
        self._send(response)

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, response: Response) -> None:
        status = int(response.status)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        body = response.body_bytes()
        lines = [f"HTTP/1.1 {status} {reason}"]
        names = set()
        for key, value in response.header_pairs():
            name = key.lower()
            if name in _OWN_HEADERS:
                continue
            if name == "connection" and "close" in value.lower():
                self.close_connection = True
            names.add(name)
            lines.append(f"{key}: {value}")
        if "server" not in names:
            lines.append(f"Server: {self.server_version}")
        lines.append(f"Date: {self.date_time_string()}")
        no_body = status in _NO_BODY_STATUSES or status < 200
        if not no_body:
            lines.append(f"Content-Length: {len(body)}")
        if "connection" not in names:
            if self.close_connection:
                lines.append("Connection: close")
            elif self.request_version == "HTTP/1.0":
                lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        send_body = not no_body and self.command != "HEAD"
        self.wfile.write(head + body if send_body else head)  # one write: no Nagle/delayed-ACK stalls


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's getfqdn(): a reverse DNS lookup
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="LocalServer-connection", daemon=True
        )
        with self.owner._lock:
            self.owner._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - the client went away; nothing to report
            pass
        finally:
            self.shutdown_request(request)
            with self.owner._lock:
                self.owner._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: no tracebacks on stderr for dropped connections."""


# --------------------------------------------------------------------------- the public server


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
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> LocalServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._port), self)
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
