"""Whose page a request with a body is: a body that names a person makes the request about that person.

Pure: no Scrapy, no I/O, no clock. A server reads its request's body as much as its URL: ``POST /people`` with
``id=104`` (a search, a "load more", a follow button) or ``{"user": 104}`` answers with 104's data, whatever the
path says, and a crawl resumed from its ``JOBDIR`` sends such a request again long after it was made. So every
value of a request body on a platform's host is read as an id would be:

- a form's values (urlencoded or multipart; the names are the form's own words; raw non-ASCII bytes also as UTF-8,
  as most frameworks decode a form), and a JSON document's strings and numbers at any depth (its keys are the
  document's own words; a number with a zero fraction also as the integer JavaScript reads; a string that is JSON
  also as that document, as GraphQL's ``variables`` are sent; a GraphQL ``query``'s argument values; each value of
  a key written twice, which a parser may read first or last), whatever the declared type;
- a value names a person when the platform's subject regex accepts all of it, also as a server that reads ids
  leniently reads it (NFKC, spaces trimmed, a number as ``int()`` reads it: ``0104`` is ``104``), and as the
  number it starts with, whatever follows, as PHP's ``intval``, MySQL's comparison of a string with a number
  and JavaScript's ``parseInt`` read it (``107abc``, ``107.0``, ``1.07e2`` are 107; ``1.07e2`` is 1 to
  ``parseInt``, so it names two people).

A body whose values name one person makes the request that person's (``subject_source`` ``"body"``), where the URL
names no one or the same person; values naming several people, or another person than the URL, make it ambiguous;
a body that is neither a form nor JSON (whose person cannot be read) is ambiguous too. Ambiguous denies
(``subject.ambiguous-url``). A platform without profile templates has no people, and its bodies are not read.

A precise ``subject:`` regex keeps ordinary form values (``page=2``, a CSRF token) from reading as people: on a
platform whose ids are digits, ``page=2`` still names person 2, and the request is decided as theirs; so does a
token that starts with ``2`` (``2f9c...``), which such a server reads as 2 where it reads the value as an id.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from .terms.platforms import Platform, SubjectReading

__all__ = ["body_values", "with_body_values"]

#: how deep a JSON body is walked (deeper values: the body cannot be read for sure)
_MAX_DEPTH = 32
#: the literal values of a GraphQL document: each string (a block string too) and number, wherever it stands (an
#: argument, ``user(id: 104)``; an input object's or a list's, ``user(where: {id: 104})``, ``ids: [104]``; a
#: variable's default, ``($u: Int = 104)``), and an argument's bare enum value (a ``$variable`` is read in the
#: variables); strings and numbers are only ever values in a query
_GRAPHQL_LITERAL = re.compile(r'"""(.*?)"""|"((?:[^"\\]|\\.)*)"|(?<![\w$.])(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])'
                              r'|[(,]\s*\w+\s*:\s*([A-Za-z_]\w*)', re.DOTALL)


#: what lenient number parsers read at the start of a value (after white space: JavaScript's is Unicode's and the
#: byte order mark too): digits (``parseInt``, ``intval``), a decimal number with its fraction and exponent (PHP's
#: ``(int)``, MySQL), a ``0x`` number's hex digits (``parseInt``)
_LEADING_INTEGER = re.compile(r"[\s\ufeff]*([+-]?[0-9]+)")
_LEADING_DECIMAL = re.compile(r"[\s\ufeff]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_LEADING_HEX = re.compile(r"[\s\ufeff]*([+-]?)0[xX]([0-9a-fA-F]+)")


def body_values(body: bytes, form: str, is_form: bool) -> tuple[str, ...] | None:
    """The values a request body hands its server (``body`` decompressed; ``form``, ``is_form`` as
    :func:`~consentcrawl.resolve.form_text` read it): a form's values, and a JSON document's strings and numbers.
    None for a body that is neither (or JSON deeper than a server would be expected to read)."""
    values: dict[str, None] = {}
    if is_form:
        values.update(dict.fromkeys(v for _, v in parse_qsl(form, keep_blank_values=True)))
        if not form.isascii():  # raw UTF-8 bytes (not escaped): a server decoding its forms as UTF-8 reads them
            utf8 = form.encode("latin-1", "replace").decode("utf-8", "replace")
            values.update(dict.fromkeys(v for _, v in parse_qsl(utf8, keep_blank_values=True)))
    try:
        document = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return tuple(values) if is_form else None
    try:
        values.update(dict.fromkeys(_scalars(document, 0)))
    except RecursionError:
        return None
    return tuple(values)


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs, a key written twice with each of its values: a server's parser
    may take the first (Go's ``gjson``, ``jsonparser``), where ``json.loads`` keeps the last."""


