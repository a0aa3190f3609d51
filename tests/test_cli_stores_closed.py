"""The command line closes the authorization store it opened: a Redis store follows its change stream in a task of
its own (a blocking ``XREAD``), and a command that left it running hung at exit, in ``asyncio.run``'s cancelling of
the tasks left, most of the times it was run. Each command here runs as the user runs it, in a process of its own,
against a real ``redis-server``, and must exit with its answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consentcrawl_demo.server import LocalServer
from tests.lenient import LenientPeople, write_config
from tests.redis_server import RedisServer
from tests.test_distributed import grant

#: runs of each command: the hang came in about three runs of four
RUNS = 3
#: seconds a command may take (it takes about one)
LIMIT = 20


@pytest.mark.parametrize("command", [
    ["check", "http://people.example/u/101", "--json"],
    ["check", "http://people.example/u/101", "--json", "--fetch"],
    ["signals", "http://people.example/u/101", "--json", "--fetch"],
    ["authorizations", "show", "people:101"],
], ids=["check", "check-fetch", "signals-fetch", "authorizations-show"])
def test_a_command_with_a_redis_store_exits_with_its_answer(
        command: list[str], redis_server: RedisServer, tmp_path: Path) -> None:
    platforms, _ = write_config(tmp_path, [])
    store = redis_server.url + "?prefix=auth"
    grant(store, tmp_path, ["101"])
    (tmp_path / "store_settings.py").write_text(
        f"CONSENTCRAWL_PLATFORMS = {str(platforms)!r}\nCONSENTCRAWL_AUTHORIZATIONS = {store!r}\n"
        "CONSENTCRAWL_PURPOSE = 'research'\n")
    app = LenientPeople()
    with LocalServer(app) as server:
        env = {**os.environ, "http_proxy": server.proxy, "PYTHONPATH": str(tmp_path)}
        env.pop("HTTP_PROXY", None)
        for run in range(RUNS):
            try:
                done = subprocess.run([str(Path(sys.executable).parent / "consentcrawl"), *command,
                                       "--settings", "store_settings"], env=env,
                                      cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run {run + 1}: `consentcrawl {' '.join(command)}` did not exit within {LIMIT} s")
            assert done.returncode == 0, (done.stdout, done.stderr)
    assert "101" in app.people_served() or command[-1] != "--fetch", app.describe()  # control: it asked the site
