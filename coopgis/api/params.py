"""Query parameters shared by items, downloads, tiles and stats: parsed once, errors explained.

Every value is read through the Persian normaliser, so Persian and Arabic digits
and letter forms work wherever a number or a name is expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from fastapi import Query, Request
from pyproj import CRS, Transformer

from coopgis.api.errors import ApiError
from coopgis.dataset import Collection, Dataset
from coopgis.text import key, latin_key, norm, to_ascii_digits
from coopgis.vocab import parse_kind, parse_sector, parse_status

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
SUPPORTED_CRS = [CRS84] + [f"http://www.opengis.net/def/crs/EPSG/0/{c}"
                           for c in (4326, 3857, 32638, 32639, 32640, 32641)]
PRECISIONS = ("exact", "verified", "village", "city", "rural_district", "district", "county", "province", "none")


@dataclass(frozen=True)
class OutputCrs:
    uri: str
    epsg: int | None          # None for CRS84
    lat_first: bool           # EPSG:4326 is latitude, longitude


def parse_crs(value: str | None, param: str = "crs") -> OutputCrs:
    """A supported CRS from a URI, 'EPSG:n', 'n' or 'CRS84'; CRS84 when absent."""
    if value is None or not value.strip():
        return OutputCrs(CRS84, None, False)
    v = to_ascii_digits(value.strip().strip("[]<>"))
    low = v.lower()
    if low in ("crs84", "ogc:crs84", "urn:ogc:def:crs:ogc:1.3:crs84") or low == CRS84.lower():
        return OutputCrs(CRS84, None, False)
    code = None
    for prefix in ("http://www.opengis.net/def/crs/epsg/0/", "https://www.opengis.net/def/crs/epsg/0/",
                   "urn:ogc:def:crs:epsg::", "epsg:", ""):
        if low.startswith(prefix) and low[len(prefix):].isdigit():
            code = int(low[len(prefix):])
            break
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{code}" if code is not None else None
    if uri not in SUPPORTED_CRS:
        raise ApiError(f"{param}={value!r} is not supported; use one of: {', '.join(SUPPORTED_CRS)}",
                       title="Unsupported CRS")
    return OutputCrs(uri, code, code == 4326)


@lru_cache(maxsize=16)
def transformer(epsg: int, inverse: bool = False) -> Transformer:
    """lon/lat (CRS84) to EPSG:n, or back; always_xy so axis order is handled by the caller."""
    if inverse:
        return Transformer.from_crs(CRS.from_epsg(epsg), CRS.from_user_input("OGC:CRS84"), always_xy=True)
    return Transformer.from_crs(CRS.from_user_input("OGC:CRS84"), CRS.from_epsg(epsg), always_xy=True)


def parse_bbox(value: str | None, bbox_crs: str | None = None) -> tuple[float, float, float, float] | None:
    """A bbox 'minx,miny,maxx,maxy' (in bbox-crs, default CRS84) as a CRS84 tuple."""
    if value is None or not value.strip():
        if bbox_crs:
            raise ApiError("bbox-crs was given without bbox")
        return None
    parts = [p for p in to_ascii_digits(norm(value)).replace("٫", ".").split(",")]
    if len(parts) == 6:  # 3D bbox: ignore heights
        parts = [parts[0], parts[1], parts[3], parts[4]]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ApiError(f"bbox={value!r} must be four numbers: minx,miny,maxx,maxy") from None
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise ApiError(f"bbox={value!r} must be four finite numbers: minx,miny,maxx,maxy")
    crs = parse_crs(bbox_crs, "bbox-crs")
    if crs.lat_first:  # EPSG:4326 bbox is lat,lon order
        nums = [nums[1], nums[0], nums[3], nums[2]]
    minx, miny, maxx, maxy = nums
    if minx > maxx or miny > maxy:
        raise ApiError(f"bbox={value!r}: the minimum must not exceed the maximum (minx,miny,maxx,maxy)")
    if crs.epsg in (None, 4326):
        if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
            raise ApiError(f"bbox={value!r} is outside longitude -180..180 / latitude -90..90")
        return (minx, miny, maxx, maxy)
    t = transformer(crs.epsg, inverse=True)
    xs = np.array([minx, maxx, minx, maxx])
    ys = np.array([miny, miny, maxy, maxy])
    lon, lat = t.transform(xs, ys)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ApiError(f"bbox={value!r} is outside the valid area of {crs.uri}")
    return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))


@dataclass
class CooperativeFilter:
    """Property filters of the cooperatives collection; all given ones must hold."""

    kind: list[str] | None = None
    sector: list[str] | None = None
    status: list[str] | None = None
    province: list[str] | None = None
    county: list[str] | None = None
    deprived: bool | None = None
    border: bool | None = None
    women_led: bool | None = None
    year_from: int | None = None
    year_to: int | None = None
    precision: list[str] | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in self.__dict__.values())

    def mask(self, coll: Collection) -> np.ndarray:
        f = coll.frame
        m = np.ones(len(f), bool)
        for col, values in (("kind", self.kind), ("sector", self.sector), ("status", self.status),
                            ("province", self.province), ("precision", self.precision)):
            if values is not None:
                m &= f[col].isin(values).to_numpy()
        if self.county is not None:
            by_code = f["county_code"].isin(self.county).to_numpy()
            by_osm = f["county_osm"].astype("string").isin(self.county).to_numpy()
            m &= by_code | by_osm
        for col, value in (("deprived", self.deprived), ("border", self.border), ("women_led", self.women_led)):
            if value is not None:
                m &= (f[col].astype("boolean") == value).fillna(False).to_numpy()
        if self.year_from is not None or self.year_to is not None:
            y = f["registered_year"].astype("float64").to_numpy()
            with np.errstate(invalid="ignore"):
                if self.year_from is not None:
                    m &= y >= self.year_from
                if self.year_to is not None:
                    m &= y <= self.year_to
        return m


def cooperative_filter(
    request: Request,
    kind: str | None = Query(None, description="cooperative kind(s), comma-separated; code or Persian name "
                                                 "(production, تولیدی, ...)"),
    sector: str | None = Query(None, description="sector(s), comma-separated (beekeeping, زنبورداری, ...)"),
    status: str | None = Query(None, description="active, troubled, dissolved (or فعال، مشکل‌دار، منحل)"),
    province: str | None = Query(None, description="province(s): ISO 3166-2 (IR-07), Persian or English name"),
    county: str | None = Query(None, description="county: official code, OSM relation id, or Persian name"),
    deprived: str | None = Query(None, description="true: in a county on a published deprivation list"),
    border: str | None = Query(None, description="true: in a border county"),
    women_led: str | None = Query(None, description="true: women-led cooperatives"),
    registered_year: str | None = Query(None, description="Jalali registration year, or a range 1395..1400"),
    precision: str | None = Query(None, description="geocoding precision(s): exact, village, city, county, ..."),
) -> CooperativeFilter:
    """FastAPI dependency: the filters as given, checked against the vocabularies."""
    ds: Dataset = request.app.state.dataset
    flt = CooperativeFilter()
    flt.kind = _terms(kind, parse_kind, "kind")
    flt.sector = _terms(sector, parse_sector, "sector")
    flt.status = _terms(status, parse_status, "status")
    flt.province = _terms(province, lambda v: resolve_province(ds, v), "province")
    flt.county = _terms(county, lambda v: resolve_county(ds, v), "county", multi_values=True)
    flt.deprived = parse_bool(deprived, "deprived")
    flt.border = parse_bool(border, "border")
    flt.women_led = parse_bool(women_led, "women_led")
    if registered_year:
        flt.year_from, flt.year_to = _year_range(registered_year)
    flt.precision = _terms(precision, lambda v: v if v in PRECISIONS else None, "precision")
    return flt


def parse_bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    v = key(value, prefixes=False)
    if v in ("true", "1", "yes", "بله", "اری", "اره"):
        return True
    if v in ("false", "0", "no", "خیر", "نه"):
        return False
    raise ApiError(f"{name}={value!r} must be true or false")


def resolve_province(ds: Dataset, value: str) -> str | None:
    v = to_ascii_digits(norm(value)).upper()
    provinces = ds.boundaries.provinces
    if v in set(provinces["iso_3166_2"]):
        return v
    if v.isdigit() and f"IR-{int(v):02d}" in set(provinces["iso_3166_2"]):
        return f"IR-{int(v):02d}"
    k = key(value)
    for iso, fa, en in zip(provinces["iso_3166_2"], provinces["name_fa"], provinces["name_en"]):
        if k == key(fa) or latin_key(value) == latin_key(en):
            return iso
    r = ds.geocoder.geocode(province=value)
    return r.province if r.precision == "province" else None


def resolve_county(ds: Dataset, value: str) -> list[str] | None:
    """County identifiers (official code and OSM id) matching a code, an OSM id or a name."""
    v = to_ascii_digits(norm(value))
    c = ds.boundaries.counties
    if v.isdigit():
        hit = c[(c["official_county_code"] == v) | (c["osm_relation_id"].astype(str) == v)]
    else:
        k = key(value)
        hit = c[c["display_name_fa"].map(key) == k]
        if hit.empty:
            hit = c[c["name_en"].map(latin_key) == latin_key(value)]
    if hit.empty:
        return None
    return [str(x) for x in hit["osm_relation_id"]]


def _terms(value: str | None, parse, name: str, multi_values: bool = False) -> list[str] | None:
    if value is None or not value.strip():
        return None
    out: list[str] = []
    for part in norm(value).replace("،", ",").split(","):
        part = part.strip()
        if not part:
            continue
        parsed = parse(part)
        if not parsed:
            raise ApiError(f"{name}={part!r} is not a known {name}", title="Unknown filter value")
        out.extend(parsed if multi_values else [parsed])
    return out or None


def _year_range(value: str) -> tuple[int | None, int | None]:
    v = to_ascii_digits(norm(value)).replace(" ", "")
    try:
        if ".." in v:
            a, b = v.split("..", 1)
            lo, hi = (int(a) if a else None), (int(b) if b else None)
        else:
            lo = hi = int(v)
    except ValueError:
        raise ApiError(f"registered_year={value!r} must be a Jalali year (1400) or a range (1395..1400)") from None
    for y in (lo, hi):
        if y is not None and not 1300 <= y <= 1500:
            raise ApiError(f"registered_year={value!r}: Jalali years run 1300..1500")
    return lo, hi


def select(coll: Collection, flt: CooperativeFilter | None, bbox) -> np.ndarray:
    """Row numbers of a collection matching the filters and bbox, in stored order."""
    filtered = flt is not None and coll.name == "cooperatives" and not flt.is_empty()
    if not filtered and bbox is None:
        return np.arange(len(coll))
    m = np.ones(len(coll), bool)
    if flt is not None and coll.name == "cooperatives" and not flt.is_empty():
        m &= flt.mask(coll)
    if bbox is not None:
        m &= coll.in_bbox(bbox)
    return np.flatnonzero(m)

