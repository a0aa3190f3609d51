"""The headline crawl benchmark counted in CPU instructions (valgrind's callgrind), not timed.

Usage: ``python benchmarks/instructions.py [--pages-small 100] [--pages-large 400] [--repeat 1]
[--configs a,b,c] [--mode report] [--rev REV ...] [--jobs 2] [--profile] [--keep DIR] [--json FILE]``;
``--report FILE`` prints a saved ``--json`` run's report again.

Wall and CPU time on a shared 2-core VM move by several percent from one minute to the next, so they cannot
resolve a change of a few percent in what a crawl costs. The number of instructions a crawl executes does not
depend on how fast the machine is at the moment: callgrind counts them (``Ir``), deterministically up to what
depends on timing inside the crawl (how many responses one turn of the event loop finds ready, periodic tasks).

Each crawl is ``_crawl_one.py``'s spider and settings (listing pages of 50 -> profiles -> 5 related profiles
each; ``CONCURRENT_REQUESTS`` 16, per domain too; ``CONCURRENT_ITEMS`` 16 here, ``--concurrent-items``;
``LOG_LEVEL`` INFO to a file; no HTTP cache) against ``platform_server.py`` through ``http_proxy``, run in a fresh
``python`` under ``valgrind --tool=callgrind``, with none of ``_crawl_one.py``'s accounting (no wrappers, no
SIGPROF sampling, no GC callbacks, no extra signal handlers): this script's own runner imports the spider and
``settings_for`` and starts the crawl, nothing else. The platform servers (one per size) run on loopback as
ordinary processes, not under valgrind. Configurations:

- (a) plain Scrapy, ``ROBOTSTXT_OBEY=False``;
- (b) Scrapy's ``RobotsTxtMiddleware`` (``ROBOTSTXT_OBEY=True``, Protego);
- (c) consentcrawl: ``ADDONS = {"consentcrawl.Addon": 0}``, every stage on (robots, platform terms, an SQLite
  store of ``--records`` synthetic records, the audit log), ``--mode report`` by default so (c) fetches exactly
  the pages (a) and (b) fetch.

A crawl's total ``Ir`` includes starting Python, importing Scrapy (and consentcrawl), opening the store, and
shutting down. Each configuration is crawled over a site of ``--pages-small`` and one of ``--pages-large``
profiles; the **marginal instructions per response** is ``(Ir_large - Ir_small) / (responses_large -
responses_small)``: what one more response costs, with start-up and imports cancelled out. The SQLite store is
built once per revision before any measurement (with that revision's ``bulk_build``), not under valgrind, and
each crawl gets its own copy of it.

``--rev REV`` (repeatable) measures a git revision instead of the checkout: ``git worktree add --detach`` of REV
in a temporary directory, put first on the crawl's ``sys.path`` (the crawl asserts that ``consentcrawl`` is
imported from there), removed at the end. The spider, the settings and the server are always this checkout's
``benchmarks/``, copied and compiled once at the start (so editing the checkout during a run changes nothing),
so two revisions are measured with the same crawl. ``--rev 3cfa6a2 --rev HEAD`` prints the two side by side.
Without ``--rev`` it measures the checkout as it is on disk (uncommitted changes included).

Held fixed: ``PYTHONHASHSEED=0`` (set string hashing, hence set/dict iteration order, the same in every run);
``CONSENTCRAWL_NOW`` (``synthetic.NOW``, as ``_crawl_one.py`` sets it, so every run decides the same way);
``PYTHONDONTWRITEBYTECODE=1`` in the crawls (no crawl leaves ``.pyc`` files that change how the next one starts).
Nothing else is disabled or frozen: Scrapy's default extensions stay on, including its periodic ones (memory usage
every 60 s, the downloader's slot GC every 60 s), which run a few more times in a longer crawl; the garbage
collector is on; how many responses one turn of the event loop finds ready depends on timing. Identical crawls
differ by up to ~0.2% in ``Ir``, so marginal figures of identical code by up to ~0.5%. ``--repeat K`` runs every
measurement K times (interleaved) and reports each run and the median.

``--profile`` adds two (c) crawls per revision in which each consentcrawl function is visible to callgrind (see
below) and prints the top functions by inclusive instructions per response.

Callgrind counts user-space instructions only; the kernel's side of a system call is not in ``Ir``. So the
report also gives the calls per response of a few system-call wrappers (``fdatasync``, ``fsync``, ``write``,
``epoll_wait``), counted by callgrind. And the clock runs at its usual speed while valgrind slows the crawl ~50
times, so anything done once per *second* (the SQLite store's snapshot renewal) happens ~50 times more often per
response than in a real crawl; ``--profile`` shows what it costs.

Prints a table of raw numbers (``Ir`` and responses per crawl), the marginal instructions per response per
configuration, the system calls per response, and per revision exactly::

    plain Scrapy instructions per response: N
    consentcrawl instructions per response over plain Scrapy: N
    Scrapy robots middleware instructions per response over plain Scrapy: N

(``N`` in millions, the last two with the percentage of plain Scrapy's.)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLONE = HERE.parent
CONFIGS = {"a": "plain Scrapy", "b": "Scrapy + ROBOTSTXT_OBEY", "c": "consentcrawl"}
VALGRIND = "valgrind"
PROFILE_SLOTS = 4096

# -- --profile: callgrind sees C functions only, so each consentcrawl code object gets a C function of its own ---
#
# A PEP 523 frame-evaluation hook (CPython 3.11's ``_PyInterpreterState_SetEvalFrameFunc``, what 3.12's perf
# trampolines do) evaluates every frame of a consentcrawl code object through ``pyslot_NNNN``, one C function per
# code object (by order of first use; the crawl writes which is which), so ``callgrind_annotate --inclusive=yes``
# gives each Python function's inclusive instructions. Frames entered from outside consentcrawl go through
# ``pyslot_outer`` first (its inclusive cost is all of consentcrawl's). A generator, coroutine or async-generator
# frame of someone else's code resumed directly by consentcrawl code -- the spider's callbacks and the spider
# middlewares below ours, iterated by our spider middleware; the real download handler our send-time handler
# awaits -- goes through ``pyslot_foreign``, which callgrind is told not to count (``--toggle-collect``): that is
# the spider's and Scrapy's work, not ours (as ``_crawl_one.py``'s accounting charges it). Everything else our
# code calls (Scrapy's Request methods, urllib, sqlite3, json, ...) is counted as ours.
_PYSLOTS_HEAD = r"""
#define Py_BUILD_CORE 1
#include <Python.h>
#include "internal/pycore_frame.h"

