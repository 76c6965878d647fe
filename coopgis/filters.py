"""What a request selects, as core types: cooperative filters, output CRS and bounding boxes.

The API, the command line (``coopgis render``) and standalone files give the same plain
values (``kind=production,تولیدی``, ``deprived=بله``, ``registered_year=1395..1400``,
``crs=EPSG:32639``, ``bbox=...``); this module reads them into :class:`CooperativeFilter`,
:class:`OutputCrs` and CRS84 boxes, and selects rows with them. Every value goes through
the Persian normaliser, so Persian and Arabic digits and letter forms work. Bad values
raise :class:`coopgis.errors.InputError` with a message for the person who typed them.

Not here: HTTP (``api/params.py`` declares the query parameters and calls these).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer

from coopgis.dataset import Collection, Dataset
from coopgis.errors import InputError
from coopgis.text import norm, to_ascii_digits
from coopgis.values import parse_bool, parse_decimal, parse_whole
from coopgis.vocab import parse_kind, parse_precision, parse_sector, parse_status

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
SUPPORTED_CRS = [CRS84] + [f"http://www.opengis.net/def/crs/EPSG/0/{c}"
                           for c in (4326, 3857, 32638, 32639, 32640, 32641)]
# The filters of the cooperatives, in the order the API, the command line and the maps name them.
FILTER_NAMES = ("kind", "sector", "status", "province", "county", "deprived", "border", "women_led",
                "registered_year", "precision")
VOCABULARY_FILTERS: dict[str, Callable[[object], str | None]] = {
    "kind": parse_kind, "sector": parse_sector, "status": parse_status, "precision": parse_precision}
BOOL_FILTERS = ("deprived", "border", "women_led")
TEXT_FILTERS = ("province", "county", "registered_year")     # names and years, resolved against the data
JALALI_YEARS = (1300, 1500)
# The filters' names in Persian, for the messages people read.
FILTER_FA = {"kind": "نوع تعاونی", "sector": "رشته فعالیت", "status": "وضعیت", "province": "استان",
             "county": "شهرستان", "deprived": "در فهرست محرومیت", "border": "مرزی", "women_led": "زن‌سرپرست",
             "registered_year": "سال ثبت", "precision": "دقت مکان"}


@dataclass(frozen=True)
class OutputCrs:
    """A CRS features are written in: its URI, EPSG code (None for CRS84) and axis order."""

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
    if code is None or uri not in SUPPORTED_CRS:
        raise InputError(f"{param}={value!r} is not supported; use one of: {', '.join(SUPPORTED_CRS)}",
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
            raise InputError("bbox-crs was given without bbox")
        return None
    parts = list(to_ascii_digits(norm(value)).replace("٫", ".").split(","))
    if len(parts) == 6:  # 3D bbox: ignore heights
        parts = [parts[0], parts[1], parts[3], parts[4]]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"bbox={value!r} must be four numbers: minx,miny,maxx,maxy") from None
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise InputError(f"bbox={value!r} must be four finite numbers: minx,miny,maxx,maxy")
    crs = parse_crs(bbox_crs, "bbox-crs")
    if crs.lat_first:  # EPSG:4326 bbox is lat,lon order
        nums = [nums[1], nums[0], nums[3], nums[2]]
    minx, miny, maxx, maxy = nums
    if minx > maxx or miny > maxy:
        raise InputError(f"bbox={value!r}: the minimum must not exceed the maximum (minx,miny,maxx,maxy)")
    if crs.epsg is None or crs.epsg == 4326:
        if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
            raise InputError(f"bbox={value!r} is outside longitude -180..180 / latitude -90..90")
        return (minx, miny, maxx, maxy)
    t = transformer(crs.epsg, inverse=True)
    xs = np.array([minx, maxx, minx, maxx])
    ys = np.array([miny, miny, maxy, maxy])
    lon, lat = t.transform(xs, ys)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputError(f"bbox={value!r} is outside the valid area of {crs.uri}")
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
        return all(getattr(self, f.name) is None for f in fields(self))

    def thematic(self) -> CooperativeFilter:
        """This filter without its places (province, county): what colours every area of a choropleth."""
        return replace(self, province=None, county=None)

    def names_a_place(self) -> bool:
        return self.province is not None or self.county is not None

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


def parse_filter(ds: Dataset, values: dict[str, str | None], max_values: int = 100,
                 max_length: int = 2000) -> CooperativeFilter:
    """The filters of plain values; InputError (400) for unknown values or values over the limits."""
    for name, value in values.items():
        if value is not None and len(value) > max_length:
            raise InputError(f"{name} is {len(value)} characters long; a filter may be at most {max_length}",
                             title="Filter too long")
    flt = CooperativeFilter()
    flt.kind = _terms(values.get("kind"), parse_kind, "kind", max_values)
    flt.sector = _terms(values.get("sector"), parse_sector, "sector", max_values)
    flt.status = _terms(values.get("status"), parse_status, "status", max_values)
    # the name index (made on first use, with the geocoder) only when a place is named
    flt.province = _terms(values.get("province"), lambda v: ds.names.province(v), "province", max_values)
    flt.county = _terms(values.get("county"), lambda v: ds.names.county(v), "county", max_values, multi_values=True)
    flt.deprived = flag(values.get("deprived"), "deprived")
    flt.border = flag(values.get("border"), "border")
    flt.women_led = flag(values.get("women_led"), "women_led")
    year = values.get("registered_year")
    if year:
        flt.year_from, flt.year_to = _year_range(year)
    flt.precision = _terms(values.get("precision"), parse_precision, "precision", max_values)
    return flt


def select(coll: Collection, flt: CooperativeFilter | None, bbox) -> np.ndarray:
    """Row numbers of a collection matching the filters and bbox, in stored order."""
    filtered = flt is not None and coll.name == "cooperatives" and not flt.is_empty()
    if not filtered and bbox is None:
        return np.arange(len(coll))
    if flt is None or not filtered:          # the bbox alone
        return coll.rows_in_bbox(bbox)
    m = flt.mask(coll)
    if bbox is not None:
        m &= coll.in_bbox(bbox)
    return np.flatnonzero(m)


# ---- single values, with the name of the parameter in the message ---------------------------

def flag(value: str | None, name: str) -> bool | None:
    """A yes/no parameter (true/false, بله/خیر, 1/0 ...); None when absent."""
    if value is None or value == "":
        return None
    try:
        return parse_bool(value)
    except ValueError:
        raise InputError(f"{name}={value!r} must be true or false",
                         detail_fa=f"{FILTER_FA.get(name, name)} باید «بله» یا «خیر» باشد، نه «{value}»") from None


def number(value: str | float, name: str) -> float:
    """A finite number; Persian/Arabic digits and the Persian decimal point allowed."""
    try:
        return parse_decimal(value)
    except ValueError as exc:
        raise InputError(f"{name}={value!r} {exc}") from None


def count(value: str | int | None, name: str, default: int, maximum: int) -> int:
    """A positive count (Persian digits allowed); larger than ``maximum`` is treated as ``maximum``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        n = value if isinstance(value, int) and value >= 1 else parse_whole(str(value))
    except ValueError as exc:
        raise InputError(f"{name}={value!r} {exc}") from None
    return min(n, maximum)


