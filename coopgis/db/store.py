"""The dataset in PostgreSQL/PostGIS: :class:`PostgisStore`, the same methods as the file store.

An ingest writes a new row of ``coopgis.datasets``, its cooperatives with COPY, and points
``coopgis.current_dataset`` at it, all in one transaction that also sends ``dataset <id>`` on the
notification channel: a failed or killed ingest (its transaction never commits) leaves the previous
dataset current and complete, and replicas hear of the new one only once it is all there. Older
datasets beyond ``COOPGIS_DATABASE_KEEP_DATASETS`` are deleted afterwards, in a transaction of their own.

A dataset and its ingest report are read in one REPEATABLE READ transaction, so they belong together
even while an ingest switches another one in.

Not here: the schema (``schema.py``, migrations), location reports (``reports.py``).
"""

from __future__ import annotations

import getpass
import json
from functools import partial

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg.types.json import Jsonb

from coopgis.db.connect import Database, DatabaseError, notify, safe_url
from coopgis.privacy import mask_numbers
from coopgis.store import StoreError

# The stored columns (coopgis.ingest.DATASET_COLUMNS), in order, and the pandas dtypes the file store reads
# back for them (text columns are pandas' default string dtype).
COLUMNS = (
    "registration_no", "name", "kind", "sector", "status", "members", "jobs", "women_led",
    "registered_on", "registered_on_jalali", "registered_year",
    "province", "province_name", "county", "county_code", "county_osm",
    "district", "rural_district", "place", "place_level", "place_code",
    "precision", "confidence", "uncertainty_m", "geocode_issues",
    "deprivation_class", "deprived", "province_shdi", "border", "border_quota_usd",
    "address", "given_province", "given_county", "given_district", "given_rural_district", "given_place",
    "given_lon", "given_lat", "synthetic", "phone", "extra", "source_row",
)
DTYPES = {
    "members": "Int64", "jobs": "Int64", "registered_year": "Int64", "county_osm": "Int64",
    "uncertainty_m": "Int64", "border_quota_usd": "Int64", "source_row": "int64",
    "women_led": "boolean", "deprived": "boolean", "border": "boolean", "synthetic": "bool",
    "confidence": "float64", "province_shdi": "float64", "given_lon": "float64", "given_lat": "float64",
}
INGEST_LOCK = 0x636F6F70   # advisory lock: one ingest at a time


def audit(conn: psycopg.Connection, actor: str, action: str, detail: dict) -> None:
    """Append an event to ``coopgis.audit_events`` in ``conn``'s transaction."""
    conn.execute("INSERT INTO coopgis.audit_events (actor, action, detail) VALUES (%s, %s, %s)",
                 (actor, action, _jsonb(detail)))


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


