"""Claiming a run dir: lock it, check everything, and only then write anything in it.

A refused run must leave the dir exactly as it was. So the order is: take an exclusive lock
(`.lock`, flock: released by the kernel when the process dies, even by kill -9), read and
check the existing plan under the lock, and write records.json, plan.json and the config
files only when the dir is new or holds this very sweep. Two processes starting on one dir:
the second gets "busy" at once, whatever the timing; two different sweeps cannot interleave
their files.

The lock file is opened without following links (O_NOFOLLOW) and created with O_EXCL: a
`.lock` planted as a link to someone's file, or a user's own `.lock`, is never truncated or
written. Only a lock this process created, or the lock of a dir that is ours, gets our PID.
A dir is ours only by its records.json (rundir/records.py); files that merely carry our
names (a user's configs.csv, calibration.csv) make a dir someone else's, never a resume.

A claim whose run fails before any result is recorded (a model that does not load, a bad
param file) is released: the files it wrote are removed, so the corrected command runs in
the same dir instead of being refused as "a different sweep".
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.rundir import records, store

LOCK = ".lock"
PLAN = "plan.json"
# What a claim writes besides its records: a dir holding nothing more is not a result yet.
CLAIM_FILES = {PLAN, "configs.csv", "run_config.yaml", "choices.json", "factors.json",
               "calibration.csv", "variants.json", "stats.json"}  # fmt: skip
WAIT_POLL_S = 0.2
log = logging.getLogger("evalharness")


class PlanMismatchError(RuntimeError):
    """The run dir holds parts of a different sweep, or is not ours; writing would mix."""


class RunDirBusyError(RuntimeError):
    """Another process holds the run dir's lock."""


