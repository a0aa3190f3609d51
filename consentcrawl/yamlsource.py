"""Safe YAML loading that remembers where every value came from.

``yaml.safe_load`` forgets line numbers and silently keeps the last of two equal keys; a configuration error
that cannot say "platforms.yaml, line 7" sends users hunting. So we compose the node tree with ``SafeLoader``
(never a loader that can build arbitrary objects), construct scalars with ``SafeConstructor``, and wrap every
value in a :class:`Node` that carries its 1-based line. Duplicate keys and recursive aliases are errors.

The small value helpers at the end (:func:`to_utc`, :func:`did_you_mean`, :func:`type_name`) are shared by the
YAML, CSV and JSONL configuration loaders so that all formats read dates and report mistakes the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import CollectionStartEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import ConfigError, cannot_read
from .purposes import KNOWN_PURPOSES

__all__ = ["Node", "NodeReader", "decode_text", "did_you_mean", "load_yaml", "not_utf8", "parse_yaml", "read_text",
           "to_utc", "type_name"]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, eq=False)
class Node:
    """A configuration value and the line it starts on.

    ``value`` is a ``dict`` of key -> :class:`Node` for a mapping, a ``list`` of :class:`Node` for a sequence,
    otherwise a plain scalar (``str``, ``int``, ``float``, ``bool``, ``None``, ``date``, ``datetime``...).
    ``raw`` is the scalar exactly as written (YAML reads ``007`` as the integer 7; the raw text keeps ``007``).
    ``key_lines`` gives, for a mapping, the line of each key.
    """

    value: Any
    line: int
    raw: str | None = None
    key_lines: dict[Any, int] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)


def read_text(path: str | Path) -> str:
    """Read a configuration file as UTF-8 (a leading BOM is dropped); any failure is a ConfigError naming it."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(cannot_read(exc, source), source) from exc
    return decode_text(data, source)


def decode_text(data: bytes, source: str) -> str:
    """Decode a configuration file's bytes as UTF-8 (a leading BOM is dropped), as :func:`read_text` does."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(source, data, exc) from exc


def not_utf8(source: str, data: bytes, exc: UnicodeDecodeError, offset: int = 0, line: int = 1) -> ConfigError:
    """The error for bytes that are not UTF-8: ``exc`` from decoding ``data``, a part of the file that starts at
    byte ``offset`` on line ``line`` (a reader that decodes the file in chunks)."""
    line += data[: exc.start].count(b"\n")
    return ConfigError(f"file is not valid UTF-8 (byte {offset + exc.start})", source, line)


#: the deepest lists and mappings may nest in a configuration file: none needs more than a few levels, and PyYAML's
#: composer (and our builder) recurse, so a file nested thousands deep would run out of stack before naming a line
MAX_NESTING = 100
#: the error of a document nested deeper than the composer can recurse at all (called with little stack left)
NESTED_TOO_DEEPLY = "YAML syntax error: lists or mappings nested too deeply"


class NestingLimit:
    """A composer mixin (put before PyYAML's ``Composer``) that refuses a list or mapping nested deeper than
    :data:`MAX_NESTING` where it opens: a syntax error marked with its line, as the parser's own errors are."""

    _nesting = 0

    def opened(self) -> None:
        """A list or mapping its reader walks event by event, not through :meth:`compose_node`, opened."""
        self._nesting += 1

    def closed(self) -> None:
        self._nesting -= 1

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING:
                event = self.peek_event()  # type: ignore[attr-defined]
                if isinstance(event, CollectionStartEvent):  # not check_event: libyaml's compares exact classes
                    raise yaml.composer.ComposerError(None, None, f"lists or mappings nested too deeply (more "
                                                      f"than {MAX_NESTING} levels)",
                                                      event.start_mark)  # type: ignore[arg-type] # libyaml's Mark
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._nesting -= 1


class _SafeLoader(NestingLimit, yaml.SafeLoader):
    """PyYAML's ``SafeLoader``, its nesting limited (:class:`NestingLimit`)."""


def load_yaml(path: str | Path) -> Node | None:
    """Load one YAML file into a :class:`Node` tree; None for an empty document."""
    return parse_yaml(read_text(path), str(path))


def parse_yaml(text: str, source: str) -> Node | None:
    """Parse YAML text (``source`` names it in errors) into a :class:`Node` tree; None for an empty document."""
    try:
        root = yaml.compose(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_message(exc), source, _mark_line(exc.problem_mark or exc.context_mark)) from exc
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"YAML syntax error: {exc.reason}", source, line) from exc
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is one of the above
        raise ConfigError(f"YAML syntax error: {exc}", source) from exc
    except RecursionError:  # PyYAML's parser and composer recurse: lists or mappings nested thousands deep
        raise ConfigError(NESTED_TOO_DEEPLY, source) from None
    if root is None:
        return None
    try:
        return _Builder(source).build(root)
    except RecursionError:
        raise ConfigError(NESTED_TOO_DEEPLY, source) from None


