"""Claiming a run dir: lock it, check everything, and only then write anything in it.

A refused run must leave the dir exactly as it was. So the order is: take an exclusive lock
(`.lock`, flock: released by the kernel when the process dies, even by kill -9), read and
check the existing plan under the lock, and write plan.json and the config files only when
the dir is new or holds this very sweep. Two processes starting on one dir: the second gets
"busy" at once, whatever the timing; two different sweeps cannot interleave their files.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalharness.rundir import store

LOCK = ".lock"
# What a run dir of ours holds; a dir with other things but no plan.json is someone else's.
OURS = {
    "plan.json",
    "configs.csv",
    "run_config.yaml",
    "choices.json",
    "factors.json",
    "calibration.csv",
    "parts",
    ".hydra",
    LOCK,
}


class PlanMismatchError(RuntimeError):
    """The run dir holds parts of a different sweep; resuming would mix results."""


class RunDirBusyError(RuntimeError):
    """Another process holds the run dir's lock."""


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run dir's exclusive lock for the duration; refuse at once if it is taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RunDirBusyError(
                f"{run_dir} is in use by another evalharness process (pid {holder}); wait for "
                "it or choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def check_plan(run_dir: Path, plan: dict[str, Any]) -> bool:
    """True when the dir already holds this sweep (a resume), False when it is fresh.

    Raises PlanMismatchError for a dir of another sweep, or a dir of other files.
    """
    path = run_dir / "plan.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise PlanMismatchError(f"{path} is not readable JSON; choose another dir") from None
        if old.get("plan_hash") != plan["plan_hash"]:
            raise PlanMismatchError(
                f"{run_dir} holds results of a different sweep (plan {old.get('plan_hash')}, "
                f"this one {plan['plan_hash']}); choose another hydra.run.dir"
            )
        return True
    # Hydra writes .hydra/ and <job>.log into the dir before the job starts.
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in OURS and p.suffix != ".log")
    parts = run_dir / "parts"
    if parts.is_dir() and any(parts.iterdir()):
        foreign.append("parts/ (without a plan.json)")
    if foreign:
        raise PlanMismatchError(
            f"{run_dir} is not an evalharness run dir of this sweep (it holds "
            f"{', '.join(foreign[:5])}); choose an empty or new hydra.run.dir"
        )
    return False


def remove_stale_temp_files(run_dir: Path) -> int:
    """Under the lock no one else writes here: every temp file is a dead process's."""
    stale = store.stale_temp_files(run_dir)
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def claim(run_dir: Path, plan: dict[str, Any], files: dict[str, str]) -> Iterator[bool]:
    """Lock, check, clean, then write plan.json and `files` (name -> text); yields whether
    this is a resume. Nothing is written when the check refuses."""
    run_dir = Path(run_dir)
    existed = run_dir.exists()
    had_lock = (run_dir / LOCK).exists()
    try:
        with locked(run_dir):
            resuming = check_plan(run_dir, plan)
            remove_stale_temp_files(run_dir)
            for name, text in files.items():
                store.write_atomic_text(run_dir / name, text)
            if not resuming:
                store.write_atomic_text(run_dir / "plan.json", json.dumps(plan, indent=1))
            yield resuming
    except (PlanMismatchError, RunDirBusyError):
        if not existed:  # refused before anything was written: leave no trace either
            _remove_if_only_lock(run_dir)
        elif not had_lock:  # someone's dir: take back the lock file this check made
            (run_dir / LOCK).unlink(missing_ok=True)
        raise


def _remove_if_only_lock(run_dir: Path) -> None:
    try:
        if {p.name for p in run_dir.iterdir()} <= {LOCK}:
            (run_dir / LOCK).unlink(missing_ok=True)
            run_dir.rmdir()
    except OSError:
        pass
