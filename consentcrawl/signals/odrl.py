"""The ODRL policy a TDMRep ``tdm-policy`` names, read for the evidence: who to ask, what it offers, and on what
conditions (its rules' constraints) and for what in return (duties, obligations, remedies).

TDMRep (W3C CG Final Report 2024, "TDM Policy") makes the policy an ODRL 2.2 document in JSON-LD, profile
``http://www.w3.org/ns/tdmrep``: an ``Offer`` whose ``assigner`` is the rights holder with vCard contact details
(``vcard:fn`` / ``vcard:organization-name`` / ``vcard:nickname``, ``vcard:hasEmail``, ``vcard:hasURL``,
``vcard:hasTelephone``), and ``permission`` / ``prohibition`` rules whose ``action`` is ``tdm:mine`` and the like.

It is evidence only: a reservation (``tdm-reservation: 1``) denies whatever the policy offers, because an offer is
not a licence we hold, and a policy never relaxes a reservation. So reading it can only add to what a decision
cites, and anything that is not such a document (not JSON, not an object, too deep, cut off at the size limit) is
recorded as unreadable, never an error and never a verdict.

Pure: no I/O, no clock; :func:`policy_evidence` takes the fetch the adapters made
(:class:`~consentcrawl.signals.fetch.SignalFile`, signal ``"tdm-policy"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

from .fetch import SignalFile, SignalFileStatus

__all__ = ["SIGNAL", "OdrlPolicy", "distinct", "parse_odrl_policy", "policy_evidence", "policy_url"]

SIGNAL = "tdm-policy"  #: the signal name of a policy's fetch (:class:`SignalFile`)
MAX_TEXT = 200  #: characters kept of one contact field or action
MAX_ACTIONS = 32  #: actions kept per rule kind, and constraints and duties kept per policy
MAX_DEPTH = 4  #: levels of constraints and duties inside one another that are read (the rest is "...")
MAX_POLICIES = 16  #: distinct policy URLs fetched for one tdmrep.json (more would be a fetch storm, not an offer)

VCARD = "http://www.w3.org/2006/vcard/ns#"
#: the contact fields of the assigner and the vCard properties each is read from, in order of preference
CONTACT = {
    "name": ("fn", "organization-name", "nickname"),
    "email": ("hasEmail",),
    "url": ("hasURL",),
    "phone": ("hasTelephone",),
}


@dataclass(frozen=True)
class OdrlPolicy:
    """What the evidence cites of a policy: its assigner's contact and the actions it permits or prohibits."""

    uid: str | None = None
    assigner: Mapping[str, str] | None = None  #: name, email, url, phone (those given), and uid
    permission: tuple[str, ...] = ()
    prohibition: tuple[str, ...] = ()
    #: the conditions its rules are offered under, one text each: ``permission tdm:mine: purpose eq research``
    constraint: tuple[str, ...] = ()
    #: what its rules require in return (a permission's ``duty``, the policy's ``obligation``, a prohibition's
    #: ``remedy``): ``permission tdm:mine: duty compensate (payAmount eq 100.00, unit EUR)``
    duty: tuple[str, ...] = ()
    error: str | None = None  #: why it could not be read (then nothing else is set)


def policy_url(base: str, raw: str | None) -> str | None:
    """The absolute http(s) URL a ``tdm-policy`` value names (relative to where it was read), or None."""
    if not raw or not isinstance(raw, str):
        return None
    try:
        url = urljoin(base, raw.strip())
    except ValueError:
        return None
    return url if url.startswith(("http://", "https://")) and len(url) <= 2048 else None


def parse_odrl_policy(body: bytes | str) -> OdrlPolicy:
    """Read a policy document. Never raises: anything that is not a JSON object has ``error`` set.

    Remembered per body (a policy named by many entries or pages is read once)."""
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    return _parse(body)


