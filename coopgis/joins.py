"""Join points to provinces, counties, the deprivation layer and the border flag.

Vectorised point-in-polygon through shapely's STRtree: one query for all
points, no Python loop per row. Also the border-dwellers' currency-quota rule and
the words of the deprivation classes.

The quota rule (DESIGN.md section 1, the Deputy's interview): USD 600 per member only where the
area is on a published list of deprived areas (``deprived`` true); USD 300 only where a ministry
list given through ``COOPGIS_DEPRIVATION`` names the area as not deprived (class
``not_deprived``: ``deprived`` false); everywhere else, where no list covers the area or the
list is silent about it (the 2019 list names one county per province), the quota is unknown.

Not here: where the points come from (``geocode.py``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

if TYPE_CHECKING:  # boundaries.py reads the class words from here
    from coopgis.boundaries import Boundaries

# Border-dwellers' cooperatives' currency quota per member, in US dollars
# (DESIGN.md section 1): raised from 50 to 300 in ordinary areas, 100 to 600 in deprived areas.
QUOTA_ORDINARY_USD = 300
QUOTA_DEPRIVED_USD = 600
QUOTA_SOURCE = ("Deputy for Cooperative Affairs, Ministry of Cooperatives, Labour and Social Welfare, "
                "public interview (DESIGN.md section 1): border-dwellers' currency quota 300 USD in ordinary "
                "areas, 600 USD in deprived areas")

# Deprivation classes: on a published list (deprived), silent or absent lists (unknown), and a
# ministry list that names an area as not deprived (given through COOPGIS_DEPRIVATION only).
LISTED_CLASSES = ("less_developed_2019", "deprived_2009")
NOT_DEPRIVED_CLASS = "not_deprived"
DEPRIVATION_CLASSES = ("less_developed_2019", "deprived_2009", "not_listed", "no_data", NOT_DEPRIVED_CLASS)
# What each class says, in plain words; never "not deprived" for an area a list is silent about.
CLASS_WORDS = {
    "less_developed_2019": "on the 2019 list",
    "deprived_2009": "on the 2009 list",
    "not_listed": "not on the 2019 list",
    "no_data": "no list",
    NOT_DEPRIVED_CLASS: "not deprived (ministry list)",
}
CLASS_WORDS_FA = {
    "less_developed_2019": "در فهرست ۲۰۱۹ (۱۳۹۷) شهرستان‌های کمتر توسعه‌یافته، وزارت کشور",
    "deprived_2009": "در فهرست ۲۰۰۹ (۱۳۸۸) مناطق محروم، هیئت وزیران",
    "not_listed": "در فهرست ۲۰۱۹ نیامده (آن فهرست از هر استان یک شهرستان نام می‌برد)",
    "no_data": "بی‌فهرست: برای این استان فهرستی در دست نیست",
    NOT_DEPRIVED_CLASS: "غیرمحروم به گفته فهرست وزارتخانه",
}


def deprived_of_class(cls: object, given: object = None) -> bool | None:
    """``deprived`` of a class: True on a published list, False only for ``not_deprived``, else None.

    ``given`` is a table's own ``deprived`` value: True keeps an area of any other class listed.
    """
    if cls in LISTED_CLASSES or given is True:
        return True
    if cls == NOT_DEPRIVED_CLASS:
        return False
    return None


def quota_words(kind: object, deprived: object) -> str | None:
    """The quota of one cooperative in words: "600", "300" or "unknown" (None for other kinds)."""
    if kind != "border_dwellers":
        return None
    if deprived is True:
        return str(QUOTA_DEPRIVED_USD)
    if deprived is False:
        return str(QUOTA_ORDINARY_USD)
    return "unknown"



def join_boundaries(lon: np.ndarray, lat: np.ndarray, boundaries: Boundaries) -> pd.DataFrame:
    """Province, county, deprivation class, SHDI and border flag for each point.

    Rows with no point, or a point outside every polygon, get empty values.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    n = len(lon)
    county_idx = locate_points(boundaries.counties.geometry.values, lon, lat)
    province_idx = locate_points(boundaries.provinces.geometry.values, lon, lat)

    c = boundaries.counties
    p = boundaries.provinces
    out = pd.DataFrame(index=range(n))
    pick = lambda table, idx, col: pd.Series(  # noqa: E731
        np.where(idx >= 0, table[col].to_numpy(dtype=object)[np.maximum(idx, 0)], None), dtype=object)
    out["province"] = pick(p, province_idx, "iso_3166_2")
    out["province_name"] = pick(p, province_idx, "name_fa")
    out["county"] = pick(c, county_idx, "display_name_fa")
    out["county_code"] = pick(c, county_idx, "official_county_code")
    osm = pd.array(c["osm_relation_id"].to_numpy()[np.maximum(county_idx, 0)], dtype="Int64")
    osm[county_idx < 0] = pd.NA
    out["county_osm"] = osm
    out["deprivation_class"] = pick(c, county_idx, "deprivation_class")
    out["deprived"] = pd.array(pick(c, county_idx, "deprived").map(_bool_or_none), dtype="boolean")
    out["province_shdi"] = pd.to_numeric(pick(c, county_idx, "province_shdi"), errors="coerce")
    out["border"] = pd.array(pick(c, county_idx, "border").map(_bool_or_none), dtype="boolean")
    # Counties newer than the official list have no code; keep None, not NaN.
    out["county_code"] = out["county_code"].map(lambda v: v if isinstance(v, str) and v else None)
    return out


