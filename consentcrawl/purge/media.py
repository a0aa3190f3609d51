"""The files Scrapy's ``FilesPipeline`` and ``ImagesPipeline`` stored (``FILES_STORE``, ``IMAGES_STORE`` on the
local disk), erased for the items a purge removed.

**Which files.** Exactly those the removed items name in their result field (:mod:`.media_names`), ``path``
relative to the store, and for an images store the thumbnails of each, as the pipeline's own ``thumb_path`` names
them (:mod:`.media_thumbs`; the default naming also in every size directory the store holds). A file that an
item the purge keeps names too (the same URL, hence the same hash, collected for another person: a picture two
people's posts share) is **kept**: it is
that item's data as much as the purged person's, and erasing it would break the kept item. The receipt lists it
under ``shared``; a named file that is not on disk is listed under ``absent``.

**Never outside the store.** A path must be relative, of plain names (no ``..``, ``.``, empty or absolute part,
no backslash, no NUL). The store is walked one directory at a time from a descriptor, never following a symbolic
link (``O_NOFOLLOW``), and the file is unlinked by name in its directory's descriptor: a link inside the store,
whether or not it leads out, is not followed, and the file is reported failed with the cause. A failure names the
file as the receipt does, never by a path that could hold a person's name.

**The receipt** lists each erased file by its path when it is a pipeline's default name (a hash of the URL), and
otherwise by ``sha256:`` of the path (a ``file_path`` of the project's own may name people); its hash is over the
files' bytes, in the order erased. A store on another scheme (S3, GCS, FTP) or of a media pipeline that is neither
is listed as failed: the files there are not erased.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import PurgeFailed, TargetResult
from .media_names import FILES, IMAGES, MediaNames
from .media_thumbs import ThumbNamer, thumb_namer

__all__ = ["MediaStore", "erase_media", "stores_from_settings"]

#: a pipeline's default file name: ``full/<sha1 of the URL>.<ext>``, ``thumbs/<size>/<sha1>.jpg``
_DEFAULT_NAME = re.compile(r"(?:full|thumbs/[A-Za-z0-9_-]{1,64})/[0-9a-f]{40}(?:\.[A-Za-z0-9]{1,10})?")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class MediaStore:
    """A media pipeline's store: ``kind`` (``files``/``images``), the store as configured, the pipeline's name and
    its result field; an images store, how its pipeline names thumbnails (:mod:`.media_thumbs`)."""

    kind: str
    uri: str
    pipeline: str
    field: str
    thumbs: ThumbNamer | None = dataclasses.field(default=None, compare=False)

    @property
    def local(self) -> Path | None:
        """The store's directory, when it is on the local disk (as ``FSFilesStore`` reads a URI)."""
        scheme, sep, rest = self.uri.partition("://")
        if not sep or len(scheme) == 1:
            return Path(self.uri)
        return Path(rest) if scheme.lower() == "file" else None

    def public(self) -> str:
        """The store as a receipt may show it: no user name, password or query."""
        if self.local is not None:
            return str(self.local)
        from urllib.parse import urlsplit

        parts = urlsplit(self.uri)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def stores_from_settings(settings: Any) -> list[MediaStore]:
    """The store of each media pipeline in ``ITEM_PIPELINES``, its result field read as the pipeline reads it
    (``<CLASS>_FILES_RESULT_FIELD`` for a subclass, then ``FILES_RESULT_FIELD``, then the class's default). A
    ``MediaPipeline`` that is neither is a store of unknown kind: listed failed, never guessed."""
    from scrapy.pipelines.files import FilesPipeline
    from scrapy.pipelines.images import ImagesPipeline
    from scrapy.pipelines.media import MediaPipeline
    from scrapy.utils.conf import build_component_list
    from scrapy.utils.misc import load_object

    out: list[MediaStore] = []
    for path in build_component_list(settings.getwithbase("ITEM_PIPELINES")):
        try:
            cls = load_object(path)
        except Exception:  # noqa: BLE001 - Scrapy itself reports a pipeline it cannot load
            continue
        if not (isinstance(cls, type) and issubclass(cls, MediaPipeline)):
            continue
        name = f"{cls.__module__}.{cls.__qualname__}"
        if issubclass(cls, (FilesPipeline, ImagesPipeline)):
            kind, base = (IMAGES, "ImagesPipeline") if issubclass(cls, ImagesPipeline) else (FILES, "FilesPipeline")
            key = f"{kind.upper()}_RESULT_FIELD"
            field = (cls.__name__ != base and settings.get(f"{cls.__name__.upper()}_{key}")) or settings.get(key) \
                or getattr(cls, f"DEFAULT_{key}", kind)
            store = settings.get(f"{kind.upper()}_STORE")
            out.append(MediaStore(kind, str(store) if store else "", cls.__name__, str(field),
                                  thumb_namer(cls, settings) if kind == IMAGES else None))
        else:
            out.append(MediaStore("media", name, cls.__name__, ""))
    return out


