"""The ``consentcrawl`` command: ``check`` one URL outside a crawl, ``demo`` the whole thing end to end.

Exit codes: 0 allowed, 1 denied, 2 usage or configuration error. Errors are one clear line, never a traceback.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .audit.cli import add_audit_commands
from .audit.explain import add_explain_parser
from .audit.report import add_report_parser
from .checkcli import EXIT_ALLOWED, cmd_check
from .commandloop import run_async
from .config import ConsentConfig, build_decider
from .errors import ConfigError
from .purge.cli import add_parser as add_purge

EXIT_USAGE = 2


def load_settings(module: str | None, everything: bool = False) -> dict[str, Any]:
    """Settings from a Scrapy settings module, or the project's (scrapy.cfg in or above the cwd), or none: the
    ``CONSENTCRAWL_*`` ones and ``DOWNLOAD_MAXSIZE`` (what a fetched page is decompressed within), or with
    ``everything`` all of them (what a check's ``from_crawler`` may read)."""
    from scrapy.utils.conf import closest_scrapy_cfg
    from scrapy.utils.project import get_project_settings

    if not module and not closest_scrapy_cfg():
        return {}
    saved_env, saved_path = os.environ.get("SCRAPY_SETTINGS_MODULE"), list(sys.path)
    if module:
        sys.path.insert(0, os.getcwd())
        os.environ["SCRAPY_SETTINGS_MODULE"] = module
    try:
        settings = get_project_settings()
    except ImportError as exc:
        raise ConfigError(f"cannot import settings module: {exc}", source=module or "scrapy.cfg") from None
    except SyntaxError as exc:  # the settings module's own line, as Python names it
        raise ConfigError(f"cannot import settings module: {exc.msg}", exc.filename, exc.lineno) from None
    except configparser.Error as exc:  # scrapy.cfg itself (its message names the file and line)
        raise ConfigError(f"cannot read it: {exc.message.splitlines()[0]}", closest_scrapy_cfg() or "scrapy.cfg",
                          getattr(exc, "lineno", None)) from None
    except Exception as exc:  # noqa: BLE001 - the module's own code raised as it was imported: one line, as above
        raise ConfigError(f"cannot import settings module: {type(exc).__name__}: {exc}",
                          source=module or "scrapy.cfg") from None
    finally:  # a caller in the same process (a test, a notebook) keeps its own project
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("SCRAPY_SETTINGS_MODULE", None)
        else:
            os.environ["SCRAPY_SETTINGS_MODULE"] = saved_env
    return settings.copy_to_dict() if everything else {k: v for k, v in settings.items()
                                                       if k.startswith("CONSENTCRAWL_") or k == "DOWNLOAD_MAXSIZE"}


# command-line options that stand in for a setting, for the commands that offer them
_OVERRIDES = (("platforms", "CONSENTCRAWL_PLATFORMS"), ("authorizations", "CONSENTCRAWL_AUTHORIZATIONS"),
              ("user_agent", "CONSENTCRAWL_USER_AGENT_TOKEN"), ("now", "CONSENTCRAWL_NOW"))


def settings_for(args: argparse.Namespace, everything: bool = False) -> dict[str, Any]:
    """The settings a command runs with: the module's or project's (:func:`load_settings`), then each option
    the command offers and was given (``--platforms`` etc.) in place of its setting."""
    settings = load_settings(getattr(args, "settings", None), everything)
    for option, name in _OVERRIDES:
        value = getattr(args, option, None)
        if value:
            settings[name] = value
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consentcrawl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"consentcrawl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="decide one URL outside a crawl and explain each stage")
    check.add_argument("url")
    check.add_argument("--purpose", help="the purpose to check for (default: CONSENTCRAWL_PURPOSE)")
    check.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
    check.add_argument("--platforms", metavar="FILE", help="platform terms YAML (overrides the settings)")
    check.add_argument("--authorizations", metavar="SRC", help="authorization records (overrides the settings)")
    check.add_argument("--user-agent", metavar="TOKEN", help="product token matched against robots.txt")
    check.add_argument("--subject", help="name the person the URL concerns (platform:id or id)")
    check.add_argument("--now", metavar="TIME", help="decide as of this ISO-8601 time (replay a decision)")
    check.add_argument("--json", action="store_true", help="print the decision as JSON")
    check.add_argument("--fetch", action="store_true",
                       help="also fetch the page (when allowed) and read the refusals its person published there, "
                            "its robots tags and its response-level signals")
    check.add_argument("--activitypub", action="store_true",
                       help="with --fetch, ask for the ActivityPub actor (Accept: application/activity+json)")
    check.set_defaults(func=cmd_check)

    signals = sub.add_parser("signals", help="what a site says about each purpose (operator signals), and where")
    signals.add_argument("url")
    signals.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
    signals.add_argument("--platforms", metavar="FILE", help="platform terms YAML (overrides the settings)")
    signals.add_argument("--user-agent", metavar="TOKEN", help="product token matched against robots.txt")
    signals.add_argument("--fetch", action="store_true", help="also fetch the page for its response-level signals")
    signals.add_argument("--json", action="store_true", help="print the table as JSON")
    signals.set_defaults(func=cmd_signals)

    demo = sub.add_parser("demo", help="crawl the bundled demo platform and show what consent let through")
    demo.add_argument("--output", metavar="DIR", default="output", help="where items and the audit log go")
    demo.add_argument("--serve", action="store_true",
                      help="only serve the demo platform (for `scrapy crawl microblog`); Ctrl-C stops it")
    demo.add_argument("--port", type=int, default=0, help="port for --serve (default: 8765 with --serve)")
    demo.set_defaults(func=cmd_demo)

    from .authcli import add_authorizations

    add_authorizations(sub)
    add_serve_authorizations(sub)
    audit_actions = add_audit_commands(sub)
    add_report_parser(audit_actions)
    add_explain_parser(audit_actions)
    add_purge(sub)
    return parser


def add_serve_authorizations(sub: Any) -> None:
    serve = sub.add_parser("serve-authorizations", help="serve a store's records over the consent API "
                                                        "(docs/consent-api.md), with its change feed")
    serve.add_argument("source", metavar="SQLITE_OR_FILE", help="a .yaml, .csv or .jsonl file, or sqlite:///PATH")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8767, help="port to listen on (default 8767)")
    serve.add_argument("--settings", metavar="MODULE", help="Scrapy settings module to read CONSENTCRAWL_* from")
    serve.add_argument("--platforms", metavar="FILE", help="platform terms YAML the records are checked against")
    serve.add_argument("--token-env", metavar="NAME", default="CONSENTCRAWL_API_TOKEN",
                       help="require the bearer token in this environment variable, when it is set")
    serve.set_defaults(func=cmd_serve_authorizations)