# Boundary polygons are shared by the threads of a worker. GEOS makes a prepared polygon's indexes on first
# use, and two threads doing that to the same polygon at once corrupt memory (a "double free" abort, seen
# with concurrent location reports in a just-started worker): point-in-polygon tests on shared polygons
# take this lock (they are vectorised, so an ingest takes it once per polygon).
GEOMETRY_LOCK = threading.Lock()


def locate_points(polygons: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Index of the polygon holding each point, -1 for none.

    Per polygon: the points inside its bounding box (a binary search on sorted
    longitudes), then one vectorised ``contains_xy`` on the prepared polygon.
    Points exactly on an edge, which ``contains`` leaves out, are settled with
    ``intersects``. About 80 times faster than an STRtree ``intersects`` query here.
    """
    out = np.full(len(lon), -1)
    finite = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
    if not len(finite):
        return out
    order = finite[np.argsort(lon[finite])]
    sorted_lon = lon[order]
    for i, (geom, (x0, y0, x1, y1)) in enumerate(zip(polygons, shapely.bounds(polygons), strict=False)):
        cand = order[np.searchsorted(sorted_lon, x0, side="left"):np.searchsorted(sorted_lon, x1, side="right")]
        cand = cand[(lat[cand] >= y0) & (lat[cand] <= y1) & (out[cand] < 0)]
        if len(cand):
            with GEOMETRY_LOCK:
                shapely.prepare(geom)
                inside = shapely.contains_xy(geom, lon[cand], lat[cand])
            out[cand[inside]] = i
    missing = finite[out[finite] < 0]
    if len(missing):
        src, hit = shapely.STRtree(polygons).query(shapely.points(lon[missing], lat[missing]), predicate="intersects")
        first = np.unique(src, return_index=True)[1]
        out[missing[src[first]]] = hit[first]
    return out


def border_quota(kind: pd.Series, deprived: pd.Series) -> pd.Series:
    """Currency quota (USD) of border-dwellers' cooperatives: 600 listed as deprived, 300 named not deprived.

    None for other kinds, and where the area's deprivation is not known (``deprived`` missing: no
    list, or a list that is silent about the area).
    """
    dep = pd.array(deprived, dtype="boolean")
    quota = np.where(dep.fillna(False), QUOTA_DEPRIVED_USD, QUOTA_ORDINARY_USD)
    known = ~pd.isna(dep)
    is_border = (kind.to_numpy() == "border_dwellers")
    return pd.Series(pd.array(np.where(is_border & known, quota, 0), dtype="Int64"), index=kind.index).where(
        is_border & known)


def deprivation_of_counties(county_osm: pd.Series, boundaries: Boundaries) -> pd.DataFrame:
    """``deprivation_class`` and ``deprived`` of each cooperative's county from the current deprivation layer.

    The served dataset takes these from the layer at load time, so a replacement table given through
    ``COOPGIS_DEPRIVATION`` (or a corrected rule) applies without a new ingest.
    """
    c = boundaries.counties.set_index("osm_relation_id")
    osm = pd.array(county_osm, dtype="Int64")
    classes = pd.Series(osm).map(c["deprivation_class"])
    deprived = pd.Series(osm).map(c["deprived"].map(_bool_or_none))
    out = pd.DataFrame({"deprivation_class": classes.astype(object).where(classes.notna(), None).to_numpy(),
                        "deprived": pd.array(deprived.astype(object).where(deprived.notna(), None), dtype="boolean")},
                       index=county_osm.index)
    return out


def _bool_or_none(v):
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    return bool(v)