def erase_media(stores: list[MediaStore], names: MediaNames, *,
                dry_run: bool = False) -> tuple[list[TargetResult], list[tuple[str, str]]]:
    """Erase what ``names`` says the removed items name and no kept one does, store by store: the stores' results,
    and what could not be done at all (a remote store, a kind of file no store is known for)."""
    results: list[TargetResult] = []
    failed: list[tuple[str, str]] = []
    kinds_of: dict[str, set[str]] = {}  #: a local store's real path -> the kinds of file it holds
    for store in stores:
        if store.local is not None and store.uri:
            kinds_of.setdefault(os.path.realpath(store.local), set()).add(store.kind)
    for kind in sorted({k for k, _ in names.removed} | set(names.unreadable)):
        if not any(s.kind == kind and s.uri for s in stores):
            count = sum(1 for k, _ in names.removed if k == kind) + names.unreadable.get(kind, 0)
            failed.append((f"{kind.upper()}_STORE", f"the removed items name {count} stored file(s) in their "
                           f"{kind} result field and no {kind} store is known: not erased (name it with "
                           f"--{kind}-store DIR, or the settings' {kind.upper()}_STORE)"))
    for store in stores:
        root = store.local
        if store.kind not in (FILES, IMAGES):
            failed.append((store.uri, f"{store.pipeline} is a media pipeline that is neither FilesPipeline nor "
                           "ImagesPipeline: the files it saved of the purged people are not erased"))
            continue
        if root is None:
            failed.append((store.public(), f"{store.pipeline}'s store is not on the local disk: the files it saved "
                           "of the purged people are not erased (erase them by the file paths of their items)"))
            continue
        if not store.uri:
            continue
        kinds = kinds_of[os.path.realpath(root)]
        kept = {path for kind, path in names.kept if kind in kinds}
        results.append(_erase_store(store, root, names, kept, dry_run))
    return results, failed


def _erase_store(store: MediaStore, root: Path, names: MediaNames, kept: set[str], dry_run: bool) -> TargetResult:
    result = TargetResult(str(root), store.kind, lists={"shared": {}, "absent": {}})
    named = [(path, who) for (kind, path), who in names.removed.items() if kind == store.kind]
    if names.unreadable.get(store.kind):
        result.failures.append(f"{names.unreadable[store.kind]} removed item(s) name files in their "
                               f"{store.field!r} field in a form that cannot be read: those files are not erased")
    if not named:
        return result
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
        result.failures.append("this system cannot open a file without following links: nothing erased")
        return result
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        result.failures.append(f"cannot open the store ({exc.strerror or exc}): the {len(named)} file(s) the "
                               "removed items name are not erased")
        return result
    try:
        for path, who in named:
            shown = shown_name(path)
            if path in kept:
                result.lists["shared"].setdefault(who, []).append(shown)
                continue
            try:
                if not _erase(root_fd, path, result, who, dry_run):
                    result.lists["absent"].setdefault(who, []).append(shown)
                if store.kind == IMAGES:
                    _thumbnails(store, root_fd, path, names.origins.get((store.kind, path)), result, who, dry_run)
            except PurgeFailed as exc:
                result.failures.append(f"{shown}: {exc}")
    finally:
        os.close(root_fd)
    return result