typedef PyObject *(*tramp_t)(PyThreadState *, _PyInterpreterFrame *, int);
static Py_ssize_t extra_index = -1;
static PyObject *prefix = NULL;
static PyObject *codes = NULL;
static Py_ssize_t overflow = 0, reentries = 0, foreign_entries = 0, outer_entries = 0;
static __thread int ours_depth = 0, foreign_depth = 0;
#define OURS(v) ((v) >= 2)
"""
_PYSLOTS_TAIL = r"""
static Py_ssize_t entries[NSLOTS];

__attribute__((noinline)) PyObject *pyslot_outer(PyThreadState *t, _PyInterpreterFrame *f, int e, intptr_t v) {
    PyObject *r = slots[v - 2](t, f, e); __asm__ volatile("" ::: "memory"); return r;
}
__attribute__((noinline)) PyObject *pyslot_foreign(PyThreadState *t, _PyInterpreterFrame *f, int e) {
    PyObject *r = _PyEval_EvalFrameDefault(t, f, e); __asm__ volatile("" ::: "memory"); return r;
}

static intptr_t classify(PyObject *code) {
    void *extra = NULL;
    if (_PyCode_GetExtra(code, extra_index, &extra) < 0) { PyErr_Clear(); return 1; }
    intptr_t v = (intptr_t)extra;
    if (v) return v;
    v = 1;
    PyObject *filename = ((PyCodeObject *)code)->co_filename;
    if (filename && PyUnicode_Check(filename)
            && PyUnicode_Tailmatch(filename, prefix, 0, PY_SSIZE_T_MAX, -1) == 1) {
        Py_ssize_t n = PyList_GET_SIZE(codes);
        if (n < NSLOTS) {
            if (PyList_Append(codes, code) == 0) v = n + 2; else PyErr_Clear();
        } else {
            overflow++;
        }
    }
    _PyCode_SetExtra(code, extra_index, (void *)v);
    return v;
}

static PyObject *hook(PyThreadState *t, _PyInterpreterFrame *f, int e) {
    PyObject *code = (PyObject *)f->f_code;
    intptr_t v = classify(code);
    PyObject *r;
    if (OURS(v)) {
        entries[v - 2]++;
        if (foreign_depth) reentries++;
        ours_depth++;
        if (ours_depth == 1) { outer_entries++; r = pyslot_outer(t, f, e, v); }
        else r = slots[v - 2](t, f, e);
        ours_depth--;
        return r;
    }
    /* the frame running now is the one calling or resuming this one */
    _PyInterpreterFrame *caller = t->cframe ? t->cframe->current_frame : NULL;
    if (ours_depth && !foreign_depth
            && (((PyCodeObject *)code)->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR))
            && caller && OURS(classify((PyObject *)caller->f_code))) {
        int saved = ours_depth;
        foreign_entries++;
        foreign_depth++;
        ours_depth = 0;
        r = pyslot_foreign(t, f, e);
        foreign_depth--;
        ours_depth = saved;
        return r;
    }
    r = _PyEval_EvalFrameDefault(t, f, e);
    return r;
}