@lru_cache(maxsize=64)
def _parse(body: bytes | str) -> OdrlPolicy:
    try:
        data = json.loads(body)  # bytes: UTF-8 (a byte order mark too), UTF-16 or UTF-32, as json tells them apart
    except (ValueError, RecursionError, TypeError) as exc:
        return OdrlPolicy(error=f"not JSON ({type(exc).__name__})")
    if isinstance(data, list) and len(data) == 1:  # a JSON-LD document may wrap its one node in an array
        data = data[0]
    if not isinstance(data, dict):
        return OdrlPolicy(error=f"not a JSON object but {type(data).__name__}")
    try:
        permission, prohibition = _get(data, "permission"), _get(data, "prohibition")
        terms = _Terms()
        for kind, rules in (("permission", permission), ("prohibition", prohibition)):
            for rule in _rules(rules):
                terms.rule(kind, rule)
        for duty in _rules(_get(data, "obligation")):
            terms.duty("obligation", duty, 0)
        return OdrlPolicy(_text(_get(data, "uid", "@id")), _assigner(_get(data, "assigner")),
                          _actions(permission), _actions(prohibition), tuple(terms.constraints),
                          tuple(terms.duties))
    except RecursionError:
        return OdrlPolicy(error="nested too deeply")


def _get(node: Mapping[str, Any], *names: str) -> Any:
    """A property by its compact name, its ``odrl:`` name or its full IRI."""
    for name in names:
        for key in (name, f"odrl:{name}", f"http://www.w3.org/ns/odrl/2/{name}"):
            if key in node:
                return node[key]
    return None


def _text(value: Any) -> str | None:
    """A JSON-LD value as text: a string, a number, ``{"@id"}``, ``{"@value"}`` or the first of a list."""
    for _ in range(8):
        if isinstance(value, list):
            value = value[0] if value else None
        elif isinstance(value, dict):
            value = value.get("@id", value.get("@value", value.get("rdf:value", value.get("value"))))
        else:
            break
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = " ".join(str(value).split())
    return text[:MAX_TEXT] or None


def _vcard(node: Mapping[str, Any], name: str) -> Any:
    for key in (f"vcard:{name}", name, VCARD + name):
        if key in node:
            return node[key]
    return None


def _assigner(value: Any) -> dict[str, str] | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        text = _text(value)
        return {"uid": text} if text else None
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    uid = _text(value.get("uid", value.get("@id")))
    if uid:
        out["uid"] = uid
    for field, names in CONTACT.items():
        for name in names:
            text = _text(_vcard(value, name))
            if text:
                out[field] = text.removeprefix("mailto:") if field == "email" else text.removeprefix("tel:")
                break
    return out or None


def _rules(rules: Any) -> list[dict[str, Any]]:
    """A rule list (or one rule) as its rule objects, at most 1000."""
    if isinstance(rules, dict):
        rules = [rules]
    return [rule for rule in rules[:1000] if isinstance(rule, dict)] if isinstance(rules, list) else []


class _Terms:
    """The constraints and duties of a policy's rules, each as one short text naming the rule it belongs to, in
    document order, distinct, at most :data:`MAX_ACTIONS` of each (what a reviewer needs to see what the offer is
    conditional on; the document itself is the reference)."""

    def __init__(self) -> None:
        self.constraints: dict[str, None] = {}
        self.duties: dict[str, None] = {}

    def rule(self, kind: str, rule: Mapping[str, Any]) -> None:
        label = f"{kind} {_text(_get(rule, 'action')) or '?'}"
        for constraint in _rules(_get(rule, "constraint")):
            _add(self.constraints, f"{label}: {_constraint(constraint, 0)}")
        for duty in _rules(_get(rule, "duty")):
            self.duty(f"{label}: duty", duty, 0)
        for remedy in _rules(_get(rule, "remedy")):
            self.duty(f"{label}: remedy", remedy, 0)

    def duty(self, label: str, duty: Mapping[str, Any], depth: int) -> None:
        conditions = [_constraint(c, depth + 1) for c in _rules(_get(duty, "constraint"))]
        action = _text(_get(duty, "action")) or "?"
        # a refined action (``compensate`` with its ``payAmount``): the refinement is what the duty asks
        refined = _get(duty, "action")
        if isinstance(refined, list) and refined:
            refined = refined[0]
        if isinstance(refined, dict):
            conditions += [_constraint(c, depth + 1) for c in _rules(_get(refined, "refinement"))]
        _add(self.duties, f"{label} {action}" + (f" ({'; '.join(conditions)})" if conditions else ""))


