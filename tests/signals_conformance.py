"""The operator-signal conformance table (issue #13): one row per case from each specification.

Each row is what a site serves (its files by path with their status, the page's headers and HTML), the URL, the
purpose, and the expected verdict and reason. ``tests/test_signals_conformance.py`` runs every row through the
pure signal modules as a crawl would: robots.txt first, then the site-level signals (before the fetch), then the
response-level ones. Phase 2 runs the same rows through ``consentcrawl check --json`` against a local server
serving ``files``, ``headers`` and ``html``: nothing in a row is specific to the pure runner.

Sources: TDMRep = W3C TDMRep CG Final Report (2024); AIPREF = draft-ietf-aipref-vocab-07 (§6 format, §6.4/§7
processing, §7.1 combining) and draft-ietf-aipref-attach-05 (§3 header, §4 robots.txt rule, §4.4 example);
CS = Cloudflare Content Signals policy (2025) and its 2026 ``use=`` extension; RSL = RSL 1.0 (2025-11);
AITXT = Spawning ai.txt; signals.md = ``shared/reference/signals.md`` (the combination and purpose table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SITE = "https://site.example"
ROBOTS_OPEN = "User-agent: *\nAllow: /\n"
NS = 'xmlns="https://rslstandard.org/rsl"'
UNREACHABLE = 503  #: a status that makes a file unavailable (also what a network error gives)


@dataclass(frozen=True)
class Case:
    id: str
    spec: str  #: "tdmrep", "aipref", "content-signal", "rsl", "ai-txt", "combine"
    source: str  #: the section or example of the specification the row comes from
    path: str  #: the page's path on SITE
    purpose: str
    expect: str  #: "allow" or "deny"
    reason: str | None = None  #: the deny's reason code
    files: Mapping[str, tuple[int, str]] = field(default_factory=dict)  #: path -> (HTTP status, body)
    headers: tuple[tuple[str, str], ...] = ()  #: the page's response headers
    html: str | None = None  #: the page's body
    conservative: bool = True
    stores_items: bool = True
    token: str = "consentcrawl"
    #: {"purposes": [...], "reference": ..., "overrides_signals": ..., "research_exception": (statement, reference),
    #:  "signal_licence": reference}
    platform: Mapping[str, Any] | None = None
    research_exception: tuple[str, str] | None = None  #: (statement, reference)
    licence_held: str | None = None
    custom: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  #: custom purpose -> counts as
    evidence: Mapping[str, Any] = field(default_factory=dict)  #: key/value some evidence entry must show
    conflict: bool = False  #: a signal-conflict must be recorded
    #: URLs (on any host) the site's server must never be asked for: a side request decided and denied
    never_fetched: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return SITE + self.path


def robots(*lines: str) -> tuple[int, str]:
    return 200, "\n".join(lines) + "\n"


def tdm(body: str, status: int = 200) -> dict[str, tuple[int, str]]:
    return {"/.well-known/tdmrep.json": (status, body)}


def rsl(content: str, robots_extra: str = "") -> dict[str, tuple[int, str]]:
    return {"/robots.txt": robots("User-agent: *", "Allow: /", f"License: {SITE}/license.xml", robots_extra),
            "/license.xml": (200, f"<rsl {NS}>{content}</rsl>")}


#: a tdm-policy as the TDMRep policy profile writes it: an ODRL Offer whose assigner has vCard contact details
POLICY = json.dumps({
    "@context": ["http://www.w3.org/ns/odrl.jsonld", {"tdm": "http://www.w3.org/ns/tdmrep#"}],
    "@type": "Offer", "profile": "http://www.w3.org/ns/tdmrep", "uid": f"{SITE}/policy.json",
    "assigner": {"uid": SITE, "vcard:fn": "Site Press", "vcard:hasEmail": "mailto:tdm@site.example",
                 "vcard:hasURL": f"{SITE}/contact", "vcard:hasTelephone": "tel:+33-1-23-45-67-89"},
    "permission": [{"target": f"{SITE}/catalog", "action": "tdm:mine",
                    "duty": [{"action": "compensate"}]}],
    "prohibition": [{"target": f"{SITE}/catalog", "action": ["tdm:mine", "odrl:distribute"]}]})
POLICY_ASSIGNER = {"uid": SITE, "name": "Site Press", "email": "tdm@site.example", "url": f"{SITE}/contact",
                   "phone": "+33-1-23-45-67-89"}
PEOPLE = "http://people.example"  #: a platform of people (the check runner configures it): /u/ID is a profile


def policy_site(status: int, body: str, reservation: int = 1) -> dict[str, tuple[int, str]]:
    return {**tdm(f'[{{"location": "/", "tdm-reservation": {reservation}, "tdm-policy": "{SITE}/policy.json"}}]'),
            "/policy.json": (status, body)}


def head(*tags: str) -> str:
    return f"<!doctype html><html><head>{''.join(tags)}</head><body><p>text</p></body></html>"


T_SIG = "terms.signal."
R_SIG = "response.signal."
DEFAULT_DENY = "terms.default-deny"

CASES: list[Case] = [
    # -- TDMRep ---------------------------------------------------------------------------------------------
    Case("tdm-file-1-training", "tdmrep", "§3.2 well-known file, reservation 1", "/a", "ai-training", "deny",
         T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-file-1-input", "tdmrep", "§3.2; signals.md: TDM covers ai-input", "/a", "ai-input", "deny",
         T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-file-1-profiling", "tdmrep", "signals.md: TDM covers profiling", "/a", "commercial-profiling", "deny",
         T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-file-1-research", "tdmrep", "signals.md: research denied by a reservation", "/a", "research", "deny",
         T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-file-1-search", "tdmrep", "signals.md: a reservation says nothing about search", "/a",
         "search-indexing", "allow", files=tdm('[{"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-research-exception", "tdmrep", "issue #13: research exception with a reference", "/a", "research",
         "allow", files=tdm('[{"location": "/", "tdm-reservation": 1}]'),
         research_exception=("DSM Directive art. 3, university research", "ETHICS-2026-4")),
    Case("tdm-research-exception-no-ref", "tdmrep", "issue #13: a statement without a reference does not count",
         "/a", "research", "deny", T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]'),
         research_exception=("we are researchers", "")),
    Case("tdm-file-0-training", "tdmrep", "§3.2 reservation 0: not reserved", "/a", "ai-training", "allow",
         files=tdm('[{"location": "/", "tdm-reservation": 0}]')),
    Case("tdm-file-0-input", "tdmrep", "signals.md: ai-input needs its own allow", "/a", "ai-input", "deny",
         DEFAULT_DENY, tdm('[{"location": "/", "tdm-reservation": 0}]')),
    Case("tdm-policy-evidence", "tdmrep", "§3.2 tdm-policy recorded", "/a", "ai-training", "deny", T_SIG + "tdmrep",
         policy_site(404, ""), evidence={"tdm_policy": "https://site.example/policy.json"}),
    Case("tdm-policy-read", "tdmrep", "§4 TDM policy: the assigner's contact and actions, as evidence", "/a",
         "ai-training", "deny", T_SIG + "tdmrep", policy_site(200, POLICY),
         evidence={"tdm_policy_status": "read", "tdm_policy_assigner": POLICY_ASSIGNER,
                   "tdm_policy_permission": ["tdm:mine"], "tdm_policy_prohibition": ["tdm:mine", "odrl:distribute"]}),
    Case("tdm-policy-offer-not-licence", "tdmrep", "§4 a policy that permits mining does not lift a reservation",
         "/a", "research", "deny", T_SIG + "tdmrep", policy_site(200, POLICY), evidence={"tdm_policy_status": "read"}),
    Case("tdm-policy-with-0", "tdmrep", "a policy beside reservation 0 is recorded; 0 decides", "/a", "research",
         "allow", files=policy_site(200, POLICY, 0), evidence={"tdm_policy_status": "read"}),
    Case("tdm-policy-404", "tdmrep", "a policy that is not there: recorded, the reservation decides", "/a",
         "ai-training", "deny", T_SIG + "tdmrep", policy_site(404, "not found"),
         evidence={"tdm_policy_status": "not found"}),
    Case("tdm-policy-unreachable", "tdmrep", "an unreachable policy: recorded, the reservation decides", "/a",
         "research", "allow", files=policy_site(UNREACHABLE, "", 0), evidence={"tdm_policy_status": "unavailable"}),
    Case("tdm-policy-garbage", "tdmrep", "a policy that is not JSON: unreadable, never an allow", "/a",
         "ai-training", "deny", T_SIG + "tdmrep", policy_site(200, '{"assigner": [[[ not json'),
         evidence={"tdm_policy_status": "unreadable"}),
    Case("tdm-policy-not-object", "tdmrep", "a JSON policy that is not an object: unreadable", "/a", "ai-training",
         "deny", T_SIG + "tdmrep", policy_site(200, '"just text"'), evidence={"tdm_policy_status": "unreadable"}),
    Case("tdm-policy-redirect-to-profile", "tdmrep", "a policy redirecting to a person's profile is not fetched",
         "/a", "ai-training", "deny", T_SIG + "tdmrep", policy_site(302, f"{PEOPLE}/u/7"),
         evidence={"tdm_policy_status": "unavailable"}, never_fetched=(f"{PEOPLE}/u/7",)),
    Case("tdm-policy-profile", "tdmrep", "a policy URL that is a person's profile is not fetched", "/a",
         "ai-training", "deny", T_SIG + "tdmrep",
         tdm(f'[{{"location": "/", "tdm-reservation": 1, "tdm-policy": "{PEOPLE}/u/7"}}]'),
         never_fetched=(f"{PEOPLE}/u/7",)),
    Case("tdm-policy-header", "tdmrep", "§3.3 the tdm-policy header: fetched and cited", "/a", "ai-training",
         "deny", R_SIG + "tdmrep", {"/policy.json": (200, POLICY)},
         headers=(("tdm-reservation", "1"), ("tdm-policy", "/policy.json")),
         evidence={"tdm_policy_status": "read", "tdm_policy_assigner": POLICY_ASSIGNER}),
    Case("tdm-policy-meta-garbage", "tdmrep", "§3.4 the tdm-policy meta tag, its document garbage", "/a",
         "research", "deny", R_SIG + "tdmrep", {"/p.json": (200, "\x00\xff<html>")},
         html=head('<meta name="tdm-reservation" content="1">', '<meta name="tdm-policy" content="/p.json">'),
         evidence={"tdm_policy_status": "unreadable"}),
    Case("tdm-order-first-wins-specific", "tdmrep", "array order: first matching location", "/free/a", "research",
         "allow",
         files=tdm('[{"location": "/free/*", "tdm-reservation": 0}, {"location": "/*", "tdm-reservation": 1}]')),
    Case("tdm-order-first-wins-general", "tdmrep", "array order: first matching location", "/other", "research",
         "deny", T_SIG + "tdmrep",
         tdm('[{"location": "/free/*", "tdm-reservation": 0}, {"location": "/*", "tdm-reservation": 1}]')),
    Case("tdm-order-not-longest", "tdmrep", "array order, not longest match", "/free/a", "research", "deny",
         T_SIG + "tdmrep",
         tdm('[{"location": "/*", "tdm-reservation": 1}, {"location": "/free/*", "tdm-reservation": 0}]')),
    Case("tdm-case-sensitive-miss", "tdmrep", "location matching is case-sensitive", "/private/a", "research",
         "allow", files=tdm('[{"location": "/Private/", "tdm-reservation": 1}]')),
    Case("tdm-case-sensitive-hit", "tdmrep", "location matching is case-sensitive", "/Private/a", "research",
         "deny", T_SIG + "tdmrep", tdm('[{"location": "/Private/", "tdm-reservation": 1}]')),
    Case("tdm-dollar-hit", "tdmrep", "robots-style $ anchor", "/doc.pdf", "research", "deny", T_SIG + "tdmrep",
         tdm('[{"location": "/*.pdf$", "tdm-reservation": 1}]')),
    Case("tdm-dollar-miss", "tdmrep", "robots-style $ anchor", "/doc.pdf?page=2", "research", "allow",
         files=tdm('[{"location": "/*.pdf$", "tdm-reservation": 1}]')),
    Case("tdm-absolute-location", "tdmrep", "a location written as a full URL on this origin", "/a", "research",
         "deny", T_SIG + "tdmrep", tdm('[{"location": "https://site.example/", "tdm-reservation": 1}]')),
    Case("tdm-absolute-location-other-origin", "tdmrep", "a full URL on another origin does not match", "/a",
         "research", "allow", files=tdm('[{"location": "https://other.example/", "tdm-reservation": 1}]')),
    Case("tdm-invalid-string", "tdmrep", "a value other than 0 or 1 is unset", "/a", "research", "allow",
         files=tdm('[{"location": "/", "tdm-reservation": "1"}]')),
    Case("tdm-invalid-bool", "tdmrep", "true is not 1", "/a", "research", "allow",
         files=tdm('[{"location": "/", "tdm-reservation": true}]')),
    Case("tdm-invalid-2", "tdmrep", "2 is a protocol error", "/a", "research", "allow",
         files=tdm('[{"location": "/", "tdm-reservation": 2}]')),
    Case("tdm-invalid-no-fallthrough", "tdmrep", "the first match decides even when unset (our reading)", "/a",
         "research", "allow",
         files=tdm('[{"location": "/", "tdm-reservation": "yes"}, {"location": "/", "tdm-reservation": 1}]')),
    Case("tdm-not-json", "tdmrep", "a body that is not a JSON array is no statement", "/a", "research", "allow",
         files=tdm("<html>not found</html>")),
    Case("tdm-object-not-array", "tdmrep", "an object, not an array", "/a", "research", "allow",
         files=tdm('{"location": "/", "tdm-reservation": 1}')),
    Case("tdm-404", "tdmrep", "issue #13: a 404 is no statement", "/a", "research", "allow",
         files=tdm("", 404)),
    Case("tdm-unreachable", "tdmrep", "issue #13: 5xx makes the signal unavailable", "/a", "research", "deny",
         "terms.signal-unavailable.tdmrep", tdm("", UNREACHABLE)),
    Case("tdm-unreachable-search", "tdmrep", "unavailable denies only what the signal covers", "/a",
         "search-indexing", "allow", files=tdm("", UNREACHABLE)),
    Case("tdm-header-1", "tdmrep", "§3.3 header", "/a", "research", "deny", R_SIG + "tdmrep",
         headers=(("tdm-reservation", "1"),)),
    Case("tdm-header-name-case", "tdmrep", "§3.3 header names are case-insensitive", "/a", "research", "deny",
         R_SIG + "tdmrep", headers=(("TDM-Reservation", "1"),)),
    Case("tdm-header-invalid", "tdmrep", "a header value other than 0/1 is unset", "/a", "research", "allow",
         headers=(("tdm-reservation", "yes"),)),
    Case("tdm-header-two-lines", "tdmrep", "two header lines disagree: the most restrictive (our reading)", "/a",
         "research", "deny", R_SIG + "tdmrep", headers=(("tdm-reservation", "0"), ("tdm-reservation", "1"))),
    Case("tdm-header-over-file", "tdmrep", "precedence file < header", "/a", "ai-training", "deny",
         R_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 0}]'), headers=(("tdm-reservation", "1"),),
         evidence={"overrides": "tdmrep.json[0] tdm-reservation 0"}),
    Case("tdm-file-denies-before-fetch", "tdmrep", "the file is read before the fetch: a header cannot relax it",
         "/a", "research", "deny", T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]'),
         headers=(("tdm-reservation", "0"),)),
    Case("tdm-meta-1", "tdmrep", "§3.4 HTML meta", "/a", "research", "deny", R_SIG + "tdmrep",
         html=head('<meta name="tdm-reservation" content="1">')),
    Case("tdm-meta-over-header", "tdmrep", "precedence header < meta", "/a", "research", "allow",
         headers=(("tdm-reservation", "1"),), html=head('<meta name="tdm-reservation" content="0">')),
    Case("tdm-meta-over-header-deny", "tdmrep", "precedence header < meta", "/a", "research", "deny",
         R_SIG + "tdmrep", headers=(("tdm-reservation", "0"),),
         html=head('<meta name="tdm-reservation" content="1">')),
    Case("tdm-missing-meta-no-reset", "tdmrep", "a missing value never resets", "/a", "research", "deny",
         R_SIG + "tdmrep", {"/x": (404, "")}, headers=(("tdm-reservation", "1"),),
         html=head('<meta name="tdm-policy" content="x">')),
    Case("tdm-invalid-meta-no-reset", "tdmrep", "an invalid value is unset, so it resets nothing", "/a", "research",
         "deny", R_SIG + "tdmrep", headers=(("tdm-reservation", "1"),),
         html=head('<meta name="tdm-reservation" content="2">')),
    Case("tdm-meta-in-body", "tdmrep", "a meta tag outside the head does not count", "/a", "research", "allow",
         html='<html><head></head><body><meta name="tdm-reservation" content="1"></body></html>'),
    Case("tdm-meta-commented", "tdmrep", "a commented-out meta tag does not count", "/a", "research", "allow",
         html=head('<!-- <meta name="tdm-reservation" content="1"> -->')),
    Case("tdm-header-policy", "tdmrep", "§3.3 tdm-policy header recorded", "/a", "ai-training", "deny",
         R_SIG + "tdmrep", {"/p.json": (404, "")},
         headers=(("tdm-reservation", "1"), ("tdm-policy", "https://site.example/p.json")),
         evidence={"tdm_policy": "https://site.example/p.json"}),

    # -- IETF AIPREF: the header ----------------------------------------------------------------------------
    Case("cu-header-n", "aipref", "attach §3; vocab §6", "/a", "ai-training", "deny", R_SIG + "content-usage",
         headers=(("Content-Usage", "train-ai=n"),)),
    Case("cu-header-y", "aipref", "vocab §6: y allows", "/a", "ai-training", "allow",
         headers=(("Content-Usage", "train-ai=y"),)),
    Case("cu-header-search-n", "aipref", "vocab §6 example: search=n", "/a", "search-indexing", "deny",
         R_SIG + "content-usage", headers=(("Content-Usage", "train-ai=y, search=n"),)),
    Case("cu-header-example-allow", "aipref", "vocab §6 example: train-ai=y", "/a", "ai-training", "allow",
         headers=(("Content-Usage", "train-ai=y, search=n"),)),
    Case("cu-dup-types-unknown-train", "aipref", "vocab §6.4.1: last duplicate is a boolean: unknown", "/a",
         "ai-training", "deny", DEFAULT_DENY,
         headers=(("Content-Usage", 'train-ai=y, train-ai, search=n, search="n"'),)),
    Case("cu-dup-types-unknown-search", "aipref", "vocab §6.4.1: last duplicate is a string: unknown", "/a",
         "search-indexing", "allow", headers=(("Content-Usage", 'train-ai=y, train-ai, search=n, search="n"'),)),
    Case("cu-params-last-wins", "aipref", "vocab §6.4.2: parameters of the chosen value only", "/a", "ai-training",
         "allow", headers=(("Content-Usage", "train-ai;allow=n, train-ai=y"),)),
    Case("cu-params-ignored", "aipref", "vocab §6.3: unknown parameters ignored", "/a", "ai-training", "deny",
         R_SIG + "content-usage", headers=(("Content-Usage", 'train-ai=n;why="x";until=2030'),)),
    Case("cu-dup-last-wins", "aipref", "RFC 9651 §4.2.2: the last duplicate key wins", "/a", "ai-training",
         "allow", headers=(("Content-Usage", "train-ai=n, train-ai=y"),)),
    Case("cu-uppercase-key-invalid", "aipref", "vocab §6.4.1: an upper-case key fails the whole field", "/a",
         "ai-training", "deny", DEFAULT_DENY, headers=(("Content-Usage", "train-ai=n, Search=y"),)),
    Case("cu-uppercase-key-invalid-search", "aipref", "an invalid field allows nothing", "/a", "search-indexing",
         "allow", headers=(("Content-Usage", "Search=n"),)),
    Case("cu-trailing-comma", "aipref", "RFC 9651: a trailing comma is invalid", "/a", "ai-training", "deny",
         DEFAULT_DENY, headers=(("Content-Usage", "train-ai=n,"),)),
    Case("cu-token-N", "aipref", "vocab §6.4: only the tokens y and n", "/a", "ai-training", "deny", DEFAULT_DENY,
         headers=(("Content-Usage", "train-ai=N"),)),
    Case("cu-string-n", "aipref", "vocab §6.4: a string is not a token", "/a", "ai-training", "deny", DEFAULT_DENY,
         headers=(("Content-Usage", 'train-ai="n"'),)),
    Case("cu-bool", "aipref", "vocab §6.4: a boolean is not a token", "/a", "ai-training", "deny", DEFAULT_DENY,
         headers=(("Content-Usage", "train-ai=?0"),)),
    Case("cu-unknown-key", "aipref", "vocab §6.3: unknown keys ignored", "/a", "ai-training", "allow",
         headers=(("Content-Usage", "foo=n, train-ai=y"),)),
    Case("cu-two-lines", "aipref", "RFC 9110 §5.3: lines of one field are joined", "/a", "ai-training", "deny",
         R_SIG + "content-usage", headers=(("Content-Usage", "search=y"), ("content-usage", "train-ai=n"))),
    Case("cu-legacy-conservative", "aipref", "issue #13: legacy labels deny in conservative mode", "/a",
         "ai-training", "deny", R_SIG + "content-usage", headers=(("Content-Usage", "ai=n, train-ai=y"),),
         evidence={"note": "legacy label ai=n (older AIPREF drafts): a denial in conservative mode"},
         conflict=True),
    Case("cu-legacy-not-conservative", "aipref", "issue #13: ... and only there", "/a", "ai-training", "allow",
         headers=(("Content-Usage", "ai=n, train-ai=y"),), conservative=False),
    Case("cu-legacy-train-genai", "aipref", "legacy train-genai", "/a", "ai-training", "deny",
         R_SIG + "content-usage", headers=(("Content-Usage", "train-genai=n"),)),
    Case("cu-legacy-ai-use-input", "aipref", "legacy ai-use also speaks about ai-input (our reading)", "/a",
         "ai-input", "deny", R_SIG + "content-usage", headers=(("Content-Usage", "ai-use=n"),)),
    Case("cu-legacy-y-never-allows", "aipref", "a legacy label never allows", "/a", "ai-training", "deny",
         DEFAULT_DENY, headers=(("Content-Usage", "all=y"),)),

    # -- IETF AIPREF: the robots.txt rule -------------------------------------------------------------------
    *[Case(f"cu-robots-example-{name}", "aipref", "attach §4.4 example table", path, "ai-training", expect, reason,
           {"/robots.txt": robots("User-Agent: *", "Allow: /", "Disallow: /never/", "Content-Usage: / train-ai=n",
                                  "Content-Usage: /ai-ok/ train-ai=y", "", "User-Agent: ExampleBot", "Allow: /",
                                  "Content-Usage: / train-ai=y")})
      for name, path, expect, reason in (("test", "/test", "deny", T_SIG + "content-usage"),
                                         ("never", "/never/test", "deny", "robots.disallowed"),
                                         ("ai-ok", "/ai-ok/test", "allow", None))],
    Case("cu-robots-example-examplebot", "aipref", "attach §4.4: ExampleBot uses its own group", "/test",
         "ai-training", "allow", files={"/robots.txt": robots(
             "User-Agent: *", "Allow: /", "Content-Usage: / train-ai=n", "", "User-Agent: ExampleBot", "Allow: /",
             "Content-Usage: / train-ai=y")}, token="ExampleBot"),
    Case("cu-robots-group-other-bot", "aipref", "RFC 9309 group selection: another bot's group is not ours", "/a",
         "ai-training", "allow", files={"/robots.txt": robots(
             "User-agent: otherbot", "Content-Usage: / train-ai=n", "", "User-agent: *", "Allow: /",
             "Content-Usage: / train-ai=y")}),
    Case("cu-robots-group-ours-overrides-star", "aipref", "RFC 9309: our group overrides *", "/a", "ai-training",
         "deny", T_SIG + "content-usage", {"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=y", "", "User-agent: consentcrawl", "Allow: /",
             "Content-Usage: / train-ai=n")}),
    Case("cu-robots-same-path-conflict", "aipref", "attach §4.2: identical paths, most restrictive", "/a/b",
         "ai-training", "deny", T_SIG + "content-usage", {"/robots.txt": robots(
             "User-agent: *", "Allow: /", "Content-Usage: /a train-ai=y", "Content-Usage: /a train-ai=n")},
         conflict=True),
    Case("cu-robots-longest-deny", "aipref", "attach §4.2: longest path prefix", "/private/x", "ai-training",
         "deny", T_SIG + "content-usage", {"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=y", "Content-Usage: /private/ train-ai=n")}),
    Case("cu-robots-longest-allow", "aipref", "attach §4.2: longest path prefix", "/public/x", "ai-training",
         "allow", files={"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=y", "Content-Usage: /private/ train-ai=n")}),
    Case("cu-robots-wildcard", "aipref", "attach §4.2: robots matching, * and $", "/files/a.pdf", "ai-training",
         "deny", T_SIG + "content-usage", {"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=y", "Content-Usage: /*.pdf$ train-ai=n")}),
    Case("cu-robots-label-case", "aipref", "attach §4.3: the label in any case, spaces around the colon", "/a",
         "ai-training", "deny", T_SIG + "content-usage",
         {"/robots.txt": robots("User-agent: *", "CONTENT-USAGE :  /  train-ai=n")}),
    Case("cu-robots-comment", "aipref", "attach §4.3: the value ends at #", "/a", "ai-training", "deny",
         T_SIG + "content-usage", {"/robots.txt": robots("User-agent: *", "Content-Usage: / train-ai=n # no AI")}),
    Case("cu-robots-pathless-deny", "aipref", "a rule without a path: its denials count (our reading)", "/a",
         "ai-training", "deny", T_SIG + "content-usage",
         {"/robots.txt": robots("User-agent: *", "Content-Usage: train-ai=n")}),
    Case("cu-robots-pathless-allow-ignored", "aipref", "a rule without a path never allows (our reading)", "/a",
         "ai-training", "deny", DEFAULT_DENY, {"/robots.txt": robots("User-agent: *", "Content-Usage: train-ai=y")}),
    Case("cu-robots-invalid-longest", "aipref", "vocab §6.4.1: the longest rule does not parse: unknown", "/x/y",
         "ai-training", "deny", DEFAULT_DENY, {"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=n", "Content-Usage: /x Train-AI=y")}),
    Case("cu-robots-and-header-deny", "aipref", "header and robots rule combine, deny wins", "/a", "ai-training",
         "deny", R_SIG + "content-usage", {"/robots.txt": robots("User-agent: *", "Content-Usage: / train-ai=y")},
         headers=(("Content-Usage", "train-ai=n"),), conflict=True),
    Case("cu-robots-percent-encoding", "aipref", "attach §4.2: paths compared percent-encoded", "/caf%C3%A9/menu",
         "ai-training", "deny", T_SIG + "content-usage", {"/robots.txt": robots(
             "User-agent: *", "Content-Usage: / train-ai=y", "Content-Usage: /café/ train-ai=n")}),
    Case("cu-robots-disallowed-longer", "aipref", "attach §4.2: no preferences where we may not crawl", "/x/y",
         "ai-training", "deny", "robots.disallowed", {"/robots.txt": robots(
             "User-agent: *", "Disallow: /x/", "Content-Usage: /x/ train-ai=y")}),
    Case("cu-robots-404", "aipref", "no robots.txt: no rule", "/a", "search-indexing", "allow",
         files={"/robots.txt": (404, "")}),
    Case("cu-robots-rule-ends-agents", "aipref", "attach §4: Content-Usage is a group rule: it ends the user-agent"
         " lines, so the next User-agent line starts a new group", "/a", "ai-training", "allow", files={
             "/robots.txt": robots("User-agent: otherbot", "Content-Usage: / train-ai=n", "User-agent: *",
                                   "Content-Usage: / train-ai=y")}),

    # -- Cloudflare Content Signals -------------------------------------------------------------------------
    Case("cs-default-train", "content-signal", "Cloudflare's managed robots.txt", "/a", "ai-training", "deny",
         T_SIG + "content-signal", {"/robots.txt": robots(
             "User-Agent: *", "Content-Signal: search=yes, ai-train=no", "Allow: /")}),
    Case("cs-default-search", "content-signal", "search=yes allows", "/a", "search-indexing", "allow",
         files={"/robots.txt": robots("User-Agent: *", "Content-Signal: search=yes, ai-train=no", "Allow: /")}),
    Case("cs-omitted", "content-signal", "an omitted signal neither grants nor restricts", "/a", "ai-input",
         "deny", DEFAULT_DENY, {"/robots.txt": robots(
             "User-Agent: *", "Content-Signal: search=yes, ai-train=no", "Allow: /")}),
    Case("cs-ai-input-yes", "content-signal", "ai-input=yes allows", "/a", "ai-input", "allow",
         files={"/robots.txt": robots("User-Agent: *", "Content-Signal: ai-input=yes", "Allow: /")}),
    Case("cs-misspelt", "content-signal", "lenient: Content-Signals:", "/a", "ai-training", "deny",
         T_SIG + "content-signal", {"/robots.txt": robots("User-Agent: *", "Content-Signals: ai-train=no")}),
    Case("cs-any-case", "content-signal", "lenient: any case", "/a", "ai-training", "deny", T_SIG + "content-signal",
         {"/robots.txt": robots("User-Agent: *", "CONTENT-SIGNAL: AI-Train=No")}),
    Case("cs-no-spaces", "content-signal", "lenient: no spaces after commas", "/a", "ai-training", "deny",
         T_SIG + "content-signal", {"/robots.txt": robots("User-Agent: *", "Content-Signal: search=yes,ai-train=no")}),
    Case("cs-before-groups", "content-signal", "a line before any group applies to all agents", "/a", "ai-training",
         "deny", T_SIG + "content-signal",
         {"/robots.txt": robots("Content-Signal: ai-train=no", "", "User-agent: *", "Allow: /")}),
    Case("cs-other-bot-group", "content-signal", "RFC 9309: another bot's group is not ours", "/a", "ai-training",
         "deny", DEFAULT_DENY, {"/robots.txt": robots(
             "User-agent: otherbot", "Content-Signal: ai-train=no", "Allow: /", "", "User-agent: *", "Allow: /")}),
    Case("cs-our-group-overrides-star", "content-signal", "RFC 9309: our group overrides *", "/a", "ai-training",
         "allow", files={"/robots.txt": robots(
             "User-agent: *", "Content-Signal: ai-train=no", "Allow: /", "", "User-agent: consentcrawl", "Allow: /",
             "Content-Signal: ai-train=yes")}),
    Case("cs-preamble-and-group", "content-signal", "a global line still applies inside our group", "/a",
         "ai-training", "deny", T_SIG + "content-signal", {"/robots.txt": robots(
             "Content-Signal: ai-train=no", "User-agent: consentcrawl", "Content-Signal: ai-train=yes")},
         conflict=True),
    Case("cs-duplicate-in-line", "content-signal", "a repeated name: the most restrictive (our reading)", "/a",
         "ai-training", "deny", T_SIG + "content-signal",
         {"/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes, ai-train=no")}),
    Case("cs-garbage-value", "content-signal", "a value that is not yes/no is unknown", "/a", "ai-training", "deny",
         DEFAULT_DENY, {"/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=maybe")}),
    Case("cs-use-immediate", "content-signal", "use=immediate: nothing may be stored", "/a", "research", "deny",
         T_SIG + "content-signal",
         {"/robots.txt": robots("User-agent: *", "Content-Signal: search=yes, use=immediate")}),
    Case("cs-use-immediate-no-store", "content-signal", "use=immediate with a crawl that stores nothing", "/a",
         "research", "allow", files={"/robots.txt": robots("User-agent: *", "Content-Signal: use=immediate")},
         stores_items=False),
    Case("cs-use-reference", "content-signal", "use=reference is recorded, it does not deny", "/a", "research",
         "allow", files={"/robots.txt": robots("User-agent: *", "Content-Signal: use=reference")}),
    Case("cs-header-misspelt", "content-signal", "lenient: the Content-Signals header", "/a", "ai-training", "deny",
         R_SIG + "content-signal", headers=(("Content-Signals", "AI-Train=No"),)),
    Case("cs-header", "content-signal", "the same line as a response header", "/a", "ai-input", "deny",
         R_SIG + "content-signal", headers=(("Content-Signal", "ai-input=no"),)),

    # -- RSL 1.0 --------------------------------------------------------------------------------------------
    Case("rsl-permits-search-train", "rsl", "§3.4 permits: only the listed uses", "/a", "ai-training", "deny",
         T_SIG + "rsl", rsl('<content url="/"><license><permits type="usage">search</permits></license></content>')),
    Case("rsl-permits-search-search", "rsl", "§3.4 permits", "/a", "search-indexing", "allow",
         files=rsl('<content url="/"><license><permits type="usage">search</permits></license></content>')),
    Case("rsl-permits-comma-list", "rsl", "§3.4 comma- or space-separated tokens", "/a", "ai-input", "allow",
         files=rsl('<content url="/"><license><permits type="usage">search,ai-input</permits></license></content>')),
    Case("rsl-prohibits-train", "rsl", "§3.5 prohibits", "/a", "ai-training", "deny", T_SIG + "rsl",
         rsl('<content url="/"><license><prohibits type="usage">ai-train</prohibits></license></content>')),
    Case("rsl-ai-all", "rsl", "ai-all covers ai-input", "/a", "ai-input", "allow",
         files=rsl('<content url="/"><license><permits type="usage">ai-all</permits></license></content>')),
    Case("rsl-server", "rsl", "§3.2 server: a licence must be obtained, even a free one", "/a", "search-indexing",
         "deny", T_SIG + "rsl", rsl('<content url="/" server="https://lic.example/"><license>'
                                    '<permits type="usage">all</permits></license></content>')),
    Case("rsl-server-licence-held", "rsl", "issue #13: a recorded licence lifts server=", "/a", "search-indexing",
         "allow", files=rsl('<content url="/" server="https://lic.example/"><license>'
                            '<permits type="usage">all</permits></license></content>'), licence_held="RSL-77"),
    Case("rsl-server-platform-licence", "rsl", "issue #13: a licence recorded for the platform lifts server=", "/a",
         "search-indexing", "allow", files=rsl('<content url="/" server="https://lic.example/"><license>'
                                               '<permits type="usage">all</permits></license></content>'),
         platform={"purposes": ["search-indexing"], "reference": "MB-1", "signal_licence": "RSL-PLATFORM-9"},
         evidence={"licence_held": "RSL-PLATFORM-9"}),
    Case("rsl-server-platform-licence-first", "rsl", "the platform's licence before the setting's", "/a",
         "search-indexing", "allow", files=rsl('<content url="/" server="https://lic.example/"><license>'
                                               '<permits type="usage">all</permits></license></content>'),
         platform={"purposes": ["search-indexing"], "reference": "MB-1", "signal_licence": "RSL-PLATFORM-9"},
         licence_held="RSL-SETTING-1", evidence={"licence_held": "RSL-PLATFORM-9"}),
    Case("rsl-platform-licence-not-prohibition", "rsl", "a recorded licence never lifts a prohibition", "/a",
         "ai-training", "deny", T_SIG + "rsl",
         rsl('<content url="/" server="https://lic.example/"><license><prohibits type="usage">ai-train</prohibits>'
             '</license></content>'),
         platform={"purposes": ["ai-training"], "reference": "MB-1", "signal_licence": "RSL-PLATFORM-9"}),
    Case("rsl-payment", "rsl", "§3.6 payment: denied until a licence is recorded", "/a", "ai-training", "deny",
         T_SIG + "rsl", rsl('<content url="/"><license><permits type="usage">ai-train</permits>'
                            '<payment type="purchase"><amount currency="USD">10</amount></payment>'
                            '</license></content>')),
    Case("rsl-payment-free", "rsl", "payment type free is free (our reading)", "/a", "ai-training", "allow",
         files=rsl('<content url="/"><license><permits type="usage">ai-train</permits>'
                   '<payment type="free"/></license></content>')),
    Case("rsl-content-scope-miss", "rsl", "§3.2 content url: robots-style path scoping", "/news/a", "ai-training",
         "deny", DEFAULT_DENY, rsl('<content url="/blog/*"><license><permits type="usage">all</permits>'
                                   '</license></content>')),
    Case("rsl-content-scope-hit", "rsl", "§3.2 content url: robots-style path scoping", "/blog/a", "ai-training",
         "allow", files=rsl('<content url="/blog/*"><license><permits type="usage">all</permits>'
                            '</license></content>')),
    Case("rsl-content-longest", "rsl", "the longest matching content url applies", "/premium/a", "ai-input",
         "deny", T_SIG + "rsl", rsl('<content url="/"><license><permits type="usage">all</permits></license>'
                                    '</content><content url="/premium/" server="https://lic.example/"/>')),
    Case("rsl-content-full-url", "rsl", "§3.2 content url as a full URL", "/a", "ai-input", "allow",
         files=rsl('<content url="https://site.example/"><license><permits type="usage">ai-input</permits>'
                   '</license></content>')),
    Case("rsl-user-education-research", "rsl", "signals.md: RSL user education allows research", "/a", "research",
         "allow", files=rsl('<content url="/"><license><permits type="user">education</permits></license>'
                            '</content>')),
    Case("rsl-user-commercial-only-research", "rsl", "signals.md: RSL user class denies research", "/a",
         "research", "deny", T_SIG + "rsl",
         rsl('<content url="/"><license><permits type="user">commercial</permits></license></content>')),
    Case("rsl-prohibits-commercial", "rsl", "signals.md: prohibits commercial denies profiling", "/a",
         "commercial-profiling", "deny", T_SIG + "rsl",
         rsl('<content url="/"><license><prohibits type="user">commercial</prohibits></license></content>')),
    Case("rsl-never-grants-profiling", "rsl", "signals.md: profiling needs an agreement", "/a",
         "commercial-profiling", "deny", DEFAULT_DENY,
         rsl('<content url="/"><license><permits type="usage">all</permits></license></content>')),
    Case("rsl-alternatives", "rsl", "§3.3 several licences are alternatives", "/a", "search-indexing", "allow",
         files=rsl('<content url="/"><license><permits type="usage">ai-train</permits><payment type="purchase"/>'
                   '</license><license><permits type="usage">search</permits></license></content>')),
    Case("rsl-alternatives-paid", "rsl", "§3.3 the paid alternative still needs a licence", "/a", "ai-training",
         "deny", T_SIG + "rsl",
         rsl('<content url="/"><license><permits type="usage">ai-train</permits><payment type="purchase"/>'
             '</license><license><permits type="usage">search</permits></license></content>')),
    Case("rsl-relative-license-line", "rsl", "signals.md: License: takes an absolute URL", "/a", "ai-training",
         "deny", DEFAULT_DENY, {"/robots.txt": robots("User-agent: *", "License: /license.xml"),
                                "/license.xml": (200, f'<rsl {NS}><content url="/"><license><permits type="usage">'
                                                      'all</permits></license></content></rsl>')}),
    Case("rsl-relative-license-line-denies", "rsl", "signals.md: a relative License: is read for its denials only",
         "/a", "search-indexing", "deny", T_SIG + "rsl",
         {"/robots.txt": robots("User-agent: *", "License: /license.xml"),
          "/license.xml": (200, f'<rsl {NS}><content url="/"><license><prohibits type="usage">search'
                                '</prohibits></license></content></rsl>')}),
    Case("rsl-license-line-upper-case-scheme", "rsl", "RFC 3986 §3.1: a scheme is case-insensitive", "/a",
         "search-indexing", "deny", T_SIG + "rsl",
         {"/robots.txt": robots("User-agent: *", f"License: {SITE.replace('https://', 'HTTPS://')}/license.xml"),
          "/license.xml": (200, f'<rsl {NS}><content url="/"><license><prohibits type="usage">search'
                                '</prohibits></license></content></rsl>')}),
    Case("rsl-license-line-outside-groups", "rsl", "§4: License: is global, wherever it is written", "/a",
         "ai-training", "deny", T_SIG + "rsl",
         {"/robots.txt": robots("User-agent: otherbot", "Disallow: /", f"License: {SITE}/license.xml", "",
                                "User-agent: *", "Allow: /"),
          "/license.xml": (200, f'<rsl {NS}><content url="/"><license><prohibits type="usage">ai-train'
                                '</prohibits></license></content></rsl>')}),
    Case("rsl-licence-404", "rsl", "a licence that is not there is no statement", "/a", "search-indexing", "allow",
         files={"/robots.txt": robots("User-agent: *", f"License: {SITE}/license.xml"),
                "/license.xml": (404, "")}),
    Case("rsl-licence-unreachable", "rsl", "an unreachable licence is unavailable", "/a", "search-indexing", "deny",
         "terms.signal-unavailable.rsl", {"/robots.txt": robots("User-agent: *", f"License: {SITE}/license.xml"),
                                          "/license.xml": (UNREACHABLE, "")}),
    Case("rsl-xxe", "rsl", "no external entities: a DTD makes the licence unreadable", "/a", "search-indexing",
         "deny", "terms.signal-unavailable.rsl",
         {"/robots.txt": robots("User-agent: *", f"License: {SITE}/license.xml"),
          "/license.xml": (200, '<?xml version="1.0"?><!DOCTYPE rsl [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                f'<rsl {NS}><content url="/"><license><permits type="usage">&x;</permits>'
                                '</license></content></rsl>')}),
    Case("rsl-wrong-namespace", "rsl", "§3.1: the RSL namespace is required", "/a", "search-indexing", "deny",
         "terms.signal-unavailable.rsl", {"/robots.txt": robots("User-agent: *", f"License: {SITE}/license.xml"),
                                          "/license.xml": (200, '<rsl xmlns="https://example.org/x"><content url="/"/>'
                                                                '</rsl>')}),
    Case("rsl-link-header", "rsl", "§4 discovery by the Link header", "/a", "ai-training", "deny", R_SIG + "rsl",
         {"/license.xml": (200, f'<rsl {NS}><content url="/"><license><prohibits type="usage">ai-train</prohibits>'
                                '</license></content></rsl>')},
         headers=(("Link", f'<{SITE}/license.xml>; rel="license"; type="application/rsl+xml"'),)),
    Case("rsl-html-link", "rsl", "§4 discovery by <link rel=license>", "/a", "ai-training", "deny", R_SIG + "rsl",
         {"/license.xml": (200, f'<rsl {NS}><content url="/"><license><prohibits type="usage">all</prohibits>'
                                '</license></content></rsl>')},
         html=head('<link rel="license" type="application/rsl+xml" href="/license.xml">')),
    Case("rsl-cc-link-ignored", "rsl", "a rel=license link of another type is not RSL", "/a", "search-indexing",
         "allow", html=head('<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">')),

    # -- Spawning ai.txt ------------------------------------------------------------------------------------
    Case("aitxt-jpg", "ai-txt", "ai.txt: Disallow: *.jpg matches anywhere", "/img/cat.jpg", "ai-training", "deny",
         T_SIG + "ai-txt", {"/ai.txt": (200, "User-Agent: *\nDisallow: *.jpg\n"),
                            "/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")}, conflict=True),
    Case("aitxt-html-allowed", "ai-txt", "ai.txt: other paths are not denied", "/page.html", "ai-training",
         "allow", files={"/ai.txt": (200, "User-Agent: *\nDisallow: *.jpg\n"),
                         "/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")}),
    Case("aitxt-case-sensitive", "ai-txt", "robots matching is case-sensitive", "/img/cat.jpg", "ai-training",
         "allow", files={"/ai.txt": (200, "User-Agent: *\nDisallow: *.JPG\n"),
                         "/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")}),
    Case("aitxt-no-user-agent", "ai-txt", "rules without a User-Agent line apply to all", "/a", "ai-training",
         "deny", T_SIG + "ai-txt", {"/ai.txt": (200, "Disallow: /\n")}),
    Case("aitxt-not-conservative", "ai-txt", "issue #13: conservative mode only", "/img/cat.jpg", "ai-training",
         "allow", files={"/ai.txt": (200, "User-Agent: *\nDisallow: /\n"),
                         "/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")}, conservative=False),
    Case("aitxt-unreachable", "ai-txt", "an unreachable ai.txt is unavailable", "/a", "ai-training", "deny",
         "terms.signal-unavailable.ai-txt", {"/ai.txt": (UNREACHABLE, "")}),
    Case("aitxt-unreachable-research", "ai-txt", "ai.txt covers only ai-training", "/a", "research", "allow",
         files={"/ai.txt": (UNREACHABLE, "")}),

    # -- combining (signals.md, issue #13) -------------------------------------------------------------------
    Case("combine-conflict", "combine", "any deny wins, the conflict is recorded", "/a", "ai-training", "deny",
         T_SIG + "tdmrep", {**tdm('[{"location": "/", "tdm-reservation": 1}]'),
                            "/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")}, conflict=True),
    Case("combine-default-profiling", "combine", "off platform, unknown: profiling needs an allow", "/a",
         "commercial-profiling", "deny", DEFAULT_DENY),
    Case("combine-default-archiving", "combine", "off platform, unknown: archiving allowed", "/a", "archiving",
         "allow"),
    Case("combine-default-search", "combine", "off platform, unknown: search allowed", "/a", "search-indexing",
         "allow"),
    Case("combine-platform-fallback", "combine", "unknown falls back to the platform's grant", "/a", "ai-training",
         "allow", platform={"purposes": ["ai-training"], "reference": None}),
    Case("combine-platform-no-purpose", "combine", "the platform's grant is still required", "/a", "ai-training",
         "deny", "terms.purpose", {"/robots.txt": robots("User-agent: *", "Content-Signal: ai-train=yes")},
         platform={"purposes": ["research"], "reference": "MB-1"}),
    Case("combine-deny-beats-grant", "combine", "a signal deny stands against a grant", "/a", "ai-training", "deny",
         T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]'),
         platform={"purposes": ["ai-training"], "reference": "MB-1"}),
    Case("combine-agreement-overrides", "combine", "a grant with a reference and overrides_signals", "/a",
         "ai-training", "allow", files=tdm('[{"location": "/", "tdm-reservation": 1}]'),
         platform={"purposes": ["ai-training"], "reference": "MB-1", "overrides_signals": True},
         evidence={"overrides_signals": True}),
    Case("combine-override-needs-reference", "combine", "overrides_signals without a reference does nothing", "/a",
         "ai-training", "deny", T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]'),
         platform={"purposes": ["ai-training"], "reference": "", "overrides_signals": True}),
    Case("combine-custom-purpose", "combine", "a custom purpose is allowed only where all it counts as are", "/a",
         "price-monitoring", "deny", DEFAULT_DENY, custom={"price-monitoring": ("search-indexing",
                                                                               "commercial-profiling")}),
    Case("combine-custom-purpose-allowed", "combine", "a custom purpose counting as search only", "/a",
         "site-search", "allow", custom={"site-search": ("search-indexing",)}),
    Case("combine-custom-purpose-signal", "combine", "a signal about what a custom purpose counts as denies it",
         "/a", "site-search", "deny", T_SIG + "content-signal",
         {"/robots.txt": robots("User-agent: *", "Content-Signal: search=no")},
         custom={"site-search": ("search-indexing",)}),
    Case("combine-custom-purpose-response", "combine", "a response-level signal denies a custom purpose too", "/a",
         "price-monitoring", "deny", R_SIG + "content-usage", headers=(("Content-Usage", "search=n"),),
         custom={"price-monitoring": ("search-indexing", "archiving")}),
    Case("combine-custom-purpose-grant-all", "combine", "a grant covering every purpose it counts as", "/a",
         "price-monitoring", "allow", platform={"purposes": ["search-indexing", "archiving"], "reference": "MB-1"},
         custom={"price-monitoring": ("search-indexing", "archiving")}),
    Case("combine-custom-purpose-grant-part", "combine", "a grant covering only some of them", "/a",
         "price-monitoring", "deny", "terms.purpose", platform={"purposes": ["search-indexing"], "reference": "MB-1"},
         custom={"price-monitoring": ("search-indexing", "archiving")}),
    Case("tdm-research-exception-platform", "tdmrep", "issue #13: the research exception in platforms.yaml", "/a",
         "research", "allow", files=tdm('[{"location": "/", "tdm-reservation": 1}]'),
         platform={"purposes": ["research"], "reference": "MB-1",
                   "research_exception": ("DSM Directive art. 3, university research", "ETHICS-2026-4")}),
    Case("tdm-research-exception-platform-training", "tdmrep", "the research exception is about research only",
         "/a", "ai-training", "deny", T_SIG + "tdmrep", tdm('[{"location": "/", "tdm-reservation": 1}]'),
         platform={"purposes": ["ai-training"], "reference": "MB-1",
                   "research_exception": ("DSM Directive art. 3, university research", "ETHICS-2026-4")}),
    # -- the page as requested: a trailing slash the canonical form drops is still the page the rule is about ------
    Case("tdm-trailing-slash", "tdmrep", "RFC 9309 matching of the path as requested: /private/ is in /private/*",
         "/private/", "ai-training", "deny", T_SIG + "tdmrep",
         tdm('[{"location": "/private/*", "tdm-reservation": 1}]')),
    Case("cu-robots-trailing-slash-query", "aipref", "attach §4: the rule's path /private/ prefixes /private/?q=1",
         "/private/?q=1", "search-indexing", "deny", T_SIG + "content-usage",
         {"/robots.txt": robots("User-agent: *", "Allow: /", "Content-Usage: /private/ search=n")}),
    Case("rsl-trailing-slash", "rsl", "RSL <content url> matched as robots.txt paths are: /private/ in /private/*",
         "/private/", "ai-training", "deny", T_SIG + "rsl",
         rsl('<content url="/private/*"><license><prohibits type="usage">all</prohibits></license></content>')),
    Case("aitxt-trailing-slash", "ai-txt", "Disallow: /private/ is about the page /private/", "/private/",
         "ai-training", "deny", T_SIG + "ai-txt", {"/ai.txt": (200, "User-agent: *\nDisallow: /private/\n")}),
    Case("aitxt-trailing-slash-no-slash", "ai-txt", "and not about /private, a page of its own", "/private",
         "ai-training", "deny", DEFAULT_DENY, {"/ai.txt": (200, "User-agent: *\nDisallow: /private/\n")}),
]