static PyObject *install(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) { PyErr_SetString(PyExc_TypeError, "prefix must be a str"); return NULL; }
    if (extra_index < 0) extra_index = _PyEval_RequestCodeExtraIndex(NULL);
    if (extra_index < 0) { PyErr_SetString(PyExc_RuntimeError, "no code extra index left"); return NULL; }
    Py_INCREF(arg);
    Py_XSETREF(prefix, arg);
    if (!codes && !(codes = PyList_New(0))) return NULL;
    _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), hook);
    Py_RETURN_NONE;
}

static PyObject *report(PyObject *self, PyObject *unused) {
    Py_ssize_t n = codes ? PyList_GET_SIZE(codes) : 0;
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = Py_BuildValue("(On)", PyList_GET_ITEM(codes, i), entries[i]);
        if (!item) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, i, item);
    }
    return Py_BuildValue("{s:N,s:n,s:n,s:n,s:n}", "slots", list, "overflow", overflow, "reentries", reentries,
                         "foreign_entries", foreign_entries, "outer_entries", outer_entries);
}

static PyMethodDef methods[] = {
    {"install", install, METH_O, "evaluate frames of code whose file starts with the prefix through C slots"},
    {"report", report, METH_NOARGS, "the code object of each slot, its frame entries, and the counters"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pyslots", NULL, -1, methods};
PyMODINIT_FUNC PyInit__pyslots(void) { return PyModule_Create(&module); }
"""


def build_pyslots(directory: Path) -> Path:
    """Compile the profiling hook (``_pyslots``) for this Python; returns the extension's path."""
    import sysconfig

    lines = [_PYSLOTS_HEAD, f"#define NSLOTS {PROFILE_SLOTS}\n"]
    for i in range(PROFILE_SLOTS):
        lines.append(f"__attribute__((noinline)) PyObject *pyslot_{i:04d}(PyThreadState *t, _PyInterpreterFrame *f, "
                     f'int e) {{ PyObject *r = _PyEval_EvalFrameDefault(t, f, e); __asm__ volatile("" ::: "memory"); '
                     f"return r; }}\n")
    lines.append("static tramp_t slots[NSLOTS] = {" + ",".join(f"pyslot_{i:04d}" for i in range(PROFILE_SLOTS))
                 + "};\n")
    lines.append(_PYSLOTS_TAIL)
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "_pyslots.c"
    source.write_text("".join(lines))
    target = directory / f"_pyslots{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiler = os.environ.get("CC", "gcc")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-fno-optimize-sibling-calls", "-fno-inline",
                    f"-I{sysconfig.get_paths()['include']}", "-o", str(target), str(source)], check=True)
    return target


# -- in the crawl process (under valgrind) ----------------------------------------------------------------------


def crawl(args: argparse.Namespace) -> int:
    """One crawl in this process with nothing around it; prints its counts as one JSON line."""
    sys.path.insert(0, str(HERE))
    import _crawl_one  # puts this clone and benchmarks/ first on sys.path; imports scrapy, not consentcrawl

    source = str(Path(args.source).resolve())
    sys.path[:] = [source] + [p for p in sys.path if p not in (source, str(CLONE))]
    from scrapy.crawler import CrawlerProcess

    pyslots = None
    if args.profile_lib:
        import importlib.util

        spec = importlib.util.spec_from_file_location("_pyslots", args.profile_lib)
        assert spec is not None and spec.loader is not None
        pyslots = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pyslots)
        pyslots.install(os.path.join(source, "consentcrawl", ""))
    config = argparse.Namespace(config=args.config, concurrent_items=args.concurrent_items, workdir=args.workdir,
                                mode=args.mode, floor=False, calibrate_us=0.0)
    settings = _crawl_one.settings_for(config)
    if args.config == "c":
        settings.update(extra_settings(args.set))
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(_crawl_one.ProfilesSpider)
    process.crawl(crawler)
    process.start()
    assert crawler.stats is not None
    stats = crawler.stats.get_stats()
    out: dict[str, Any] = {
        "finish_reason": stats.get("finish_reason"),
        "responses": int(stats.get("response_received_count", 0)),
        "requests": int(stats.get("downloader/request_count", 0)),
        "items": int(stats.get("item_scraped_count", 0)),
        "consent": {k: v for k, v in stats.items() if isinstance(k, str) and k.startswith("consentcrawl/")
                    and isinstance(v, int)},
        "errors": {k: v for k, v in stats.items() if isinstance(k, str) and ("exception" in k or "error" in k)},
    }
    if args.config == "c":
        import consentcrawl

        out["consentcrawl_from"] = str(Path(consentcrawl.__file__).resolve().parent.parent)
        if out["consentcrawl_from"] != source:
            raise RuntimeError(f"consentcrawl imported from {out['consentcrawl_from']}, not {source}")
    if pyslots is not None:
        report = pyslots.report()
        slots = [[f"{os.path.relpath(code.co_filename, source)}:{code.co_qualname}:{code.co_firstlineno}", entries]
                 for code, entries in report.pop("slots")]
        out["profile"] = report
        Path(args.profile_map).write_text(json.dumps(slots))
    print(json.dumps(out))
    return 0


