"""The audit log: one JSON line per decision, allow and deny alike.

It is the evidence a collector must be able to show (GDPR Art. 7(1), PIPL Art. 55-56). It holds the subject id
and the decision's evidence, never the person's data itself.

Lines are written in groups, with one rule that keeps the evidence ahead of what it justifies: a line whose
decision lets something happen (a request sent, a response handed to a callback, an item kept) is on disk before
that happens. Either :meth:`AuditLog.record` writes it, with every line before it, before it returns
(``durable=True``), or the caller queues it with :meth:`AuditLog.queue` and waits for the next
:meth:`AuditLog.flush` before acting, then asks :meth:`AuditLog.written` whether it made it (group commit: the
crawl writes each event-loop turn's lines in one system call at the end of the turn, instead of one per request
and item). Lines that let nothing happen (a request dropped) wait in memory until the next write.

Each line is sealed into the log's hash chain when it is written (:mod:`consentcrawl.audit.chain`): its ``seq``
and the hash of the line before it are added to the bytes already encoded, in the one write of its group. The
log opens with a ``chain-start`` line (the crawl's configuration, by hash) and a clean close ends it with a
``chain-end`` line, whose hash, :attr:`AuditLog.end`, is the end hash an operator can publish. A log that
already has lines is continued: a new segment links to its last line; a torn last line (a crash while it was
written) is cut off first and recorded in the new ``chain-start`` line (:mod:`consentcrawl.audit.tail` reads
where the chain ends). One process writes a log at a time (an exclusive ``flock``): two writers would interleave
two chains.

A write that fails raises :class:`~consentcrawl.errors.AuditUnavailable`. The lines that let nothing happen stay
waiting for the next try; a line whose decision was waiting for this write is withdrawn (unless the file took
part of it: then the rest follows, so the file holds whole lines), and :meth:`AuditLog.written` says no, so the
caller denies what it was about to allow.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..decision import Decision
from ..errors import AuditUnavailable, ConfigError
from ..heldlocks import file_key, forget, hold, lock_or_take_over
from .chain import CHAIN_END, CHAIN_START, FORMAT, GENESIS
from .tail import read_tail

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per log is then the operator's to keep
    fcntl = None  # type: ignore[assignment]

#: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)``, without building an encoder per call
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def audit_entry(decision: Decision, *, time: datetime, phase: str, url: str | None = None,
                canonical_url: str | None = None, purpose: str | None = None, mode: str = "enforce",
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entry :meth:`AuditLog.record` writes for a decision, as a dict (its line is ``json.dumps`` of it)."""
    entry: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "time": time.isoformat(),
        "phase": phase,
        "url": url,
        "canonical_url": canonical_url,
        "platform": decision.platform,
        "subject": decision.subject,
        "purpose": purpose,
        "verdict": decision.verdict.value,
        "stage": decision.stage.value,
        "reason": decision.reason,
        "mode": mode,
        "evidence": [e.to_dict() for e in decision.evidence],
    }
    if extra:
        entry.update(extra)
    return entry


