"""A synthetic social platform for benchmarks: a fast HTTP/1.1 server (origin and plain-http proxy) on loopback.

Why not :class:`consentcrawl_demo.server.LocalServer`: that one is a thread-per-connection ``http.server`` that
logs every request for tests to inspect, and costs more CPU per response than it should when a benchmark asks
whether the *crawler* is the bottleneck. This one is a single asyncio ``Protocol`` with keep-alive and
pipelining, and every response is rendered once and kept as bytes, so a request costs a dict lookup and a write.

It answers any host (crawlers reach ``www.chirp.example`` through it as their ``http_proxy``) with:

- ``/robots.txt``: 30 realistic rules (a ``*`` group plus AI-crawler groups), with a sitemap line;
- ``/people?page=K``: a listing page of 50 profile links (``li.person a.profile-link``) and a ``rel="next"`` link;
- ``/u/ID``: a profile with a few fields (``.name``, ``.bio``, ``.followers``, ``.location``) and five
  ``a.related`` links to other profiles;
- anything else: 404.

Profiles are ``ID = FIRST_ID + k`` for ``k`` in ``0..pages-1``. Run it standalone with
``python benchmarks/platform_server.py --pages 5000 [--port 0]``: it prints ``listening on 127.0.0.1:PORT`` and
serves until killed (SIGTERM/SIGINT). ``--selftest SECONDS`` instead measures its own capacity with a keep-alive
load generator in a separate process and prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

FIRST_ID = 10_000_000
PAGE_SIZE = 50
RELATED = 5
HOST = "www.chirp.example"

ROBOTS_TXT = f"""\
# robots.txt for {HOST}
User-agent: *
Disallow: /search
Disallow: /api/
Disallow: /login
Disallow: /logout
Disallow: /signup
Disallow: /settings/
Disallow: /messages/
Disallow: /notifications
Disallow: /compose
Disallow: /oauth/
Disallow: /admin/
Disallow: /share/
Disallow: /i/
Disallow: /u/*/followers
Disallow: /u/*/following
Disallow: /u/*/likes
Disallow: /*?sort=
Disallow: /*?ref=
Disallow: /*.json$
Disallow: /hashtag/*?f=live
Allow: /u/
Allow: /people
Allow: /about
Allow: /help/

User-agent: GPTBot
User-agent: CCBot
User-agent: Google-Extended
Disallow: /

User-agent: Bytespider
Disallow: /u/
Disallow: /people

Sitemap: http://{HOST}/sitemap.xml
"""

_FIRST = "Ada Alan Amara Anders Aiko Beatriz Bruno Chen Chiara Dario Dmitri Elif Emeka Farah Felix Greta Hana".split()
_LAST = "Abara Berg Castillo Dubois Eriksen Ferreira Gallo Haddad Ishikawa Jansen Kowalski Lindqvist Moreau".split()
_CITIES = "Lisbon Ghent Tallinn Lyon Bologna Porto Aarhus Graz Valencia Utrecht Tampere Bergen Leipzig".split()
_WORDS = ("walks coffee photography cycling jazz poetry chess gardening astronomy baking climbing sailing "
          "open-source birds trains maps").split()

_HEADER = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · Chirp</title>'
           '<link rel="stylesheet" href="/static/site.css"></head><body>'
           '<header class="top"><a class="logo" href="/">Chirp</a><nav><a href="/people?page=1">People</a> '
           '<a href="/about">About</a> <a href="/help/">Help</a> <a href="/login">Log in</a></nav></header><main>')
_FOOTER = ('</main><footer><p>Chirp is a synthetic platform for benchmarks. '
           '<a href="/help/privacy">Privacy</a> · <a href="/help/terms">Terms</a></p></footer></body></html>')


def profile_ids(pages: int) -> range:
    """The profile ids a server of ``pages`` profiles serves."""
    return range(FIRST_ID, FIRST_ID + pages)


def related_ids(subject: int, pages: int) -> list[int]:
    """The five profiles a profile links to: deterministic, spread over the whole site."""
    rng = random.Random(subject)
    return [FIRST_ID + rng.randrange(pages) for _ in range(RELATED)]


def _person(subject: int) -> tuple[str, str, int, str]:
    rng = random.Random(subject * 7919)
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    bio = "Into " + ", ".join(rng.sample(_WORDS, 3)) + "."
    return name, bio, rng.randrange(5, 50_000), rng.choice(_CITIES)


def render_profile(subject: int, pages: int) -> str:
    name, bio, followers, city = _person(subject)
    links = "".join(f'<li><a class="related" href="/u/{r}">{_person(r)[0]}</a></li>'
                    for r in related_ids(subject, pages))
    return (_HEADER.format(title=name)
            + f'<article class="profile" data-subject="{subject}"><h1 class="name">{name}</h1>'
            f'<p class="bio">{bio}</p><dl><dt>Followers</dt><dd class="followers">{followers}</dd>'
            f'<dt>Location</dt><dd class="location">{city}</dd><dt>Joined</dt><dd class="joined">2019</dd></dl>'
            f'<section class="related"><h2>People also follow</h2><ul>{links}</ul></section></article>'
            + _FOOTER)


def render_listing(page: int, pages: int) -> str | None:
    start = (page - 1) * PAGE_SIZE
    if page < 1 or start >= pages:
        return None
    items = "".join(f'<li class="person"><a class="profile-link" href="/u/{FIRST_ID + k}">{_person(FIRST_ID + k)[0]}'
                    f'</a> <span class="city">{_person(FIRST_ID + k)[3]}</span></li>'
                    for k in range(start, min(start + PAGE_SIZE, pages)))
    nav = f'<a rel="next" href="/people?page={page + 1}">Next</a>' if start + PAGE_SIZE < pages else ""
    body = f'<h1>People</h1><ul class="people">{items}</ul>{nav}'
    return _HEADER.format(title=f"People, page {page}") + body + _FOOTER


def _response(status: int, body: str, content_type: str) -> bytes:
    data = body.encode("utf-8")
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nServer: chirp-bench\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\n\r\n")
    return head.encode("latin-1") + data


class Site:
    """Responses by path, rendered on first use and then served as bytes."""

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self.cache: dict[bytes, bytes] = {
            b"/robots.txt": _response(200, ROBOTS_TXT, "text/plain; charset=utf-8"),
        }
        self.not_found = _response(404, "not found\n", "text/plain; charset=utf-8")
        self.served = 0

    def __call__(self, target: bytes) -> bytes:
        self.served += 1
        cached = self.cache.get(target)
        if cached is not None:
            return cached
        path = target
        if b"://" in target:  # absolute form: we are the proxy; the host does not matter
            path = b"/" + target.split(b"/", 3)[3] if target.count(b"/") >= 3 else b"/"
        cached = self.cache.get(path) or self._render(path)
        if len(self.cache) < 4 * self.pages + 1000:
            self.cache[target] = cached
        return cached

    def _render(self, path: bytes) -> bytes:
        text = path.decode("latin-1")
        body = None
        if text.startswith("/u/") and text[3:].isdigit():
            subject = int(text[3:])
            if FIRST_ID <= subject < FIRST_ID + self.pages:
                body = render_profile(subject, self.pages)
        elif text.startswith("/people?page=") and text[13:].isdigit():
            body = render_listing(int(text[13:]), self.pages)
        response = self.not_found if body is None else _response(200, body, "text/html; charset=utf-8")
        self.cache[path] = response
        return response


class HTTPProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; requests are GET/HEAD without bodies."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4:]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                out.append(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                close = True
                break
            response = self.site(parts[1])
            if parts[0] == b"HEAD":
                response = response[:response.find(b"\r\n\r\n") + 4]
            out.append(response)
            lower = head.lower()
            if b"\r\nconnection: close" in lower or parts[2] == b"HTTP/1.0":
                close = True
                break
        self.buffer = buffer
        assert self.transport is not None
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()


async def serve(pages: int, port: int, ready: Callable[[int], None]) -> None:
    site = Site(pages)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HTTPProtocol(site), "127.0.0.1", port, backlog=1024)
    ready(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# -- capacity: a keep-alive load generator in its own process ---------------------------------------------------


def _load(port: int, seconds: float, connections: int, pages: int) -> dict[str, float]:
    """Open ``connections`` keep-alive connections and send profile requests one at a time on each (like a crawler,
    no pipelining) for ``seconds``; returns requests/s."""

    async def client(deadline: float, counter: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random()
        while time.perf_counter() < deadline:
            subject = FIRST_ID + rng.randrange(pages)
            writer.write(f"GET http://{HOST}/u/{subject} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            counter[0] += 1
        writer.close()

    async def main() -> dict[str, float]:
        counter = [0]
        start = time.perf_counter()
        await asyncio.gather(*(client(start + seconds, counter) for _ in range(connections)))
        return {"requests": counter[0], "seconds": time.perf_counter() - start}

    return asyncio.run(main())


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(pages: int) -> tuple[subprocess.Popen[str], int]:
    """Start this server as a child process; returns it and its port once it listens."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pages", str(pages)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"platform server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def selftest(pages: int, seconds: float, connections: int) -> dict[str, float]:
    """Capacity of a fresh server process under a load generator in another process.

    The load generator is Python too, so on a 2-core machine this is a lower bound of what the server can do.
    """
    proc, port = start_server(pages)
    try:
        cpu0 = process_cpu(proc.pid)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--load", str(port), "--seconds",
                              str(seconds), "--connections", str(connections), "--pages", str(pages)],
                             check=True, capture_output=True, text=True)
        cpu = process_cpu(proc.pid) - cpu0
    finally:
        stop_server(proc)
    result = json.loads(out.stdout)
    requests = result["requests"]
    return {"requests": requests, "seconds": result["seconds"], "requests_per_s": requests / result["seconds"],
            "server_cpu_s": cpu, "server_cpu_us_per_request": cpu / requests * 1e6 if requests else 0.0,
            "connections": connections}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000, help="number of profiles (default 5000)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--selftest", type=float, metavar="SECONDS", help="measure this server's capacity")
    parser.add_argument("--connections", type=int, default=16, help="load generator connections (--selftest)")
    parser.add_argument("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=3.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        print(json.dumps(_load(args.load, args.seconds, args.connections, args.pages)))
        return 0
    if args.selftest:
        print(json.dumps(selftest(args.pages, args.selftest, args.connections)))
        return 0

    def ready(port: int) -> None:
        print(f"listening on 127.0.0.1:{port}", flush=True)

    asyncio.run(serve(args.pages, args.port, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