@dataclass
class Lock:
    """An open, flocked lock file; `created`: this process made it (and may remove it)."""

    path: Path
    fd: int
    created: bool

    def same_file(self) -> bool:
        """The path still names the file we hold (another process may have removed it)."""
        try:
            st, mine = os.lstat(self.path), os.fstat(self.fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def write_pid(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def remove(self) -> None:
        """Remove the lock file, only when this process made it and it is still that file."""
        if self.created and self.same_file():
            self.path.unlink(missing_ok=True)


def _not_a_lock(path: Path, what: str) -> PlanMismatchError:
    return PlanMismatchError(
        f"{path} is {what}, not an evalharness lock: this is not a run dir of ours (nothing "
        "was written); choose another hydra.run.dir"
    )


def _open_lock(path: Path) -> tuple[int, bool]:
    """Open (creating with O_EXCL when absent) the lock file, never through a link."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    while True:
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            pass
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            continue  # removed between the two opens: create it after all
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _not_a_lock(path, "a symbolic link") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise _not_a_lock(path, "not a plain file" if st.st_nlink == 1 else "a hard link")
        return fd, False


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "?"


def _acquire(run_dir: Path, wait: bool) -> Lock:
    """flock the run dir's lock; busy: refuse at once, or (wait) poll until it is free."""
    said = False
    while True:
        fd, created = _open_lock(run_dir / LOCK)
        lock = Lock(run_dir / LOCK, fd, created)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if not wait:
                raise RunDirBusyError(
                    f"{run_dir} is in use by another evalharness process (pid {holder}); wait "
                    "for it or choose another hydra.run.dir"
                ) from None
            if not said:
                log.warning("waiting for evalharness process %s, which is writing %s",
                            holder, run_dir)  # fmt: skip
                said = True
            time.sleep(WAIT_POLL_S)
            continue
        if lock.same_file():
            return lock
        os.close(fd)  # its holder removed it after we opened it: take the new one


@contextmanager
def locked(run_dir: Path, wait: bool = False) -> Iterator[Lock]:
    """Hold the run dir's exclusive lock for the duration; refuse at once if it is taken
    (`wait`: wait for it). The PID is written only into a lock file that is ours."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _acquire(run_dir, wait)
    try:
        if lock.created or records.is_run_dir(run_dir):
            lock.write_pid()
        yield lock
    finally:
        os.close(lock.fd)  # closing releases the flock


def _foreign(run_dir: Path, lock: Lock) -> list[str]:
    """What a dir that is not ours holds (the lock counts unless this process made it)."""
    names = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK or not lock.created)
    return [f"{n}/" if (run_dir / n).is_dir() and not (run_dir / n).is_symlink() else n
            for n in names]  # fmt: skip


def check_plan(run_dir: Path, plan: dict[str, Any], lock: Lock) -> bool:
    """True when the dir already holds this sweep (a resume), False when it is fresh.

    Raises PlanMismatchError for a dir of another sweep, or a dir of other files.
    """
    data = records.read(run_dir)
    if data is None:
        foreign = _foreign(run_dir, lock)
        if foreign:
            old = " (an evalharness run dir from before records.json: not resumable)" if (
                PLAN in foreign) else ""  # fmt: skip
            raise PlanMismatchError(
                f"{run_dir} is not an evalharness run dir{old}: it holds "
                f"{', '.join(foreign[:5])}; choose an empty or new hydra.run.dir"
            )
        return False
    files = data["files"]
    problem = records.mismatch(run_dir, PLAN, files.get(PLAN))
    if problem:
        if set(files) <= CLAIM_FILES:  # killed while claiming: nothing measured yet
            return False
        raise PlanMismatchError(f"{problem}; choose a new hydra.run.dir")
    try:
        old = json.loads((run_dir / PLAN).read_text())
    except ValueError:
        raise PlanMismatchError(
            f"{run_dir / PLAN} is not readable JSON; choose another dir"
        ) from None
    if old.get("plan_hash") != plan["plan_hash"]:
        raise PlanMismatchError(
            f"{run_dir} holds results of a different sweep (plan {old.get('plan_hash')}, "
            f"this one {plan['plan_hash']}); choose another hydra.run.dir"
        )
    return True


def remove_stale_temp_files(run_dir: Path) -> int:
    """Under the lock no one else writes here: every temp file is a dead process's."""
    stale = store.stale_temp_files(run_dir)
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def claim(
    run_dir: Path, plan: dict[str, Any], files: dict[str, str], wait: bool = False
) -> Iterator[bool]:
    """Lock, check, clean, then write records.json, plan.json and `files` (name -> text);
    yields whether this is a resume. Nothing is written when the check refuses; a fresh
    claim whose body fails before any result is recorded is undone."""
    run_dir = Path(run_dir)
    existed = run_dir.exists()
    with locked(run_dir, wait) as lock:
        try:
            resuming = check_plan(run_dir, plan, lock)
        except PlanMismatchError:
            lock.remove()
            if not existed:
                _rmdir(run_dir)
            raise
        if not resuming:
            records.start(run_dir)  # the mark that makes the dir ours, first
            lock.write_pid()
        remove_stale_temp_files(run_dir)
        try:
            for name, text in files.items():
                store.write_recorded(run_dir, name, text)
            if not resuming:
                store.write_recorded(run_dir, PLAN, json.dumps(plan, indent=1))
            yield resuming
        except BaseException:
            if not resuming and not has_results(run_dir):
                release(run_dir, lock, existed)
            raise


def has_results(run_dir: Path) -> bool:
    """Whether the run recorded anything beyond its claim (a part, a table)."""
    return bool(set(records.entries(run_dir)) - CLAIM_FILES)


def release(run_dir: Path, lock: Lock, existed: bool) -> None:
    """Undo a claim that produced nothing: remove what it wrote, the lock, a dir it made."""
    for name in [*records.entries(run_dir), records.RECORDS]:
        path = run_dir / name
        if records.is_regular(path):
            path.unlink()
    parts = run_dir / store.PARTS
    if parts.is_dir() and not parts.is_symlink():
        _rmdir(parts)
    remove_stale_temp_files(run_dir)
    lock.remove()
    if not existed:
        _rmdir(run_dir)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty: someone's files are there, leave them