def _scalars(value: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        raise RecursionError("a JSON body nested too deep")
    if isinstance(value, _Pairs):
        for key, item in value:
            yield from _scalars(item, depth + 1)
            if key == "query" and isinstance(item, str):  # a GraphQL document: its arguments' literal values
                yield from _graphql_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item, depth + 1)
    elif isinstance(value, str):
        yield value
        if value.lstrip()[:1] in ("{", "["):  # JSON sent as a string (GraphQL's variables): a server parses it
            try:
                inner = json.loads(value, object_pairs_hook=_Pairs)
            except ValueError:
                return
            yield from _scalars(inner, depth + 1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)
        if isinstance(value, float) and value.is_integer():  # JavaScript's 107.0 and 1.07e2 are 107
            yield str(int(value))


def _graphql_values(query: str) -> Iterator[str]:
    """A GraphQL query's literal values (:data:`_GRAPHQL_LITERAL`), a quoted one also with its escapes read."""
    for found in _GRAPHQL_LITERAL.finditer(query):
        block, quoted, number, bare = found.groups()
        yield next(value for value in (block, quoted, number, bare) if value is not None)
        if quoted and "\\" in quoted:  # GraphQL's escapes are JSON's: "\u0031\u0030\u0037" is 107
            try:
                yield json.loads(f'"{quoted}"')
            except ValueError:
                pass


def with_body_values(platform: Platform, values: tuple[str, ...] | None,
                     reading: SubjectReading | None) -> tuple[SubjectReading | None, bool]:
    """``reading`` (the URL's) with the people the body's ``values`` name, and whether the body named the person
    (see the module doc)."""
    if not platform.profiles:
        return reading, False
    if values is None:
        return _ambiguous(reading, ("a body that is neither a form nor JSON", None)), False
    named: dict[str, None] = {}
    for value in values:
        for candidate in _as_read(value):
            if platform.names_someone(candidate):
                if platform.subject_conflict(candidate):
                    return _ambiguous(reading, (f"body value: {platform.subject_conflict(candidate)}", None)), False
                named[platform.subject_key(candidate)] = None
    if not named:
        return reading, False
    if reading is not None and reading.ambiguous:
        return reading, False
    url_person = reading.subject if reading is not None else None
    if len(named) == 1 and url_person in (None, *named):
        return SubjectReading(next(iter(named))), url_person is None
    return _ambiguous(reading, *((f"body value naming {key}", key) for key in named)), False


def _as_read(value: str) -> dict[str, None]:
    """``value`` as servers that read ids leniently read it: as written, NFKC, trimmed, as a number, and as the
    number it starts with (:func:`_leading_numbers`)."""
    normal = value if value.isascii() else unicodedata.normalize("NFKC", value)
    found = dict.fromkeys((value, normal, normal.strip()))
    try:
        found[str(int(normal))] = None
    except ValueError:
        pass
    found.update(dict.fromkeys(_leading_numbers(normal)))
    found.pop("", None)
    return found


def _leading_numbers(text: str) -> Iterator[str]:
    """The ids a server that reads a value as a number reads in ``text`` when it starts with one, whatever follows:
    PHP's ``intval``/``(int)`` and MySQL's comparison of a string with a number (``107abc``, `` 107``, ``+107``,
    ``107.0``, ``1.07e2`` are 107, a fraction cut off), JavaScript's ``parseInt`` (the digits only: ``1.07e2`` is
    1; ``0x6b`` is 107). The URL's path denies such an id under a profile prefix (the subject regex does not accept
    it all); in a body the value is read as each of these ids (several people: ambiguous)."""
    spellings = []  # what int() reads, in its base
    if (integer := _LEADING_INTEGER.match(text)) is not None:
        spellings.append((integer.group(1), 10))
    if (hexadecimal := _LEADING_HEX.match(text)) is not None:
        spellings.append((hexadecimal.group(1) + hexadecimal.group(2), 16))
    for digits, base in spellings:
        try:
            yield str(int(digits, base))
        except ValueError:  # more digits than Python reads or writes: no id of anyone's
            pass
    if (decimal := _LEADING_DECIMAL.match(text)) is not None:
        value = float(decimal.group(1))
        if math.isfinite(value):
            yield str(int(value))


def _ambiguous(reading: SubjectReading | None, *why: tuple[str, str | None]) -> SubjectReading:
    return SubjectReading(None, True, (*(reading.readings if reading is not None else ()), *why))
