"""Files the service writes: private (0600), durable (fsynced), whole, and locked across processes.

Every file that holds personal data — the dataset and its reports, the location-report
log, the token file, batch outputs — is written through here, so none is ever readable by
other users of the machine, and none is ever seen half-written.

Not here: what goes into the files (``store.py``, ``location_reports.py``, ``auth.py`` ...).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

try:  # POSIX: serialise writers across worker processes too
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: thread locks only

PRIVATE_MODE = 0o600

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def write_private(path: str | Path, *data: bytes | memoryview) -> None:
    """Write ``data`` (one or more pieces, in order) to ``path`` with mode 0600, atomically (fsynced, then
    renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), PRIVATE_MODE)
            for piece in data:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def open_private(path: Path):
    """``path`` opened for appending and reading, created with mode 0600 (an older file is made 0600)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, PRIVATE_MODE)
    return open(fd, "a+b", buffering=0)


def fsync_dir(folder: Path) -> None:
    """Make renames and new entries in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def thread_lock(path: Path) -> threading.Lock:
    """The one lock of a file path in this process (resolved, so two spellings of a path share it)."""
    name = str(Path(path).resolve())
    with _LOCKS_GUARD:
        lock = _LOCKS.get(name)
        if lock is None:
            lock = _LOCKS[name] = threading.Lock()
        return lock


@contextlib.contextmanager
def flocked(f):
    """Hold an exclusive ``flock`` on an open file (other processes wait)."""
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        yield f
    finally:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def locked(lock_path: Path):
    """Exclusive use of ``lock_path`` by this thread, among all threads and worker processes."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with thread_lock(lock_path), open_private(lock_path) as f, flocked(f):
        yield
