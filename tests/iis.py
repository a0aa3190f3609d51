"""The lenient ``people`` site served the way IIS on Windows (with ASP.NET or PHP behind it) reads a URL.

:class:`IISPeople` is :class:`tests.lenient.LenientPeople` with IIS's reading of the request path in front of its
routes. Each step is what Microsoft documents (cited where it is done, in :func:`iis_path`):

- ``%uXXXX`` escapes are decoded (Http.sys ``PercentUAllowed``, on by default: "Http.sys registry settings for
  Windows", KB 820129, learn.microsoft.com/troubleshoot/developer/webapps/iis/iisadmin-service-inetinfo/
  httpsys-registry-windows), in the path and in the query (ASP.NET's ``HttpUtility.UrlDecode`` reads them too);
- ``\\`` is ``/`` and escapes are decoded once, ``%5C`` included (Http.sys canonicalises the path before IIS maps
  it to a file; blogs.iis.net/nazim/use-of-special-characters-like-in-an-iis-url);
- fullwidth forms read as ASCII (Windows' "best fit" conversion to the ANSI code page an ISAPI, CGI or FastCGI
  application such as PHP reads its path and query in; Microsoft's warning in the ``WideCharToMultiByte``
  documentation, WC_NO_BEST_FIT_CHARS), approximated by NFKC; the yen and won signs are ``\\`` (code pages 932
  and 949);
- each segment is opened as Windows opens a file name: an NTFS stream suffix cut off (``file.asp::$DATA`` is the
  file itself: KB 188806, "::$DATA Data Stream Name of a File May Return Source"), trailing dots and spaces
  trimmed ("Do not end a file or directory name with a space or a period": "Naming Files, Paths, and Namespaces",
  learn.microsoft.com/windows/win32/fileio/naming-a-file), and compared case-insensitively (same page: "Do not
  assume case sensitivity");
- a segment may be the 8.3 short name of a long one (``PROFIL~1.ASP`` is ``profile.aspx``: same page, "8.3
  file names"; KB 179148, "Settings May Not Be Applied with URL with Short Filename");
- an ASP.NET cookieless session segment (``/(S(lit3py55t21z5v55vlm25s55))/``) is dropped before routing
  ("HttpSessionState.IsCookieless", learn.microsoft.com/dotnet/api/system.web.sessionstate.httpsessionstate.
  iscookieless: the session id is embedded in the URL after the application name);
- dot-segments are resolved after all that.

The site's long names (:data:`LONG_NAMES`) are ``profile.aspx`` (read like ``profile.php``, ``?id=``) and the
directory ``people-profiles`` (like ``/u``); the platform's templates for them are in :data:`IIS_PROFILES`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote

from tests.lenient import LenientPeople

__all__ = ["IIS_PROFILES", "IISPeople", "iis_path", "iis_query"]

#: the site's long file and directory names, and the route each is served as
LONG_NAMES = {"profile.aspx": "profile.php", "people-profiles": "u", "profile.php": "profile.php", "u": "u"}
#: the profile templates of the IIS site, as ``platforms.yaml`` writes them
IIS_PROFILES = ('["/u/{subject}", "/@{subject}", "/profile.php?id={subject}", "/profile.aspx?id={subject}", '
                '"/people-profiles/{subject}"]')

_PERCENT_U = re.compile(r"%[uU]([0-9A-Fa-f]{4})")


def _percent_u(text: str) -> str:
    """``%uXXXX`` as the UTF-8 escapes of that character (so that one UTF-8 decoding reads it)."""
    return _PERCENT_U.sub(lambda m: quote(chr(int(m.group(1), 16)), safe=""), text)


def _short_names() -> dict[str, str]:
    """The 8.3 short name Windows gives each long name that is not a valid 8.3 name itself (the first of its
    kind: ``~1``; the first six characters of the name, the first three of its extension), upper-cased."""
    names = {}
    for name in LONG_NAMES:
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = extension, ""
        if len(stem) <= 8 and len(extension) <= 3:
            continue  # already a valid 8.3 name: no short one
        names[(stem.replace(" ", "")[:6] + "~1" + ("." + extension[:3] if extension else "")).upper()] = name
    return names


SHORT_NAMES = _short_names()


_NTFS_STREAM = re.compile(r"(?::[^:]*)?:\$[A-Za-z0-9_]+$")
_COOKIELESS = re.compile(r"\((?:[A-Za-z]\([^()/]*\))+\)")


def _windows_segment(segment: str) -> str:
    if _COOKIELESS.fullmatch(segment):
        return ""  # ASP.NET's cookieless session (or anonymous id, forms ticket): not part of the path
    # Win32 path normalisation trims trailing dots and spaces of the whole path before NTFS reads a stream name
    # ("File path formats on Windows systems", learn.microsoft.com/dotnet/standard/io/file-path-formats:
    # "all trailing periods and spaces (U+0020) are removed"), so ``file.aspx::$DATA.`` is ``file.aspx::$DATA``
    name = _NTFS_STREAM.sub("", segment.rstrip(". ")) if ":" in segment else segment  # a stream with its type
    trimmed = name.rstrip(". ")  # Windows trims trailing dots and spaces
    if not trimmed and name:
        return ".." if ".." in name else "."
    return SHORT_NAMES.get(trimmed.upper(), trimmed)


def iis_path(raw_path: str) -> str:
    """How the IIS site reads a raw request path (see the module docstring): the route it serves."""
    text = unquote(_percent_u(raw_path.replace("\\", "/"))).replace("\\", "/")
    text = unicodedata.normalize("NFKC", text).translate({0xA5: "/", 0x20A9: "/"}).replace("\\", "/")
    out: list[str] = []
    for segment in (_windows_segment(s) for s in text.split("/")):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(LONG_NAMES.get(segment.casefold(), segment.casefold()))  # NTFS names are case-insensitive
    return "/" + "/".join(out)


def iis_query(raw_query: str) -> str:
    """The query as ASP.NET reads it: ``%uXXXX`` escapes decoded too, parameter names case-insensitive
    (``Request.QueryString`` is a case-insensitive collection: ``?ID=107`` is its ``id``)."""
    pairs = (item.partition("=") for item in _percent_u(raw_query).split("&"))
    return "&".join(f"{unquote(name).lower()}{eq}{value}" for name, eq, value in pairs)


@dataclass
class IISPeople(LenientPeople):
    """The lenient people site behind IIS's reading of paths (see the module docstring)."""

    def read_path(self, raw_path: str, query: str) -> tuple[str, str]:
        return iis_path(raw_path), iis_query(query)