def cmd_serve_authorizations(args: argparse.Namespace) -> int:
    from .consent.apiserver import serve

    return serve(args.source, _platforms_for(args), args.host, args.port, args.token_env)


def _platforms_for(args: argparse.Namespace) -> Any:
    """The platforms of ``--platforms`` or the settings, which records are checked against."""
    from .config import DEFAULT_PLATFORMS
    from .settings import as_settings, read
    from .terms.load import load_platforms

    settings = {"CONSENTCRAWL_PLATFORMS": args.platforms} if args.platforms else load_settings(args.settings)
    files = read(as_settings(settings), "CONSENTCRAWL_PLATFORMS")
    if files is None:
        files = (str(DEFAULT_PLATFORMS),) if DEFAULT_PLATFORMS.exists() else ()
    if not files:
        raise ConfigError("no platforms file: records are checked against the platforms they name "
                          "(use --platforms FILE)", source="--platforms")
    return load_platforms(list(files))


def cmd_signals(args: argparse.Namespace) -> int:
    """Every built-in purpose at once: what each signal says, where, and the combined verdict off any platform."""
    from .checkcli import side_fetchers
    from .signalcli import fetch_page, fetch_site_files, refuse_fetch, with_named_files
    from .signals.evaluate import response_spellings
    from .signals.purposes import BASE_PURPOSES
    from .signaltable import robots_denied_table, signal_table

    settings = settings_for(args)
    settings.setdefault("CONSENTCRAWL_PLATFORMS", [])
    config = ConsentConfig.from_settings(settings, purpose=settings.get("CONSENTCRAWL_PURPOSE") or "research")
    decider = build_decider(config)
    now = config.now()
    try:
        facts = decider.engine.facts(args.url, config.purpose, now)
    except ValueError as exc:
        raise ConfigError(f"cannot read {args.url!r}: {exc}", source="URL") from None
    user_agent = f"{config.token}/{__version__}"
    policy = config.signal_policy
    purposes = sorted(BASE_PURPOSES)
    robots_for, may_fetch = side_fetchers(config, decider, now)

    async def gather() -> tuple[Any, Any]:
        robots = await robots_for(facts.canonical.origin)
        if denied := await robots_denied_table(decider, args, facts, robots, config, now):
            return robots, denied  # as in a crawl: robots.txt alone is fetched for a URL it denies
        files = await fetch_site_files(facts.canonical.origin, robots, policy, user_agent=user_agent, now=now,
                                       may_fetch=may_fetch)
        page = None
        if args.fetch:
            await refuse_fetch(decider, args.url, config.purpose)  # only what a crawl could fetch now
            page = await fetch_page(facts.canonical.url, user_agent=user_agent, limit=config.download_maxsize)
            for encoding in page.encodings or (page.encoding,):  # what the page names, in each reading of it
                files = await with_named_files(files, page.url, list(page.headers.multi_items()), page.body,
                                               encoding, user_agent=user_agent, now=now, may_fetch=may_fetch)
        # every spelling of the page, as the crawl decides it (any spelling's deny wins)
        spellings = response_spellings(page.url if page else facts.canonical.url, facts.canonical,
                                       facts.robots_paths)
        return robots, signal_table(spellings, files, policy, config.token, facts.canonical.host, facts.platform,
                                    purposes, now, page)

    robots, (table, report) = run_async(gather, decider.store)
    if args.json:
        print(json.dumps({"url": args.url, "canonical_url": facts.canonical.url, "time": now.isoformat(),
                          "robots": robots.evidence(), "purposes": table, "signals": report},
                         indent=2, default=str))
        return EXIT_ALLOWED
    width = max(len(p) for p in table)
    print(f"URL: {facts.canonical.url}   robots.txt: {robots.status.value}")
    print(f"{'purpose':<{width}}  verdict  reason / basis   signals")
    for purpose, row in table.items():
        if "counts_as" in row:
            said = "counts as " + ", ".join(row["counts_as"])
        else:
            said = ", ".join(f"{e['signal']}@{e['level']}={e['verdicts'][purpose]}" for e in report
                             if e["verdicts"][purpose] != "unknown") or "-"
        said += f"  (as {row['path']})" if "path" in row else ""
        said += f"  (read in {row['encoding']})" if "encoding" in row else ""
        print(f"{purpose:<{width}}  {row['verdict']:<7}  {row['reason'] or row['basis']:<15}  {said}")
    print("\nwhere:")
    for entry in report:
        where = "; ".join(f"{s['purpose']} {s['verdict']}: {s['where']} {s['raw']!r}" for s in entry["statements"])
        state = f"unavailable ({entry['unavailable']})" if "unavailable" in entry else (where or "no statement")
        spelled = f", as {entry['path']}" if "path" in entry else ""
        spelled += f", read in {entry['encoding']}" if "encoding" in entry else ""
        print(f"  {entry['signal']} ({entry['level']}, {entry['source'] or 'not read'}{spelled}): {state}")
        for policy in entry.get("policies", ()):
            print(f"    tdm-policy {policy['url']}: {policy_text(policy)}")
        for licence in entry.get("licences_held", ()):
            print(f"    licence held: {licence['reference']} (recorded in {licence.get('in') or '?'})")
    return EXIT_ALLOWED


