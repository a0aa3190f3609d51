"""Matching paths against robots.txt rules: normalising both spellings of a path and rule, and compiling a
group's rules into bucketed regexes in priority order (see :mod:`consentcrawl.robots.rules`, which parses the
file and chooses the group)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_HEX_OR_HIGH = re.compile(r"%[0-9A-Fa-f]{2}|[\x80-\xff]")
_HEX_OR_UNSAFE = re.compile(r'%[0-9A-Fa-f]{2}|[\x00-\x20\x7f"<>\\^`{|}]')
_UNSAFE = re.compile(r'[\x00-\x20\x7f"<>\\^`{|}]')
_SURROGATE = re.compile("[\udc80-\udcff]")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class RobotsMatch:
    """Why a path is allowed or not: the deciding rule and group, with line numbers for the audit trail."""

    allowed: bool
    rule: str | None  #: the deciding rule as written, e.g. "Disallow: /private" (None when no rule matched)
    line: int | None  #: 1-based line number of that rule in the file
    group: str | None  #: the user-agent value of the group used, e.g. "consentcrawl" or "*" (None: no group)
    group_line: int | None  #: line of that group's first user-agent line


# -- normalising ---------------------------------------------------------------------------------------------


def _high_or_hex(m: re.Match[str]) -> str:
    text = m.group()
    return text.upper() if text[0] == "%" else f"%{ord(text):02X}"


def _unreserved_or_unsafe(m: re.Match[str]) -> str:
    text = m.group()
    if text[0] == "%":
        char = chr(int(text[1:], 16))
        return char if char in _UNRESERVED else text.upper()
    return f"%{ord(text):02X}"


def _literal_rule(raw: bytes) -> str:
    """The reference parser's spelling of a rule: bytes >= 0x80 percent-encoded, ``%xx`` upper-cased."""
    return _HEX_OR_HIGH.sub(_high_or_hex, raw.decode("latin-1"))


def _normal(literal: str) -> str:
    """RFC 3986 normal form of an ASCII spelling: unreserved ``%xx`` decoded, characters a URI cannot hold encoded."""
    return _HEX_OR_UNSAFE.sub(_unreserved_or_unsafe, literal)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=256)
def _path_spellings(path: str) -> tuple[str, str]:
    """(literal, normalised) spellings of a path+query as the caller gave it.

    Remembered for the last paths: a request's spelling that is not plain is read by the robots check, then by the
    site signals that match it again (ai.txt's rules, a signal's patterns) in the same decision, and again at send
    time."""
    if "#" in path:
        path = path.partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    if not path.isascii():
        return _escapes(path)[0], _normal(_HEX_OR_HIGH.sub(_high_or_hex, _utf8(path).decode("latin-1")))
    literal, normal = _escapes(path)
    if _UNSAFE.search(normal) is not None:
        normal = _UNSAFE.sub(_unreserved_or_unsafe, normal)
    return literal, normal


def _escapes(path: str) -> tuple[str, str]:
    """``%xx`` upper-cased (literal) and, in the second spelling, decoded when unreserved; a dict per escape."""
    if "%" not in path:
        return path, path
    parts = path.split("%")
    literal = [parts[0]]
    normal = [parts[0]]
    for part in parts[1:]:
        escape = _ESCAPES.get(part[:2])
        if escape is None:
            literal.append("%" + part)
            normal.append("%" + part)
        else:
            literal.append(escape[0] + part[2:])
            normal.append(escape[1] + part[2:])
    return "".join(literal), "".join(normal)


#: "7e" -> ("%7E", "~"), "c3" -> ("%C3", "%C3"): every two hex digits in any case
_ESCAPES = {
    f"{hi}{lo}": (f"%{hi}{lo}".upper(), chr(int(hi + lo, 16)) if chr(int(hi + lo, 16)) in _UNRESERVED
                  else f"%{hi}{lo}".upper())
    for hi in "0123456789abcdefABCDEF" for lo in "0123456789abcdefABCDEF"
}