def _mark_line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "YAML syntax error: " + (", ".join(parts) if parts else "invalid document")
    if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
        message += f" (started on line {exc.context_mark.line + 1})"
    return message


class _Builder:
    """Turns composed PyYAML nodes into :class:`Node` values, once per node (aliases share the result)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.done: dict[int, Node] = {}
        self.active: set[int] = set()

    def error(self, message: str, node: yaml.Node) -> ConfigError:
        return ConfigError(message, self.source, node.start_mark.line + 1)

    def build(self, node: yaml.Node) -> Node:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise self.error("recursive YAML alias (an anchor that contains itself)", node)
        self.active.add(key)
        try:
            if isinstance(node, MappingNode):
                result = self.mapping(node)
            elif isinstance(node, SequenceNode):
                result = self.sequence(node)
            else:
                assert isinstance(node, ScalarNode)
                result = self.scalar(node)
        finally:
            self.active.discard(key)
        self.done[key] = result
        return result

    def scalar(self, node: ScalarNode) -> Node:
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(f"invalid YAML value {node.value!r}: {problem}", node) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2026-02-30, or "!!int zz"
            raise self.error(f"invalid YAML value {node.value!r}: {exc}", node) from exc
        return Node(value, node.start_mark.line + 1, raw=node.value)

    def sequence(self, node: SequenceNode) -> Node:
        if node.tag != _SEQ_TAG:
            raise self.error(f"unsupported YAML tag {node.tag!r} (only plain lists are allowed here)", node)
        return Node([self.build(item) for item in node.value], node.start_mark.line + 1)

    def mapping(self, node: MappingNode) -> Node:
        if node.tag != _MAP_TAG:
            raise self.error(f"unsupported YAML tag {node.tag!r} (only plain mappings are allowed here)", node)
        values: dict[Any, Node] = {}
        key_lines: dict[Any, int] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self.merge_sources(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                raise self.error("a mapping key must be a plain value, not a list or mapping", key_node)
            key = self.scalar(key_node).value
            try:
                hash(key)
            except TypeError:  # pragma: no cover - SafeConstructor scalars are hashable
                raise self.error(f"unusable mapping key {key!r}", key_node) from None
            line = key_node.start_mark.line + 1
            if key in values:
                raise self.error(f"duplicate key {key!r} (first given on line {key_lines[key]})", key_node)
            values[key] = self.build(value_node)
            key_lines[key] = line
        # YAML merge keys ("<<: *defaults"): explicit keys win, then earlier merge sources win over later ones.
        for source in merged:
            for key, value in source.value.items():
                if key not in values:
                    values[key] = value
                    key_lines[key] = source.key_lines.get(key, value.line)
        return Node(values, node.start_mark.line + 1, key_lines=key_lines)

    def merge_sources(self, node: yaml.Node) -> Iterable[Node]:
        if isinstance(node, MappingNode):
            return [self.build(node)]
        if isinstance(node, SequenceNode) and all(isinstance(item, MappingNode) for item in node.value):
            return [self.build(item) for item in node.value]
        raise self.error("a merge key '<<' needs a mapping or a list of mappings", node)


# -- value helpers shared by the configuration loaders ------------------------------------------------------


def type_name(value: object) -> str:
    """A user-facing name for the type of a configuration value (``"a list"``, ``"a date"``...)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def to_utc(value: object) -> datetime:
    """A timezone-aware UTC datetime from a YAML date/datetime or an ISO-8601 string.

    A date means midnight UTC that day; a date-time without an offset is read as UTC (stated in the docs) so
    that the same file means the same thing on every machine. Raises ``ValueError`` with a user-facing message.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("a date is empty")
        iso = text[:-1] + "+00:00" if text[-1] in "Zz" else text
        try:
            parsed = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO-8601 date or date-time (e.g. 2026-02-01 or 2026-02-01T00:00:00Z)"
            ) from None
    else:
        raise ValueError(f"expected a date or date-time, got {type_name(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for a close match among ``choices``, else ``""``."""
    if not isinstance(word, str):
        return ""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


