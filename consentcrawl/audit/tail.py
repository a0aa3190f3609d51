"""Where an existing audit log's hash chain ends, so a new crawl can continue it instead of starting over.

:class:`~consentcrawl.audit.log.AuditLog` opens a log that already has lines as a new segment of the same chain:
it needs the chain's id (from the first line), the ``seq`` and hash of the last complete line, and any torn line
after it (a crash while it was written), which it cuts off and records. Reading that is a job of its own, apart
from writing: only the first line and the end of the file are read, never the whole log
(``consentcrawl audit verify`` checks the rest), and a file that is not a chained log is refused with a
:class:`~consentcrawl.errors.ConfigError` naming it rather than continued.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError
from .chain import CHAIN_START, GENESIS, line_hash, unseal


class Tail:
    """Where an existing log's chain ends: its chain id, last ``seq`` and hash, and a torn last line."""

    def __init__(self, size: int = 0, chain: str | None = None, seq: int = 0, end: str = GENESIS,
                 torn: bytes = b"") -> None:
        self.size, self.chain, self.seq, self.end, self.torn = size, chain, seq, end, torn


def read_tail(path: Path) -> Tail:
    """Read the first line (the chain id) and the end of the log: the last complete line and what follows it.

    Only these are read, not the whole log (``consentcrawl audit verify`` checks the rest).
    """
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return Tail()
        position, data = size, b""
        while position > 0:  # back from the end, until the last complete line is in ``data``
            step = min(1 << 16, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
            last = data.rfind(b"\n")
            if last >= 0 and (position == 0 or data.rfind(b"\n", 0, last) >= 0):
                break
        last = data.rfind(b"\n")
        torn = data[last + 1:]
        if last < 0:  # nothing but a torn first line
            return Tail(size, torn=torn)
        line = data[data.rfind(b"\n", 0, last) + 1:last + 1]
        f.seek(0)
        first = f.readline()
    refuse = ("; move it aside, or set CONSENTCRAWL_AUDIT_LOG to another file (`consentcrawl audit verify` says "
              "what is wrong with it)")
    chain = None
    try:
        head = json.loads(first)
        chain = head.get("chain") if head.get("event") == CHAIN_START and unseal(first) else None
    except (ValueError, AttributeError, RecursionError):
        pass
    if not isinstance(chain, str) or not chain:
        raise ConfigError("line 1 is not the chain-start line of a hash-chained audit log (a log written before "
                          "the hash chain, or not an audit log)" + refuse, source=str(path))
    parts = unseal(line)
    if parts is None:
        raise ConfigError("its last complete line does not end with its seq and prev (edited?)" + refuse,
                          source=str(path))
    return Tail(size, chain, parts[1], line_hash(line), torn)
