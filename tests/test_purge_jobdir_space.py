"""``purge --jobdir`` on a disk without room for its copies: it stops before touching anything.

The purge reads each queue from a copy and writes the kept requests into a new queue before the old one goes:
about twice the queues' size at the worst. A job directory on a small tmpfs (mounted in a private mount namespace,
``unshare -rm``, so no root and no mount outside this test) is purged in a child process: with too little room it
must fail naming the space it needs and the space free, every file as it was; with room, the same purge succeeds.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from queuelib.queue import LifoDiskQueue
from scrapy import Request

from tests.conftest import PLATFORMS

PERSON = "1005"

CHILD = r"""
import hashlib, json, shutil, sys
from pathlib import Path
from consentcrawl.cli import main

source, mount, log = map(Path, sys.argv[1:4])
job = mount / "job"
shutil.copytree(source, job)
def files():
    return {str(p.relative_to(job)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(job.rglob("*"))
            if p.is_file()}
before = files()
status = main(["purge", "--platforms", sys.argv[4], "--subject", "microblog:1005", "--audit-log", str(log),
               "--jobdir", str(job)])
print(json.dumps({"status": status, "same": files() == before}))
"""


def can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def job_of(tmp_path: Path) -> Path:
    """A JOBDIR whose one queue holds ~300 kB: the person's request among 30 others' (10 kB bodies each)."""
    job = tmp_path / "job"
    (job / "requests.queue").mkdir(parents=True)
    (job / "requests.queue" / "active.json").write_text("[0]")
    lifo = LifoDiskQueue(job / "requests.queue" / "0")
    for n in range(30):
        subject = PERSON if n == 7 else str(2000 + n)
        lifo.push(pickle.dumps(Request(f"http://microblog.example/u/{subject}", method="POST",
                                       body=bytes(10_000)).to_dict(), protocol=4))
    lifo.close()
    return job


def purge_on_tmpfs(tmp_path: Path, job: Path, size: str) -> dict[str, object]:
    mount = tmp_path / f"mnt-{size}"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size={size} tmpfs {mount} && "
              f"{sys.executable} -c \"$CHILD\" {job} {mount} {tmp_path / f'audit-{size}.jsonl'} {PLATFORMS}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=False,
                          env={"CHILD": CHILD, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
                          timeout=120)
    assert done.stdout.strip(), done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.skipif(not can_mount(), reason="no private mount namespace (unshare -rm) to mount a small tmpfs in")
def test_a_jobdir_on_a_disk_without_room_for_the_purge_fails_before_touching_anything(tmp_path: Path) -> None:
    job = job_of(tmp_path)
    queue = (job / "requests.queue" / "0").stat().st_size
    assert 300_000 < queue < 320_000

    # 512 kB: the copy leaves ~200 kB free, less than the ~600 kB the purge needs
    tight = purge_on_tmpfs(tmp_path, job, "512k")
    assert tight["status"] == 1 and tight["same"] is True, tight
    assert "not enough free space" in str(tight["stderr"]) and "nothing in the job directory was changed" in str(
        tight["stderr"]), tight

    # control: with room, the same purge removes the person's request
    roomy = purge_on_tmpfs(tmp_path, job, "2m")
    assert roomy["status"] == 0 and roomy["same"] is False, roomy