def extra_settings(assignments: list[str] | None) -> dict[str, str]:
    """``--set NAME=VALUE`` pairs as settings, read as ``scrapy crawl -s`` reads them (strings)."""
    out = {}
    for assignment in assignments or ():
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"--set {assignment!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


# -- the driver ---------------------------------------------------------------------------------------------------


def total_ir(path: Path) -> int:
    """The total ``Ir`` of a callgrind out file: its ``totals:`` line, else its ``summary:`` line."""
    summary = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
            if line.startswith("summary:"):
                summary = int(line.split()[1])
    if summary is None:
        raise RuntimeError(f"no totals or summary line in {path}")
    return summary


#: system calls whose count per response is reported: their kernel work is not in ``Ir`` (callgrind counts user
#: space only). fdatasync/fsync: the audit log's durability; epoll_wait: turns of the event loop.
SYSCALLS = ("fdatasync", "fsync", "write", "epoll_wait")


def call_counts(path: Path, names: tuple[str, ...] = SYSCALLS) -> dict[str, int]:
    """How many times the crawl called each of ``names`` (C functions: libc's system call wrappers)."""
    ids: dict[str, str] = {}
    counts = dict.fromkeys(names, 0)
    callee = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=", "cfi=", "cfl=")):
                key, _, rest = line.rstrip("\n").partition("=")
                if key in ("cfi", "cfl"):
                    continue
                match = re.match(r"\((\d+)\)(?: (.*))?$", rest)
                name = rest
                if match:
                    if match.group(2):
                        ids[match.group(1)] = match.group(2)
                    name = ids.get(match.group(1), "")
                callee = name if key == "cfn" else None
            elif callee in counts and line.startswith("calls="):
                counts[callee] += int(line[6:].split()[0])
                callee = None
    return counts


def git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(CLONE), *argv], check=True, text=True, capture_output=True).stdout.strip()


class Source:
    """A tree of the code to measure: the checkout, or a git worktree of a revision."""

    def __init__(self, rev: str | None, tmp: Path) -> None:
        self.rev = rev
        self.worktree: Path | None = None
        if rev is None:
            self.label = "checkout"
            self.commit = git("rev-parse", "HEAD")
            dirty = git("status", "--porcelain", "--untracked-files=no", "--", "consentcrawl")
            self.describe = f"working tree at {self.commit[:7]}" + (" + uncommitted changes" if dirty else "")
            self.path = CLONE
        else:
            self.commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
            self.label = rev
            self.describe = f"{rev} = {self.commit[:7]}"
            self.path = tmp / f"rev-{len(list(tmp.iterdir()))}-{self.commit[:7]}"
            git("worktree", "add", "--detach", str(self.path), self.commit)
            self.worktree = self.path

    def remove(self) -> None:
        if self.worktree is not None:
            subprocess.run(["git", "-C", str(CLONE), "worktree", "remove", "--force", str(self.worktree)],
                           check=False, capture_output=True)
            self.worktree = None


def build_store(source: Source, directory: Path, records: int) -> Path:
    """An SQLite store of ``records`` synthetic records, built by the revision's own ``bulk_build``."""
    from synthetic import PLATFORMS_YAML

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "platforms.yaml").write_text(PLATFORMS_YAML)
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "from consentcrawl.consent.sqlite import bulk_build\n"
            "from synthetic import row_at\n"
            "bulk_build(sys.argv[3], int(sys.argv[4]), row_at)\n")
    subprocess.run([sys.executable, "-c", code, str(source.path), str(HERE), str(directory / "store.db"),
                    str(records)], check=True, cwd=directory)
    return directory


def snapshot_benchmarks(directory: Path) -> Path:
    """A copy of ``benchmarks/*.py``, compiled: every crawl runs the same code, read from the same ``.pyc`` files.

    Editing the checkout's scripts while a measurement runs must not change what later crawls compile at start-up
    (a ~30 KB script compiled under valgrind is tens of millions of instructions; a difference between the small
    and the large crawl would land in the marginal figure).
    """
    directory.mkdir(parents=True)
    for script in HERE.glob("*.py"):
        shutil.copy(script, directory / script.name)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(directory)], check=True)
    return directory


_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import instructions; sys.exit(instructions.main(sys.argv[2:]))"


