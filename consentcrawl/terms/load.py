"""Load and validate ``platforms.yaml``: leg 2 of the triple authorization.

Strict on purpose: a typo in this file silently changes what a crawl may fetch (an ignored ``valid_untill``
means an agreement that never ends, a misspelt domain means a platform whose terms are never checked). So
every unknown key, wrong type, bad date or regex, unknown purpose, profile template that could never match a
URL and clash between platforms stops the crawl with a :class:`~consentcrawl.errors.ConfigError` that names the
file and the line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..yamlsource import Node, NodeReader, load_yaml, type_name
from .platforms import Platform, PlatformAuthorization, PlatformRegistry, compile_subject_regex
from .templates import DEFAULT_SUBJECT_REGEX, ProfileTemplate

__all__ = ["load_platforms"]

_PLATFORM_KEYS = ("domains", "authorization", "profiles", "subject", "case_sensitive", "research_exception",
                  "signal_licence")
_AUTHORIZATION_KEYS = ("purposes", "reference", "valid_from", "valid_until", "fields", "overrides_signals")
#: Platform names appear in subject ids ("microblog:1001"), so no ':' and nothing a user would have to quote.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def load_platforms(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> PlatformRegistry:
    """Read one or more ``platforms.yaml`` files into a registry; any mistake raises ConfigError(file, line).

    Several files are merged; the same platform name or the same domain in two places is an error, because
    which of two agreements governs a fetch must never depend on file order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    platforms: dict[str, Platform] = {}
    domain_owner: dict[str, tuple[str, str]] = {}  # domain -> (platform name, "file:line")
    for path in paths:
        for platform, domain_lines in _load_file(path):
            source, _, line = platform.source.rpartition(":")
            if platform.name in platforms:
                raise ConfigError(
                    f"platform {platform.name!r} is already defined at {platforms[platform.name].source}",
                    source,
                    int(line),
                )
            for domain, domain_line in domain_lines.items():
                if domain in domain_owner:
                    owner, where = domain_owner[domain]
                    raise ConfigError(
                        f"domain {domain!r} of platform {platform.name!r} already belongs to platform {owner!r} "
                        f"({where}); a domain can belong to one platform only",
                        source,
                        domain_line,
                    )
                domain_owner[domain] = (platform.name, f"{source}:{domain_line}")
            platforms[platform.name] = platform
    return PlatformRegistry(platforms)


def _load_file(path: str | os.PathLike[str]) -> list[tuple[Platform, dict[str, int]]]:
    source = str(path)
    root = load_yaml(Path(path))
    if root is None:
        raise ConfigError("file is empty: expected a mapping with the top key 'platforms:'", source, 1)
    reader = _Reader(source)
    top = reader.mapping(root, "the file", allowed=("platforms",), required=("platforms",))
    entries = top["platforms"]
    if not entries.is_mapping:
        raise reader.error(
            f"'platforms' must be a mapping of platform name to its settings, got {type_name(entries.value)}",
            entries,
        )
    result = []
    for name, node in entries.value.items():
        result.append(reader.platform(name, entries.key_lines[name], node))
    return result