def _text(raw: bytes) -> tuple[str, bool]:
    """Decode a value for display; bytes that are not UTF-8 become ``%XX``. Returns (text, had_bad_bytes)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        return _SURROGATE.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text), True


# -- compiling -----------------------------------------------------------------------------------------------


def _pattern_regex(pattern: str, names: list[int]) -> str:
    """Regex for one rule pattern, matched at the start of the path.

    Each ``*`` jumps to the *leftmost* occurrence of the next literal piece and never backtracks (a lookahead is
    atomic in ``re``), which is correct for this kind of pattern and keeps an adversarial one linear.
    """
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    pieces = pattern.split("*")
    out = [re.escape(pieces[0])]
    last = len(pieces) - 1
    for i in range(1, last + 1):
        piece = re.escape(pieces[i])
        if i == last and anchored:
            out.append(".*" + piece)
        elif piece:
            name = f"g{len(names)}"
            names.append(0)
            out.append(f"(?=(?P<{name}>.*?{piece}))(?P={name})")
    if anchored:
        out.append(r"\Z")
    return "".join(out)


@dataclass
class _Rule:
    allow: bool
    literal: str  #: the reference parser's spelling
    normal: str  #: the RFC 3986 normal form
    result: RobotsMatch


#: rules are bucketed by the first KEY_WIDTH characters of their literal prefix, so a path only meets the rules
#: that can match it (plus the few with a shorter prefix, like "/" or "/*.pdf$")
KEY_WIDTH = 3
#: alternatives per regex: ``re`` saves every group's state at each alternative, so a huge one is quadratic
CHUNK = 48
#: rules per chain that are compiled to regexes; the rest of a huge group is tried one by one
REGEX_RULES = 8 * CHUNK


class _Chain:
    """Rules in priority order; the first one that matches wins.

    The first :data:`REGEX_RULES` are compiled, lazily, into regexes of at most :data:`CHUNK` alternatives; any
    further ones (only a huge group has them) are tried one by one with ``str.find``, because compiling thousands of
    wildcard patterns costs seconds while trying them costs about a microsecond each.
    """

    __slots__ = ("chunks", "rest", "top")

    def __init__(self, rules: list[tuple[str, int, RobotsMatch]]) -> None:
        self.top = rules[0][1] if rules else -1  #: the highest priority in the chain
        compiled = rules[:REGEX_RULES]
        #: a chunk is compiled the first time a path reaches it
        self.chunks: list[_Chunk | list[tuple[str, int, RobotsMatch]]] = [
            compiled[i:i + CHUNK] for i in range(0, len(compiled), CHUNK)]
        self.rest = [(*_pieces(pattern), priority, result) for pattern, priority, result in rules[REGEX_RULES:]]

    def first(self, path: str) -> tuple[int, RobotsMatch] | None:
        chunks = self.chunks
        for i, chunk in enumerate(chunks):
            if isinstance(chunk, list):
                chunk = chunks[i] = _compile_chunk(chunk)
            regex, results = chunk
            m = regex.match(path)
            if m is not None:
                return results[m.lastindex]  # type: ignore[index]
        for pieces, anchored, priority, result in self.rest:
            if _glob_match(pieces, anchored, path):
                return priority, result
        return None


def _pieces(pattern: str) -> tuple[tuple[str, ...], bool]:
    """A pattern as its literal pieces between ``*`` and whether it ends with the ``$`` anchor."""
    anchored = pattern.endswith("$")
    return tuple((pattern[:-1] if anchored else pattern).split("*")), anchored


def _glob_match(pieces: tuple[str, ...], anchored: bool, path: str) -> bool:
    """The same test as :func:`_pattern_regex` without a regex: each piece at its leftmost place after the last."""
    if not path.startswith(pieces[0]):
        return False
    pos = len(pieces[0])
    last = len(pieces) - 1
    if last == 0:
        return not anchored or pos == len(path)
    for piece in pieces[1:last]:
        found = path.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    tail = pieces[last]
    if anchored:
        return len(path) - len(tail) >= pos and path.endswith(tail)
    return path.find(tail, pos) >= 0


_Chunk = tuple[re.Pattern[str], list[tuple[int, RobotsMatch] | None]]


def _compile_chunk(rules: list[tuple[str, int, RobotsMatch]]) -> _Chunk:
    """One regex for rules in priority order; ``lastindex`` of a match names the alternative that matched."""
    names: list[int] = []  # inner groups used by "*"
    alternatives: list[str] = []
    by_group: dict[int, tuple[int, RobotsMatch]] = {}
    for pattern, priority, result in rules:
        by_group[len(alternatives) + len(names) + 1] = (priority, result)  # this alternative's own group
        alternatives.append(f"({_pattern_regex(pattern, names)})")
    results = [by_group.get(n) for n in range(len(alternatives) + len(names) + 1)]
    return re.compile("(?s)(?:" + "|".join(alternatives) + ")"), results


class _Matcher:
    """One compiled reading (literal or normalised) of the rules that apply to a token.

    Priority is ``2 * len(pattern) + allow``: the longest pattern wins and, at equal length, Allow wins.
    """

    __slots__ = ("buckets", "short")

    def __init__(self, rules: list[tuple[str, bool, int, RobotsMatch]]) -> None:
        ranked = sorted(((p, 2 * len(p) + allow, line, result) for p, allow, line, result in rules if p),
                        key=lambda r: (-r[1], r[2]))  # an empty pattern matches nothing
        keyed: dict[str, list[tuple[str, int, RobotsMatch]]] = {}
        short: list[tuple[str, int, RobotsMatch]] = []
        seen: set[tuple[str, int]] = set()
        for pattern, priority, _line, result in ranked:
            if (pattern, priority) in seen:  # the same rule again (first line reported): no need to try it twice
                continue
            seen.add((pattern, priority))
            prefix = pattern.split("*", 1)[0] if "*" in pattern else pattern.removesuffix("$")
            if len(prefix) >= KEY_WIDTH:
                keyed.setdefault(prefix[:KEY_WIDTH], []).append((pattern, priority, result))
            else:
                short.append((pattern, priority, result))
        self.buckets = {key: _Chain(chain) for key, chain in keyed.items()}
        self.short = _Chain(short) if short else None

    def run(self, path: str, default: RobotsMatch) -> RobotsMatch:
        chain = self.buckets.get(path[:KEY_WIDTH])
        best = None if chain is None else chain.first(path)
        short = self.short
        if short is not None and (best is None or best[0] < short.top):
            other = short.first(path)
            if other is not None and (best is None or other[0] > best[0]):
                best = other
        return default if best is None else best[1]
