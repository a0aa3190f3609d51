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

from ..decision import Decision
from ..errors import AuditUnavailable, ConfigError


class AuditLog:
    """Append-only JSONL writer; each line is flushed so a crash loses at most the line being written."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self.count = 0
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
            line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
            with self._lock:
                try:
                    self._file.write(line + "\n")
                    self._file.flush()
                except OSError as exc:
                    raise AuditUnavailable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc
                self.count += 1
        return entry

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()
                except OSError as exc:
                    raise AuditUnavailable(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from exc


def read_audit_log(path: str | Path) -> list[dict[str, Any]]:
    """All entries of an audit log, in order."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