class _Reader(NodeReader):
    """Validates the node tree of one platforms file; every error names the file and the offending line."""

    def platform(self, name: Any, line: int, node: Node) -> tuple[Platform, dict[str, int]]:
        if not isinstance(name, str):
            raise self.error(f"platform name {name!r} must be a string (quote it)", line)
        if not _NAME_RE.fullmatch(name):
            raise self.error(
                f"platform name {name!r} may use only letters, digits, '.', '_' and '-' "
                "(it is used in subject ids such as 'microblog:1001')",
                line,
            )
        what = f"platform {name!r}"
        fields = self.mapping(node, what, allowed=_PLATFORM_KEYS, required=("domains",), key_line=line)
        domains = self.domains(fields["domains"], f"'domains' of {what}")
        authorization = None
        if "authorization" in fields:
            key_line = node.key_lines.get("authorization", line)
            authorization = self.authorization(fields["authorization"], f"'authorization' of {what}", key_line)
        subject_regex = None
        if "subject" in fields:
            subject_regex = self.subject_regex(fields["subject"], f"'subject' of {what}")
        profiles: tuple[ProfileTemplate, ...] = ()
        if "profiles" in fields:
            profiles = self.profiles(fields["profiles"], f"'profiles' of {what}", subject_regex)
        case_sensitive = False
        if "case_sensitive" in fields:
            case_sensitive = self.boolean(fields["case_sensitive"], f"'case_sensitive' of {what}")
        research = None
        if "research_exception" in fields:
            key_line = node.key_lines.get("research_exception", line)
            research = self.research_exception(fields["research_exception"], f"'research_exception' of {what}",
                                               key_line)
        licence = None
        if "signal_licence" in fields:
            key_line = node.key_lines.get("signal_licence", line)
            licence = self.signal_licence(fields["signal_licence"], f"'signal_licence' of {what}", key_line)
        platform = Platform(
            signal_licence=licence,
            research_exception=research,
            name=name,
            domains=frozenset(domains),
            authorization=authorization,
            profiles=profiles,
            subject_regex=subject_regex,
            source=f"{self.source}:{line}",
            case_sensitive=case_sensitive,
        )
        return platform, domains

    def domains(self, node: Node, what: str) -> dict[str, int]:
        result: dict[str, int] = {}
        for text, item in self.string_list(node, what):
            try:
                domain = _registered_domain(text)
            except ValueError as exc:
                raise self.error(f"{what}: {exc}", item) from None
            if domain in result:
                raise self.error(f"{what}: {domain!r} is listed twice (first on line {result[domain]})", item)
            result[domain] = item.line
        return result

    def authorization(self, node: Node, what: str, key_line: int) -> PlatformAuthorization:
        if node.value is None:
            raise self.error(f"{what} is empty; remove the key if the platform has not authorized this crawl", key_line)
        fields = self.mapping(
            node, what, allowed=_AUTHORIZATION_KEYS, required=("purposes", "reference"), key_line=key_line
        )
        purposes = self.purposes(fields["purposes"], f"'purposes' of {what}")
        reference = self.string(fields["reference"], f"'reference' of {what}")
        valid_from = valid_until = None
        if "valid_from" in fields:
            valid_from = self.when(fields["valid_from"], f"'valid_from' of {what}")
        if "valid_until" in fields:
            valid_until = self.when(fields["valid_until"], f"'valid_until' of {what}")
            if valid_from is not None and valid_until <= valid_from:
                raise self.error(
                    f"'valid_until' of {what} ({valid_until.isoformat()}) must be after "
                    f"'valid_from' ({valid_from.isoformat()})",
                    fields["valid_until"],
                )
        allowed_fields = None
        if "fields" in fields:
            allowed_fields = frozenset(
                t for t, _ in self.string_list(fields["fields"], f"'fields' of {what}", allow_empty=True)
            )
        overrides = False
        if "overrides_signals" in fields:
            overrides = self.boolean(fields["overrides_signals"], f"'overrides_signals' of {what}")
        return PlatformAuthorization(
            overrides_signals=overrides,
            purposes=purposes,
            reference=reference,
            valid_from=valid_from,
            valid_until=valid_until,
            fields=allowed_fields,
        )

    def research_exception(self, node: Node, what: str, key_line: int) -> tuple[str, str]:
        """``statement`` and ``reference``, both non-empty text: a statement without a reference does not count
        (issue #13), so it is an error here rather than a silent deny."""
        if node.value is None:
            raise self.error(f"{what} is empty; give 'statement' and 'reference', or remove the key", key_line)
        fields = self.mapping(node, what, allowed=("statement", "reference"), required=("statement", "reference"),
                              key_line=key_line)
        return (self.string(fields["statement"], f"'statement' of {what}").strip(),
                self.string(fields["reference"], f"'reference' of {what}").strip())

    def signal_licence(self, node: Node, what: str, key_line: int) -> tuple[str, str]:
        """The reference of the RSL licence held for the platform's sites (non-empty text, as a value of
        ``CONSENTCRAWL_SIGNAL_LICENCES``), with the file and line it was recorded at, which evidence cites."""
        if node.value is None:
            raise self.error(f"{what} is empty; give the licence's reference, or remove the key", key_line)
        return self.string(node, what).strip(), f"{self.source}:{key_line}"

    def boolean(self, node: Node, what: str) -> bool:
        if not isinstance(node.value, bool):
            raise self.error(f"{what} must be true or false, got {type_name(node.value)}", node)
        return node.value

    def subject_regex(self, node: Node, what: str) -> str:
        regex = self.string(node, what)
        try:
            compile_subject_regex(regex)
        except re.error as exc:
            raise self.error(f"{what} is not a valid regular expression: {exc}", node) from None
        except ValueError as exc:
            raise self.error(f"{what}: {exc}", node) from None
        return regex

    def profiles(self, node: Node, what: str, subject_regex: str | None) -> tuple[ProfileTemplate, ...]:
        templates = []
        for text, item in self.string_list(node, what):
            try:
                templates.append(ProfileTemplate.compile(text, subject_regex or DEFAULT_SUBJECT_REGEX))
            except (ValueError, re.error) as exc:
                raise self.error(f"{what}: {exc}", item) from None
        return tuple(templates)


def _registered_domain(text: str) -> str:
    """``text`` as a lower-case IDNA registered domain (or an IP address in canonical form), or ValueError saying
    what to write instead.

    Normalised exactly as request hosts are (:func:`consentcrawl.urls.canonicalize`), so the registry lookup of
    a crawled URL finds the platform however its domain was spelt here. An IP address (``192.0.2.7``,
    ``2001:DB8::1``, ``[2001:db8::1]``) is its own registered domain, in the form
    :func:`~consentcrawl.urls.registered_domain` gives a request's IP host.
    """
    from ..urls import canonicalize, registered_domain

    raw = text.strip()
    address = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        try:
            return registered_domain(address)
        except ValueError as exc:  # e.g. an IPv6 zone ("fe80::1%eth0"): no request host has one
            raise ValueError(f"{text!r} is not an IP address a request can name ({exc})") from None
    if "://" in raw or "/" in raw:
        raise ValueError(f"{text!r} is a URL; give the domain only (e.g. 'microblog.example')")
    if not raw or any(c in raw for c in ":@?#\\*") or any(c.isspace() for c in raw):
        raise ValueError(
            f"{text!r} is not a domain name (no ports, wildcards or user names; subdomains are included automatically)"
        )
    try:
        domain = canonicalize(f"http://{raw}/").host
        registered = registered_domain(domain)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid domain name ({exc})") from None
    if not registered:
        raise ValueError(f"{text!r} is not a registered domain (it is a public suffix or a single label)")
    if registered != domain:
        raise ValueError(
            f"{text!r} is not a registered domain; give {registered!r} instead "
            "(every subdomain of a registered domain belongs to the platform)"
        )
    return domain
