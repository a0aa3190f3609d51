"""HTTP/1.1 on the wire for :class:`~consentcrawl_demo.server.LocalServer`: read a request in any of the four
RFC 9112 target forms (so the server can act as a plain-http forward proxy), hand it to the app, write its answer.

Built on the standard library's ``http.server`` with its quirks taken out: every method reaches the app, the raw
request target is kept (``self.path`` has had ``//`` collapsed), no reverse DNS lookup when binding, no line per
request on stderr, one write per response, and a thread per connection that :meth:`LocalServer.stop` can join.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .messages import LoggedRequest, Response

if TYPE_CHECKING:
    from .server import LocalServer

#: Headers the server always sets itself; an app's values for them are ignored.
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "date"})
_NO_BODY_STATUSES = frozenset({204, 304})


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


class Handler(BaseHTTPRequestHandler):
    """One connection: requests read one after another (keep-alive), each logged and answered by the owner's app."""

    protocol_version = "HTTP/1.1"
    server_version = "consentcrawl-demo/1"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end after this
    server: ServerSocket

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


class ServerSocket(ThreadingHTTPServer):
    """The listening socket: one daemon thread per connection, each known to the owner so ``stop`` can end it."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: LocalServer) -> None:
        self.owner = owner
        super().__init__(address, Handler)

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
