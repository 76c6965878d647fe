"""Query parameters shared by items, downloads, tiles and stats: parsed once, errors explained.

Every value is read through the Persian normaliser, so Persian and Arabic digits
and letter forms work wherever a number or a name is expected.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from weakref import WeakKeyDictionary

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
        if self.county is not None:  # OSM relation ids: one set look-up per row
            m &= f["county_osm"].isin([int(c) for c in self.county]).to_numpy(dtype=bool, na_value=False)
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


def filter_dependency(max_values: int = 100, max_length: int = 2000):
    """The FastAPI dependency of the cooperative filters, with their limits in the OpenAPI document.

    A parameter longer than ``max_length`` characters is refused (400) before any of it is
    read, and one naming more than ``max_values`` values too, so a filter costs at most
    ``max_values`` look-ups of distinct values, whatever the request repeats.
    """
    many = f"; comma-separated, at most {max_values} values and {max_length} characters"

    def one(description: str):
        return Query(None, max_length=max_length, description=description + many)

    def cooperative_filter(
        request: Request,
        kind: str | None = one("cooperative kind(s): code or Persian name (production, تولیدی, ...)"),
        sector: str | None = one("sector(s) (beekeeping, زنبورداری, ...)"),
        status: str | None = one("active, troubled, dissolved (or فعال، مشکل‌دار، منحل)"),
        province: str | None = one("province(s): ISO 3166-2 (IR-07), Persian or English name"),
        county: str | None = one("county: official code, OSM relation id, or Persian name"),
        deprived: str | None = Query(None, max_length=20,
                                     description="true: in a county on a published deprivation list"),
        border: str | None = Query(None, max_length=20, description="true: in a border county"),
        women_led: str | None = Query(None, max_length=20, description="true: women-led cooperatives"),
        registered_year: str | None = Query(None, max_length=40,
                                            description="Jalali registration year, or a range 1395..1400"),
        precision: str | None = one("geocoding precision(s): exact, village, city, county, ..."),
    ) -> CooperativeFilter:
        """FastAPI dependency: the filters as given, checked against the vocabularies."""
        values = {"kind": kind, "sector": sector, "status": status, "province": province, "county": county,
                  "deprived": deprived, "border": border, "women_led": women_led,
                  "registered_year": registered_year, "precision": precision}
        return parse_filter(request.app.state.dataset, values, max_values, max_length)

    return cooperative_filter


def parse_filter(ds: Dataset, values: dict[str, str | None], max_values: int = 100,
                 max_length: int = 2000) -> CooperativeFilter:
    """The filters of plain parameter values; ApiError (400) for unknown values or values over the limits."""
    for name, value in values.items():
        if value is not None and len(value) > max_length:
            raise ApiError(f"{name} is {len(value)} characters long; a filter may be at most {max_length}",
                           title="Filter too long")
    names = _names(ds)
    flt = CooperativeFilter()
    flt.kind = _terms(values.get("kind"), parse_kind, "kind", max_values)
    flt.sector = _terms(values.get("sector"), parse_sector, "sector", max_values)
    flt.status = _terms(values.get("status"), parse_status, "status", max_values)
    flt.province = _terms(values.get("province"), names.province, "province", max_values)
    flt.county = _terms(values.get("county"), names.county, "county", max_values, multi_values=True)
    flt.deprived = parse_bool(values.get("deprived"), "deprived")
    flt.border = parse_bool(values.get("border"), "border")
    flt.women_led = parse_bool(values.get("women_led"), "women_led")
    if values.get("registered_year"):
        flt.year_from, flt.year_to = _year_range(values["registered_year"])
    flt.precision = _terms(values.get("precision"), lambda v: v if v in PRECISIONS else None, "precision",
                           max_values)
    return flt


cooperative_filter = filter_dependency()


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
    """The ISO 3166-2 code of a province named by code, number, Persian or English name."""
    return _names(ds).province(value)


def resolve_county(ds: Dataset, value: str) -> list[str] | None:
    """County identifiers (OSM relation ids) matching a code, an OSM id or a name."""
    return _names(ds).county(value)


class _NameIndex:
    """Province and county names of one dataset's boundaries as dictionaries, built once.

    A look-up is one dictionary access, not a scan of the 478 counties; values that need
    the geocoder (a misspelt province) are remembered, in a bounded table.
    """

    def __init__(self, ds: Dataset):
        self.ds = ds
        provinces = ds.boundaries.provinces
        self.iso = set(provinces["iso_3166_2"])
        self.province_keys: dict[str, str] = {}
        self.province_latin: dict[str, str] = {}
        for iso, fa, en in zip(provinces["iso_3166_2"], provinces["name_fa"], provinces["name_en"]):
            self.province_keys.setdefault(key(fa), iso)
            self.province_latin.setdefault(latin_key(en), iso)
        c = ds.boundaries.counties
        self.county_codes: dict[str, list[str]] = {}
        self.county_keys: dict[str, list[str]] = {}
        self.county_latin: dict[str, list[str]] = {}
        for osm, code, fa, en in zip(c["osm_relation_id"], c["official_county_code"], c["display_name_fa"],
                                     c["name_en"]):
            ids = str(osm)
            self.county_codes.setdefault(ids, []).append(ids)
            if isinstance(code, str) and code and code != ids:
                self.county_codes.setdefault(code, []).append(ids)
            self.county_keys.setdefault(key(fa), []).append(ids)
            self.county_latin.setdefault(latin_key(en), []).append(ids)
        self._guessed: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def province(self, value: str) -> str | None:
        v = to_ascii_digits(norm(value)).upper()
        if v in self.iso:
            return v
        if v.isdigit() and len(v) <= 3 and f"IR-{int(v):02d}" in self.iso:
            return f"IR-{int(v):02d}"
        found = self.province_keys.get(key(value)) or self.province_latin.get(latin_key(value))
        if found:
            return found
        with self._lock:
            if v in self._guessed:
                return self._guessed[v]
        r = self.ds.geocoder.geocode(province=value)
        found = r.province if r.precision == "province" else None
        with self._lock:
            if len(self._guessed) >= 4096:
                self._guessed.clear()
            self._guessed[v] = found
        return found

    def county(self, value: str) -> list[str] | None:
        v = to_ascii_digits(norm(value))
        if v.isdigit():
            return self.county_codes.get(v)
        return self.county_keys.get(key(value)) or self.county_latin.get(latin_key(value))


_NAME_INDEXES: WeakKeyDictionary = WeakKeyDictionary()
_NAME_LOCK = threading.Lock()


def _names(ds: Dataset) -> _NameIndex:
    """The name index of a dataset (made on first use, dropped with the dataset)."""
    with _NAME_LOCK:
        index = _NAME_INDEXES.get(ds)
        if index is None:
            index = _NAME_INDEXES[ds] = _NameIndex(ds)
        return index


def _terms(value: str | None, parse, name: str, max_values: int = 100,
           multi_values: bool = False) -> list[str] | None:
    """The distinct values of a comma-separated filter, each parsed once; 400 for unknown ones."""
    if value is None or not value.strip():
        return None
    parts = [p.strip() for p in norm(value).replace("،", ",").split(",")]
    distinct = list(dict.fromkeys(p for p in parts if p))
    if len(distinct) > max_values:
        raise ApiError(f"{name} names {len(distinct)} values; a filter may name at most {max_values}",
                       title="Too many filter values")
    out: list[str] = []
    for part in distinct:
        parsed = parse(part)
        if not parsed:
            raise ApiError(f"{name}={part!r} is not a known {name}", title="Unknown filter value")
        out.extend(parsed if multi_values else [parsed])
    return list(dict.fromkeys(out)) or None


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