class PostgisStore:
    """The datasets of a coopgis database; the current one is served."""

    def __init__(self, db: Database, keep: int = 3):
        self.db = db
        self.keep = keep

    @property
    def path(self) -> str:
        """Where the dataset lives, for messages (no password)."""
        return f"{safe_url(self.db.url)} (coopgis.datasets)"

    def report_log(self):
        from coopgis.db.reports import PostgisReportLog

        return PostgisReportLog(self.db)

    def version(self) -> str:
        """The current dataset's id ('-' when there is none)."""
        with self.db.connection() as conn:
            row = conn.execute("SELECT dataset_id FROM coopgis.current_dataset").fetchone()
        return str(row[0]) if row else "-"

    def exists(self) -> bool:
        return self.version() != "-"

    def rows(self) -> int | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT d.rows FROM coopgis.current_dataset c JOIN coopgis.datasets d "
                               "ON d.id = c.dataset_id").fetchone()
        return int(row[0]) if row else None

    def read(self) -> gpd.GeoDataFrame:
        return self.read_with_ingest_report()[0]

    def read_report(self) -> dict:
        with self.db.connection() as conn:
            row = conn.execute("SELECT d.report FROM coopgis.current_dataset c JOIN coopgis.datasets d "
                               "ON d.id = c.dataset_id").fetchone()
        return dict(row[0]) if row else {}

    def read_with_ingest_report(self) -> tuple[gpd.GeoDataFrame, dict]:
        """The current dataset and its report, from one snapshot."""
        return self.read_version()[1:]

    def read_version(self) -> tuple[str, gpd.GeoDataFrame, dict]:
        """The current dataset's id, the dataset and its report, from one snapshot."""
        with self.db.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT d.id, d.report FROM coopgis.current_dataset c JOIN coopgis.datasets d "
                               "ON d.id = c.dataset_id").fetchone()
            if row is None:
                raise StoreError(f"no dataset in the database {safe_url(self.db.url)}: run `coopgis ingest FILE` "
                                 "with COOPGIS_DATABASE_URL set")
            dataset_id, report = row
            # One row of one array per column (binary, in row order): no per-row Python tuples to transpose.
            cur = conn.cursor(binary=True)
            cur.execute(_COLUMN_ARRAYS, (dataset_id,))
            arrays = cur.fetchone()
        return str(dataset_id), frame_of(arrays), dict(report)

    def write(self, dataset: gpd.GeoDataFrame, report: dict) -> None:
        """Store ``dataset`` as a new version and make it current, in one transaction; then prune old ones."""
        try:
            with self.db.connection() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
                row = conn.execute("INSERT INTO coopgis.datasets (rows, report) VALUES (%s, %s) RETURNING id",
                                   (len(dataset), _jsonb(report))).fetchone()
                assert row is not None
                dataset_id = row[0]
                names = ", ".join(("dataset_id", "row_no", *COLUMNS, "name_public", "address_public", "geom"))
                with conn.cursor().copy(f"COPY coopgis.cooperatives ({names}) FROM STDIN") as copy:
                    for values in rows_of(dataset, dataset_id):
                        copy.write_row(values)
                conn.execute("INSERT INTO coopgis.current_dataset (one, dataset_id) VALUES (true, %s) "
                             "ON CONFLICT (one) DO UPDATE SET dataset_id = EXCLUDED.dataset_id, switched_at = now()",
                             (dataset_id,))
                audit(conn, os_user(), "ingest", {"dataset_id": dataset_id, "file": report.get("file"),
                                                  "rows": len(dataset), "replaced": True})
                notify(conn, f"dataset {dataset_id}")
        except psycopg.Error as exc:
            raise DatabaseError(f"the dataset was not written to {safe_url(self.db.url)} "
                                f"({_first_line(exc)}); the current dataset is kept") from None
        self.prune()

    def record_ingest(self, report: dict) -> None:
        """Keep the report of an ingest that did not replace the dataset (the audit trail has every attempt)."""
        if report.get("replaced"):
            return  # written with the dataset
        with self.db.connection() as conn:
            audit(conn, os_user(), "ingest", {k: report.get(k) for k in ("file", "rows", "accepted", "quarantined",
                                                                         "refused", "error", "replaced")})

    def prune(self) -> list[int]:
        """Delete datasets older than the newest ``keep`` (never the current one); returns their ids."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "DELETE FROM coopgis.datasets WHERE id NOT IN (SELECT id FROM coopgis.datasets ORDER BY id DESC "
                "LIMIT %s) AND id <> (SELECT dataset_id FROM coopgis.current_dataset) RETURNING id",
                (self.keep,)).fetchall()
        return [r[0] for r in rows]

    def tidy(self) -> list:
        """Nothing to tidy: an unfinished ingest is a transaction the database rolled back."""
        return []


def rows_of(frame: gpd.GeoDataFrame, dataset_id: int):
    """The COPY rows of a dataset: plain Python values, masked public name and address, EWKB points."""
    n = len(frame)
    columns = [_plain(frame[c]) if c in frame.columns else [None] * n for c in COLUMNS]
    name_public = [mask_numbers(v) for v in columns[COLUMNS.index("name")]]
    address_public = [mask_numbers(v) for v in columns[COLUMNS.index("address")]]
    geoms = shapely.set_srid(np.asarray(frame.geometry.values, dtype=object), 4326)
    ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
    return zip(*([dataset_id] * n, range(n), *columns, name_public, address_public, ewkb.tolist()), strict=True)


_SELECTED = (*COLUMNS, "ST_X(geom)", "ST_Y(geom)")
_COLUMN_ARRAYS = ("SELECT " + ", ".join(f"array_agg(c{i})" for i in range(len(_SELECTED)))
                  + " FROM (SELECT " + ", ".join(f"{c} AS c{i}" for i, c in enumerate(_SELECTED))
                  + " FROM coopgis.cooperatives WHERE dataset_id = %s ORDER BY row_no) AS rows_in_order")


def frame_of(arrays) -> gpd.GeoDataFrame:
    """A dataset in the file store's shape (columns, dtypes, CRS) from one array per column (None: no rows)."""
    values = [list(a) if a is not None else [] for a in (arrays or [None] * len(_SELECTED))]
    data = {}
    for c, col in zip(COLUMNS, values, strict=False):
        dtype = DTYPES.get(c, "str")
        if dtype in ("Int64", "boolean"):
            data[c] = pd.Series(pd.array(col, dtype=dtype))
        elif dtype == "str":
            data[c] = pd.Series(np.array(col, dtype=object), dtype="str")
        else:
            data[c] = pd.Series(np.array(col, dtype=dtype))
    lon = np.array(values[-2], dtype=float)
    lat = np.array(values[-1], dtype=float)
    geometry = shapely.points(lon, lat)
    geometry[np.isnan(lon) | np.isnan(lat)] = None
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometry, crs="EPSG:4326"), crs="EPSG:4326")


def _plain(s: pd.Series) -> list:
    vals = s.astype(object).where(s.notna(), None).tolist()
    kind = getattr(s.dtype, "kind", "O")
    if str(s.dtype) in ("Int64", "int64", "int32", "Int32") or kind in "iu":
        return [None if v is None else int(v) for v in vals]
    if str(s.dtype) in ("boolean", "bool") or kind == "b":
        return [None if v is None else bool(v) for v in vals]
    if kind == "f":
        return [None if v is None else float(v) for v in vals]
    return [None if v is None else str(v) for v in vals]


def _jsonb(obj) -> Jsonb:
    return Jsonb(obj, dumps=partial(json.dumps, ensure_ascii=False, default=str))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
