"""Claiming a run (or the suite's profiling stage) so that any number of workers can share
one output folder: nothing is done twice, and work of a dead worker is taken over.

A lock is a small JSON file (:class:`LockInfo`: token, host, pid, job id, start,
heartbeat) created atomically with ``os.link``, which fails when the file exists, on
local disks and on NFS alike. The holder rewrites the heartbeat every
``heartbeat_s`` seconds from a background thread. Another worker treats a lock as
stale, and takes it over, when

- its heartbeat is older than ``timeout_s`` (the holder hung or its machine died),
- it was written on this host by a process that no longer exists (SIGKILL, OOM), or
- it was written by an earlier incarnation of this very job (a requeued SLURM job).

Taking over renames the stale file away (only one worker's rename can succeed), checks
that the renamed file is the stale lock it inspected, and then claims as usual. A
holder whose heartbeat finds a lock that is not its own stops its run
(:class:`LockLost`) rather than training a run another worker now owns; its
checkpoints are written atomically, so the new holder resumes from a whole file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.files import atomic_write_text, read_problem, set_aside

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_HEARTBEAT_S = 30.0
REMOVED_RECHECK_S = 1.0


class LockLost(RuntimeError):
    """The lock of the run being worked on was taken over by another worker."""


class LockRemoved(LockLost):
    """The lock file vanished while held and nobody took it over: its folder (the run's
    output) was deleted or the file removed by hand. The work is lost, an error."""


def current_job_id() -> str | None:
    """The cluster job (array task) this process belongs to, if any.

    submitit's id (``JOBID_TASK`` for arrays, also for its local executor) when inside a
    submitit job, else SLURM's, else None.
    """
    if "SUBMITIT_EXECUTOR" in os.environ:
        with contextlib.suppress(ImportError, RuntimeError):
            import submitit

            return str(submitit.JobEnvironment().job_id)
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its holder (times are seconds since the epoch)."""

    token: str
    host: str
    pid: int
    job: str | None
    started: float
    heartbeat: float

    def heartbeat_age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat

    def describe(self, now: float | None = None) -> str:
        """``host:pid (job J) since HH:MM:SS, heartbeat N s ago`` for status lines."""
        job = f" job {self.job}" if self.job else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return (
            f"{self.host}:{self.pid}{job} since {since}, "
            f"heartbeat {self.heartbeat_age(now):.0f} s ago"
        )


class FileLock:
    """An atomic, heartbeat-refreshed claim on a file path (see the module docstring).

    Args:
        path: the lock file (``RunLayout.lock``, ``SuiteLayout.profile_lock``).
        timeout_s: a heartbeat older than this makes the lock stale.
        heartbeat_s: how often :meth:`hold` rewrites the heartbeat.
    """

    def __init__(
        self,
        path: Path,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    ) -> None:
        if heartbeat_s >= timeout_s:
            raise ValueError(
                f"the heartbeat interval ({heartbeat_s} s) must be shorter than the lock "
                f"timeout ({timeout_s} s)"
            )
        self.path = path
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self.token = uuid.uuid4().hex
        self.holder: LockInfo | None = None
        self.took_over: LockInfo | None = None
        self._lost: LockLost | None = None

    def read(self) -> LockInfo | None:
        """The lock's current content, or None when there is no lock."""
        return read_lock(self.path)

    def is_stale(self, info: LockInfo, now: float | None = None) -> bool:
        """Whether ``info``'s holder is gone (see the module docstring)."""
        if info.heartbeat_age(now) > self.timeout_s:
            return True
        if info.host == socket.gethostname() and not _process_exists(info.pid):
            return True
        job = current_job_id()
        return job is not None and info.job == job and info.pid != os.getpid()

    def acquire(self) -> bool:
        """Claim the lock; False when a live holder has it (then :attr:`holder` says who)."""
        for _ in range(5):
            if self._create():
                return True
            info = self.read()
            if info is None:
                continue
            if info.token == self.token:
                return True
            if not self.is_stale(info):
                self.holder = info
                return False
            self._remove_stale(info)
        info = self.read()
        self.holder = info
        return info is not None and info.token == self.token

    def _content(self, started: float | None = None) -> str:
        now = time.time()
        info = LockInfo(
            token=self.token,
            host=socket.gethostname(),
            pid=os.getpid(),
            job=current_job_id(),
            started=now if started is None else started,
            heartbeat=now,
        )
        return json.dumps(asdict(info))

    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        draft = self.path.with_name(f".{self.path.name}.{self.token}.tmp")
        draft.write_text(self._content(), encoding="utf-8")
        try:
            os.link(draft, self.path)
        except FileExistsError:
            return False
        finally:
            draft.unlink(missing_ok=True)
        return True

    def _remove_stale(self, stale: LockInfo) -> None:
        aside = self.path.with_name(f".{self.path.name}.stale.{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:  # another worker removed it first
            return
        moved = read_lock(aside)
        if moved is not None and moved.token != stale.token:
            # A third worker claimed the lock between our read and our rename: put it back.
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        else:
            self.took_over = stale
            log.warning("%s: taking over a stale lock of %s", self.path, stale.describe())
        aside.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Rewrite the heartbeat.

        Raises:
            LockLost: another worker holds the lock now.
            LockRemoved: the lock is gone and nobody took it over (a taker renames the
                stale lock away and then creates its own, so a missing lock is read twice,
                ``REMOVED_RECHECK_S`` apart, before it counts as removed).
        """
        info = self.read()
        if info is None:
            time.sleep(REMOVED_RECHECK_S)
            info = self.read()
        if info is None:
            folder = "deleted" if not self.path.parent.is_dir() else "still there"
            self._lost = LockRemoved(
                f"{self.path} was removed while this worker held it (its folder is {folder}): "
                "the output folder was deleted or the lock removed by hand, so this work is "
                "stopped and not saved; run the command again to redo it"
            )
        elif info.token != self.token:
            self._lost = LockLost(f"{self.path}: lock taken over by {info.describe()}")
        else:
            atomic_write_text(self.path, self._content(started=info.started))
            return
        raise self._lost

    def check(self, *_: object) -> None:
        """Raise what the heartbeat found if the lock was lost (a step callback)."""
        if self._lost is not None:
            raise self._lost

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        info = self.read()
        if info is not None and info.token == self.token:
            self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def hold(self) -> Iterator[FileLock]:
        """Keep the (acquired) lock's heartbeat fresh while the block runs; release it after."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    self.refresh()
                except LockLost as error:
                    log.error("%s", error)
                    return
                except OSError as error:  # a flaky shared disk: try again next beat
                    log.warning("%s: heartbeat failed: %s", self.path, error)

        thread = threading.Thread(target=beat, name=f"heartbeat {self.path}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release()


def read_lock(path: Path) -> LockInfo | None:
    """The content of a lock file, or None when it does not exist.

    Locks are written whole (created by ``os.link`` of a finished draft, refreshed by an
    atomic replace), so a lock that cannot be parsed is damaged, not half-written: it is
    set aside (:func:`bench.files.set_aside`) and reads as no lock, so the run is claimed
    again at once instead of waiting for a timeout no holder will ever refresh.
    """
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return LockInfo(**json.loads(content))
    except (ValueError, TypeError) as error:
        aside = set_aside(path, read_problem(error), "the lock counts as free")
        if aside is not None and aside.read_bytes() != content:
            # Another worker replaced the damaged lock with its claim between our read and
            # our move: give the claim back.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink()
        return None
