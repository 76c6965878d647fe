"""Ingest a registry file: read and validate, geocode, join, and store the dataset.

This is the one path from a registry file to a served dataset; the CLI and the
API both call :func:`ingest`. Every input row ends up either in the dataset or
in the report's quarantine list, never nowhere.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coopgis.boundaries import Boundaries
from coopgis.corrections import conflicts, learn_villages
from coopgis.files import write_private
from coopgis.geocode import Geocoder
from coopgis.joins import border_quota, join_boundaries
from coopgis.location_reports import LocationReportLog
from coopgis.registry import RegistryRead, read_registry
from coopgis.store import Store
from coopgis.values import parse_bool

# Columns of the stored dataset, in order. `phone` is personal and never published.
DATASET_COLUMNS = (
    "registration_no", "name", "kind", "sector", "status", "members", "jobs", "women_led",
    "registered_on", "registered_on_jalali", "registered_year",
    "province", "province_name", "county", "county_code", "county_osm",
    "district", "rural_district", "place", "place_level", "place_code",
    "precision", "confidence", "uncertainty_m", "geocode_issues",
    "deprivation_class", "deprived", "province_shdi", "border", "border_quota_usd",
    "address", "given_province", "given_county", "given_district", "given_rural_district", "given_place",
    "given_lon", "given_lat", "synthetic", "phone", "extra", "source_row",
)
SENSITIVE_COLUMNS = ("phone",)


LAST_INGEST_FILE = "last-ingest.json"   # the report of the latest attempt, replaced or not


@dataclass
class IngestResult:
    dataset: gpd.GeoDataFrame
    report: dict

    @property
    def replaced(self) -> bool:
        """True when this ingest's dataset became the current one."""
        return bool(self.report.get("replaced"))


def ingest(path: str | Path, store: Store | None, boundaries: Boundaries, geocoder: Geocoder | None = None,
           progress=None, *, max_bytes: int | None = None, max_shrink: float = 0.2,
           allow_shrink: bool = False) -> IngestResult:
    """Read, validate, geocode and join a registry file; make it ``store``'s dataset if it passes the checks.

    The new dataset replaces the current one only when at least one row was accepted and
    it does not drop more than ``max_shrink`` of the current dataset's cooperatives (unless
    ``allow_shrink``); ``report["replaced"]`` says which, ``report["refused"]`` why not. The
    report of every attempt is also kept as ``last-ingest.json`` in the store's folder.
    """
    started = time.perf_counter()
    registry = read_registry(path, max_bytes)
    geocoder = geocoder or Geocoder(boundaries)
    accepted = _verified_locations(store, geocoder)
    t_read = time.perf_counter()
    dataset = (build_dataset(registry, boundaries, geocoder, progress=progress) if len(registry.accepted)
               else empty_dataset())
    t_geo = time.perf_counter()
    report = make_ingest_report(path, registry, dataset)
    # Verified locations are laid over the dataset whenever it is served; say where this ingest disagrees.
    report["verified_locations"] = len(accepted)
    report["verified_conflicts"] = conflicts(dataset, accepted) if len(dataset) else []
    report["timing_s"] = {"read": round(t_read - started, 2), "geocode_join": round(t_geo - t_read, 2)}
    current = store.rows() if store is not None and hasattr(store, "rows") else None
    report["previous_rows"] = current
    report["refused"] = refusals(len(dataset), registry.rows, current, max_shrink, allow_shrink)
    replaced = store is not None and not report["refused"]
    report["replaced"] = replaced
    if store is not None and replaced:
        store.write(dataset, report)
        report["timing_s"]["write"] = round(time.perf_counter() - t_geo, 2)
    report["timing_s"]["total"] = round(time.perf_counter() - started, 2)
    record = getattr(store, "record_ingest", None)   # the database keeps every attempt in its audit trail
    if record is not None:
        record(report)
    folder = getattr(store, "folder", None)
    if folder is not None:
        try:
            write_ingest_report(Path(folder) / LAST_INGEST_FILE, report)
        except OSError as exc:  # the outcome stands; only its copy in the folder is missing
            report["last_ingest_not_written"] = exc.strerror or str(exc)
    return IngestResult(dataset, report)


