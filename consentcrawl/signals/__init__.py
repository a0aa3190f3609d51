"""What sites publish about the use of their content, read and resolved per purpose (issue #13, phase 1).

Pure: no Scrapy, no I/O, no clock. One module per signal turns what a site published into a
:class:`SignalResult` (a verdict per purpose, with evidence); :func:`combine` decides a purpose from all of them.
``docs/signals.md`` has the table of what each signal means for each purpose.

- :mod:`.tdmrep`: W3C TDMRep (``/.well-known/tdmrep.json``, headers, meta)
- :mod:`.odrl`: the ODRL policy a TDMRep ``tdm-policy`` names, read for the evidence
- :mod:`.content_usage`: IETF AIPREF ``Content-Usage`` (header, robots.txt rule)
- :mod:`.content_signal`: Cloudflare Content Signals (robots.txt, header)
- :mod:`.rsl`: RSL 1.0 licences (discovery, safe XML parsing, per-path terms)
- :mod:`.ai_txt`: Spawning ai.txt (conservative mode only)
- :mod:`.purposes`: the one vocabulary table, custom purposes, the conservative defaults
- :mod:`.fetch`: what fetching a site-level signal file produced (for the adapters of phase 2)
"""

from __future__ import annotations

from .base import Finding, Level, SignalResult, SignalVerdict, Statement
from .combine import PlatformGrant, SignalDecision, combine, deny_reason
from .fetch import SignalFile, SignalFileStatus
from .purposes import CONSERVATIVE_DEFAULTS, VOCABULARY, CustomPurpose, base_purposes

__all__ = [
    "CONSERVATIVE_DEFAULTS",
    "VOCABULARY",
    "CustomPurpose",
    "Finding",
    "Level",
    "PlatformGrant",
    "SignalDecision",
    "SignalFile",
    "SignalFileStatus",
    "SignalResult",
    "SignalVerdict",
    "Statement",
    "base_purposes",
    "combine",
    "deny_reason",
]
