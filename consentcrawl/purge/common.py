"""What a purge removes (:class:`Selection`), what it found in one target (:class:`TargetResult`), and the one way
a file is rewritten (:func:`atomic_replace`).

A purge never re-serialises what it keeps: each target kind copies the bytes of the records it keeps as they
were, so only the removed records' bytes (and, in a JSON array, one separator each) leave the file.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from w3lib.url import safe_url_string

from ..consent.keys import key_function
from ..onevalue import one_value, several
from ..resolve import resolve
from ..terms.platforms import PlatformRegistry
from ..terms.readings import trimmed_id
from .media_names import MediaNames

__all__ = ["DuplicateKey", "PurgeFailed", "Selection", "TargetResult", "atomic_replace", "loads", "urls_in"]


class PurgeFailed(Exception):
    """A target (or a part of one) that could not be purged; the message says why, without personal data."""


class DuplicateKey(ValueError):
    """A JSON object with a key twice (``{"friends": [URL], "friends": []}``): Python's reader keeps the last
    value, another reader (a pipeline, jq, a database's JSON functions) may keep the first. Read as Python reads
    it, the other value is never checked: whose it is and whom it mentions cannot be told."""


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise DuplicateKey("a key twice in one object")  # not named: a key may be a person's URL
        mapping[key] = value
    return mapping


def loads(text: str | bytes) -> Any:
    """A record's JSON, read as :func:`json.loads` reads it; :class:`DuplicateKey` (a ValueError) for an object
    that has a key twice."""
    return json.loads(text, object_pairs_hook=_once)


@dataclass
class Removed:
    """Everything removed from one target for one person (``who``: ``platform:id``, or None for no one)."""

    where: list[Any] = field(default_factory=list)  #: line numbers, row ids or cache entries, in file order
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    def add(self, where: Any, data: bytes) -> None:
        self.where.append(where)
        self.update(data)

    def update(self, data: bytes) -> None:
        """More bytes of the last record added (a file read in chunks)."""
        self.digest.update(data)
        self.size += len(data)


@dataclass
class TargetResult:
    """One target's purge: what went, per person, and what could not be checked or written."""

    path: str
    kind: str
    removed: dict[str | None, Removed] = field(default_factory=dict)
    kept: int = 0
    failures: list[str] = field(default_factory=list)
    #: name -> person -> items: lists a receipt adds to this target (a media store's ``shared`` and ``absent``
    #: files); every receipt of the target has each name, empty for a person it holds none of
    lists: dict[str, dict[str | None, list[str]]] = field(default_factory=dict)
    #: person -> where: the kept records from which that person's mentions were withheld (:mod:`.mentioned`)
    mentions: dict[str | None, list[Any]] = field(default_factory=dict)

    def withheld(self, people: list[str], where: Any) -> None:
        """A kept record (at ``where``) lost the mentions of ``people``."""
        for who in people:
            self.mentions.setdefault(who, []).append(where)

    @property
    def mentioning(self) -> int:
        """How many kept records lost mentions."""
        return len({repr(where) for found in self.mentions.values() for where in found})

    def remove(self, who: str | None, where: Any, data: bytes) -> None:
        self.removed.setdefault(who, Removed()).add(where, data)

    @property
    def count(self) -> int:
        return sum(len(r.where) for r in self.removed.values())


@dataclass
class Selection:
    """Whose data goes: people by subject id, and (``expired_at``) items whose ``expires_at`` is at or before it.

    ``subject_field`` and ``provenance_field`` are the crawl's item field names (CONSENTCRAWL_SUBJECT_FIELD and
    CONSENTCRAWL_PROVENANCE_FIELD). People are compared by the platform's subject key, so ``Alice`` and ``alice``
    are one person on a platform whose ids are not case-sensitive.
    """

    platforms: PlatformRegistry
    people: dict[tuple[str, str], str] = field(default_factory=dict)  #: (platform, key) -> "platform:id"
    expired_at: datetime | None = None
    subject_field: str = "subject"
    provenance_field: str | None = "consentcrawl"
    #: URL -> "platform:id": every URL a removed item holds (its provenance ``url``, its ``file_urls``, ``files``,
    #: ``image_urls``...): the page it was made from or the file it names holds the person's data whatever its URL
    #: says (an avatar on a CDN), so its cache entry goes too (filled as feeds are purged, before the cache)
    sources: dict[str, str] = field(default_factory=dict)
    #: the files a media pipeline stored that the items read name, removed or kept (:mod:`.media`)
    media: MediaNames = field(default_factory=MediaNames)
    #: URL -> (platform, [keys]) of whose page it is, read once per URL (a cache repeats its links many times)
    _urls: dict[str, tuple[str, list[str | None]] | None] = field(default_factory=dict, repr=False)

    def add_person(self, platform: str, subject: str) -> str:
        who = f"{platform}:{subject}"
        self.people.setdefault((platform, self.key(platform, subject)), who)
        return who

    def key(self, platform: str, subject: str) -> str:
        return key_function(self.platforms.get(platform))(subject)

    def person(self, platform: Any, subject: Any) -> str | None:
        """``platform:id`` when (platform, subject) is a selected person. A record that names no platform (no
        ``platform`` field, no provenance) is a selected person's when its id is theirs on any platform: when
        unsure, erase."""
        subject = one_value(subject)  # an ItemLoader's field: a list
        if several(subject):  # several people: it goes if any of them is selected
            return next((who for one in subject if (who := self.person(platform, one)) is not None), None)
        if subject in (None, "") or isinstance(subject, (dict, bool)):
            return None
        # an id with white space or a control character at either end (``" bob"``, written by a crawl before the
        # guard denied such ids) is the trimmed id's too, as an application that trims ids reads it: when unsure,
        # erase
        ids = [str(subject)] + [t for t in (trimmed_id(str(subject)),) if t]
        if isinstance(platform, str) and platform:
            return next((who for one in ids if (who := self.people.get((platform, self.key(platform, one))))), None)
        for (name, key), who in self.people.items():
            if any(self.key(name, one) == key for one in ids):
                return who
        return None

    # -- items ------------------------------------------------------------------------------------------------

    def item(self, fields: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Whether an item (its fields as read: the provenance a dict, or text to parse) goes, and whose it is;
        the files it names are noted (:attr:`media`), as removed or kept."""
        goes, who = self.whose_item(fields)
        self.media.note(fields, goes, who, self.url)
        return goes, who

    def whose_item(self, fields: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Whether an item goes, and whose it is, without noting the files it names (an item a queued request
        carries in its meta is no output)."""
        provenance = self.provenance_of(fields)
        platform = fields.get("platform") or provenance.get("platform")
        subject = fields.get(self.subject_field)
        for p, s in ((platform, subject), (provenance.get("platform"), provenance.get("subject"))):
            who = self.person(p, s)
            if who is not None:
                return True, self._removed(fields, who)
        page = provenance.get("url")
        if isinstance(page, str) and (owners := self.owners(page)):
            # made from a selected person's page, or one that may be theirs (an ambiguous URL a crawl in report
            # mode fetched): the page's data is theirs whatever the subject fields say; when unsure, erase
            return True, self._removed(fields, owners[0])
        if self.expired_at is not None:
            expires = _time(provenance.get("expires_at"))
            if expires is not None and expires <= self.expired_at:
                owner = subject if subject not in (None, "") else provenance.get("subject")
                p = platform if isinstance(platform, str) else provenance.get("platform")
                return True, (f"{p}:{owner}" if p and owner not in (None, "") else None)
        return False, None

    def _removed(self, fields: Mapping[str, Any], who: str) -> str:
        for url in urls_in(fields):
            self.sources.setdefault(url, who)
        return who

    def provenance_of(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        if not self.provenance_field:
            return {}
        value = fields.get(self.provenance_field)
        if isinstance(value, str) and value.strip():
            value = parse_mapping(value)
        return value if isinstance(value, dict) else {}

    # -- URLs --------------------------------------------------------------------------------------------------

    def url(self, url: str) -> str | None:
        """``platform:id`` of the selected person whose page ``url`` is, read every way a server could read it
        (the first of :meth:`owners`)."""
        owners = self.owners(url)
        return owners[0] if owners else None

    def owners(self, url: str, unsure: bool = True) -> list[str]:
        """Every selected person whose page ``url`` may be, read as the crawl reads a URL (:func:`resolve`).

        An ambiguous URL goes when any of its readings names a selected person. One a reading of which names no
        one for sure (``?id=101&id=104``: PHP reads 104, another server 101; ``/u/0104``: 104 to a server that
        reads ids as numbers; ``/u/%20104``: 104 to one that trims them) is denied by the crawl's guard as
        ``subject.ambiguous-url`` and may be anyone's of its platform: it is every selected person's of that
        platform (when unsure, erase), as a queued request of no one for sure is (:mod:`.queued`); with ``unsure``
        False, only the people a reading names."""
        if url not in self._urls:
            self._urls[url] = _whose_page(self.platforms, url)
        found = self._urls[url]
        if found is None:
            return []
        name, keys = found
        if unsure and UNREAD in keys:
            return [who for (platform, _), who in self.people.items() if platform == name]
        return list(dict.fromkeys(self.people[(name, key)] for key in keys
                                  if key is not None and (name, key) in self.people))


#: a key :func:`_whose_page` gives for an ambiguous URL's reading that names no one for sure: anyone's
UNREAD = "\x00unread"


#: an absolute URL inside a field's text (a CSV cell joins a list with commas; a provenance may be a dict's repr)
_URL = re.compile(r"""https?://[^\s"'<>,\\]+""", re.IGNORECASE)


def urls_in(value: Any, depth: int = 0) -> Iterator[str]:
    """Every absolute URL in an item's field values (strings, and lists and dicts of them, a few levels deep), also
    as Scrapy spells a request's URL (the HTTP cache's ``meta`` holds that spelling)."""
    if isinstance(value, str):
        for url in _URL.findall(value):
            yield url
            try:
                yield safe_url_string(url)
            except Exception:  # noqa: BLE001 - a URL w3lib cannot spell was not requested in that spelling
                pass
    elif depth < 4 and isinstance(value, Mapping):
        for inner in value.values():
            yield from urls_in(inner, depth + 1)
    elif depth < 4 and isinstance(value, (list, tuple)):
        for inner in value:
            yield from urls_in(inner, depth + 1)


def _whose_page(platforms: PlatformRegistry, url: str) -> tuple[str, list[str | None]] | None:
    """The platform of ``url`` and every person's key its readings name (:data:`UNREAD` for a reading of an
    ambiguous URL that names no one for sure); None off every platform."""
    try:
        resolved = resolve(platforms, url)
    except ValueError:
        return None
    reading = resolved.reading
    if resolved.platform is None or reading is None:
        return None
    keys = [reading.subject] + [UNREAD if key is None and reading.ambiguous else key for _, key in reading.readings]
    return resolved.platform.name, keys


def parse_mapping(text: str) -> Any:
    """A provenance written as text: JSON (JSON feeds, SQLite) or a Python literal (Scrapy's CSV exporter writes a
    dict with ``str()``); anything else is no provenance."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def atomic_replace(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a new file next to ``path`` (same directory, mode and, where allowed, owner), fsync it,
    rename it over ``path`` and fsync the directory: a reader sees the old file or the new one, never a mix, and a
    crash leaves one of them. Raises :class:`PurgeFailed` (``path`` untouched) when any step fails."""
    tmp = path.with_name(f".{path.name}.purge-{secrets.token_hex(4)}.tmp")
    try:
        st = path.stat()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, st.st_mode & 0o7777)
    except OSError as exc:
        raise PurgeFailed(f"cannot write a temporary file in {path.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            _same_owner_and_mode(out.fileno(), st)
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PurgeFailed(f"cannot replace the file: {exc.strerror or exc}") from None
    sync_directory(path.parent)


def _same_owner_and_mode(fd: int, st: os.stat_result) -> None:
    """The mode as it was, whatever the umask; the owner as it was where we may (root purging a user's feed)."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, st.st_mode & 0o7777)
    if hasattr(os, "fchown") and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            pass


def sync_directory(path: Path) -> None:
    """The directory's entries (a rename, a removal) to stable storage; systems without directory fsync skip it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def spans(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of ``data``, its ``\\n`` included (the last one may have none)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield start, end
        start = end
