"""Location reports and decisions in PostgreSQL: :class:`PostgisReportLog`, the report log of the file store
over ``coopgis.location_reports`` and ``coopgis.location_decisions``.

Both tables are append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and share one sequence, so
their rows are the review's audit trail in order. Every append takes the same transaction-level
advisory lock before it draws its number, so rows commit in the order of their numbers and a reader that
asks "what came after N?" never skips one that commits late. The in-memory index of the file log
(:class:`~coopgis.location_reports._Index`) is kept the same way: each question reads only the rows after
the last one read.

A decision is one transaction with a row-version check: the cooperative's row of ``coopgis.review_state``
is locked (``FOR UPDATE``), its location state (the verified-location overlay, else the served location)
and its last decision make the ETag that ``If-Match`` must equal, and the decision commits only while the
version it read is still the version stored. Two concurrent decisions on one cooperative, through two
replicas, give one success and one 412 (or 409 for the same report). An accepted decision also updates the
overlay ``coopgis.verified_locations`` (with the joins of the new point) and, for a village without a
point, ``coopgis.learned_villages``; ``decision <seq>`` is announced when it commits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from coopgis.db.connect import Database, notify
from coopgis.location_reports import LocationReportLog, ReviewError, _Index, already_decided, new_decision, stale

APPEND_LOCK = 0x636F7270   # advisory lock of every append (reports and decisions)
REVIEW_LOCK = 0x636F7276   # advisory lock of :meth:`PostgisReportLog.exclusive` (read-check-append sequences)

_EVENTS = """
SELECT seq, 'report', id, registration_no, reporter, NULL::text, submitted_at, from_lon, from_lat, from_precision,
       to_lon, to_lat, to_accuracy_m, reason, note, idempotency_key, fingerprint
  FROM coopgis.location_reports WHERE seq > %(after)s
UNION ALL
SELECT seq, 'decision', id, registration_no, decided_by, report_id, decided_at, from_lon, from_lat, from_precision,
       to_lon, to_lat, to_accuracy_m, decision, comment, NULL::text, NULL::text
  FROM coopgis.location_decisions WHERE seq > %(after)s
