"""An advisory lock per output folder, so two runs never write into one folder at once: a `.lock` file holding the
holder's pid, host and start time, created exclusively; a lock whose process is gone (same host) is stale and is
taken over with a message. A run that takes the lock also removes the temporary files of atomic writes
(`.NAME.tmp-PID`, ddgan_ref.io.save_atomic) that killed runs left in the folder."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".lock"
TEMPORARY = re.compile(r"\..+\.tmp-(\d+)")  # ddgan_ref.io.save_atomic's file before its rename


class FolderLocked(RuntimeError):
    """Another live run holds the folder's lock."""


class FolderLock:
    """`with FolderLock(folder):` holds folder/.lock for the block (the folder is created on entry)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self.held, self.me = False, {}

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                if not holder:
                    raise FolderLocked(f"{self.path.parent}: its lock {self.path} names no run (one being taken "
                                       f"this instant, or left by a run killed while taking it); if no run is "
                                       f"active, delete {self.path}") from None
                if not _stale(holder):
                    raise FolderLocked(f"{self.path.parent} is in use by another run (pid {holder.get('pid')} on "
                                       f"{holder.get('host')}, since {holder.get('started')}); wait for it or use "
                                       f"another --out (if no run is active, delete {self.path})") from None
                if _remove_stale(self.path, holder):
                    print(f"taking over the stale lock {self.path} (pid {holder.get('pid')} on "
                          f"{holder.get('host')} is gone)", file=sys.stderr)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held, self.me = True, me
            _remove_dead_temporaries(self.path.parent)
            return self
        raise FolderLocked(f"{self.path.parent}: could not take the lock {self.path}; remove it if no run is active")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.held:
            if _read(self.path) == self.me:  # never another run's lock, should ours have been taken from us
                self.path.unlink(missing_ok=True)
            self.held = False


def _remove_stale(path: Path, holder: dict) -> bool:
    """Remove the lock file if it is still the stale `holder`'s: it is first renamed aside, which only one of two
    runs taking it over at once can do, and put back if what was moved is not that lock (a live run's, made
    between the read and the rename). True if this run removed it."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False  # the other run moved it first
    if _read(aside) == holder:
        aside.unlink(missing_ok=True)
        return True
    try:
        os.link(aside, path)  # fails where a third run has locked the folder meanwhile
    except FileExistsError:
        pass
    aside.unlink(missing_ok=True)
    return False


def _remove_dead_temporaries(folder: Path) -> None:
    """Remove the `.NAME.tmp-PID` files under `folder` whose process is gone on this host: what an atomic write
    leaves when its run is killed before the rename (the finished files beside them are whole)."""
    for path in folder.rglob(".*.tmp-*"):
        found = TEMPORARY.fullmatch(path.name)
        if found and path.is_file() and _stale({"host": socket.gethostname(), "pid": int(found[1])}):
            path.unlink(missing_ok=True)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # garbage or being written this instant: not presumed stale


def _stale(holder: dict) -> bool:
    """A lock is stale when its process is gone on this host; a lock from another host is never presumed stale."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
