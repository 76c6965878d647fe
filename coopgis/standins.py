"""Honest field lists: what a stand-in point stands for, and a real place to drive to instead.

A cooperative whose village or town has no known coordinate sits at the stand-in point of the
smallest area around it that has one (rural district, district, county or province:
:data:`coopgis.vocab.STAND_IN_PRECISIONS`). That point is a median or a seat town, not the
cooperative, so it is never offered as a destination. :class:`FieldGuide` says, per cooperative,
whether its point is a stand-in, the area it stands for (its name), and the place to go to
instead: the placed village or city nearest to the stand-in point in the same county (a settlement
whose coordinate is sure: strong village points and cities), with its name and level, or nothing
when the county has none.

Not here: the nearest search (``nearest.py``), the HTTP answers (``api/field.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coopgis.boundaries import Boundaries
from coopgis.distance import haversine_km
from coopgis.nearest import direction, geo_uri, initial_bearing
from coopgis.text import shared_texts
from coopgis.vocab import STAND_IN_PRECISIONS

# The column that names the area a stand-in of each precision stands for.
AREA_COLUMN = {"rural_district": "rural_district", "district": "district", "county": "county",
               "province": "province_name"}
AREA_FA = {"rural_district": "دهستان", "district": "بخش", "county": "شهرستان", "province": "استان"}
PLACE_FA = {"village": "روستای", "city": "شهر"}


@dataclass
class FieldGuide:
    """Per cooperative row: stand-in or not, the area it stands for, and where to go instead."""

    stand_in: np.ndarray      # bool
    area: np.ndarray          # object: the area's name (stand-ins only)
    goto_name: np.ndarray     # object: the place to go to instead of a stand-in point (None: none known)
    goto_level: np.ndarray    # object: village or city
    goto_lon: np.ndarray      # float, NaN where none
    goto_lat: np.ndarray

    def verified(self, rows: np.ndarray) -> FieldGuide:
        """A copy in which ``rows`` are at verified locations (no longer stand-ins)."""
        out = FieldGuide(*(a.copy() for a in (self.stand_in, self.area, self.goto_name, self.goto_level,
                                              self.goto_lon, self.goto_lat)))
        out.stand_in[rows] = False
        out.area[rows] = out.goto_name[rows] = out.goto_level[rows] = None
        out.goto_lon[rows] = out.goto_lat[rows] = np.nan
        return out

    def describe(self, row: int, precision: str | None, lon: float, lat: float, name: str | None,
                 here: tuple[float, float] | None = None) -> dict:
        """The honest-list properties of one cooperative: ``stand_in``, ``stand_in_for`` and ``directions``
        (with distance and direction from ``here``, the officer's lon/lat, when known)."""
        if not (np.isfinite(lon) and np.isfinite(lat)):
            return {"stand_in": False, "stand_in_for": None, "directions": None}
        if not self.stand_in[row]:
            target = {"name": name, "level": "cooperative", "lon": round(lon, 6), "lat": round(lat, 6)}
            return {"stand_in": False, "stand_in_for": None, "directions": _directions(target, here)}
        area = {"level": precision, "level_fa": AREA_FA.get(precision or ""), "name": self.area[row]}
        if self.goto_name[row] is None:
            return {"stand_in": True, "stand_in_for": area, "directions": None}
        gl, gx, gy = self.goto_level[row], float(self.goto_lon[row]), float(self.goto_lat[row])
        target = {"name": self.goto_name[row], "level": gl, "level_fa": PLACE_FA.get(gl),
                  "lon": round(gx, 6), "lat": round(gy, 6)}
        return {"stand_in": True, "stand_in_for": area, "directions": _directions(target, here)}


def build_guide(frame: pd.DataFrame, lon: np.ndarray, lat: np.ndarray, boundaries: Boundaries) -> FieldGuide:
    """The guide of a cooperatives table (points ``lon``/``lat`` per row, NaN where unknown)."""
    n = len(frame)
    precision = frame["precision"].to_numpy(dtype=object) if "precision" in frame else np.full(n, None)
    stand_in = np.isin(precision, STAND_IN_PRECISIONS) & np.isfinite(lon) & np.isfinite(lat)
    area = np.full(n, None, dtype=object)
    names: dict[str, str] = {}   # one object per area name: the stand-ins of an area share it (140 MB at 1,000,000)
    for level, column in AREA_COLUMN.items():
        rows = np.flatnonzero(stand_in & (precision == level))
        if len(rows) and column in frame:
            values = frame[column].iloc[rows].tolist()
            area[rows] = [v if isinstance(v, str) and v else None for v in shared_texts(values, names)]
    goto_name = np.full(n, None, dtype=object)
    goto_level = np.full(n, None, dtype=object)
    goto_lon = np.full(n, np.nan)
    goto_lat = np.full(n, np.nan)
    county = pd.to_numeric(frame["county_osm"], errors="coerce").to_numpy(float) if "county_osm" in frame \
        else np.full(n, np.nan)
    todo = np.flatnonzero(stand_in & np.isfinite(county))
    if len(todo):
        places = _sure_places(boundaries)
        p_lon, p_lat = places["lon"].to_numpy(float), places["lat"].to_numpy(float)
        p_label, p_level = places["label"].to_numpy(object), places["level"].to_numpy(object)
        by_county = places.groupby("county_osm").indices
        # Stand-ins share few points (one per area): find each distinct point's place once.
        points = np.column_stack([county[todo], lon[todo], lat[todo]])
        distinct, which = np.unique(points, axis=0, return_inverse=True)
        which = which.ravel()
        best = np.full(len(distinct), -1)
        for k, (c, x, y) in enumerate(distinct.tolist()):
            candidates = by_county.get(c)
            if candidates is not None:
                best[k] = candidates[int(np.argmin(haversine_km(x, y, p_lon[candidates], p_lat[candidates])))]
        found = best[which]
        ok = found >= 0
        rows, hit = todo[ok], found[ok]
        goto_name[rows], goto_level[rows] = p_label[hit], p_level[hit]
        goto_lon[rows], goto_lat[rows] = p_lon[hit], p_lat[hit]
    return FieldGuide(stand_in, area, goto_name, goto_level, goto_lon, goto_lat)


def _sure_places(b: Boundaries) -> pd.DataFrame:
    """Settlements whose point is sure: cities and villages placed by a strong rule, not outliers."""
    p = b.places
    sure_village = (p["level"] == "village") & (p["point_strength"] == "strong") & ~p["point_outlier"] \
        & p["settlement"]
    ok = (sure_village | (p["level"] == "city")) & p["lon"].notna() & p["lat"].notna() & p["county_osm"].notna()
    out = p.loc[ok, ["level", "name", "lon", "lat", "county_osm"]].copy()
    out["county_osm"] = out["county_osm"].astype(float)
    out["label"] = out["name"].map(lambda s: " ".join(str(s).split()).strip("() "))
    return out.reset_index(drop=True)


def _directions(target: dict, here: tuple[float, float] | None) -> dict:
    """A destination with its geo: link, and its distance and direction from ``here`` when known."""
    target["geo_uri"] = geo_uri(target["lon"], target["lat"], target["name"])
    if here is not None:
        km = float(haversine_km(here[0], here[1], target["lon"], target["lat"]))
        target["distance_km"] = round(km, 2)
        bearing = initial_bearing(here[0], here[1], target["lon"], target["lat"])
        target["bearing_deg"] = round(bearing, 1) % 360
        target["direction_en"], target["direction_fa"] = direction(bearing)
    return target