def run_one(job: dict[str, Any], args: argparse.Namespace, ports: dict[int, int], keep: Path) -> dict[str, Any]:
    """One crawl under callgrind in a directory of its own; returns the job with its ``Ir`` and counts."""
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True)
    for name in ("platforms.yaml", "store.db"):
        shutil.copy(Path(job["store_dir"]) / name, workdir / name)
    out_file = keep / f"callgrind.{job['name']}.out"
    env = dict(os.environ, http_proxy=f"http://127.0.0.1:{ports[job['pages']]}", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1")  # no crawl leaves .pyc files that make the next one start differently
    for name in ("https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY",
                 "PYTHONPATH", "SCRAPY_SETTINGS_MODULE"):
        env.pop(name, None)
    command = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    if job.get("profile_lib"):
        command += ["--toggle-collect=pyslot_foreign", "--collect-atstart=yes"]  # in this order
    command += [sys.executable, "-c", _CHILD, job["bench"], "--crawl", job["config"],
                "--source", job["source"], "--workdir", str(workdir), "--mode", args.mode,
                "--concurrent-items", str(args.concurrent_items)]
    for assignment in args.set or ():
        command += ["--set", assignment]
    if job.get("profile_lib"):
        command += ["--profile-lib", job["profile_lib"], "--profile-map", str(keep / f"{job['name']}.slots.json")]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=workdir, text=True, capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"crawl {job['name']} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # enforce mode drops the pages of people without a grant; each is one deny
    reached = result["items"] + (result["consent"].get("consentcrawl/denied", 0) if args.mode == "enforce" else 0)
    if result["finish_reason"] != "finished" or reached != job["pages"]:
        raise RuntimeError(f"crawl {job['name']} did not crawl everything: {result}")
    job.update(result, ir=total_ir(out_file), calls=call_counts(out_file), seconds=time.perf_counter() - start,
               out_file=str(out_file))
    if job.get("profile_lib"):
        job["functions"] = profile_functions(out_file, keep / f"{job['name']}.slots.json")
    if not args.keep:
        out_file.unlink()
    shutil.rmtree(workdir, ignore_errors=True)
    return job


_ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*?:(\S+?)(?:\s+\[.*\])?\s*$")


def annotate(out_file: Path, inclusive: bool) -> dict[str, int]:
    """Ir per function name from ``callgrind_annotate`` (every function, no threshold)."""
    proc = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                           str(out_file)], check=True, text=True, capture_output=True)
    costs: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        match = _ANNOTATE_LINE.match(line)
        if match:
            costs[match.group(2)] = costs.get(match.group(2), 0) + int(match.group(1).replace(",", ""))
    return costs


def profile_functions(out_file: Path, slots_file: Path) -> dict[str, Any]:
    """Inclusive Ir and frame entries per consentcrawl function of a ``--profile`` crawl, by name."""
    slots = json.loads(slots_file.read_text())  # [["file:qualname:line", entries], ...] in slot order
    inclusive = annotate(out_file, inclusive=True)
    exclusive = annotate(out_file, inclusive=False)
    functions: dict[str, dict[str, int]] = {}
    for slot, (name, entries) in enumerate(slots):
        # by file:qualname, without the line (it moves between revisions); same-named code objects (a property's
        # getter and setter, a function defined in two branches) add up
        row = functions.setdefault(name.rsplit(":", 1)[0], {"ir": 0, "entries": 0})
        row["ir"] += inclusive.get(f"pyslot_{slot:04d}", 0)
        row["entries"] += entries
    hook = sum(cost for name, cost in exclusive.items()
               if name.startswith("pyslot_") or name in ("hook", "classify"))
    return {"functions": functions, "all": inclusive.get("pyslot_outer", 0), "hook": hook}


def millions(n: float) -> str:
    return f"{n / 1e6:.3f}M"