class NodeReader:
    """Checks :class:`Node` values against what a configuration file expects.

    Every error is a ConfigError naming ``source`` and the offending node's line, so the YAML, CSV and JSONL
    loaders all report mistakes the same way.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str, node: Node | int) -> ConfigError:
        return ConfigError(message, self.source, node if isinstance(node, int) else node.line)

    def mapping(
        self,
        node: Node,
        what: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        key_line: int | None = None,
    ) -> dict[str, Node]:
        """The entries of a mapping node, refusing unknown keys and reporting missing ones."""
        if not node.is_mapping:
            raise self.error(f"{what} must be a mapping, got {type_name(node.value)}", node)
        for key, value in node.value.items():
            if key not in allowed:
                known = ", ".join(allowed)
                raise self.error(
                    f"unknown key {key!r} in {what}{did_you_mean(key, allowed)} (allowed keys: {known})",
                    node.key_lines.get(key, value.line),
                )
        for key in required:
            if key not in node.value:
                raise self.error(f"{what} is missing the required key {key!r}", key_line or node.line)
        return node.value

    def string(self, node: Node, what: str) -> str:
        if not isinstance(node.value, str):
            hint = " (quote it to make it a string)" if node.raw is not None and node.value is not None else ""
            raise self.error(f"{what} must be a string, got {type_name(node.value)}{hint}", node)
        if not node.value.strip():
            raise self.error(f"{what} must not be empty", node)
        return node.value

    def string_list(self, node: Node, what: str, allow_empty: bool = False) -> list[tuple[str, Node]]:
        if not node.is_sequence:
            # quoted: a records file's value is redacted from a log line as a whole (errors.redact)
            example = f" (write it in brackets: '[{node.value}]')" if isinstance(node.value, str) else ""
            raise self.error(f"{what} must be a list, got {type_name(node.value)}{example}", node)
        if not node.value and not allow_empty:
            raise self.error(f"{what} must not be empty", node)
        items: list[tuple[str, Node]] = []
        seen: dict[str, int] = {}
        for item in node.value:
            text = self.string(item, f"each entry of {what}")
            if text in seen:
                raise self.error(f"{text!r} is listed twice in {what} (first on line {seen[text]})", item)
            seen[text] = item.line
            items.append((text, item))
        return items

    def purposes(self, node: Node, what: str) -> frozenset[str]:
        result = set()
        for text, item in self.string_list(node, what):
            if text not in KNOWN_PURPOSES:
                known = ", ".join(sorted(KNOWN_PURPOSES))
                raise self.error(
                    f"unknown purpose {text!r} in {what}{did_you_mean(text, KNOWN_PURPOSES)} (known purposes: {known})",
                    item,
                )
            result.add(text)
        return frozenset(result)

    def when(self, node: Node, what: str) -> datetime:
        try:
            return to_utc(node.value)
        except ValueError as exc:
            raise self.error(f"{what}: {exc}", node) from None