def refusals(accepted: int, rows: int, current: int | None, max_shrink: float, allow_shrink: bool) -> list[str]:
    """Why a new dataset of ``accepted`` cooperatives must not replace one of ``current`` (empty: it may)."""
    out = []
    if accepted == 0:
        out.append(f"no row was accepted ({rows} read, all quarantined or none at all)")
    elif current and accepted < current * (1 - max_shrink) and not allow_shrink:
        out.append(f"it would drop the dataset from {current:,} to {accepted:,} cooperatives "
                   f"({1 - accepted / current:.0%} fewer; at most {max_shrink:.0%} is allowed, "
                   "COOPGIS_INGEST_MAX_SHRINK): check the file, or ingest it with --allow-shrink")
    return out


def write_ingest_report(path: str | Path, report: dict) -> None:
    """An ingest report as JSON, readable by the service's user only (it holds quarantined rows' values)."""
    write_private(path, json.dumps(report, ensure_ascii=False, indent=1, default=str).encode("utf-8"))


def empty_dataset() -> gpd.GeoDataFrame:
    """A dataset with no cooperatives, in the stored shape (what an ingest that accepts nothing makes)."""
    return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in DATASET_COLUMNS},
                            geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")


def _verified_locations(store: Store | None, geocoder: Geocoder) -> dict[str, dict]:
    """Accepted location reports of the store; their villages teach the geocoder first."""
    if store is None or not hasattr(store, "report_log"):
        return {}
    log: LocationReportLog = store.report_log()
    accepted = log.read().accepted()
    if accepted and store is not None and store.exists():
        learn_villages(geocoder, store.read(), accepted)
    return accepted