def pairs(jobs: list[dict[str, Any]], label: str, config: str, small: int,
          large: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The i-th small crawl with the i-th large one, for each repeat."""
    def of(pages: int) -> list[dict[str, Any]]:
        return sorted((j for j in jobs if j["label"] == label and j["config"] == config and j["pages"] == pages),
                      key=lambda j: j["repeat"])

    return list(zip(of(small), of(large), strict=True))


def marginals(jobs: list[dict[str, Any]], label: str, config: str, small: int, large: int) -> list[float]:
    """Marginal Ir per response, one per repeat."""
    return [(big["ir"] - little["ir"]) / (big["responses"] - little["responses"])
            for little, big in pairs(jobs, label, config, small, large)]


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f" (runs {', '.join(millions(v) for v in values)}; spread {(max(values) - min(values)) / mid:.2%})"


def print_profile(profiled: list[dict[str, Any]], labels: list[str], small_pages: int, large_pages: int, top: int,
                  per_response: dict[str, dict[str, float]]) -> None:
    """The top consentcrawl functions by marginal inclusive Ir per response, per revision side by side."""
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    totals: dict[str, dict[str, float]] = {}
    for label in labels:
        small = next((j for j in profiled if j["label"] == label and j["pages"] == small_pages), None)
        large = next((j for j in profiled if j["label"] == label and j["pages"] == large_pages), None)
        if small is None or large is None:
            continue
        responses = large["responses"] - small["responses"]
        a, b = small["functions"], large["functions"]
        for name in set(a["functions"]) | set(b["functions"]):
            x = a["functions"].get(name, {"ir": 0, "entries": 0})
            y = b["functions"].get(name, {"ir": 0, "entries": 0})
            rows.setdefault(name, {})[label] = ((y["ir"] - x["ir"]) / responses,
                                                (y["entries"] - x["entries"]) / responses)
        totals[label] = {
            "all": (b["all"] - a["all"]) / responses, "hook": (b["hook"] - a["hook"]) / responses,
            "collected": (large["ir"] - small["ir"]) / responses,
            "foreign": (large["profile"]["foreign_entries"] - small["profile"]["foreign_entries"]) / responses,
            "reentries": large["profile"]["reentries"], "overflow": large["profile"]["overflow"]}
    labels = [label for label in labels if label in totals]
    if not labels:
        return
    first, last = labels[0], labels[-1]
    change = len(labels) > 1
    print()
    print(f"where consentcrawl's instructions go in (c), {small_pages} -> {large_pages} pages: inclusive Ir per "
          "response of each consentcrawl function (file:qualified name; the spider's and Scrapy's generators and "
          "coroutines our code resumes are not counted), and frame entries (calls and resumptions) per response:")
    print("| function | " + " | ".join(f"{label} Ir | {label} entries" for label in labels)
          + (f" | {last} - {first} Ir" if change else "") + " |")
    print("|---|" + "---:|---:|" * len(labels) + ("---:|" if change else ""))
    delta = millions(totals[last]["all"] - totals[first]["all"])
    print("| **all consentcrawl code** (outermost entries) | "
          + " | ".join(f"{millions(totals[label]['all'])} | " for label in labels) + (f" | {delta}" if change else "")
          + " |")

    def of(name: str, label: str) -> tuple[float, float]:
        return rows[name].get(label, (0.0, 0.0))

    ranked = sorted(rows, key=lambda name: -max(of(name, label)[0] for label in labels))
    for name in ranked[:top]:
        cells = [f"{millions(of(name, label)[0])} | {of(name, label)[1]:.2f}" for label in labels]
        if change:
            cells.append(millions(of(name, last)[0] - of(name, first)[0]))
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    if change:
        print(f"largest changes {first} -> {last} (inclusive, so nested functions count in their callers too):")
        moved = sorted(rows, key=lambda name: -abs(of(name, last)[0] - of(name, first)[0]))
        for name in moved[:top // 2]:
            print(f"  {millions(of(name, last)[0] - of(name, first)[0]):>8}  `{name}` "
                  f"({of(name, first)[1]:.2f} -> {of(name, last)[1]:.2f} entries per response)")
    for label in labels:
        t = totals[label]
        plain = per_response.get(label, {})
        over = f", {millions(plain['c'] - plain['a'])} measured as (c) - (a)" if "a" in plain and "c" in plain else ""
        print(f"{label}: all consentcrawl code {millions(t['all'])} per response{over}. The profiled crawl counted "
              f"{millions(t['collected'])} per response (foreign frames left out), of which the hook's own "
              f"{millions(t['hook'])} (part of it inside our functions' inclusive figures); {t['foreign']:.2f} "
              f"foreign frame entries per response; {t['reentries']} re-entries of our code inside them (would be "
              f"uncounted), {t['overflow']} code objects without a slot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages-small", type=int, default=100)
    parser.add_argument("--pages-large", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="run every measurement K times (default 1)")
    parser.add_argument("--configs", default="a,b,c", help="of a, b, c (default a,b,c)")
    parser.add_argument("--mode", choices=["report", "enforce"], default="report", help="(c)'s mode")
    parser.add_argument("--concurrent-items", type=int, default=16)
    parser.add_argument("--records", type=int, default=10_000, help="records in the SQLite store (default 10,000)")
    parser.add_argument("--rev", action="append", help="measure this git revision (repeatable); default: the checkout")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="crawls under valgrind at a time (default: the number of CPUs)")
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind out files in DIR (for callgrind_annotate)")
    parser.add_argument("--json", metavar="FILE", help="also write every crawl's numbers to FILE")
    parser.add_argument("--profile", action="store_true",
                        help="also crawl (c) twice more per revision with each consentcrawl function visible to "
                             "callgrind, and print the top functions by inclusive instructions per response")
    parser.add_argument("--profile-top", type=int, default=20, help="functions to print with --profile")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="a setting for (c)'s crawls (repeatable), e.g. --set CONSENTCRAWL_AUDIT_LOG= to weigh "
                             "what one feature costs; the value is a string, as on scrapy's command line")
    parser.add_argument("--crawl", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--profile-lib", help=argparse.SUPPRESS)
    parser.add_argument("--profile-map", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="JSON", help="print the report of an earlier run's --json file again")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        for entry in saved["crawls"]:  # files written before the profile was keyed without line numbers
            if "functions" in entry:
                merged: dict[str, dict[str, int]] = {}
                for name, row in entry["functions"]["functions"].items():
                    key = name.rsplit(":", 1)[0] if name.count(":") > 1 else name
                    into = merged.setdefault(key, {"ir": 0, "entries": 0})
                    into["ir"] += row["ir"]
                    into["entries"] += row["entries"]
                entry["functions"]["functions"] = merged
        old = saved["args"]
        configs = saved.get("configs") or [c.strip() for c in old["configs"].split(",") if c.strip()]
        report(saved["crawls"], saved["sources"], configs, old["pages_small"], old["pages_large"], old["repeat"],
               args.profile_top)
        return 0
    if args.crawl:
        args.config = args.crawl
        return crawl(args)

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not configs or set(configs) - set(CONFIGS) or args.repeat < 1:
        parser.error("--configs takes a, b and c; --repeat at least 1")
    try:
        extra_settings(args.set)
    except ValueError as error:
        parser.error(str(error))
    if not 0 < args.pages_small < args.pages_large:
        parser.error("need 0 < --pages-small < --pages-large")
    if shutil.which(VALGRIND) is None:
        parser.error("valgrind is not installed")
    sys.path[:0] = [str(HERE)]
    import platform_server

    tmp = Path(tempfile.mkdtemp(prefix="consentcrawl-instructions-"))
    keep = Path(args.keep).resolve() if args.keep else tmp / "out"
    keep.mkdir(parents=True, exist_ok=True)
    sources: list[Source] = []
    servers: list[Any] = []
    started = time.perf_counter()
    try:
        for rev in args.rev or [None]:
            sources.append(Source(rev, tmp))
        print(f"valgrind: {subprocess.run([VALGRIND, '--version'], text=True, capture_output=True).stdout.strip()}; "
              f"python {sys.version.split()[0]}; PYTHONHASHSEED=0; {args.jobs} crawls at a time"
              + (f"; (c) with {extra_settings(args.set)}" if args.set else ""), flush=True)
        for source in sources:
            print(f"measuring {source.describe} ({source.path})", flush=True)
        bench = str(snapshot_benchmarks(tmp / "benchmarks"))
        for source in sources:
            if source.worktree is not None:  # compiled once here, as an installed package would be
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(source.path / "consentcrawl")],
                               check=True)
        stores = {}
        for index, source in enumerate(sources):
            if "c" in configs:
                print(f"building a store of {args.records:,} records for {source.label} ...", flush=True)
            stores[source.label] = build_store(source, tmp / f"store-{index}", args.records if "c" in configs else 0)
        ports = {}
        for pages in (args.pages_small, args.pages_large):
            server, ports[pages] = platform_server.start_server(pages)
            servers.append(server)
        jobs = []
        for repeat in range(args.repeat):  # interleaved: a whole round of everything, then the next
            for pages in (args.pages_large, args.pages_small):
                for source in sources:
                    for config in configs:
                        name = f"{len(jobs):03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', source.label)}-{config}-{pages}"
                        jobs.append({"name": name, "label": source.label, "commit": source.commit,
                                     "source": str(source.path), "config": config, "pages": pages,
                                     "repeat": repeat, "store_dir": str(stores[source.label]), "bench": bench,
                                     "workdir": str(tmp / "crawls" / name)})
        if args.profile:
            print("compiling the profiling hook ...", flush=True)
            profile_lib = str(build_pyslots(tmp / "pyslots"))
            for pages in (args.pages_large, args.pages_small):
                for source in sources:
                    name = f"{len(jobs):03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', source.label)}-profile-{pages}"
                    jobs.append({"name": name, "label": source.label, "commit": source.commit,
                                 "source": str(source.path), "config": "c", "pages": pages, "repeat": 0,
                                 "store_dir": str(stores[source.label]), "bench": bench,
                                 "workdir": str(tmp / "crawls" / name), "profile_lib": profile_lib})
        print(f"{len(jobs)} crawls under callgrind ...", flush=True)
        done: list[dict[str, Any]] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(run_one, job, args, ports, keep) for job in jobs]
            for future in concurrent.futures.as_completed(futures):
                job = future.result()
                done.append(job)
                what = f"{job['config']}, profiled" if "functions" in job else job["config"]
                print(f"  [{len(done)}/{len(jobs)}] {job['label']} ({what}) {job['pages']} pages: "
                      f"{job['responses']} responses, Ir {job['ir']:,} ({job['seconds']:.0f} s)", flush=True)
    finally:
        for server in servers:
            platform_server.stop_server(server)
        for source in sources:
            source.remove()
        if sources and any(s.rev for s in sources):
            subprocess.run(["git", "-C", str(CLONE), "worktree", "prune"], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)  # --keep's directory is elsewhere
    elapsed = time.perf_counter() - started
    described = [{"label": s.label, "commit": s.commit, "describe": s.describe} for s in sources]
    report(done, described, configs, args.pages_small, args.pages_large, args.repeat, args.profile_top)
    print(f"\n{len(done)} crawls in {elapsed / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "configs": configs, "crawls": done,
                                               "sources": described, "minutes": elapsed / 60}, indent=1))
    return 0


def report(crawls: list[dict[str, Any]], sources: list[dict[str, str]], configs: list[str], small: int, large: int,
           repeat: int, top: int) -> None:
    """Print the raw numbers, the marginal figures, the profile (if any) and the headline lines."""
    profiled = [j for j in crawls if "functions" in j]
    done = [j for j in crawls if "functions" not in j]
    labels = [s["label"] for s in sources]
    print()
    print("| revision | config | pages | responses | Ir (each run) |")
    print("|---|---|---:|---:|---|")
    for label in labels:
        for config in configs:
            for pages in (small, large):
                runs = sorted((j for j in done if j["label"] == label and j["config"] == config
                               and j["pages"] == pages), key=lambda j: j["repeat"])
                responses = sorted({j["responses"] for j in runs})
                print(f"| {label} | ({config}) {CONFIGS[config]} | {pages} | "
                      f"{'/'.join(str(r) for r in responses)} | {', '.join(format(j['ir'], ',') for j in runs)} |")

    per_response: dict[str, dict[str, float]] = {}
    print()
    print(f"marginal instructions per response, {small} -> {large} pages "
          f"(median of {repeat} run{'s' * (repeat > 1)}):")
    print("| config | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for config in configs:
        cells = []
        for label in labels:
            values = marginals(done, label, config, small, large)
            per_response.setdefault(label, {})[config] = statistics.median(values)
            cell = millions(statistics.median(values))
            if config != "a" and "a" in per_response[label]:
                cell += f" (+{(statistics.median(values) - per_response[label]['a']) / 1e6:.3f}M over a)"
            cells.append(cell + spread(values))
        print(f"| ({config}) {CONFIGS[config]} | " + " | ".join(cells) + " |")
    if len(labels) > 1:
        first, last = labels[0], labels[-1]
        print()
        for config in configs:
            before, after = per_response[first][config], per_response[last][config]
            print(f"({config}) {CONFIGS[config]}: {last} vs {first}: {millions(after - before)} per response "
                  f"({(after - before) / before:+.2%})")
        if "a" in configs and "c" in configs:
            over = {label: per_response[label]["c"] - per_response[label]["a"] for label in (first, last)}
            print(f"consentcrawl's instructions over plain Scrapy: {millions(over[first])} at {first}, "
                  f"{millions(over[last])} at {last} ({(over[last] - over[first]) / over[first]:+.1%})")
    if all("calls" in j for j in done):
        print()
        print(f"system calls per response, {small} -> {large} pages (their kernel work is not in Ir; epoll_wait: "
              "turns of the event loop):")
        print("| revision | config | " + " | ".join(SYSCALLS) + " |")
        print("|---|---|" + "---:|" * len(SYSCALLS))
        for label in labels:
            for config in configs:
                cells = []
                for name in SYSCALLS:
                    values = []
                    for little, big in pairs(done, label, config, small, large):
                        values.append((big["calls"][name] - little["calls"][name])
                                      / (big["responses"] - little["responses"]))
                    cells.append(f"{statistics.median(values):.2f}")
                print(f"| {label} | ({config}) {CONFIGS[config]} | " + " | ".join(cells) + " |")
    if profiled:
        print_profile(profiled, labels, small, large, top, per_response)
    for source in sources:
        row = per_response[source["label"]]
        print()
        if len(labels) > 1:
            print(f"[{source['describe']}]")
        if "a" in row:
            print(f"plain Scrapy instructions per response: {millions(row['a'])}")
            for config, what in (("c", "consentcrawl"), ("b", "Scrapy robots middleware")):
                if config in row:
                    extra = row[config] - row["a"]
                    print(f"{what} instructions per response over plain Scrapy: {extra / 1e6:.2f}M "
                          f"({extra / row['a']:+.1%})")


if __name__ == "__main__":
    sys.exit(main())
