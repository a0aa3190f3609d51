"""The audit log: one JSON line per decision, allow and deny alike.

It is the evidence a collector must be able to show (GDPR Art. 7(1), PIPL Art. 55-56). It holds the subject id
and the decision's evidence, never the person's data itself.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..decision import Decision, Evidence
from ..errors import AuditUnavailable, ConfigError

#: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)``, without building an encoder per call
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_FRAGMENTS = 8192  #: evidence items whose JSON is kept (in two generations of this size)


class AuditLog:
    """Append-only JSONL writer; each line is flushed so a crash loses at most the line being written."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self.count = 0
        # JSON of evidence items seen recently: decisions share their evidence objects (the same robots.txt,
        # platform grant or authorization record), and encoding it is most of the cost of a line.
        self._fragments: dict[int, tuple[Evidence, str]] = {}
        self._old_fragments: dict[int, tuple[Evidence, str]] = {}
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot open the audit log: {exc.strerror or exc}",
                                  source=str(self.path)) from None

    def record(self, decision: Decision, *, time: datetime, phase: str, url: str | None = None,
               canonical_url: str | None = None, purpose: str | None = None, mode: str = "enforce",
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write one decision; returns the entry as written."""
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
        if self._file is not None:
            line = self._line(entry, decision, extra)
            with self._lock:
                try:
                    self._file.write(line + "\n")
                    self._file.flush()
                except OSError as exc:
                    raise AuditUnavailable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc
                self.count += 1
        return entry

    def _line(self, entry: dict[str, Any], decision: Decision, extra: dict[str, Any] | None) -> str:
        """``json.dumps(entry)``, character for character, with each evidence item encoded once."""
        if extra and ("evidence" in extra or any(key in _HEAD for key in extra)):
            return _dumps(entry)  # a key replaced in place: keep json's own ordering
        head = {key: entry[key] for key in _HEAD}
        parts = [_dumps(head)[:-1], ',"evidence":[', ",".join(self._fragment(e) for e in decision.evidence), "]"]
        if extra:
            parts += (",", _dumps(extra)[1:-1])
        parts.append("}")
        return "".join(parts)

    def _fragment(self, evidence: Evidence) -> str:
        memo = self._fragments.get(id(evidence))
        if memo is None or memo[0] is not evidence:
            memo = self._old_fragments.get(id(evidence))
            if memo is None or memo[0] is not evidence:
                memo = (evidence, _dumps(evidence.to_dict()))
            self._fragments[id(evidence)] = memo
            if len(self._fragments) >= _FRAGMENTS:
                self._old_fragments, self._fragments = self._fragments, {}
        return memo[1]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()
                except OSError as exc:
                    raise AuditUnavailable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc


#: the keys of an entry before its evidence, in order
_HEAD = ("decision_id", "time", "phase", "url", "canonical_url", "platform", "subject", "purpose", "verdict", "stage",
         "reason", "mode")


def read_audit_log(path: str | Path) -> list[dict[str, Any]]:
    """All entries of an audit log, in order."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