ORDER BY 1
"""

# Joined columns of an accepted point: ``joiner(registration_no, lon, lat)`` gives them (the app sets it).
Joiner = Callable[[str, float, float], dict]


class PostgisReportLog(LocationReportLog):
    """The location-report log in the database; the same questions and answers as the file log."""

    def __init__(self, db: Database, joiner: Joiner | None = None):
        self.db = db
        self.path = None  # type: ignore[assignment]  # nothing on disk
        self.joiner = joiner
        self._index = _Index()
        self._guard = threading.Lock()
        self._local = threading.local()

    # ---- writing ------------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        """Store a new report; returns once it is committed."""
        if record.get("event", "report") != "report":
            raise ValueError("decisions are recorded with decide()")
        with self._connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            f, t = record.get("from") or {}, record["to"]
            conn.execute(
                "INSERT INTO coopgis.location_reports (id, registration_no, reporter, submitted_at, from_lon, "
                "from_lat, from_precision, to_lon, to_lat, to_accuracy_m, reason, note, idempotency_key, fingerprint) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (record["id"], record["registration_no"], record["reporter"], record["submitted_at"], f.get("lon"),
                 f.get("lat"), f.get("precision"), t["lon"], t["lat"], t.get("accuracy_m"), record.get("reason"),
                 record.get("note"), record.get("idempotency_key"), record.get("fingerprint")))

    def decide(self, report_id: str, decision: str, by: str, comment: str | None, if_match: str,
               locate: Callable[[str], tuple[str, dict]]) -> dict:
        """One transaction: lock the cooperative's review row, check If-Match against the committed state,
        record the decision, bump the row version (only from the version read), update the overlay."""
        from coopgis.corrections import location_etag

        with self._connection() as conn:
            found = conn.execute("SELECT registration_no, to_lon, to_lat, to_accuracy_m FROM coopgis.location_reports "
                                 "WHERE id = %s", (report_id,)).fetchone()
            if found is None:
                raise ReviewError(f"no location report {report_id!r}", 404, "Not found")
            reg, served = locate(found[0])
            conn.execute("INSERT INTO coopgis.review_state (registration_no) VALUES (%s) ON CONFLICT DO NOTHING",
                         (reg,))
            row = conn.execute("SELECT version, last_decision_id FROM coopgis.review_state WHERE registration_no = %s "
                               "FOR UPDATE", (reg,)).fetchone()
            assert row is not None
            version, last = row
            done = conn.execute("SELECT decision, decided_by FROM coopgis.location_decisions WHERE report_id = %s",
                                (report_id,)).fetchone()
            if done is not None:
                raise already_decided(report_id, done[0], done[1])
            verified = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM coopgis.verified_locations "
                                    "WHERE registration_no = %s", (reg,)).fetchone()
            now = served if verified is None else {"lon": verified[0], "lat": verified[1], "precision": "verified"}
            current = location_etag(reg, now["lon"], now["lat"], now["precision"], last or "-")
            if if_match != current:
                raise stale(current)
            report = {"id": report_id, "registration_no": reg,
                      "to": {"lon": found[1], "lat": found[2], "accuracy_m": found[3]}}
            event = new_decision(report, decision, by, now, comment)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            seq = conn.execute(
                "INSERT INTO coopgis.location_decisions (id, report_id, registration_no, decision, decided_by, "
                "decided_at, from_lon, from_lat, from_precision, to_lon, to_lat, to_accuracy_m, comment) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq",
                (event["id"], report_id, reg, decision, by, event["at"], now["lon"], now["lat"], now["precision"],
                 found[1], found[2], found[3], comment)).fetchone()
            moved = conn.execute("UPDATE coopgis.review_state SET version = version + 1, last_decision_id = %s "
                                 "WHERE registration_no = %s AND version = %s", (event["id"], reg, version))
            if moved.rowcount != 1:   # the row version moved on: someone else decided first
                raise stale(current)
            if decision == "accepted":
                self._overlay(conn, reg, event, found[3])
            notify(conn, f"decision {seq[0] if seq else ''}")
        return event

    def _overlay(self, conn: psycopg.Connection, reg: str, event: dict, accuracy: float | None) -> None:
        lon, lat = event["to"]["lon"], event["to"]["lat"]
        joined = dict(self.joiner(reg, lon, lat)) if self.joiner else {}
        place_code = joined.pop("learned_place_code", None)
        cols = ("province", "province_name", "county", "county_code", "county_osm", "deprivation_class", "deprived",
                "border", "border_quota_usd")
        values = [joined.get(c) for c in cols]
        conn.execute(
            f"INSERT INTO coopgis.verified_locations (registration_no, decision_id, geom, accuracy_m, decided_by, "
            f"decided_at, {', '.join(cols)}) VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, "
            f"{', '.join(['%s'] * len(cols))}) ON CONFLICT (registration_no) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in ("decision_id", "geom", "accuracy_m", "decided_by",
                                                         "decided_at", *cols)),
            (reg, event["id"], lon, lat, accuracy, event["by"], event["at"], *values))
        if place_code:
            conn.execute("INSERT INTO coopgis.learned_villages (place_code, geom, decision_id) VALUES "
                         "(%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s) ON CONFLICT (place_code) DO NOTHING",
                         (place_code, lon, lat, event["id"]))

    @contextlib.contextmanager
    def exclusive(self):
        """The review lock across replicas (a session advisory lock), held across a read-check-append
        sequence; the log's questions inside it use the same connection."""
        with self.db.connection() as conn:
            conn.commit()
            conn.autocommit = True
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (REVIEW_LOCK,))
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
                    conn.execute("SELECT pg_advisory_unlock(%s)", (REVIEW_LOCK,))
            finally:
                conn.autocommit = False

    @contextlib.contextmanager
    def _connection(self):
        """A transaction: on the connection :meth:`exclusive` holds in this thread, else a pooled one."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            with held.transaction():
                yield held
        else:
            with self.db.connection() as conn:
                yield conn

    # ---- reading --------------------------------------------------------------------------------
    def _refresh(self) -> _Index:
        """Add the rows committed after the last one read (one statement: one snapshot of both tables).

        Called with the index's guard held; the guard is let go while the database answers, so a thread
        waiting here for a connection never blocks one that holds a connection (in :meth:`exclusive`) and
        needs the index. Rows another thread added meanwhile are skipped by their number.
        """
        after = self._index.offset
        self._guard.release()
        try:
            with self._connection() as conn:
                rows = conn.execute(_EVENTS, {"after": after}).fetchall()
        finally:
            self._guard.acquire()
        idx = self._index
        for row in rows:
            if row[0] > idx.offset:
                idx.add(_record(row))
                idx.offset = row[0]
        return idx


def _record(row: tuple) -> dict:
    """A report or decision as the file log writes it."""
    (_, kind, rid, reg, who, report_id, at, from_lon, from_lat, from_precision, to_lon, to_lat, accuracy,
     text1, text2, idempotency_key, fingerprint) = row
    frm = {"lon": from_lon, "lat": from_lat, "precision": from_precision}
    to = {"lon": to_lon, "lat": to_lat, "accuracy_m": accuracy}
    if kind == "report":
        record = {"id": rid, "registration_no": reg, "reporter": who, "submitted_at": _stamp(at), "from": frm,
                  "to": to, "reason": text1, "note": text2, "status": "pending"}
        if idempotency_key is not None:   # as the file log writes it: only a report sent with a key has one
            record["idempotency_key"], record["fingerprint"] = idempotency_key, fingerprint
        return record
    return {"event": "decision", "id": rid, "report_id": report_id, "registration_no": reg, "decision": text1,
            "by": who, "at": _stamp(at), "from": frm, "to": to, "comment": text2}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
