"""The location-report log: field officers' corrected locations, kept for review.

One JSON object per line in ``<data>/location-reports.jsonl``. The log is only
ever appended to: each record is written with one ``write`` under a lock (one
per file for the threads of a process, plus ``flock`` for several worker
processes; :mod:`coopgis.files`), then fsynced before the request is answered. A line
cut short by a crash is skipped when reading and counted, and
the next append starts on a fresh line so it is not glued to the broken one.

The file is also the audit log of the review: an administrator's decision is
appended as its own record (``"event": "decision"``), never written over the
report; a report's ``status`` is that of its latest decision, else ``pending``.
Applying accepted reports to the dataset is ``corrections.py``'s job.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from coopgis.errors import InputError
from coopgis.files import flocked, fsync_dir, locked, open_private, thread_lock

REPORTS_FILE = "location-reports.jsonl"   # the log on disk
STATUSES = ("pending", "accepted", "rejected")

class ReviewError(InputError):
    """A decision that cannot be made: no such report (404), already decided (409), or the cooperative
    changed since the reviewer read it (412, with its current ``etag``)."""

    def __init__(self, detail: str, status: int, title: str, etag: str | None = None):
        super().__init__(detail, title=title)
        self.status = status
        self.etag = etag


def already_decided(report_id: str, status: str | None, by: str | None) -> ReviewError:
    return ReviewError(f"report {report_id} was already {status} by {by}", 409, "Already decided")


def stale(etag: str) -> ReviewError:
    return ReviewError("the cooperative changed since you read it (ETag mismatch); read it again and decide on "
                       "what it is now", 412, "Precondition failed", etag=etag)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    skipped_lines: int           # lines that were not a usable record (torn, damaged, a decision without a place)
    events: list[dict] | None = None   # every record, reports and decisions, in file order
    accepted_by_reg: dict[str, dict] | None = None

    def accepted(self) -> dict[str, dict]:
        """The latest accepted decision per registration number (the verified locations)."""
        return dict(self.accepted_by_reg or {})


@dataclass
class _Index:
    """What the log holds, by the keys the service asks for; grown by reading only what was appended."""

    inode: int | None = None
    offset: int = 0                                            # bytes of the file read so far
    skipped: int = 0
    partial: bool = False                                      # the file ends in a line without its newline
    events: list[dict] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)     # id -> report with its status, in file order
    position: dict[str, int] = field(default_factory=dict)     # report id -> its place in the file
    by_reg: dict[str, list[str]] = field(default_factory=dict)   # registration number -> report ids
    events_by_reg: dict[str, list[int]] = field(default_factory=dict)
    last_decision: dict[str, str] = field(default_factory=dict)  # registration number -> decision id
    accepted: dict[str, dict] = field(default_factory=dict)      # registration number -> accepted decision
    submitted: dict[str, list[float]] = field(default_factory=dict)  # reporter -> times (epoch s)
    accepted_changes: int = 0                                  # grows whenever `accepted` changes

    def add(self, rec: dict) -> None:
        kind = rec.get("event", "report")
        if kind == "report" and _valid_report(rec):
            reg = str(rec["registration_no"])
            report = dict(rec)
            report.setdefault("status", "pending")
            self.position[rec["id"]] = len(self.position)
            self.reports[rec["id"]] = report
            self.by_reg.setdefault(reg, []).append(rec["id"])
            self.submitted.setdefault(str(rec.get("reporter")), []).append(_epoch(rec.get("submitted_at")))
        elif kind == "decision" and _valid_decision(rec):
            reg = str(rec["registration_no"])
            decided = self.reports.get(rec["report_id"])
            if decided is not None:
                decided["status"] = rec["decision"]
                decided["decision"] = {k: rec.get(k) for k in ("id", "by", "at", "comment")}
            self.last_decision[reg] = rec["id"]
            if rec["decision"] == "accepted":
                self.accepted[reg] = rec
                self.accepted_changes += 1
        else:
            self.skipped += 1
            return
        self.events_by_reg.setdefault(str(rec["registration_no"]), []).append(len(self.events))
        self.events.append(rec)


def _valid_report(rec: dict) -> bool:
    return isinstance(rec.get("registration_no"), (str, int)) and isinstance(rec.get("to"), dict)


def _valid_decision(rec: dict) -> bool:
    """A decision the service can act on: an accepted one needs a finite point to move to."""
    if not isinstance(rec.get("registration_no"), (str, int)) or not isinstance(rec.get("report_id"), str):
        return False
    if rec.get("decision") == "rejected":
        return True
    to = rec.get("to")
    return (rec.get("decision") == "accepted" and isinstance(to, dict)
            and all(isinstance(to.get(k), (int, float)) and not isinstance(to.get(k), bool)
                    and math.isfinite(to[k]) for k in ("lon", "lat")))


def _epoch(stamp) -> float:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class LocationReportLog:
    """The append-only JSON Lines file of location reports in a dataset folder.

    Reading is incremental: the first question reads the whole file into an index (by
    report id, by registration number, by reporter), later ones read only the lines
    appended since, so a cooperative's reports or its latest decision cost a look-up,
    not a scan of the log. A line that is not a usable record is skipped and counted.
    """

    # ``joiner(registration_no, lon, lat)``: the joins of an accepted point, which the database log stores
    # beside the decision (the app sets it); the file log joins when it loads.
    joiner: Callable[[str, float, float], dict] | None = None

    def __init__(self, folder: str | Path, filename: str = REPORTS_FILE):
        self.path = Path(folder) / filename
        self._index = _Index()
        self._guard = threading.Lock()

    def append(self, record: dict) -> None:
        """Write ``record`` as one line; returns once it is on disk."""
        line = orjson.dumps(record) + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with thread_lock(self.path):
            created = not self.path.exists()
            # Appends always go to the end; reading is allowed so the last byte can be checked. The log
            # holds who reported what: readable by the service's user only.
            with open_private(self.path) as f, flocked(f):
                size = os.fstat(f.fileno()).st_size
                if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
                    line = b"\n" + line  # a torn last line: do not glue this record to it
                _write_all(f, line)
                os.fsync(f.fileno())
            if created:
                fsync_dir(self.path.parent)

    def read(self) -> ReadResult:
        """Every usable record; other lines (e.g. a half-written last one) are counted, not raised."""
        with self._guard:
            idx = self._refresh()
            return ReadResult([dict(r) for r in idx.reports.values()], idx.skipped + idx.partial, list(idx.events),
                              dict(idx.accepted))

    def accepted(self) -> tuple[dict[str, dict], int]:
        """The latest accepted decision per registration number, and a number that grows when they change."""
        with self._guard:
            idx = self._refresh()
            return dict(idx.accepted), idx.accepted_changes

    def accepted_for(self, registration_no: str) -> dict | None:
        """The latest accepted decision on a cooperative (its verified location), if any."""
        with self._guard:
            return self._refresh().accepted.get(registration_no)

    def report(self, report_id: str) -> dict | None:
        with self._guard:
            found = self._refresh().reports.get(report_id)
            return dict(found) if found else None

    def last_decision_id(self, registration_no: str) -> str | None:
        """The id of the latest decision on a cooperative's reports (part of its ETag)."""
        with self._guard:
            return self._refresh().last_decision.get(registration_no)

    def events(self, registration_no: str | None = None, limit: int | None = None) -> tuple[list[dict], int, int]:
        """The latest ``limit`` events (of one cooperative), oldest first; how many there are; skipped lines."""
        with self._guard:
            idx = self._refresh()
            if registration_no is None:
                chosen, total = idx.events[-limit:] if limit else list(idx.events), len(idx.events)
            else:
                at = idx.events_by_reg.get(registration_no, [])
                chosen, total = [idx.events[i] for i in (at[-limit:] if limit else at)], len(at)
            return list(chosen), total, idx.skipped + idx.partial

    def submitted_since(self, reporter: str, since: float) -> list[float]:
        """When ``reporter`` submitted reports at or after ``since`` (epoch seconds), oldest first."""
        with self._guard:
            times = self._refresh().submitted.get(reporter, [])
            return [t for t in times[-5000:] if t >= since]

    def pending(self, registration_no: str) -> int:
        """Reports on a cooperative still waiting for a decision."""
        with self._guard:
            idx = self._refresh()
            return sum(idx.reports[r]["status"] == "pending" for r in idx.by_reg.get(registration_no, ()))

    def decide(self, report_id: str, decision: str, by: str, comment: str | None, if_match: str,
               locate: Callable[[str], tuple[str, dict]]) -> dict:
        """Record an administrator's decision on a pending report, if ``if_match`` is the cooperative's ETag.

        ``locate(registration_no)`` gives the cooperative's registration number as served and its served
        location (it raises when there is no such cooperative). The check and the decision's ``from`` use
        the location the log holds when the decision commits, under the review lock, so a worker that has
        not caught up cannot record a stale ``from``. ReviewError when the decision cannot be made.
        """
        from coopgis.corrections import location_etag

        with self.exclusive():
            report = self.report(report_id)
            if report is None:
                raise ReviewError(f"no location report {report_id!r}", 404, "Not found")
            if report.get("status") != "pending":
                raise already_decided(report_id, report.get("status"), report.get("decision", {}).get("by"))
            reg, served = locate(report["registration_no"])
            accepted = self.accepted_for(reg)
            now: dict = served if accepted is None else {"lon": float(accepted["to"]["lon"]),
                                                   "lat": float(accepted["to"]["lat"]), "precision": "verified"}
            current = location_etag(reg, now["lon"], now["lat"], now["precision"], self.last_decision_id(reg) or "-")
            if if_match != current:
                raise stale(current)
            event = new_decision(report, decision, by, now, comment)
            self.append(event)
        return event

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the review lock (threads and worker processes) across a read-check-append sequence."""
        with locked(self.path.with_name(self.path.name + ".lock")):
            yield

    def query(self, *, status: str | None = None, registration_no: str | None = None,
              report_id: str | None = None) -> tuple[list[dict], int]:
        """Matching reports, newest first, and the number of skipped lines."""
        with self._guard:
            idx = self._refresh()
            if report_id is not None:
                ids = [report_id] if report_id in idx.reports else []
            elif registration_no is not None:
                ids = idx.by_reg.get(registration_no, [])
            else:
                ids = list(idx.reports)
            rows = [idx.reports[i] for i in ids
                    if (status is None or idx.reports[i].get("status") == status)
                    and (registration_no is None or str(idx.reports[i].get("registration_no")) == registration_no)]
            # Newest first: by submission time, then by position in the file (later lines were written later).
            rows.sort(key=lambda r: (str(r.get("submitted_at") or ""), idx.position[r["id"]]), reverse=True)
            return [dict(r) for r in rows], idx.skipped + idx.partial

    def _refresh(self) -> _Index:
        """Read the lines appended since the last call (all of them when the file is new or was replaced)."""
        idx = self._index
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if idx.inode is not None:
                self._index = idx = _Index()
            return idx
        if st.st_ino != idx.inode or st.st_size < idx.offset:
            self._index = idx = _Index(inode=st.st_ino)
        if st.st_size == idx.offset:
            idx.partial = False
            return idx
        with open(self.path, "rb") as f:
            f.seek(idx.offset)
            data = f.read(st.st_size - idx.offset)
        end = data.rfind(b"\n") + 1   # a last line without its newline may still be being written
        for raw in data[:end].split(b"\n"):
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                idx.skipped += 1
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                idx.skipped += 1
                continue
            idx.add(rec)
        idx.offset += end
        # A last line without its newline is counted as skipped for now (a crash tore it) but read again
        # next time: if another worker was still writing it, it is a record after all.
        idx.partial = bool(data[end:].strip())
        return idx


def _write_all(f, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = f.write(view)
        view = view[n:]
