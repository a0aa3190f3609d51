"""The files a media pipeline stored, as the items a purge reads name them. Pure: no Scrapy, no I/O.

Scrapy's ``FilesPipeline`` and ``ImagesPipeline`` write, into each item's result field (``files`` and ``images``
by default; ``FILES_RESULT_FIELD``, ``IMAGES_RESULT_FIELD``), one ``{"url", "path", "checksum", "status"}`` per
file, ``path`` relative to the store. The file's name is a hash of its URL: nothing on disk says whose it is, so
the items are the only map. Every item a purge reads (removed or kept) is noted here (:meth:`MediaNames.note`),
and :mod:`consentcrawl.purge.media` erases what the removed items name and no kept item does; a file a kept item
names by the URL of an erased person's page (their avatar in someone's ``friends``) is theirs, and goes too.

The field is read as each output writes it: a list of dicts (JSON Lines, JSON, an item), or its text (CSV writes
a list of dicts with ``str()``; an SQLite pipeline, JSON). A value that holds no ``path`` key is no pipeline's
result (a list of URLs, say) and is ignored; one that seems to (its text has a quoted ``path``) but cannot be read is
counted as unreadable: the files of a removed item that cannot be told are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FILES", "IMAGES", "MediaNames", "named_files"]

FILES, IMAGES = "files", "images"


@dataclass
class MediaNames:
    #: result field -> the kind of store its paths are in (``files`` or ``images``)
    fields: dict[str, str] = field(default_factory=lambda: {FILES: FILES, IMAGES: IMAGES})
    #: (kind, path) -> whose removed item named it first (``platform:id``, or None)
    removed: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: (kind, path) -> the URL its result gives (None: none given) and the fields of the removed item naming it
    #: first: a pipeline's ``thumb_path`` names an image's thumbnails from them (:mod:`.media_thumbs`)
    origins: dict[tuple[str, str], tuple[str | None, Mapping[str, Any]]] = field(default_factory=dict)
    #: (kind, path) named by an item that is kept
    kept: set[tuple[str, str]] = field(default_factory=set)
    #: kind -> removed items whose result field could not be read
    unreadable: dict[str, int] = field(default_factory=dict)

    def note(self, fields: Mapping[str, Any], goes: bool, who: str | None,
             mentioned: Callable[[str], str | None] | None = None) -> None:
        """What an item (its fields as read) names in each result field, as removed (``goes``) or kept.
        ``mentioned``: whose page a file's URL is, of the people erased; a kept item's file whose URL is their page
        (``/u/104/avatar.png``) is theirs and goes, as its URL leaves the item (:mod:`.mentioned`)."""
        for name, kind in self.fields.items():
            value = fields.get(name)
            if value in (None, "", [], {}):
                continue
            files = named_files(value)
            if files is None:
                if goes:
                    self.unreadable[kind] = self.unreadable.get(kind, 0) + 1
                continue
            for path, url in files:
                owner = who if goes else mentioned(url) if mentioned is not None and url else None
                if goes or owner is not None:
                    self.removed.setdefault((kind, path), owner)
                    self.origins.setdefault((kind, path), (url, fields))
                else:
                    self.kept.add((kind, path))


def named_files(value: Any, depth: int = 0) -> list[tuple[str, str | None]] | None:
    """The ``path`` of each file a result field's value names, with its ``url`` (None when the result gives none);
    None when it seems to name some and cannot be read (a text with ``path`` that parses as nothing, a ``path``
    that is not a string)."""
    from .common import parse_mapping

    if isinstance(value, Mapping):
        if "path" not in value:
            return []
        path, url = value["path"], value.get("url")
        return [(path, url if isinstance(url, str) else None)] if isinstance(path, str) else None
    if isinstance(value, (list, tuple)):
        out: list[tuple[str, str | None]] = []
        for inner in value:
            if isinstance(inner, str) and not _names_a_path(inner):
                continue  # a URL (``file_urls`` copied into the field), not a result
            files = named_files(inner, depth + 1)
            if files is None:
                return None
            out += files
        return out
    if isinstance(value, str):
        if not _names_a_path(value):
            return []
        if depth > 1:
            return None
        parsed = parse_mapping(value)
        if parsed is None:  # a CSV cell of a list joined by commas: its items, each a dict's repr
            parsed = parse_mapping(f"[{value}]")
        if not isinstance(parsed, (Mapping, list, tuple)):
            return None
        return named_files(parsed, depth + 1)
    return []


def _names_a_path(text: str) -> bool:
    """Whether a text may hold a result's ``path`` key (as JSON or a dict's repr writes it)."""
    return "'path'" in text or '"path"' in text
