"""A platform's subject regex: compiled, and checked that it can name someone and stays within one path segment.

The checks read the regex's parse tree (``re._parser``) to find a ``/`` it could match and an example id it accepts.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["compile_subject_regex"]


def compile_subject_regex(regex: str) -> re.Pattern[str]:
    """Compile a platform's subject regex (case-insensitive, matched against a whole id) and check it can name
    someone: ValueError if it matches the empty id, can match a ``/`` (an id must stay within one path segment,
    or ``/u/1/../2`` could be read as one id) or matches no non-empty id; ``re.error`` if it does not compile."""
    compiled = re.compile(regex, re.IGNORECASE)
    if compiled.fullmatch(""):
        raise ValueError(f"subject regex {regex!r} must not match an empty subject id (use '+' rather than '*')")
    tree = _sre_parser.parse(regex, re.IGNORECASE)
    if _can_consume(tree, "/"):
        raise ValueError(
            f"subject regex {regex!r} can match '/', so an id could span path segments; "
            "exclude it (e.g. '[^/]+' rather than '.+', '[0-9]+' rather than '\\S+')"
        )
    for preferred in _PREFERRED:
        example = _example(tree, preferred, {})
        if example and compiled.fullmatch(example):
            return compiled
    raise ValueError(f"subject regex {regex!r} matches no non-empty id (consentcrawl found no example it accepts)")


try:  # the regular expression parser behind ``re`` (``sre_parse`` before 3.11, deprecated since)
    _sre_parser: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python 3.10
    _sre_parser = importlib.import_module("sre_parse")

_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W", "CATEGORY_LINEBREAK": "\n", "CATEGORY_NOT_LINEBREAK": "[^\n]",
}
#: characters tried, in turn, for a class in an example id: digits first, then letters, then the rest
_PREFERRED = ("0a", "a0", "A0", "_-", ".~", "z9", "é١")
_POOL = "0aA_-.~z9Z!$'()*+,=:@é١ "


def _category(name: str, char: str) -> bool:
    pattern = _CATEGORIES.get(name)
    return pattern is None or re.fullmatch(pattern, char) is not None  # unknown: assume it admits


def _in_set(items: Sequence[tuple[Any, Any]], char: str) -> bool:
    """Whether a character class admits ``char`` (an unknown item admits everything: the safe answer here)."""
    code, negate, hit = ord(char), False, False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit = hit or av == code
        elif name == "NOT_LITERAL":
            hit = hit or av != code
        elif name == "RANGE":
            hit = hit or av[0] <= code <= av[1]
        elif name == "CATEGORY":
            hit = hit or _category(str(av), char)
        else:
            return True
    return hit != negate


def _can_consume(items: Any, char: str) -> bool:
    """Whether a parsed pattern may consume ``char`` anywhere (lookarounds and back-references consume nothing
    new; anything unknown is assumed to)."""
    code = ord(char)
    for op, av in items:
        name = str(op)
        if name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            continue
        if name == "LITERAL":
            found = av == code
        elif name == "NOT_LITERAL":
            found = av != code
        elif name == "ANY":
            found = True  # '.' admits everything (but a newline without DOTALL): the safe answer
        elif name == "IN":
            found = _in_set(av, char)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            found = av[1] != 0 and _can_consume(av[2], char)
        elif name == "SUBPATTERN":
            found = _can_consume(av[-1], char)
        elif name == "ATOMIC_GROUP":
            found = _can_consume(av, char)
        elif name == "BRANCH":
            found = any(_can_consume(alt, char) for alt in av[1])
        elif name == "GROUPREF_EXISTS":
            found = _can_consume(av[1], char) or (av[2] is not None and _can_consume(av[2], char))
        else:
            found = True
        if found:
            return True
    return False


def _example(items: Any, preferred: str, groups: dict[int, str]) -> str | None:
    """One string the parsed pattern may match, preferring ``preferred`` characters for classes; verified by the
    caller (lookarounds and anchors are ignored here). None if no candidate character fits a class."""
    out: list[str] = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(av))
        elif name in ("NOT_LITERAL", "ANY", "IN"):
            candidates = preferred + _POOL
            if name == "IN":
                candidates += "".join(chr(v[0]) if str(o) == "RANGE" else chr(v) for o, v in av
                                      if str(o) in ("RANGE", "LITERAL"))
            char = next((c for c in candidates
                         if (name == "ANY" and c != "\n") or (name == "NOT_LITERAL" and ord(c) != av)
                         or (name == "IN" and _in_set(av, c))), None)
            if char is None:
                return None
            out.append(char)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            piece = _example(sub, preferred, groups) if high != 0 else ""
            if piece is None:
                if low:
                    return None
                piece = ""
            out.append(piece * (low or (1 if high != 0 else 0)))
        elif name == "SUBPATTERN":
            piece = _example(av[-1], preferred, groups)
            if piece is None:
                return None
            if av[0] is not None:
                groups[av[0]] = piece
            out.append(piece)
        elif name == "ATOMIC_GROUP":
            piece = _example(av, preferred, groups)
            if piece is None:
                return None
            out.append(piece)
        elif name == "BRANCH":
            pieces = [p for p in (_example(alt, preferred, groups) for alt in av[1]) if p is not None]
            if not pieces:
                return None
            out.append(max(pieces, key=bool))  # the first non-empty alternative, if any
        elif name == "GROUPREF":
            out.append(groups.get(av, ""))
        elif name == "GROUPREF_EXISTS":
            branch = av[1] if av[0] in groups else av[2]
            piece = _example(branch, preferred, groups) if branch is not None else ""
            if piece is None:
                return None
            out.append(piece)
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        else:
            return None
    return "".join(out)
