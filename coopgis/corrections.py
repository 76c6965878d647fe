"""Verified locations: accepted location reports laid over the ingested dataset.

The ingested dataset is never edited in place. Whenever it is loaded, the
accepted decisions of the audit log (``location_reports.py``) are applied on top: the
cooperative moves to the verified point, its precision becomes ``verified``,
and its province, county, deprivation class, border flag and quota are joined
again. So a verified location survives restarts and re-ingests; a re-ingest
that brings a different location reports the conflict (:func:`conflicts`)
instead of overwriting it.

An accepted point inside a village that had no coordinate also gives that
village one for the geocoder (:func:`learn_villages`), so later addresses
naming it get ``village`` precision.
"""

from __future__ import annotations

import hashlib
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coopgis.boundaries import Boundaries
from coopgis.geocode import Geocoder, haversine_km
from coopgis.joins import border_quota, join_boundaries

VERIFIED = "verified"
# A re-ingested location further than this from the verified one (beyond the reported accuracy) is a conflict.
CONFLICT_METRES = 100.0


def apply_verified(frame: gpd.GeoDataFrame, accepted: dict[str, dict], boundaries: Boundaries) -> gpd.GeoDataFrame:
    """The dataset with each accepted location applied and its joins recomputed."""
    if not accepted:
        return frame
    reg = frame["registration_no"].astype(str)
    rows = np.flatnonzero(reg.isin(list(accepted)).to_numpy())
    if not len(rows):
        return frame
    out = frame.copy()
    joins = ("province", "province_name", "county", "county_code", "county_osm", "deprivation_class",
             "deprived", "province_shdi", "border")
    # A column held as categories (coopgis.dataset) takes a new value as plain text, and is encoded again.
    encoded = [c for c in ("precision", *joins) if c in out and isinstance(out[c].dtype, pd.CategoricalDtype)]
    for col in encoded:
        out[col] = out[col].astype(object)
    lon = np.array([accepted[reg.iat[i]]["to"]["lon"] for i in rows], dtype=float)
    lat = np.array([accepted[reg.iat[i]]["to"]["lat"] for i in rows], dtype=float)
    joined = join_boundaries(lon, lat, boundaries)
    geom_col = out.geometry.name
    out.loc[out.index[rows], geom_col] = shapely.points(lon, lat)
    out.loc[out.index[rows], "precision"] = VERIFIED
    out.loc[out.index[rows], "confidence"] = 1.0
    if "uncertainty_m" in out.columns:
        out.loc[out.index[rows], "uncertainty_m"] = 0.0
    for col in joins:
        values = joined[col].to_numpy(dtype=object)
        out[col] = out[col].astype(object)
        out.loc[out.index[rows], col] = values
    out["county_osm"] = pd.array(out["county_osm"], dtype="Int64")
    out["deprived"] = pd.array(out["deprived"], dtype="boolean")
    out["border"] = pd.array(out["border"], dtype="boolean")
    out["province_shdi"] = pd.to_numeric(out["province_shdi"], errors="coerce")
    out["border_quota_usd"] = border_quota(out["kind"], out["deprived"])
    for col in encoded:
        out[col] = out[col].astype("category")
    return out


def verified_columns(dataset, registration_no: str, lon: float, lat: float) -> dict:
    """What an accepted point changes of a served cooperative: its joins (province, county, deprivation,
    border, quota), and ``learned_place_code`` when it places a village that had no point; for storing
    the verified-location overlay beside the decision."""
    coll = dataset.collections["cooperatives"]
    row = coll.row_of(registration_no)
    if row is None:
        return {}
    one = dataset.cooperatives.iloc[[row]]
    moved = apply_verified(one, {registration_no: {"to": {"lon": lon, "lat": lat}}}, dataset.boundaries)
    cols = ("province", "province_name", "county", "county_code", "county_osm", "deprivation_class", "deprived",
            "border", "border_quota_usd")
    out = {c: _plain(moved[c].iat[0]) for c in cols if c in moved.columns}
    if one["place_level"].iat[0] == "village" and isinstance(one["place_code"].iat[0], str):
        out["learned_place_code"] = one["place_code"].iat[0]
    return out


def _plain(v):
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return str(v)


def learn_villages(geocoder: Geocoder, frame: gpd.GeoDataFrame, accepted: dict[str, dict]) -> int:
    """Give villages without a coordinate the verified point of a cooperative in them; returns how many."""
    return sum(1 for code, lon, lat in villages_to_learn(frame, accepted) if geocoder.learn_village(code, lon, lat))


def villages_to_learn(frame: gpd.GeoDataFrame, accepted: dict[str, dict]) -> list[tuple[str, float, float]]:
    """(village code, lon, lat) of each accepted point of a cooperative placed in a village (no geocoder
    needed: :meth:`Geocoder.learn_village` decides later whether the village takes it)."""
    if not accepted:
        return []
    out = []
    by_reg = frame.set_index(frame["registration_no"].astype(str))
    for reg, decision in accepted.items():
        if reg not in by_reg.index:
            continue
        row = by_reg.loc[reg]
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        if row.get("place_level") != "village" or not isinstance(row.get("place_code"), str):
            continue
        out.append((row["place_code"], decision["to"]["lon"], decision["to"]["lat"]))
    return out


def conflicts(frame: gpd.GeoDataFrame, accepted: dict[str, dict]) -> list[dict]:
    """Accepted locations that a freshly ingested dataset places elsewhere (it keeps the verified one)."""
    out = []
    reg = frame["registration_no"].astype(str)
    for i in np.flatnonzero(reg.isin(list(accepted)).to_numpy()):
        d = accepted[reg.iat[i]]
        g = frame.geometry.iat[i]
        if g is None or g.is_empty:
            continue
        metres = haversine_km(g.x, g.y, d["to"]["lon"], d["to"]["lat"]) * 1000
        if metres > CONFLICT_METRES + float(d["to"].get("accuracy_m") or 0):
            out.append({"registration_no": reg.iat[i], "verified": d["to"], "verified_by": d.get("by"),
                        "verified_at": d.get("at"),
                        "ingested": {"lon": round(g.x, 6), "lat": round(g.y, 6),
                                     "precision": frame["precision"].iat[i]},
                        "distance_m": round(metres, 1)})
    return out


def location_etag(registration_no: str, lon: float | None, lat: float | None, precision: str | None,
                  version: str) -> str:
    """A strong ETag of a cooperative's location state (changes when it moves or its reports are decided)."""
    state = f"{registration_no}|{_fmt(lon)}|{_fmt(lat)}|{precision}|{version}"
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


def _fmt(v: float | None) -> str:
    return "none" if v is None or not math.isfinite(v) else f"{v:.7f}"
