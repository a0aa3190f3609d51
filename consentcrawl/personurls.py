"""Where free text names a page on a platform: its URLs and paths, in every spelling a lenient server reads.

Two readers need this and must find the same things: the log filter (:mod:`consentcrawl.personlines`), which takes
the URLs of people the crawl may not collect out of a line, and the item guard's mention check
(:mod:`consentcrawl.mentions`), which takes them out of an item's values. Neither decides here: each finding comes
with the URLs it may be read as, and the caller decides those as the crawl reads URLs.

- :func:`scheme_urls`: every URL written with a scheme (``http://PEOPLE.example/u/%31%30%37``); whose page it is,
  however its host and path are spelt, is the crawl's URL reading (``runtime.facts_for``).
- :func:`written_paths`: every path written without its scheme or host, as a page links it (``/u/107``,
  ``//host/u/107``, ``../u/107``, ``u/107``, ``./107``), read on each platform's host (``./107`` from each profile's
  folder too: :func:`_folders`), and every word that begins with a platform's host (``people.example/u/108``, its
  slashes doubled or written as backslashes too), read as that URL with its scheme, and every reference without a
  slash that carries a query (``profile.php?id=107``, ``?id=107``: :func:`_query_refs`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .runtime import is_checked_url
from .scrapylines import LINE_URL
from .urls import canonicalize, registered_domain

if TYPE_CHECKING:
    from .terms.platforms import Platform, PlatformRegistry

__all__ = ["FRAME", "PATH_TRAILING", "off_platform", "scheme_urls", "without_path", "without_url", "written_paths"]

#: what ends a sentence after a URL rather than belonging to it
_TRAILING = ".,;:)]}'\""
#: the quotes a path may be written in besides straight ones: a Markdown backtick or asterisk, a table's bar,
#: typographic quotes (neither is part of the path)
_QUOTES = "`*|\u00ab\u00bb\u2039\u203a\u201c\u201d\u201e\u2018\u2019"
#: what may come before a path (it begins a word) and what may end one
_BEGINS = rf"(?<![^\s<>'\"(\[{{=,;{_QUOTES}])"
#: what may stand around a path without being part of it
PATH_TRAILING = _TRAILING + _QUOTES
#: what may follow a URL or a path as written: a delimiter or the end, after a sentence's punctuation if any (the
#: URL in ``see http://host/u/107.`` ends before the full stop, as :func:`scheme_urls` reads it)
_ENDS = rf"(?=[{re.escape(PATH_TRAILING)}]*(?:$|[\s<>'\",;)\]}}{_QUOTES}]))"
#: a path written without scheme or host, as a page links it (``/u/107``, ``//host/u/107``, ``../u/107``,
#: ``u/107``): it begins a word, after what may open one (``(/u/107)`` is ``/u/107``)
_LINE_PATH = re.compile(rf"{_BEGINS}(?://?|(?:\.\.?/)+|[^\s<>'\"/(\[{{=,;{_QUOTES}]+/)[^\s<>/][^\s<>]*")
#: a word that may be a URL written without its scheme (``people.example//u/107``, ``people.example\\u\\107``: the
#: path reading above needs one ``/`` after the host): read as such only when it begins with a platform's host
_HOST_LED = re.compile(rf"{_BEGINS}[^\s<>'\"/\\(\[{{=,;{_QUOTES}]+[/\\][^\s<>]*")
#: a word that begins with a scheme: a URL :func:`scheme_urls` reads (its scheme read as a host names no platform)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: a scheme written with backslashes or one slash (``http:\\host\u\107``, ``http:/host/u/107``), which a browser
#: reads as ``http://``: the word after it is read as a URL without its scheme
_LOOSE_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[/\\]+")
#: a reference relative to the page's folder without a slash that carries a query (``profile.php?id=107``,
#: ``?id=107``): on a platform whose profiles are named by a query parameter it may be a person's page
_QUERY_REF = re.compile(rf"{_BEGINS}[^\s<>'\"/\\?(\[{{=,;{_QUOTES}]*\?[^\s<>]*=[^\s<>]*")
#: what starts a path relative to the page (``./``, ``../``, ``/``), read from the host's root
_RELATIVE = re.compile(r"^(?:\.\.?/|/)+")
#: a traceback's frame line (``File "...", line 107, in parse``): its numbers are no one's id
FRAME = re.compile(r'^\s*File ".*", line \d+', re.MULTILINE)


def scheme_urls(text: str) -> list[str]:
    """Each http(s) URL written with its scheme in ``text``, once, without the punctuation that ends a sentence."""
    return [url for url in dict.fromkeys(found.rstrip(_TRAILING) for found in LINE_URL.findall(text))
            if is_checked_url(url)]


def without_url(text: str, url: str, stand: str) -> str:
    """``text`` with ``url`` (found by :func:`scheme_urls`) replaced by ``stand`` wherever it stands whole."""
    return re.sub(re.escape(url) + _ENDS, lambda _: stand, text)


def written_paths(platforms: PlatformRegistry | None, text: str, *,
                  frames: bool = False) -> list[tuple[str, list[str]]]:
    """Each path written without its scheme and host in ``text`` (module doc), once, with the URLs it may be read
    as on ``platforms``' hosts: a person is named if any of them is a person's page. ``frames``: ``text`` is a
    traceback, whose frame lines are no one's. Without ``platforms`` (no crawl settings yet) every word that
    could begin with a host is given, with no URL to read it as: the caller cannot tell whose it is."""
    if "/" not in text and "\\" not in text and "?" not in text:
        return []
    hosts = [platform for platform in platforms.platforms.values() if platform.domains] if platforms else []
    lines = [line for line in text.split("\n") if not (frames and FRAME.match(line))]
    paths = [path.rstrip(PATH_TRAILING) for line in lines for path in _LINE_PATH.findall(line)]
    queries = _query_refs(hosts, lines) if "?" in text else {}
    # a URL without its scheme on a platform's host, however its slashes are written (without platforms: any)
    hosted: dict[str, str] = {}
    for path in (word.rstrip(PATH_TRAILING) for line in lines for word in _HOST_LED.findall(line)):
        url = _LOOSE_SCHEME.sub("", path)
        if platforms is None or (not _SCHEME.match(path) and _on_platform_host(platforms, url)):
            hosted.setdefault(path, f"http://{url}")
    found = []
    for path in dict.fromkeys([*paths, *hosted, *queries]):
        bare = _RELATIVE.sub("", path)
        urls = queries[path] if path in queries else [f"http:{path}"] if path.startswith("//") else [
            hosted[path]] if path in hosted else [
            f"http://{_host(platform)}{folder}{bare}" for platform in hosts
            for folder in (_folders(platform) if path.startswith("./") else ("/",))]
        found.append((path, urls))
    return found


def _query_refs(hosts: list[Platform], lines: list[str]) -> dict[str, list[str]]:
    """Each reference without a slash that carries a query (``profile.php?id=107``, ``?id=107``), with the URLs it
    may be read as on the hosts of the platforms whose profiles are named by a query parameter: from the host's root
    and from each such profile's folder, and (``?id=107``, on the profile page itself) after each one's path."""
    readings: dict[str, list[str]] = {}
    for word in (found.rstrip(PATH_TRAILING) for line in lines for found in _QUERY_REF.findall(line)):
        urls = readings.setdefault(word, [])
        for platform in hosts:
            for template in platform.profiles:
                if template.param is not None:
                    folder = "/" + "".join(part + "/" for part in template.path[:-1])
                    bases = [template.quick] if word.startswith("?") else list(dict.fromkeys(["/", folder]))
                    urls.extend(f"http://{_host(platform)}{base}{word}" for base in bases)
        if not urls:
            del readings[word]
    return readings


def without_path(text: str, path: str, stand: str) -> str:
    """``text`` with ``path`` (found by :func:`written_paths`) replaced by ``stand`` wherever it stands as a word."""
    return re.sub(_BEGINS + re.escape(path) + _ENDS, lambda _: stand, text)


def off_platform(platforms: PlatformRegistry, url: str) -> bool:
    """Whether ``url``, written with a scheme the crawl does not fetch (``s3://bucket/a.png``, ``sqlite:////tmp/db``,
    ``ftp://ftp.example.org/``), is on no platform's host: it is no one's page (a fetch of it is denied as
    ``error.bad-url``, a mention of it names no one). Its host is read as the crawl reads an http URL's (after a
    special scheme's slashes, as browsers do); a URL whose host cannot be read, or http(s) itself, is not."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.strip().lower()
    if not sep or scheme in ("http", "https"):
        return False
    if scheme not in _SPECIAL_SCHEMES and rest.startswith(("/", "\\")):
        return True  # no host at all (``sqlite:////tmp/db``)
    try:
        host = canonicalize(f"http://{rest}").host
    except ValueError:
        return False
    return platforms.by_domain(registered_domain(host)) is None