def _terms(value: str | None, parse: Callable[[str], object], name: str, max_values: int = 100,
           multi_values: bool = False) -> list[str] | None:
    """The distinct values of a comma-separated filter, each parsed once; 400 for unknown ones."""
    if value is None or not value.strip():
        return None
    parts = [p.strip() for p in norm(value).replace("،", ",").split(",")]
    distinct = list(dict.fromkeys(p for p in parts if p))
    if len(distinct) > max_values:
        raise InputError(f"{name} names {len(distinct)} values; a filter may name at most {max_values}",
                         title="Too many filter values")
    out: list[str] = []
    for part in distinct:
        parsed = parse(part)
        if not parsed:
            raise InputError(f"{name}={part!r} is not a known {name}", title="Unknown filter value",
                             detail_fa=f"«{part}» یک {FILTER_FA.get(name, name)} شناخته‌شده نیست")
        if multi_values:
            out.extend(parsed)  # type: ignore[arg-type]  # a list of identifiers
        else:
            out.append(str(parsed))
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
        raise InputError(f"registered_year={value!r} must be a Jalali year (1400) or a range (1395..1400)",
                         detail_fa=f"سال ثبت باید یک سال خورشیدی (۱۴۰۰) یا بازه‌ای (۱۳۹۵..۱۴۰۰) باشد، نه «{value}»"
                         ) from None
    for y in (lo, hi):
        if y is not None and not JALALI_YEARS[0] <= y <= JALALI_YEARS[1]:
            raise InputError(f"registered_year={value!r}: Jalali years run {JALALI_YEARS[0]}..{JALALI_YEARS[1]}")
    return lo, hi