def policy_text(policy: dict[str, Any]) -> str:
    """One line for a tdm-policy in ``consentcrawl signals``: its assigner's contact and actions, or why not."""
    if policy.get("status") != "read":
        return f"{policy.get('status', 'not fetched')}" + (f" ({policy['cause']})" if policy.get("cause") else "")
    contact = ", ".join(f"{k} {v}" for k, v in policy.get("assigner", {}).items()) or "no assigner"
    rules = "; ".join(f"{kind} {' '.join(policy[kind])}" for kind in ("permission", "prohibition") if policy.get(kind))
    for kind in ("constraint", "duty"):  # what the offer is conditional on, and asks in return: the first few
        listed = policy.get(kind) or []
        if listed:
            more = f" (and {len(listed) - 3} more)" if len(listed) > 3 else ""
            rules += ("; " if rules else "") + f"{kind}: {' | '.join(listed[:3])}{more}"
    return f"assigner: {contact}" + (f"; {rules}" if rules else "")


def cmd_demo(args: argparse.Namespace) -> int:
    from consentcrawl_demo.run import run_demo, serve

    if args.serve:
        return serve(args.port or 8765)
    return run_demo(Path(args.output))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    saved_path = list(sys.path)  # the project's own modules (a check, a store) import as in `scrapy crawl`: after
    sys.path.append(os.getcwd())  # the installed packages, so that a file in the directory never shadows one
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"consentcrawl: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_USAGE
    except BrokenPipeError:  # `consentcrawl audit report LOG | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python flushes at exit
        return 1
    finally:
        sys.path[:] = saved_path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
