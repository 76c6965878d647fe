"""The nearest cooperatives to a point: a latitude-sorted index, great-circle distances and bearings.

:class:`NearestIndex` holds the located points sorted by latitude, so a search radius
becomes a slice before any trigonometry; :func:`nearest_rows` measures what is inside
(haversine, :mod:`coopgis.distance`'s Earth radius) and returns the nearest first, with
the initial bearing. :func:`direction` and :func:`geo_uri` say it for a phone.

Not here: HTTP parameters and the GeoJSON answer (``api/field.py``); the index of a served
collection is kept by the collection (``Collection.nearest_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from coopgis.distance import EARTH_RADIUS_KM

# A stand-in point is ranked as if it were this much farther (README "Field work"): known locations first.
STAND_IN_FACTOR = 1.25
STAND_IN_KM = 1.0
DIRECTIONS = (("N", "شمال"), ("NE", "شمال شرقی"), ("E", "شرق"), ("SE", "جنوب شرقی"),
              ("S", "جنوب"), ("SW", "جنوب غربی"), ("W", "غرب"), ("NW", "شمال غربی"))


@dataclass
class NearestIndex:
    """The located cooperatives sorted by latitude, so a radius becomes a slice before any trigonometry."""

    rows: np.ndarray        # row numbers in the collection
    lat: np.ndarray         # degrees, ascending
    lat_rad: np.ndarray
    lon_rad: np.ndarray
    cos_lat: np.ndarray

    @classmethod
    def build(cls, lon: np.ndarray, lat: np.ndarray) -> NearestIndex:
        """The index of the points with a finite longitude and latitude (row numbers into the arrays)."""
        located = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
        order = located[np.argsort(lat[located], kind="stable")]
        la = lat[order]
        return cls(order, la, np.radians(la), np.radians(lon[order]), np.cos(np.radians(la)))


@dataclass
class Nearest:
    rows: np.ndarray
    distance_km: np.ndarray
    bearing_deg: np.ndarray
    matched: int            # cooperatives inside the radius (after filters)


def ranking_km(distance_km: np.ndarray, stand_in: np.ndarray) -> np.ndarray:
    """The distance a list is sorted by: a stand-in point counts :data:`STAND_IN_FACTOR` farther plus
    :data:`STAND_IN_KM`, so a known location comes before a stand-in at a similar distance."""
    return np.where(stand_in, distance_km * STAND_IN_FACTOR + STAND_IN_KM, distance_km)


def nearest_rows(idx: NearestIndex, lon: float, lat: float, radius_km: float, limit: int,
                 mask: np.ndarray | None = None, stand_in: np.ndarray | None = None) -> Nearest:
    """The ``limit`` nearest located rows within ``radius_km`` (great circle), nearest first.

    With ``stand_in`` (a boolean per collection row), rows are chosen and ordered by
    :func:`ranking_km` instead of the plain distance; the radius is always the true distance.
    """
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM) + 1e-9
    lo, hi = np.searchsorted(idx.lat, lat - dlat, "left"), np.searchsorted(idx.lat, lat + dlat, "right")
    sel = np.arange(lo, hi)
    if mask is not None:
        sel = sel[mask[idx.rows[lo:hi]]]
    phi, lam = math.radians(lat), math.radians(lon)
    a = (np.sin((idx.lat_rad[sel] - phi) / 2) ** 2
         + math.cos(phi) * idx.cos_lat[sel] * np.sin((idx.lon_rad[sel] - lam) / 2) ** 2)
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    inside = d <= radius_km
    sel, d = sel[inside], d[inside]
    matched = int(len(sel))
    k = min(limit, matched)
    if k == 0:
        empty = np.empty(0)
        return Nearest(np.empty(0, int), empty, empty, 0)
    rank = d if stand_in is None else ranking_km(d, stand_in[idx.rows[sel]])
    if k < matched:
        part = np.argpartition(rank, k - 1)[:k]
        sel, d, rank = sel[part], d[part], rank[part]
    rows = idx.rows[sel]
    order = np.lexsort((rows, rank))  # by (ranking) distance, then row number: stable for equal distances
    sel, d, rows = sel[order], d[order], rows[order]
    phi2, dlam = idx.lat_rad[sel], idx.lon_rad[sel] - lam
    bearing = np.degrees(np.arctan2(np.sin(dlam) * idx.cos_lat[sel],
                                    math.cos(phi) * np.sin(phi2) - math.sin(phi) * idx.cos_lat[sel] * np.cos(dlam)))
    return Nearest(rows, d, np.mod(bearing, 360.0), matched)


def initial_bearing(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north (0..360)."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def direction(bearing_deg: float) -> tuple[str, str]:
    """(English, Persian) compass word of 8 for a bearing in degrees."""
    return DIRECTIONS[int(((bearing_deg % 360) + 22.5) // 45) % 8]


def geo_uri(lon: float, lat: float, name: str | None) -> str:
    """RFC 5870 ``geo:`` URI with a labelled query, which Android and iOS map apps open."""
    pt = f"{lat:.6f},{lon:.6f}"
    label = f"({quote(name, safe='')})" if name else ""
    return f"geo:{pt}?q={pt}{label}"
