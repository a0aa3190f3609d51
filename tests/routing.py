"""A router app for :class:`~consentcrawl_demo.server.LocalServer`: the small fake sites tests build, one route
per (host, path), e.g. a robots.txt that answers 503 in front of the demo microblog.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consentcrawl_demo.messages import App, Headers, LoggedRequest, Response, merge_headers

__all__ = ["Router"]


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
        response = Response(status, merge_headers({"Content-Type": "text/plain; charset=utf-8"}, headers), body, delay)
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
