"""The one table from each signal's vocabulary to our purposes, and the purposes a crawl may declare.

Every signal module reads its labels through :data:`VOCABULARY`, so what ``ai-train=no`` or ``noai`` means for a
purpose is written here once (and in ``docs/signals.md``). A custom purpose declares which of the built-in
purposes it counts as (:class:`CustomPurpose`); it is then allowed only where every one of them is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..purposes import KNOWN_PURPOSES
from ..robots.tags import PURPOSE_DENIALS

__all__ = [
    "BASE_PURPOSES",
    "CONSERVATIVE_DEFAULTS",
    "TDM_PURPOSES",
    "VOCABULARY",
    "CustomPurpose",
    "base_purposes",
    "purposes_for",
]

BASE_PURPOSES: frozenset[str] = KNOWN_PURPOSES

AI_TRAINING = "ai-training"
AI_INPUT = "ai-input"
SEARCH = "search-indexing"
RESEARCH = "research"
PROFILING = "commercial-profiling"
ARCHIVING = "archiving"

#: what a TDM reservation covers (TDMRep; EU DSM Directive art. 4): every use that mines the text and data.
#: ``research`` stays in unless the operator records a research-exception statement with a reference (art. 3).
TDM_PURPOSES: frozenset[str] = frozenset({AI_TRAINING, AI_INPUT, PROFILING, RESEARCH})

_AI = frozenset({AI_TRAINING, AI_INPUT})

#: signal -> label -> the purposes the label speaks about. A label's "no" denies each of them; its "yes" allows
#: each of them. Labels not listed here are ignored (and say so in the evidence).
VOCABULARY: Mapping[str, Mapping[str, frozenset[str]]] = {
    # W3C TDMRep: 1 reserves every TDM use; 0 (not reserved) allows the uses the reservation is about and that
    # need no further agreement (signals.md: ai-input and profiling still need an explicit allow)
    "tdmrep": {"tdm-reservation=1": TDM_PURPOSES, "tdm-reservation=0": frozenset({AI_TRAINING, RESEARCH})},
    # IETF AIPREF vocabulary (draft-ietf-aipref-vocab-07): y / n
    "content-usage": {"train-ai": frozenset({AI_TRAINING}), "search": frozenset({SEARCH})},
    # older AIPREF drafts' labels, still in the wild: "=n" denies (conservative mode only), "=y" never allows
    "content-usage-legacy": {
        "train-genai": frozenset({AI_TRAINING}),
        "ai": frozenset({AI_TRAINING}),
        "ai-use": _AI,
        "bots": _AI,
        "all": _AI,
    },
    # Cloudflare Content Signals: yes / no
    "content-signal": {"ai-train": frozenset({AI_TRAINING}), "ai-input": frozenset({AI_INPUT}),
                       "search": frozenset({SEARCH})},
    # robots tags (X-Robots-Tag, Robots-Tag, meta robots): deny only; the table itself is
    # consentcrawl.robots.tags.PURPOSE_DENIALS, which the response phase already uses, read here rule by rule
    "robots-tag": {rule: frozenset(p for p, rules in PURPOSE_DENIALS.items() if rule in rules)
                   for rule in sorted(frozenset().union(*PURPOSE_DENIALS.values()))},
    # RSL 1.0 usage tokens in <permits type="usage"> / <prohibits type="usage">
    "rsl-usage": {
        "all": frozenset({AI_TRAINING, AI_INPUT, SEARCH}),  # RSL usage tokens are about AI and search only
        "ai-all": _AI,
        "ai-train": frozenset({AI_TRAINING}),
        "ai-input": frozenset({AI_INPUT}),
        "ai-index": frozenset({AI_INPUT}),
        "search": frozenset({SEARCH}),
    },
    # RSL 1.0 user tokens: the user class a crawl of each purpose is taken to be (research: education and
    # non-commercial; everything else, conservatively, commercial)
    "rsl-user": {
        "commercial": frozenset({AI_TRAINING, AI_INPUT, SEARCH, PROFILING, ARCHIVING}),
        "education": frozenset({RESEARCH}),
        "non-commercial": frozenset({RESEARCH}),
    },
    # Spawning ai.txt: a disallowed path is a training denial (conservative mode only)
    "ai-txt": {"disallow": frozenset({AI_TRAINING})},
}

#: off any platform, when every signal is unknown: whether the purpose is allowed (``terms.default-deny`` if not).
#: Conservative: uses that the web has long accepted are allowed; AI uses and profiling need an explicit allow.
CONSERVATIVE_DEFAULTS: Mapping[str, bool] = {
    SEARCH: True,
    RESEARCH: True,
    ARCHIVING: True,
    AI_TRAINING: False,
    AI_INPUT: False,
    PROFILING: False,
}


def purposes_for(signal: str, label: str) -> frozenset[str]:
    """The purposes ``label`` of ``signal`` speaks about (empty: a label we do not know)."""
    return VOCABULARY.get(signal, {}).get(label, frozenset())


@dataclass(frozen=True)
class CustomPurpose:
    """A purpose of the operator's own (``price-monitoring``), declared as the built-in purposes it counts as.

    Signals are read for each of those; the custom purpose is allowed only where every one of them is.
    """

    name: str
    counts_as: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a custom purpose needs a name")
        if self.name in BASE_PURPOSES:
            raise ValueError(f"{self.name!r} is a built-in purpose; a custom purpose needs another name")
        counts = frozenset(self.counts_as)
        if not counts:
            raise ValueError(f"custom purpose {self.name!r} must count as at least one of "
                             f"{', '.join(sorted(BASE_PURPOSES))}")
        unknown = counts - BASE_PURPOSES
        if unknown:
            raise ValueError(f"custom purpose {self.name!r} counts as unknown purposes: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "counts_as", counts)


def base_purposes(purpose: str, custom: Iterable[CustomPurpose] | Mapping[str, CustomPurpose] = ()
                  ) -> frozenset[str]:
    """The built-in purposes ``purpose`` is judged as: itself, or what a custom purpose counts as.

    Raises ``ValueError`` for a purpose that is neither built in nor declared.
    """
    if purpose in BASE_PURPOSES:
        return frozenset({purpose})
    declared = custom.values() if isinstance(custom, Mapping) else custom
    for entry in declared:
        if entry.name == purpose:
            return entry.counts_as
    raise ValueError(f"unknown purpose {purpose!r} (built-in: {', '.join(sorted(BASE_PURPOSES))}; "
                     f"or declare it as a custom purpose)")