class AuditLog:
    """Append-only JSONL writer (see the module docstring for when lines reach the file)."""

    def __init__(self, path: str | Path | None, *, sync: bool = True, header: dict[str, Any] | None = None,
                 chained: bool = True, alive: Callable[[], bool] | None = None) -> None:
        """Open (or create) the log at ``path`` and write its ``chain-start`` line, with ``header``'s fields.

        ``chained=False`` writes plain lines without a chain (the format before it; for comparisons in
        ``benchmarks/audit_chain.py``). Raises :class:`ConfigError` when the file cannot be opened, is locked by
        another writer, is not a chained log, or does not take the first line. ``alive``: whether the crawl
        writing it can still use it; this process's writer whose crawl cannot is closed by the next writer of the
        file here (:mod:`consentcrawl.heldlocks`: a crawl that failed to start gets no close).
        """
        self._key: tuple[int, int] | None = None  #: the file's, once locked (consentcrawl.heldlocks)
        self.path = Path(path) if path else None
        self.chained = chained
        self.chain: str | None = None  #: the chain's id (kept by every segment of one file)
        self.seq = 0  #: ``seq`` of the last line in the file
        self.end = GENESIS  #: hash of the last line in the file: the end hash, once closed
        #: where this segment's ``chain-start`` line is (byte offset): a reader of this writer's lines alone (the
        #: purge on close) starts there; the chain links it to the lines before all the same
        self.start = 0
        #: fdatasync after each group write, so "on disk" survives an OS crash or a power loss, not only a crash
        #: of this process (see the README for what each mode can lose)
        self.sync = sync
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self.count = 0  #: lines written to the file
        self._pending: list[bytes] = []  #: lines not yet handed to the file
        self._waiting: list[tuple[int, int]] = []  #: (index in _pending, ticket) of lines a decision waits for
        self._tickets = 0  #: the last ticket handed out (tickets only grow)
        self._settled = 0  #: every ticket up to this one is written, or failed
        self._failed: set[int] = set()  #: settled tickets whose line did not reach the file
        self._unwritten = b""  #: the tail of the one line the file took only part of
        self.error: str | None = None  #: why the last write failed
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab", buffering=0)
            except OSError as exc:
                raise ConfigError(f"cannot open the audit log: {exc.strerror or exc}",
                                  source=str(self.path)) from None
            if chained:
                try:
                    self._start(header or {}, alive)
                except (ConfigError, AuditUnavailable, OSError) as exc:
                    file, self._file = self._file, None
                    file.close()
                    if isinstance(exc, ConfigError):
                        raise
                    message = str(exc) if isinstance(exc, AuditUnavailable) else exc.strerror or str(exc)
                    raise ConfigError(f"cannot start the audit log: {message}", source=str(self.path)) from None

    def _start(self, header: dict[str, Any], alive: Callable[[], bool] | None) -> None:
        """Lock the file, read where its chain ends (cutting off a torn last line), write a ``chain-start``."""
        assert self._file is not None and self.path is not None
        if fcntl is not None:
            try:
                self._key = file_key(self._file.fileno())
                lock_or_take_over(self._file.fileno(), self._key)
            except OSError:
                raise ConfigError("another crawl (in this process or another) is writing it: crawls that run at "
                                  "the same time need one audit log each (merge them afterwards with "
                                  "`consentcrawl audit merge`)", source=str(self.path)) from None
        tail = read_tail(self.path)
        entry: dict[str, Any] = {"event": CHAIN_START, "time": _now(), "format": FORMAT,
                                 "chain": tail.chain or uuid.uuid4().hex, "host": socket.gethostname(),
                                 "pid": os.getpid()}
        entry.update(header)
        self.start = tail.size - len(tail.torn)
        if tail.torn:
            os.ftruncate(self._file.fileno(), self.start)
            entry["torn"] = {"line": tail.seq + 1, "bytes": len(tail.torn),
                             "sha256": hashlib.sha256(tail.torn).hexdigest(),
                             "text": tail.torn.decode("utf-8", "replace")}
        self.chain, self.seq, self.end = entry["chain"], tail.seq, tail.end
        if alive is not None and self._key is not None:  # closed (ending its chain) if taken over
            hold(self._key, self, self.close, alive)
        with self._lock:
            self._pending.append(_encode(entry))
            self._write()

    @property
    def pending(self) -> int:
        """Lines waiting to be written."""
        return len(self._pending) + bool(self._unwritten)

    def record(self, decision: Decision, *, time: datetime, phase: str, url: str | None = None,
               canonical_url: str | None = None, purpose: str | None = None, mode: str = "enforce",
               extra: dict[str, Any] | None = None, durable: bool = True) -> None:
        """Add one decision's line; with ``durable`` it is written (with every waiting line) before this returns.

        Raises :class:`AuditUnavailable` when a durable write fails: that line is withdrawn (its decision does not
        stand), the lines before it that let nothing happen stay waiting for the next try.
        """
        if not self._open_for(durable):
            return
        self._put(self._line(decision, time, phase, url, canonical_url, purpose, mode, extra), durable)

    def event(self, kind: str, fields: dict[str, Any], *, time: datetime, durable: bool = True) -> None:
        """Add a line that is not a decision: a withdrawal seen, a purge receipt, a refusal found on a page.

        Its entry is ``{"event": kind, "time": ..., **fields}``; readers tell it from a decision by the ``event``
        key. With ``durable`` it is written (with every waiting line) before this returns, as for :meth:`record`.
        """
        if not self._open_for(durable):
            return
        self._put(_encode({"event": kind, "time": time.isoformat(), **fields}), durable)

    def _open_for(self, durable: bool) -> bool:
        """Whether a line can be added; a durable one to a closed log raises instead of being dropped, because
        an allow must not stand without its line (a crawl with no log at all adds nothing, silently)."""
        if self._file is not None:
            return True
        if durable and self.path is not None:
            raise AuditUnavailable(f"the audit log {self.path} is closed")
        return False

    def _put(self, line: bytes, durable: bool) -> None:
        """Queue ``line`` for the next group write or, ``durable``, write it (with every waiting line) now."""
        with self._lock:
            if not durable:
                self._pending.append(line)
                return
            ticket = self._add_waiting(line)
            try:
                self._write()  # raises if this line is not in the file whole
            finally:
                self._failed.discard(ticket)  # nobody asks written() about this one: the exception says it

    def queue(self, decision: Decision, *, time: datetime, phase: str, url: str | None = None,
              canonical_url: str | None = None, purpose: str | None = None, mode: str = "enforce",
              extra: dict[str, Any] | None = None) -> int | None:
        """Add the line of a decision that waits for it; returns its ticket for :meth:`written`, None with no log.

        The line reaches the file with the next :meth:`flush` (or durable :meth:`record`); until
        :meth:`written` says so, the decision must not take effect. Raises :class:`AuditUnavailable` once the log
        is closed.
        """
        if self._file is None:
            if self.path is not None:  # closed, unlike a crawl with no log: nothing waiting for it may go ahead
                raise AuditUnavailable(f"the audit log {self.path} is closed")
            return None
        line = self._line(decision, time, phase, url, canonical_url, purpose, mode, extra)
        with self._lock:
            return self._add_waiting(line)

    def written(self, ticket: int | None) -> bool:
        """Whether the line of ``ticket`` is in the file (asked once per ticket; None: no log, nothing to wait for)."""
        if ticket is None:
            return True
        with self._lock:
            if ticket > self._settled:
                return False
            if ticket in self._failed:
                self._failed.discard(ticket)
                return False
            return True

    def _add_waiting(self, line: bytes) -> int:
        self._tickets += 1
        self._waiting.append((len(self._pending), self._tickets))
        self._pending.append(line)
        return self._tickets

    def _line(self, decision: Decision, time: datetime, phase: str, url: str | None, canonical_url: str | None,
              purpose: str | None, mode: str, extra: dict[str, Any] | None) -> bytes:
        return _encode(audit_entry(decision, time=time, phase=phase, url=url, canonical_url=canonical_url,
                                   purpose=purpose, mode=mode, extra=extra))

    def flush(self) -> None:
        """Write every waiting line; raises :class:`AuditUnavailable` if the file does not take them."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        """Hand every waiting line to the file in one write; settle the tickets of the lines decisions wait for."""
        if self._file is None:  # closed: nothing more reaches the file
            waiting, self._waiting, self._pending = self._waiting, [], []
            self.error = f"the audit log {self.path} is closed"
            self._settle(waiting, {ticket for _, ticket in waiting})
            return
        if not (self._pending or self._unwritten):
            return
        lines, waiting, tail = self._pending, self._waiting, self._unwritten
        self._pending, self._waiting = [], []
        try:
            self._hand_over(lines, waiting, tail)
        except AuditUnavailable:
            raise
        except Exception as exc:  # not the OS's (a file closed under us, a bug): no line is known to be in the
            # file, so no decision waiting for one stands; a later write must not settle them as written
            self._settle(waiting, {ticket for _, ticket in waiting})
            self.error = f"cannot write the audit log {self.path}: {type(exc).__name__}: {exc}"
            raise AuditUnavailable(self.error) from exc

    def _hand_over(self, lines: list[bytes], waiting: list[tuple[int, int]], tail: bytes) -> None:
        """Seal ``lines`` after ``tail`` (a torn line's rest), write them and sync; settle ``waiting``'s tickets."""
        file = self._file
        assert file is not None  # _write returns first when the log is closed
        if self.chained:
            sealed, hashes = self._seal(lines)
            data = tail + b"".join(sealed)
        else:
            sealed, hashes = [], []
            data = tail + b"".join(lines)
        size = len(data)
        try:
            while data:
                written = file.write(data)
                data = data[written or 0:]
        except OSError as exc:
            begun = self._keep_unwritten(lines, sealed or lines, waiting, tail, size - len(data))
            if begun and self.chained:  # a line begun is in the chain: the next write finishes it
                self.seq += begun
                self.end = hashes[begun - 1]
            self.error = f"cannot write the audit log {self.path}: {exc.strerror or exc}"
            raise AuditUnavailable(self.error) from exc
        if hashes:
            self.seq += len(hashes)
            self.end = hashes[-1]
        self._unwritten = b""
        self.count += len(lines) + bool(tail)
        if self.sync:
            try:
                _sync(file.fileno())
            except OSError as exc:  # in the file, but not known to be on disk: what waited for it does not stand
                self.error = f"cannot sync the audit log {self.path}: {exc.strerror or exc}"
                self._settle(waiting, {ticket for _, ticket in waiting})
                raise AuditUnavailable(self.error) from exc
        self._settle(waiting, set())

    def _seal(self, lines: list[bytes]) -> tuple[list[bytes], list[str]]:
        """The lines as they go into the file, each with its ``seq`` and ``prev``, and the hash of each."""
        seq, prev = self.seq, self.end
        sealed, hashes = [], []
        sha256 = hashlib.sha256
        for line in lines:
            seq += 1
            data = b'%s,"seq":%d,"prev":"%s"}\n' % (line[:-2], seq, prev.encode("ascii"))
            prev = sha256(data).hexdigest()
            sealed.append(data)
            hashes.append(prev)
        return sealed, hashes

    def _keep_unwritten(self, lines: list[bytes], encoded: list[bytes], waiting: list[tuple[int, int]], tail: bytes,
                        done: int) -> int:
        """After a write the file took ``done`` bytes of: what stays to be written, and which tickets failed.

        Returns how many of ``lines`` the file took whole or in part.

        Whole lines in the file count as written. A line the file took part of is finished by the next write (a
        torn line would corrupt the log), but its decision does not stand. A line not begun waits again if it lets
        nothing happen, and is withdrawn if a decision was waiting for it.
        """
        whole = 0  # lines of ``lines`` the file took whole
        if done < len(tail):  # not even the tail of the last failed write is finished: no new line has begun
            self._unwritten = tail[done:]
            begun = 0
        else:
            done -= len(tail)
            self.count += bool(tail)
            self._unwritten = b""
            for data in encoded:
                size = len(data)
                if done < size:
                    break
                done -= size
                whole += 1
            begun = whole
            if done > 0:  # the file took part of the next line: the rest must follow
                self._unwritten = encoded[whole][done:]
                begun += 1
        self.count += whole
        waits = {index for index, _ in waiting}
        self._pending = [line for index, line in enumerate(lines[begun:], begun) if index not in waits]
        self._settle(waiting, {ticket for index, ticket in waiting if index >= whole})
        return begun

    def _settle(self, waiting: list[tuple[int, int]], failed: set[int]) -> None:
        if waiting:
            self._settled = max(self._settled, waiting[-1][1])
            self._failed |= failed

    def close(self) -> None:
        """Write what is waiting and the ``chain-end`` line, and close; raises :class:`AuditUnavailable` if the
        waiting lines are lost."""
        with self._lock:
            if self._file is None:
                return
            try:
                if self.chained:
                    self._pending.append(_encode({"event": CHAIN_END, "time": _now(), "chain": self.chain}))
                self._write()
            finally:
                file, self._file = self._file, None
                forget(self._key, self)
                self._pending.clear()
                self._unwritten = b""
                try:
                    file.close()
                except OSError as exc:
                    raise AuditUnavailable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc


#: data (not metadata) to stable storage; fsync where the system has no fdatasync (macOS, Windows)
_sync = getattr(os, "fdatasync", os.fsync)


def read_audit_log(path: str | Path) -> list[dict[str, Any]]:
    """All entries of an audit log, in order: decisions, and events (an ``event`` key: ``chain-start`` first)."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_decisions(path: str | Path) -> list[dict[str, Any]]:
    """The decision entries of an audit log, in order (its events left out)."""
    return [entry for entry in read_audit_log(path) if "event" not in entry]


def _encode(entry: dict[str, Any]) -> bytes:
    """An entry's line as the file holds it (before its seal), made once when the line is added.

    A string with a lone surrogate is not UTF-8: its character is written escaped (``\\udc80``, as JSON reads it
    back), so that one odd value can neither fail the group write its line is in nor be lost."""
    return (_dumps(entry) + "\n").encode("utf-8", "backslashreplace")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
