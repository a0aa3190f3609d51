"""robots.txt-like files (robots.txt, ai.txt) saved in UTF-16 or UTF-32, read as the text the site wrote.

Read as bytes, none of such a file's lines is a record, which is allow-all; so the file is narrowed to UTF-8 first.
"""

from __future__ import annotations

import codecs
import json
import re

from .matcher import _utf8

__all__ = ["narrow"]


#: a line that has a record's shape (a field name and a colon): a wide file guessed without a byte order mark
#: must have one, read in its encoding
_RECORD_SHAPE = re.compile(r"^[ \t]*[A-Za-z][A-Za-z -]*[ \t]*:", re.MULTILINE)


def narrow(body: bytes, whole: bool = True) -> bytes | None:
    """``body`` as UTF-8 when it is in UTF-16 or UTF-32 (Windows Notepad's "Unicode", an editor's "UTF-16 LE without
    BOM"), else ``body`` itself; None when a file its byte order mark says is wide does not decode. Read as bytes,
    none of such a file's lines is a record, which is allow-all. Its byte order mark, or without one the NUL bytes
    of its first (ASCII) character, say plainly what the site wrote (as ``json.loads`` tells a body's encoding),
    so it is read in that. Without the mark, a NUL there may be a stray byte of a UTF-8 file, which read as UTF-16
    is text with no record (allow-all where its bytes disallow): the guess holds only if it reads as records.

    ``whole`` false: ``body`` is the start of a longer file, cut where its reader stops, perhaps inside a character:
    that character is left out, as the rest of the file is."""
    wide = json.detect_encoding(body[:4])
    if wide in ("utf-8", "utf-8-sig"):
        return body
    marked = wide in ("utf-16", "utf-32")  # json names a marked file by its family, an unmarked one by its order
    try:
        text = codecs.getincrementaldecoder(wide)().decode(body, final=whole)
    except UnicodeDecodeError:
        return None if marked else body
    if not marked and _RECORD_SHAPE.search(text) is None:
        return body
    return _utf8(text)
