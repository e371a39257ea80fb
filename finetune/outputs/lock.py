"""One writer per run directory: a `filelock` lock held for the whole run, and who holds it.

The lock is an OS lock (flock) on run_dir/.finetune.lock, so the kernel releases it when its process dies: a run
killed with SIGKILL leaves a lock file but no lock, and the next run takes it (saying the previous holder is gone).
The holder writes its pid, host and command to .finetune.owner, which a refused run names.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from finetune.errors import UserError
from finetune.outputs.run_dir import LOCK_FILE, OWNER_FILE


def _owner(run_dir: Path) -> dict[str, Any]:
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "another finetune process"
    return f"process {owner.get('pid')} on {owner.get('host')} ({owner.get('command', 'finetune')[:120]})"


def _alive(owner: dict[str, Any]) -> bool:
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True  # cannot tell from here
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`with RunLock(run_dir):` - refuses (exit 2, naming the holder) when another process writes the run."""

    def __init__(self, run_dir: Path) -> None:
        from filelock import FileLock

        self.run_dir = Path(run_dir)
        self.created_dir = False
        self._lock = FileLock(str(self.run_dir / LOCK_FILE), timeout=0)
        self.stale_owner: dict[str, Any] = {}

    def acquire(self) -> RunLock:
        from filelock import Timeout

        try:
            self.run_dir.mkdir(parents=True)
            self.created_dir = True
        except FileExistsError:
            pass  # there already, or another run created it a moment ago: the lock decides
        try:
            self._lock.acquire()
        except Timeout:
            raise UserError(f"{self.run_dir} is being written by {_describe(_owner(self.run_dir))}. Wait for it "
                            f"to finish, or choose another --output-dir.") from None
        previous = _owner(self.run_dir)
        if previous and not _alive(previous):
            self.stale_owner = previous  # a killed run's leftover: the kernel already dropped its lock
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}
        (self.run_dir / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")
        return self

    def release(self, remove_dir: bool = False) -> None:
        """Release; with `remove_dir`, also delete the lock files and the folder when nothing else is in it."""
        (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
        self._lock.release()
        if remove_dir:
            (self.run_dir / LOCK_FILE).unlink(missing_ok=True)
            try:
                self.run_dir.rmdir()
            except OSError:
                pass  # not empty: something else lives there

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: Path) -> str | None:
    """Who is writing `run_dir` now, or None (for `check`, which takes no lock of its own for long)."""
    from filelock import FileLock, Timeout

    if not (Path(run_dir) / LOCK_FILE).exists():
        return None
    probe = FileLock(str(Path(run_dir) / LOCK_FILE), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return _describe(_owner(Path(run_dir)))
    except OSError:
        return None
    probe.release()
    return None
