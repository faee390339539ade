"""One owner per run folder: an OS lock (`fcntl.flock`) on `<folder>/.lock`, held for the run's life.

The kernel drops the lock when its process dies, even by kill -9, so a lock file left behind never
blocks a rerun. The file names the holder (pid, command) for the error a second run prints. Within one
process the lock is re-entrant: a grid holds its cell's lock while the cell's own run folder takes it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compressions.errors import CompressionsError

LOCK_FILE = ".lock"

# folder (resolved) -> (open lock file descriptor, how many holders in this process)
_held: dict[Path, tuple[int, int]] = {}


class FolderBusyError(CompressionsError):
    pass


def _describe(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        return f"pid {holder['pid']}: {holder['command']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is still writing its name
        return "another process"


@contextmanager
def folder_lock(folder: str | Path, shared: bool = False) -> Iterator[None]:
    """Hold `folder`'s lock (making the folder) or raise FolderBusyError naming the process that holds it.
    `shared`: grids writing cells into one folder hold it together, and a run's own (exclusive) lock on
    that folder keeps them all out, as they keep it out."""
    key = Path(folder).resolve()
    if key in _held:
        fd, count = _held[key]
        _held[key] = (fd, count + 1)
        try:
            yield
        finally:
            _held[key] = (fd, _held[key][1] - 1)
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(fd)
        os.close(fd)
        raise FolderBusyError(f"{folder} is in use by another run ({holder}); wait for it to end or choose another folder") from None
    os.ftruncate(fd, 0)  # the holder a busy error names (of sharers, the last to come)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)}).encode("utf-8"), 0)
    _held[key] = (fd, 1)
    try:
        yield
    finally:
        del _held[key]
        os.close(fd)  # releases the lock; the file stays, so no second process can lock an unlinked copy


def lock_holder(folder: str | Path) -> str | None:
    """Who holds `folder`'s lock (pid and command), or None when it is free or held by this process."""
    key = Path(folder).resolve()
    if key in _held or not (key / LOCK_FILE).is_file():
        return None
    fd = os.open(key / LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(fd)
    finally:
        os.close(fd)
    return None