def shown_name(path: str) -> str:
    """A stored file as a receipt names it: its path when it is a pipeline's default name (a hash), otherwise a
    hash of the path (a project's own ``file_path`` may put a person's name in it)."""
    if _DEFAULT_NAME.fullmatch(path):
        return path
    return "sha256:" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def _parts(path: str) -> list[str]:
    """The names on ``path``'s way; PurgeFailed for one that could lead out of the store."""
    if not path or "\x00" in path or "\\" in path:
        raise PurgeFailed("not a path inside the store (empty, a NUL or a backslash): not erased")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise PurgeFailed("an absolute path, outside the store: not erased")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PurgeFailed("a path with '..', '.' or an empty part, which may lead out of the store: not erased")
    return parts


def _erase(root_fd: int, path: str, result: TargetResult, who: str | None, dry_run: bool) -> bool:
    """Unlink ``path`` in the store (unless ``dry_run``) and add it to ``result``; False when it is not there."""
    parts = _parts(path)
    opened: list[int] = []
    try:
        directory = root_fd
        for part in parts[:-1]:
            try:
                directory = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PurgeFailed("a symbolic link (or a file) where a directory of the store should be: not "
                                      "followed, not erased") from None
                raise PurgeFailed(f"cannot open its directory: {exc.strerror or exc}") from None
            opened.append(directory)
        leaf = parts[-1]
        try:
            st = os.stat(leaf, dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise PurgeFailed(f"cannot read it: {exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            raise PurgeFailed("a symbolic link, which may lead out of the store: not followed, not erased")
        if not stat.S_ISREG(st.st_mode):
            raise PurgeFailed("not a regular file: not erased")
        try:
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
        except OSError as exc:
            raise PurgeFailed(f"cannot open it: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as f:
            if not dry_run:
                try:
                    os.unlink(leaf, dir_fd=directory)
                    os.fsync(directory)
                except OSError as exc:
                    raise PurgeFailed(f"cannot remove it: {exc.strerror or exc}") from None
            result.remove(who, shown_name(path), b"")  # its bytes, read from the open file after the unlink
            removed = result.removed[who]
            while chunk := f.read(_CHUNK):
                removed.update(chunk)
        return True
    finally:
        for fd in reversed(opened):
            os.close(fd)


def _thumbnails(store: MediaStore, root_fd: int, path: str, origin: tuple[str | None, Any] | None,
                result: TargetResult, who: str | None, dry_run: bool) -> None:
    """The thumbnails of the image at ``path``: as its pipeline's ``thumb_path`` names them, for each size it is
    configured with; and, where thumbnails are named the default way, ``thumbs/<size>/<SHA-1 of the URL>.jpg`` in
    every size directory the store holds (a size the crawl had and the settings no longer name)."""
    url, item = origin or (None, {})
    namer = store.thumbs
    if namer is not None and url is not None:
        for thumb in namer.names(url, item):
            _erase(root_fd, thumb, result, who, dry_run)
    elif namer is not None and namer.own:
        raise PurgeFailed(f"its item gives no URL, from which {namer.cls.__name__}.thumb_path names the "
                          "thumbnails: they are not erased")
    if namer is None or not namer.own:
        stem = hashlib.sha1(url.encode()).hexdigest() if url else path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        _erase_thumbs(root_fd, stem, result, who, dry_run)


def _erase_thumbs(root_fd: int, stem: str, result: TargetResult, who: str | None, dry_run: bool) -> None:
    """ImagesPipeline's default thumbnails of an image: ``thumbs/<size>/<stem>.jpg`` for each size directory."""
    try:
        thumbs = os.open("thumbs", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PurgeFailed(f"cannot open the store's thumbs directory (a symbolic link is not followed): "
                          f"{exc.strerror or exc}; its thumbnails are not erased") from None
    try:
        sizes = sorted(os.listdir(thumbs))
        for size in sizes:
            if not stat.S_ISDIR(os.stat(size, dir_fd=thumbs, follow_symlinks=False).st_mode):
                raise PurgeFailed("the store's thumbs directory holds a symbolic link or a file: not followed; "
                                  "its thumbnails are not all erased")
    except OSError as exc:
        raise PurgeFailed(f"cannot list the store's thumbs directory: {exc.strerror or exc}") from None
    finally:
        os.close(thumbs)
    for size in sizes:
        _erase(root_fd, f"thumbs/{size}/{stem}.jpg", result, who, dry_run)
