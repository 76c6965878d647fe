"""The location-report log: field officers' corrected locations, kept for review.

One JSON object per line in ``<data>/location-reports.jsonl``. The log is only
ever appended to: each record is written with one ``write`` under a lock (a
``threading.Lock`` per file for the threads of one process, plus ``flock`` for
several worker processes), then flushed and fsynced before the request is
answered. A line cut short by a crash is skipped when reading and counted, and
the next append starts on a fresh line so it is not glued to the broken one.

The file is also the audit log of the review: an administrator's decision is
appended as its own record (``"event": "decision"``), never written over the
report; a report's ``status`` is that of its latest decision, else ``pending``.
Applying accepted reports to the dataset is ``corrections.py``'s job.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

try:  # POSIX: also serialise appends between uvicorn worker processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

REPORTS_FILE = "location-reports.jsonl"
STATUSES = ("pending", "accepted", "rejected")

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """The one lock of a file path (resolved, so two spellings of a path share it)."""
    name = str(path.resolve())
    with _LOCKS_GUARD:
        lock = _LOCKS.get(name)
        if lock is None:
            lock = _LOCKS[name] = threading.Lock()
        return lock


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_decision(report: dict, decision: str, by: str, current: dict, comment: str | None) -> dict:
    """An administrator's decision on ``report``; ``current`` is the location it replaces (if accepted)."""
    return {
        "event": "decision",
        "id": uuid.uuid4().hex,
        "report_id": report["id"],
        "registration_no": report["registration_no"],
        "decision": decision,
        "by": by,
        "at": utc_now(),
        "from": {"lon": current.get("lon"), "lat": current.get("lat"), "precision": current.get("precision")},
        "to": report["to"],
        "comment": comment,
    }


def new_report(registration_no: str, reporter: str, current: dict, lon: float, lat: float, accuracy_m: float,
               reason: str, note: str | None) -> dict:
    """A new pending report; ``current`` is the cooperative's location now ({lon, lat, precision})."""
    return {
        "id": uuid.uuid4().hex,
        "registration_no": registration_no,
        "reporter": reporter,
        "submitted_at": utc_now(),
        "from": {"lon": current.get("lon"), "lat": current.get("lat"), "precision": current.get("precision")},
        "to": {"lon": lon, "lat": lat, "accuracy_m": accuracy_m},
        "reason": reason,
        "note": note,
        "status": "pending",
    }


@dataclass
class ReadResult:
    reports: list[dict]          # in file order (oldest first), each with its current status
    skipped_lines: int           # lines that were not a JSON object (torn or damaged)
    events: list[dict] | None = None   # every record, reports and decisions, in file order

    def accepted(self) -> dict[str, dict]:
        """The latest accepted decision per registration number (the verified locations)."""
        out: dict[str, dict] = {}
        for e in self.events or []:
            if e.get("event") == "decision" and e.get("decision") == "accepted":
                out[str(e["registration_no"])] = e
        return out


class ReportLog:
    """The append-only JSON Lines file of location reports in a dataset folder."""

    def __init__(self, folder: str | Path, filename: str = REPORTS_FILE):
        self.path = Path(folder) / filename

    def append(self, record: dict) -> None:
        """Write ``record`` as one line; returns once it is on disk."""
        line = orjson.dumps(record) + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _lock_for(self.path):
            created = not self.path.exists()
            # Appends always go to the end; reading is allowed so the last byte can be checked. The log
            # holds who reported what: readable by the service's user only.
            with _open_private(self.path) as f:
                if fcntl is not None:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    size = os.fstat(f.fileno()).st_size
                    if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
                        line = b"\n" + line  # a torn last line: do not glue this record to it
                    _write_all(f, line)
                    os.fsync(f.fileno())
                finally:
                    if fcntl is not None:
                        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            if created:
                _fsync_dir(self.path.parent)

    def read(self) -> ReadResult:
        """Every decodable record; undecodable lines (e.g. a half-written last one) are counted, not raised."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return ReadResult([], 0)
        events, skipped = [], 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                skipped += 1
                continue
            events.append(rec)
        reports = {e["id"]: dict(e) for e in events if e.get("event", "report") == "report"}
        for e in events:
            if e.get("event") == "decision" and e.get("report_id") in reports:
                r = reports[e["report_id"]]
                r["status"] = e.get("decision")
                r["decision"] = {k: e.get(k) for k in ("id", "by", "at", "comment")}
        return ReadResult(list(reports.values()), skipped, events)

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the review lock (threads and worker processes) across a read-check-append sequence."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with _lock_for(lock_path), _open_private(lock_path) as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def last_decision_id(self, registration_no: str) -> str | None:
        """The id of the latest decision on a cooperative's reports (part of its ETag)."""
        last = None
        for e in self.read().events or []:
            if e.get("event") == "decision" and str(e.get("registration_no")) == registration_no:
                last = e["id"]
        return last

    def query(self, *, status: str | None = None, registration_no: str | None = None,
              report_id: str | None = None) -> tuple[list[dict], int]:
        """Matching reports, newest first, and the number of skipped lines."""
        res = self.read()
        rows = [(i, r) for i, r in enumerate(res.reports)
                if (status is None or r.get("status") == status)
                and (registration_no is None or str(r.get("registration_no")) == registration_no)
                and (report_id is None or r.get("id") == report_id)]
        # Newest first: by submission time, then by position in the file (later lines were written later).
        rows.sort(key=lambda ir: (str(ir[1].get("submitted_at") or ""), ir[0]), reverse=True)
        return [r for _, r in rows], res.skipped_lines


def _open_private(path: Path):
    """``path`` opened for appending and reading, created with mode 0600 (an older file is made 0600)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)
    return open(fd, "a+b", buffering=0)


def _write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = f.write(view)
        view = view[n:]


def _fsync_dir(folder: Path) -> None:
    """Make a newly created file's directory entry durable (no-op where directories cannot be opened)."""
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
