"""What the demo server exchanges with an app: the request as it was received, and the response to send.

An app is any callable ``app(request, headers) -> Response | None``; these types are all it needs to know, so an
app (the demo microblog, a test's fake site) never touches the HTTP machinery in :mod:`consentcrawl_demo.wire`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["App", "Headers", "LoggedRequest", "Response", "merge_headers"]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


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
        return cls(status, merge_headers({"Content-Type": "text/html; charset=utf-8"}, headers), body)

    @classmethod
    def text(cls, body: str, status: int = 200, headers: Headers | None = None) -> Response:
        return cls(status, merge_headers({"Content-Type": "text/plain; charset=utf-8"}, headers), body)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls.text(f"Redirecting to {location}\n", status, {"Location": location})

    def header_pairs(self) -> list[tuple[str, str]]:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(str(k), str(v)) for k, v in items]

    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)


def merge_headers(base: dict[str, str], extra: Headers | None) -> list[tuple[str, str]]:
    """``base`` with every header ``extra`` names replaced by ``extra``'s values."""
    pairs = list(base.items())
    if extra:
        extra_pairs = list(extra.items() if isinstance(extra, Mapping) else extra)
        overridden = {k.lower() for k, _ in extra_pairs}
        pairs = [(k, v) for k, v in pairs if k.lower() not in overridden] + extra_pairs
    return pairs


#: ``app(request, headers)``: ``headers`` has lower-cased names (repeated headers joined with ", ").
#: Returning ``None`` closes the connection without an answer.
App = Callable[[LoggedRequest, dict[str, str]], Response | None]
