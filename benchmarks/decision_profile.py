"""Where one decision's instructions go, function by function: every Python function seen by callgrind.

Usage: ``python benchmarks/decision_profile.py [--kind full|facts|new] [--records 100000] [--requests 20000]
[--top 40] [--store-dir DIR] [--source CHECKOUT]``

``decisions.py --instructions`` counts a decision as a whole; ``instructions.py --profile`` splits a crawl by
consentcrawl function but counts the standard library and Scrapy code they call inside them. This one runs
``decisions.py``'s crawl stream under valgrind's callgrind with ``instructions.py``'s frame-evaluation hook
(``_pyslots``) installed for *every* Python code object (the standard library's, Scrapy's, ours), so
``callgrind_annotate`` gives each Python function its inclusive and exclusive instructions; C functions (the
dict, the regex engine, ``sqlite3``) show under their own names. Only the counted calls are collected
(``operator.call``, from the fifth decision of the stream on), with the garbage collector disabled after
``gc.freeze()`` (the code's own work, not where collections fall).

Kinds: ``full`` the full decision of a request about to be fetched (``facts`` + ``decide``, as
``decisions.py``'s full decisions); ``facts`` what the adapters do to read a request's facts
(``request_inputs`` on a Scrapy ``Request`` with the headers Scrapy's default middlewares set, then
``PolicyEngine.facts``: ``ConsentRuntime.facts_for`` less its ``try``); ``new`` a new person's link check.

The hook adds its own instructions to every frame: a function that makes many small calls looks dearer than it
is. The same calls are counted once more without the hook, and both counts printed: read the rows for where the
work is, the count without the hook for what a call costs. The interpreter's frame machinery is charged to the
Python function it runs (``--fn-skip``), so a Python function's exclusive cost is its own bytecode; C functions
that do work show apart, each summed over all its callers.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import decisions  # noqa: E402
import instructions  # noqa: E402

#: the headers a crawl's request carries when our downloader middleware reads it (Scrapy's DefaultHeaders,
#: UserAgent and HttpCompression middlewares, and the spider middleware's Referer)
HEADERS = {
    b"Accept": b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    b"Accept-Language": b"en",
    b"User-Agent": b"consentcrawl-bench (+https://example.org/bot)",
    b"Accept-Encoding": b"gzip, deflate, br, zstd",
    b"Referer": f"http://{decisions.HOST}/people?page=1".encode(),
}


class _NoHook:
    """Stands in for ``_pyslots`` in the run that counts without the hook (what the hook adds is the difference)."""

    def install(self, prefix: str) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return {"slots": [], "overflow": 0}


def child(path: str, records: int, requests: int, kind: str, lib: str, slots_file: str) -> dict[str, Any]:
    """The stream as ``decisions.child_instructions`` makes it; the ``kind`` calls counted, every frame hooked."""
    import importlib.util
    import operator

    from scrapy import Request

    from consentcrawl.consent.sqlite import SQLiteStore
    from consentcrawl.deciding import Decider
    from consentcrawl.facts import request_inputs

    engine, robots, now = decisions._engine()
    store = SQLiteStore(f"sqlite:///{path}", engine.platforms.platforms, clock=lambda: 0.0)
    engine.decider = Decider(engine.engine, store)
    facts_of, decide, link = engine.facts, engine.decide, engine.decide_link
    purpose = "research"

    def full(url: str) -> Any:
        facts = facts_of(url, purpose, now)
        return decide(facts, robots[facts.canonical.origin])

    def consent(url: str) -> Any:
        return link(url, purpose, now)[0]

    def facts_read(request: Any) -> Any:
        body = request.body
        inputs = request_inputs(request.meta, request.headers, body, None, None)
        return facts_of(request.url, purpose, now, **inputs)

    pyslots: Any = _NoHook()
    if lib != "-":
        spec = importlib.util.spec_from_file_location("_pyslots", lib)
        assert spec is not None and spec.loader is not None
        pyslots = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pyslots)

    ways = {"full": full, "consent": consent}
    counted, warm = 0, requests // 5
    named: set[int] = set()
    entries: dict[Any, int] = {}
    gc.collect()
    gc.freeze()
    gc.disable()
    installed = False
    for i, (which, url, k, _expected) in enumerate(decisions.STREAMS["crawl"](records, requests)):
        if i >= warm and not installed:
            pyslots.install("")  # every code object from here on gets a slot of its own
            installed = True
        first = which == "consent" and k is not None and k not in named
        if k is not None:
            named.add(k)
        if i < warm or which != ("consent" if kind == "new" else "full") or (kind == "new" and not first):
            ways[which](url)
            continue
        if kind == "facts":
            ways[which](url)  # the decision as the stream makes it; then one read of a request for the same URL
            request = Request(url, headers=HEADERS, meta={"depth": 2, "download_slot": decisions.HOST})
        before = [e for _, e in pyslots.report()["slots"]]
        if kind == "facts":
            operator.call(facts_read, request)
        else:
            operator.call(ways[which], url)
        after = pyslots.report()["slots"]
        for slot, (code, e) in enumerate(after):  # frame entries inside the counted calls only
            entries[code] = entries.get(code, 0) + e - (before[slot] if slot < len(before) else 0)
        counted += 1
    report = pyslots.report()
    names = [[f"{code.co_filename}:{code.co_qualname}:{code.co_firstlineno}", entries.get(code, 0)]
             for code, _ in report["slots"]]
    Path(slots_file).write_text(json.dumps(names))
    return {"kind": kind, "counted": counted, "overflow": report["overflow"]}


def _collected(stderr: str) -> int:
    return int(next(line for line in stderr.splitlines() if "Collected :" in line).rsplit(":", 1)[1].strip()
               .replace(",", ""))


def short(name: str) -> str:
    """``file:qualname`` with the file cut to its package-relative part."""
    file, _, rest = name.partition(":")
    for marker in ("/site-packages/", "/consentcrawl/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/consentcrawl/":
                file = "consentcrawl/" + file
            elif marker == "/lib/python3":
                file = file.split("/", 1)[1] if "/" in file else file
            break
    return f"{file}:{rest.rsplit(':', 1)[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="full", choices=("full", "facts", "new"))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--store-dir", help="reuse (or keep) the store built here")
    parser.add_argument("--source", default=str(HERE.parent), help="the checkout measured (default: this one)")
    parser.add_argument("--keep", help="keep callgrind's output in this folder")
    parser.add_argument("--_child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        path, records, requests, kind, lib, slots_file = args._child
        sys.path.insert(0, str(Path(args.source).resolve()))
        print(json.dumps(child(path, int(records), int(requests), kind, lib, slots_file)))
        return 0

    folder = Path(args.store_dir or tempfile.mkdtemp(prefix="consentcrawl-profile-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"authorizations-{args.records}.db"
    if not path.exists():
        print(decisions.child_build(str(path), args.records), file=sys.stderr)
    keep = Path(args.keep or tempfile.mkdtemp(prefix="consentcrawl-profile-out-"))
    lib = instructions.build_pyslots(keep / "lib")
    out, slots = keep / f"{args.kind}.callgrind.out", keep / f"{args.kind}.slots.json"
    # the interpreter's own frame machinery is charged to the Python function it runs, so that a slot's exclusive
    # cost is its function's own bytecode (calls into C functions that do work, dicts, regexes, stay apart)
    skip = [f"--fn-skip={name}" for name in ("_PyEval_EvalFrameDefault", "_PyEval_Vector", "_PyFunction_Vectorcall",
                                              "PyObject_Vectorcall", "hook", "classify", "pyslot_outer",
                                              "_PyEvalFramePushAndInit", "initialize_locals", "_PyFrame_Clear",
                                              "method_vectorcall", "_PyObject_Call", "PyObject_Call",
                                              "_PyObject_FastCallDictTstate", "_PyObject_Call_Prepend",
                                              "slot_tp_init", "type_call", "gen_send_ex2", "gen_send_ex")]
    command = ["valgrind", "--tool=callgrind", "--toggle-collect=_operator_call", "--dump-instr=no", *skip,
               f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()), "--source", args.source,
               "--_child", str(path), str(args.records), str(args.requests), args.kind, str(lib), str(slots)]
    done = subprocess.run(command, check=True, text=True, capture_output=True)
    counted = json.loads(done.stdout.strip().splitlines()[-1])["counted"]
    collected = _collected(done.stderr)
    bare = ["valgrind", "--tool=callgrind", "--toggle-collect=_operator_call", f"--callgrind-out-file={out}.bare",
            *command[command.index(sys.executable):]]
    bare[-2:] = ["-", f"{slots}.bare"]  # the same calls without the hook
    unhooked = _collected(subprocess.run(bare, check=True, text=True, capture_output=True).stderr)
    names = json.loads(slots.read_text())
    inclusive, exclusive = instructions.annotate(out, inclusive=True), instructions.annotate(out, inclusive=False)
    rows: dict[str, list[float]] = {}
    for slot, (name, entries) in enumerate(names):
        row = rows.setdefault(short(name), [0, 0, 0])
        row[0] += inclusive.get(f"pyslot_{slot:04d}", 0)
        row[1] += exclusive.get(f"pyslot_{slot:04d}", 0)
        row[2] += entries
    for name, cost in exclusive.items():  # C functions, by their own exclusive cost
        if not name.startswith("pyslot_") and cost > collected * 0.004:
            rows.setdefault(f"(C) {name}", [inclusive.get(name, 0), cost, 0])
    n = max(1, counted)
    frames = sum(e for _, e in names) / n
    print(f"{args.kind}: {unhooked / n / 1000:.1f}k instructions per call without the hook, "
          f"{collected / n / 1000:.1f}k with it, over {counted} calls; {frames:.1f} Python frames entered per call")
    print("| function | inclusive k | exclusive k | entries per call |")
    print("|---|---:|---:|---:|")
    for name, (inc, exc, entries) in sorted(rows.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"| `{name}` | {inc / n / 1000:.1f} | {exc / n / 1000:.1f} | {entries / n:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
