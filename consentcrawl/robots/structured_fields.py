"""RFC 9651 structured-field Lists, parsed strictly (any deviation is None): the syntax of the ``Robots-Tag``
header draft (:mod:`consentcrawl.robots.tags`)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["sf_list"]


# RFC 9651 (structured fields) List parsing, strict: any deviation -> None.
_SF_OWS = " \t"
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_NUMBER = re.compile(r"-?(?:[0-9]{1,12}\.[0-9]{1,3}|[0-9]{1,15})")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_DISPLAY = re.compile(r'%"((?:[\x20\x21\x23\x24\x26-\x5b\x5d-\x7e]|%[0-9a-f]{2})*)"')
_SF_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
_SF_BOOL = re.compile(r"\?[01]")
_SF_DATE = re.compile(r"@-?[0-9]{1,15}")
_SF_UNESCAPE = re.compile(r"\\([\"\\])")
_SF_PERCENT = re.compile(r"%([0-9a-f]{2})")
_FAIL = object()


def sf_list(s: str) -> list[tuple[str, dict[str, Any]]] | None:
    """RFC 9651 List -> (agent, parameters) per token or string member (others are skipped); None if malformed."""
    if not s.isascii():
        return None
    s = s.strip(_SF_OWS)
    n, i = len(s), 0
    members: list[tuple[str, dict[str, Any]]] = []
    while i < n:
        if s[i] == "(":
            agents: list[tuple[object, dict[str, Any]]] = []
            i += 1
            while True:
                while i < n and s[i] == " ":
                    i += 1
                if i >= n:
                    return None
                if s[i] == ")":
                    i += 1
                    break
                item, i = _sf_bare(s, i)
                if item is _FAIL:
                    return None
                params, i = _sf_params(s, i)
                if params is None:
                    return None
                agents.append((item, params))
                if i < n and s[i] not in " )":
                    return None
            shared, i = _sf_params(s, i)
            if shared is None:
                return None
            members += [(a, {**shared, **p}) for a, p in agents if isinstance(a, str)]
        else:
            item, i = _sf_bare(s, i)
            if item is _FAIL:
                return None
            params, i = _sf_params(s, i)
            if params is None:
                return None
            if isinstance(item, str):
                members.append((item, params))
        while i < n and s[i] in _SF_OWS:
            i += 1
        if i >= n:
            break
        if s[i] != ",":
            return None
        i += 1
        while i < n and s[i] in _SF_OWS:
            i += 1
        if i >= n:  # trailing comma
            return None
    return members


class _Other:
    """A bare item that is neither a token nor a string (number, bytes, date...): valid, but not a user agent."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _sf_bare(s: str, i: int) -> tuple[object, int]:
    """One bare item at ``i``: str for a token or string, True/False, or :class:`_Other`."""
    c = s[i]
    if c == '"':
        m = _SF_STRING.match(s, i)
        return (_SF_UNESCAPE.sub(r"\1", m.group(1)), m.end()) if m else (_FAIL, i)
    if c.isalpha() or c == "*":
        m = _SF_TOKEN.match(s, i)
        return (m.group(), m.end()) if m else (_FAIL, i)
    if c == "?":
        m = _SF_BOOL.match(s, i)
        return (m.group() == "?1", m.end()) if m else (_FAIL, i)
    if c == "%":
        m = _SF_DISPLAY.match(s, i)
        if not m:
            return _FAIL, i
        try:
            text = _SF_PERCENT.sub(lambda p: chr(int(p.group(1), 16)), m.group(1)).encode("latin-1").decode("utf-8")
        except UnicodeError:
            return _FAIL, i
        return _Other(text), m.end()
    for pattern in (_SF_NUMBER, _SF_BYTES, _SF_DATE):
        m = pattern.match(s, i)
        if m:
            return _Other(m.group()), m.end()
    return _FAIL, i


def _sf_params(s: str, i: int) -> tuple[dict[str, Any] | None, int]:
    params: dict[str, Any] = {}
    n = len(s)
    while i < n and s[i] == ";":
        i += 1
        while i < n and s[i] == " ":
            i += 1
        if i >= n or s[i] == ",":  # `ExampleBot;`, the draft's own example: invalid in RFC 9651, tolerated
            break
        m = _SF_KEY.match(s, i)
        if not m:
            return None, i
        key, i = m.group(), m.end()
        value: object = True
        if i < n and s[i] == "=":
            if i + 1 >= n:
                return None, i
            value, i = _sf_bare(s, i + 1)
            if value is _FAIL:
                return None, i
        params[key] = value
    return params, i
