"""A loopback origin-and-proxy that writes its answers byte by byte as a test scripts them: a page that promises
more bytes than it sends (data loss), or whose headers come long before its body. It keeps the targets it was
asked for, in order: what it served. robots.txt allows everything."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.threadserver import serving

#: ``script(target, nth)`` (``nth``: how many requests for that target came before) -> the chunks to write, each
#: after a pause: ``[(seconds, bytes), ...]``; the connection is then closed
Script = Callable[[str, int], list[tuple[float, bytes]]]

_ROBOTS = b"User-agent: *\nAllow: /\n"


def head(length: int, content_type: str = "text/html; charset=utf-8") -> bytes:
    """A 200's status line and headers, promising ``length`` bytes of body."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            % (content_type.encode(), length))


def whole(body: str) -> list[tuple[float, bytes]]:
    """A 200 with all of ``body``, at once."""
    data = body.encode()
    return [(0.0, head(len(data)) + data)]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.targets: list[str] = []
        self.lock = threading.Lock()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        target = line.split(" ")[1] if line.count(" ") >= 2 else ""
        with self.server.lock:
            nth = self.server.targets.count(target)
            self.server.targets.append(target)
        if target.endswith("/robots.txt"):
            chunks = [(0.0, head(len(_ROBOTS), "text/plain") + _ROBOTS)]
        else:
            chunks = self.server.script(target, nth)
        for pause, data in chunks:
            time.sleep(pause)
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # the client cancelled the download
                return


@contextmanager
def scripted_proxy(script: Script) -> Iterator[_Server]:
    """The proxy running; ``.targets`` is what it was asked for, ``http://127.0.0.1:<port>`` its address."""
    with serving(_Server(script)) as server:
        yield server


def address(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