def build_dataset(registry: RegistryRead, boundaries: Boundaries, geocoder: Geocoder,
                  progress=None) -> gpd.GeoDataFrame:
    """Geocode and join the accepted rows into the stored dataset's shape."""
    acc = registry.accepted.reset_index(drop=True)
    geo = geocoder.geocode_many(acc, progress=progress)
    lon = pd.to_numeric(geo["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(geo["lat"], errors="coerce").to_numpy(float)
    joined = join_boundaries(lon, lat, boundaries)

    issues = [list(i) for i in geo["issues"]]
    # Where the point's county differs from the county the address named, say so.
    named = pd.to_numeric(geo["county_osm"], errors="coerce").to_numpy(float)
    actual = joined["county_osm"].astype("float64").to_numpy()
    for i in np.flatnonzero(~np.isnan(named) & ~np.isnan(actual) & (named != actual)):
        issues[i].append("point_outside_named_county")

    out = pd.DataFrame({
        "registration_no": acc["registration_no"], "name": acc["name"], "kind": acc["kind"],
        "sector": acc["sector"], "status": acc["status"], "members": acc["members"], "jobs": acc["jobs"],
        "women_led": acc["women_led"], "registered_on": acc["registered_on"],
        "registered_on_jalali": acc["registered_on_jalali"],
    })
    out["registered_year"] = pd.array(
        [int(j[:4]) if isinstance(j, str) and j[:4].isdigit() else None for j in acc["registered_on_jalali"]],
        dtype="Int64")
    # The point decides province and county; rows without a point keep what the address named.
    out["province"] = joined["province"].where(joined["province"].notna(), geo["province"])
    out["province_name"] = joined["province_name"].where(joined["province_name"].notna(), geo["province_name"])
    out["county"] = joined["county"].where(joined["county"].notna(), geo["county"])
    out["county_code"] = joined["county_code"].where(joined["county"].notna(), geo["county_code"])
    out["county_osm"] = joined["county_osm"].where(joined["county_osm"].notna(),
                                                   pd.array(geo["county_osm"], dtype="Int64"))
    for col in ("district", "rural_district", "place", "place_level", "place_code"):
        out[col] = geo[col]
    out["precision"] = geo["precision"]
    out["confidence"] = geo["confidence"].astype(float)
    out["uncertainty_m"] = pd.array(pd.to_numeric(geo["uncertainty_m"], errors="coerce").round(), dtype="Int64")
    out["geocode_issues"] = [";".join(i) if i else None for i in issues]
    for col in ("deprivation_class", "deprived", "province_shdi", "border"):
        out[col] = joined[col]
    out["border_quota_usd"] = border_quota(out["kind"], out["deprived"])
    out["address"] = acc["address"]
    for col in ("province", "county", "district", "rural_district", "place"):
        out["given_" + col] = acc[col]
    out["given_lon"] = acc["lon"]
    out["given_lat"] = acc["lat"]
    out["synthetic"] = _synthetic_flags(acc["extra"])
    out["phone"] = acc["phone"]
    out["extra"] = acc["extra"]
    out["source_row"] = acc["source_row"]
    geometry = shapely.points(lon, lat)
    geometry[np.isnan(lon) | np.isnan(lat)] = None
    return gpd.GeoDataFrame(out[list(DATASET_COLUMNS)], geometry=geometry, crs="EPSG:4326")


def make_ingest_report(path: str | Path, registry: RegistryRead, dataset: gpd.GeoDataFrame) -> dict:
    """The ingest report: every row accounted for, by reason and by precision."""
    issues = Counter(i for cell in dataset["geocode_issues"].dropna() for i in cell.split(";"))
    report = {
        "file": str(path),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encoding": registry.encoding,
        "rows": registry.rows,
        "accepted": int(len(dataset)),
        "quarantined": len(registry.quarantined),
        "blank_rows": registry.blank_rows,
        "by_reason": dict(sorted(registry.by_reason().items())),
        "by_precision": {p: int(n) for p, n in dataset["precision"].value_counts().items()},
        "by_issue": dict(sorted(issues.items())),
        "synthetic": bool(len(dataset)) and bool(dataset["synthetic"].all()),
        "header_map": registry.header_map,
        "unknown_columns": registry.unknown_columns,
        "quarantine": registry.quarantined,
        "control_characters": {"removed": sum(registry.control_characters.values()),
                               "at": [{("row" if registry.encoding == "xlsx" else "line"): n, "count": k}
                                      for n, k in sorted(registry.control_characters.items())]},
    }
    if registry.rows != len(dataset) + len(registry.quarantined):
        raise AssertionError(f"ingest invariant broken: rows lost ({registry.rows} read, {len(dataset)} accepted, "
                             f"{len(registry.quarantined)} quarantined)")
    return report


def _synthetic_flags(extra: pd.Series) -> pd.Series:
    """The optional ``synthetic`` column of a sample registry (kept by the reader in ``extra``)."""
    flags = []
    for cell in extra:
        value = json.loads(cell).get("synthetic") if isinstance(cell, str) and cell else None
        try:
            flags.append(bool(parse_bool(value)) if value is not None else False)
        except ValueError:
            flags.append(False)
    return pd.Series(flags, index=extra.index, dtype=bool)


def print_ingest_summary(report: dict, where: Path, out: TextIO | None = None) -> None:
    """The ingest report as a two-column table for people (rows, reasons, precisions, time, outcome)."""
    rows = [("rows read", report["rows"]), ("accepted", report["accepted"]),
            ("quarantined", report["quarantined"])]
    rows += [(f"  {reason}", n) for reason, n in report["by_reason"].items()]
    rows += [("precision", "")] + [(f"  {p}", n) for p, n in report["by_precision"].items()]
    if report.get("by_issue"):
        rows += [("geocoding issues", "")] + [(f"  {i}", n) for i, n in report["by_issue"].items()]
    if report.get("control_characters", {}).get("removed"):
        rows += [("control characters removed", report["control_characters"]["removed"])]
    rows += [("seconds", report["timing_s"]["total"]), ("dataset", str(where)),
             ("replaced", "yes" if report.get("replaced") else "NO")]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}", file=out or sys.stdout)
