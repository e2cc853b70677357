"""Run locks: one holder at a time, stale holders taken over, a lost lock stops its worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.locks import FileLock, LockLost, read_lock


def _foreign_lock(path: Path, *, host: str, pid: int, heartbeat_age: float, job=None) -> None:
    now = time.time()
    content = {
        "token": "someone-else",
        "host": host,
        "pid": pid,
        "job": job,
        "started": now - heartbeat_age - 5,
        "heartbeat": now - heartbeat_age,
    }
    path.write_text(json.dumps(content), encoding="utf-8")


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_claim_is_refused_while_the_first_holds(tmp_path):
    first = FileLock(tmp_path / "lock.json")
    second = FileLock(tmp_path / "lock.json")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder is not None and second.holder.token == first.token
    assert second.holder.pid == os.getpid() and second.holder.host == socket.gethostname()
    first.release()
    assert second.acquire()


def test_release_leaves_a_lock_of_someone_else_alone(tmp_path):
    path = tmp_path / "lock.json"
    _foreign_lock(path, host="elsewhere", pid=1, heartbeat_age=0)
    FileLock(path).release()
    assert read_lock(path).token == "someone-else"


def test_lock_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path, dead_pid):
    path = tmp_path / "lock.json"
    _foreign_lock(path, host=socket.gethostname(), pid=dead_pid, heartbeat_age=0)
    lock = FileLock(path, timeout_s=3600)
    assert lock.acquire()
    assert lock.took_over is not None and lock.took_over.pid == dead_pid
    assert read_lock(path).token == lock.token


def test_live_holder_on_another_host_is_kept_until_its_heartbeat_times_out(tmp_path):
    path = tmp_path / "lock.json"
    _foreign_lock(path, host="node-7", pid=os.getpid(), heartbeat_age=30)
    assert not FileLock(path, timeout_s=60, heartbeat_s=5).acquire()
    _foreign_lock(path, host="node-7", pid=os.getpid(), heartbeat_age=90)
    lock = FileLock(path, timeout_s=60, heartbeat_s=5)
    assert lock.acquire() and lock.took_over.host == "node-7"


def test_requeued_job_takes_over_its_own_earlier_claim(tmp_path, monkeypatch):
    path = tmp_path / "lock.json"
    # The previous incarnation of SLURM job 123 is on this host and (seemingly) alive.
    _foreign_lock(path, host=socket.gethostname(), pid=os.getppid(), heartbeat_age=1, job="123")
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "456")
    assert not FileLock(path).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    lock = FileLock(path)
    assert lock.acquire() and read_lock(path).job == "123"


def test_heartbeat_refreshes_and_a_taken_over_lock_stops_the_worker(tmp_path):
    path = tmp_path / "lock.json"
    lock = FileLock(path, timeout_s=1.0, heartbeat_s=0.1)
    assert lock.acquire()
    with lock.hold():
        first = read_lock(path).heartbeat
        time.sleep(0.35)
        assert read_lock(path).heartbeat > first
        lock.check()  # still ours
        _foreign_lock(path, host="node-2", pid=1, heartbeat_age=0)
        time.sleep(0.35)
        with pytest.raises(LockLost):
            lock.check()
    assert read_lock(path).token == "someone-else", "the new holder's lock is left in place"


def test_a_damaged_lock_is_set_aside_named_and_claimed_at_once(tmp_path, caplog):
    path = tmp_path / "lock.json"
    path.write_text("{not json", encoding="utf-8")
    lock = FileLock(path, timeout_s=60, heartbeat_s=5)
    assert lock.acquire(), "a lock nobody can read has no live holder to wait for"
    assert read_lock(path).token == lock.token
    (aside,) = tmp_path.glob("lock.json.corrupt-*")
    assert aside.read_text(encoding="utf-8") == "{not json", "the damaged file is kept"
    assert str(path) in caplog.text and "moved aside" in caplog.text


def test_setting_a_damaged_lock_aside_gives_back_a_claim_made_meanwhile(tmp_path, monkeypatch):
    path = tmp_path / "lock.json"
    path.write_bytes(b"\x00garbage")
    claim = FileLock(path, timeout_s=60, heartbeat_s=5)
    real_read_bytes = Path.read_bytes

    def claimed_after_our_read(self):
        content = real_read_bytes(self)
        if self == path:  # another worker sets the damage aside and claims between the steps
            monkeypatch.setattr(Path, "read_bytes", real_read_bytes)
            path.unlink()
            assert claim.acquire()
        return content

    monkeypatch.setattr(Path, "read_bytes", claimed_after_our_read)
    assert read_lock(path) is None
    assert read_lock(path).token == claim.token, "the other worker's claim is put back"


def test_heartbeat_must_be_shorter_than_the_timeout(tmp_path):
    with pytest.raises(ValueError, match="heartbeat"):
        FileLock(tmp_path / "lock.json", timeout_s=10, heartbeat_s=10)
