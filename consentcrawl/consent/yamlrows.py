"""The records of an ``authorizations:`` YAML file, one at a time, without building the whole document.

PyYAML's ``compose`` builds the node tree of the whole file before anything can be checked, and our
:class:`~consentcrawl.yamlsource.Node` tree doubles it: a file of 50,000 records took most of a minute and 600 MB.
Here the parser's events are read up to the ``authorizations`` list, and then each entry is composed, checked and
handed on before the next is read. libyaml's parser is used when PyYAML has it (the events are the same). Only
what YAML needs to keep (anchored nodes, for aliases) outlives its record.

The rules are those of :func:`consentcrawl.yamlsource.parse_yaml`: safe tags only, a line for every error,
duplicate keys refused, one document.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import (
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from ..errors import ConfigError
from ..yamlsource import (
    NESTED_TOO_DEEPLY,
    NestingLimit,
    Node,
    _Builder,
    _mark_line,
    _syntax_message,
    did_you_mean,
    not_utf8,
    type_name,
)

__all__ = ["yaml_rows"]

_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

if getattr(yaml, "__with_libyaml__", False):  # pragma: no branch - Debian's and PyPI's PyYAML have it
    from yaml._yaml import CParser as _Parser
else:  # pragma: no cover
    from yaml.parser import Parser as _Parser  # type: ignore[assignment]
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _Parser):  # type: ignore[no-redef]
        def __init__(self, stream: Any) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _Parser.__init__(self)  # type: ignore[misc,call-arg]


class _Loader(NestingLimit, _Parser, Composer, Resolver):  # type: ignore[misc,valid-type]
    """Events from the parser, nodes composed one at a time by PyYAML's own composer (its nesting limited), safe
    tags resolved."""

    def __init__(self, stream: Any) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        Resolver.__init__(self)


_Row = tuple[int, dict[Any, Node], dict[Any, int]]


def yaml_rows(stream: Any, source: str, errors: Any = None) -> Iterator[_Row]:
    """Rows of (line, {field: Node}, {field: line of its key}) from a binary stream of an authorizations file.
    (``errors`` is for the readers whose rows can be read past an error; a YAML error ends the reading.)"""
    loader: Any = _Loader(stream)
    try:
        yield from _rows(loader, source)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_message(exc), source, _mark_line(exc.problem_mark or exc.context_mark)) from None
    except yaml.reader.ReaderError as exc:
        raise _not_utf8(source) or ConfigError(f"YAML syntax error: {exc.reason}", source) from None
    except yaml.YAMLError as exc:  # libyaml's errors without a mark (bytes that are not UTF-8, among others)
        raise _not_utf8(source) or ConfigError(f"YAML syntax error: {exc}", source) from None
    except RecursionError:  # PyYAML's composer recurses: lists or mappings nested thousands deep
        raise ConfigError(NESTED_TOO_DEEPLY, source) from None
    finally:
        loader.dispose()


def _not_utf8(source: str) -> ConfigError | None:
    """The line and byte of the first bytes of the file that are not UTF-8, as the platforms file's error names
    them (libyaml says only "invalid trailing UTF-8 octet"); None when it is UTF-8 or cannot be read again (the
    stream read is not seekable: it hashes what it reads)."""
    decoder, line, offset = codecs.getincrementaldecoder("utf-8")(), 1, 0
    try:
        with open(source, "rb") as f:
            while chunk := f.read(1 << 16):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return not_utf8(source, chunk, exc, offset, line)
                line, offset = line + chunk.count(b"\n"), offset + len(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return ConfigError("file is not valid UTF-8 (it ends inside a character)", source, line)
    except (OSError, ValueError):
        return None
    return None


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


def _rows(loader: Any, source: str) -> Iterator[_Row]:
    builder = _Builder(source)
    loader.get_event()  # StreamStart
    if loader.check_event(StreamEndEvent):
        raise ConfigError("file is empty: expected a mapping with the top key 'authorizations:'", source, 1)
    loader.get_event()  # DocumentStart
    if not loader.check_event(MappingStartEvent):
        root = builder.build(loader.compose_node(None, None))
        if root.value is None and root.raw == "":
            raise ConfigError("file is empty: expected a mapping with the top key 'authorizations:'", source, 1)
        raise ConfigError(f"the file must be a mapping, got {type_name(root.value)}", source, root.line)
    start = loader.get_event()
    loader.opened()
    if start.tag not in (None, "!", _MAP_TAG):
        raise ConfigError(f"unsupported YAML tag {start.tag!r} (only plain mappings are allowed here)", source,
                          _line(start))
    seen: dict[Any, int] = {}
    while not loader.check_event(MappingEndEvent):
        key_node = loader.compose_node(None, None)
        if not isinstance(key_node, ScalarNode):
            raise ConfigError("a mapping key must be a plain value, not a list or mapping", source,
                              key_node.start_mark.line + 1)
        key = builder.scalar(key_node).value
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (first given on line {seen[key]})", source, line)
        if key != "authorizations":
            raise ConfigError(f"unknown key {key!r} in the file{did_you_mean(key, ['authorizations'])} "
                              f"(allowed keys: authorizations)", source, line)
        seen[key] = line
        yield from _entries(loader, builder, source)
    if "authorizations" not in seen:
        raise ConfigError("the file is missing the required key 'authorizations'", source, _line(start))
    loader.get_event()  # MappingEnd
    loader.closed()
    loader.get_event()  # DocumentEnd
    if not loader.check_event(StreamEndEvent):
        extra = loader.peek_event()
        raise ConfigError("YAML syntax error: expected a single document in the stream, but found another",
                          source, _line(extra))


def _entries(loader: Any, builder: _Builder, source: str) -> Iterator[_Row]:
    """The entries of the ``authorizations`` list, each built and handed on before the next is read."""
    if not loader.check_event(SequenceStartEvent) or loader.peek_event().anchor is not None:
        value = builder.build(loader.compose_node(None, None))
        if not value.is_sequence:
            raise ConfigError(f"'authorizations' must be a list of records (each starting with '- '), got "
                              f"{type_name(value.value)}", source, value.line)
        for entry in value.value:
            yield _row(entry, source)
        return
    start = loader.get_event()
    loader.opened()
    if start.tag not in (None, "!", _SEQ_TAG):
        raise ConfigError(f"unsupported YAML tag {start.tag!r} (only plain lists are allowed here)", source,
                          _line(start))
    while not loader.check_event(SequenceEndEvent):
        node = loader.compose_node(None, None)
        entry = builder.build(node)
        builder.done.clear()  # nothing of this record is kept (a YAML anchor keeps its node in the loader)
        builder.constructor.constructed_objects.clear()  # PyYAML's constructor remembers every node it built
        loader.peek_event()  # a syntax error where the entry ends (a bad indent) is reported before the entry is
        yield _row(entry, source)
    loader.get_event()
    loader.closed()
    if loader.check_event(DocumentEndEvent):  # pragma: no cover - the mapping always ends first
        return


def _row(entry: Node, source: str) -> _Row:
    if not entry.is_mapping:
        raise ConfigError(f"each authorization record must be a mapping, got {type_name(entry.value)}", source,
                          entry.line)
    return entry.line, entry.value, entry.key_lines