#: the schemes whose URLs browsers read with a host however many slashes follow (``ftp:///host/``)
_SPECIAL_SCHEMES = frozenset({"ftp", "ws", "wss"})


def _on_platform_host(platforms: PlatformRegistry, path: str) -> bool:
    """Whether ``path`` is a URL written without its scheme (``people.example/u/108``, ``www.people.example:80/u/108``,
    an internationalized host as people write it): it begins with a host of a platform the crawl has terms for, so
    it is read as the URL with its scheme is. Other text with a slash (``docs.python.org/3/``, ``and/or``) is not."""
    if path.startswith(("/", ".")):
        return False
    try:
        host = canonicalize(f"http://{path}").host
        return platforms.by_domain(registered_domain(host)) is not None
    except ValueError:
        return False


def _host(platform: Platform) -> str:
    host = min(platform.domains)
    return f"[{host}]" if ":" in host else host


def _folders(platform: Platform) -> list[str]:
    """Where a path relative to the page's folder (``./108``) may be read from, the page not being known: the host's
    root, and the folder of each of the platform's profile pages (``./108`` on ``/u/101`` is ``/u/108``). Only a
    path written with ``./``: any other word with a slash read from ``/u/`` would name a person (``u/101``)."""
    return list(dict.fromkeys(["/", *("/" + "".join(part + "/" for part in template.path)
                                      for template in platform.profiles if template.param is None)]))