def _add(found: dict[str, None], text: str) -> None:
    if len(found) < MAX_ACTIONS:
        found[text[:MAX_TEXT]] = None


def _constraint(node: Mapping[str, Any], depth: int) -> str:
    """One constraint as text: ``leftOperand operator rightOperand`` (with its ``unit``), or a logical one
    (``and``, ``or``, ``xone``, ``andSequence``) as ``and(...; ...)``; deeper than :data:`MAX_DEPTH`: ``...``."""
    if depth > MAX_DEPTH:
        return "..."
    for logical in ("and", "or", "xone", "andSequence"):
        parts = _get(node, logical)
        if parts is not None:
            inner = [_constraint(c, depth + 1) for c in _rules(parts.get("@list", parts) if isinstance(parts, dict)
                                                              else parts)]
            return f"{logical}({'; '.join(inner[:8])})"[:MAX_TEXT]
    left, operator = _text(_get(node, "leftOperand")) or "?", _text(_get(node, "operator")) or "?"
    right = _text(_get(node, "rightOperand", "rightOperandReference"))
    unit = _text(_get(node, "unit"))
    return (f"{left} {operator} {right if right is not None else '?'}" + (f", unit {unit}" if unit else ""))[:MAX_TEXT]


def _actions(rules: Any) -> tuple[str, ...]:
    """The actions of a rule list (or one rule): each rule's ``action``, itself text, an object or a list."""
    if isinstance(rules, dict):
        rules = [rules]
    if not isinstance(rules, list):
        return ()
    found: dict[str, None] = {}
    for rule in rules[:1000]:
        if not isinstance(rule, dict):
            continue
        actions = _get(rule, "action")
        for action in actions if isinstance(actions, list) else [actions]:
            text = _text(action)
            if text:
                found[text] = None
    return tuple(found)[:MAX_ACTIONS]


def policy_evidence(url: str | None, files: Mapping[str, SignalFile] | None) -> dict[str, Any]:
    """The evidence fields for a named policy (``tdm_policy_*``): what its fetch gave and what it says.

    ``files``: the policies fetched, by URL (None: the caller fetches none, e.g. a pure test)."""
    if url is None:
        return {"tdm_policy_status": "not fetched", "tdm_policy_cause": "not an http(s) URL"}
    file = files.get(url) if files is not None else None
    if file is None:
        return {"tdm_policy_status": "not fetched"} if files is not None else {}
    out: dict[str, Any] = {"tdm_policy_fetched_at": file.fetched_at.isoformat()}
    if file.status is SignalFileStatus.ABSENT:
        return {"tdm_policy_status": "not found", "tdm_policy_cause": file.cause, **out}
    if file.status is SignalFileStatus.UNAVAILABLE:
        return {"tdm_policy_status": "unavailable", "tdm_policy_cause": file.cause, **out}
    policy = parse_odrl_policy(file.body)
    if policy.error is not None:
        return {"tdm_policy_status": "unreadable", "tdm_policy_cause": policy.error, **out}
    out.update(tdm_policy_status="read", tdm_policy_assigner=dict(policy.assigner or {}),
               tdm_policy_permission=list(policy.permission), tdm_policy_prohibition=list(policy.prohibition))
    if policy.constraint:
        out["tdm_policy_constraint"] = list(policy.constraint)
    if policy.duty:
        out["tdm_policy_duty"] = list(policy.duty)
    if policy.uid:
        out["tdm_policy_uid"] = policy.uid
    return out


def distinct(urls: Iterable[str | None]) -> list[str]:
    """The policy URLs to fetch: each once, in the order named, at most :data:`MAX_POLICIES`."""
    return [u for u in dict.fromkeys(u for u in urls if u)][:MAX_POLICIES]
