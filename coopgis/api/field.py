"""Field work: ``GET /nearest``, ``GET /search`` and location reports.

Field officers on phones with weak connections find the cooperatives around
them (``/nearest``: distance, bearing, compass word and a ``geo:`` link that
opens the phone's map app), look one up by registration number or name
(``/search``), and report a verified location for one
(``POST /cooperatives/{registration_no}/location-reports``), which is recorded
for review in the append-only log of :mod:`coopgis.reports`.

Every parameter goes through the Persian normaliser, so Persian and Arabic
digits and letter forms work. The indexes behind nearest and search are built
once per served collection (set as an attribute on it) on first use.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rapidfuzz import fuzz, process

from coopgis.api.errors import ApiError, NotFound, storage_error
from coopgis.api.features import base_url, link, self_url
from coopgis.api.params import CooperativeFilter, filter_dependency
from coopgis.api.security import require
from coopgis.auth import Principal
from coopgis.dataset import Collection, Dataset
from coopgis.reports import STATUSES, ReportLog, new_report
from coopgis.settings import ServiceSettings
from coopgis.text import is_latin, key, latin_key, norm, to_ascii_digits, tokens

GEOJSON = "application/geo+json"
EARTH_RADIUS_KM = 6371.0088            # mean radius (IUGG)
NEAREST_MAX_LIMIT = 100
NEAREST_MAX_RADIUS_KM = 500.0
SEARCH_MAX_LIMIT = 100
SEARCH_MAX_QUERY = 100                 # characters, after normalisation
REPORTS_MAX_LIMIT = 1000
MAX_REPORT_BODY = 16 * 1024            # bytes
FUZZY_CUTOFF = 80
DIRECTIONS = (("N", "شمال"), ("NE", "شمال شرقی"), ("E", "شرق"), ("SE", "جنوب شرقی"),
              ("S", "جنوب"), ("SW", "جنوب غربی"), ("W", "غرب"), ("NW", "شمال غربی"))
# Score ranges keep the match kinds in order: registration_no > name > place > address > fuzzy.
SCORE = {"registration_no": 100.0, "name": 90.0, "place": 80.0, "address": 70.0, "fuzzy": 50.0}

_BUILD_LOCK = threading.RLock()
logger = logging.getLogger("coopgis")


@asynccontextmanager
async def _warm_up(app):
    """At startup, build the nearest and search indexes in the background (about 2 s for 100,000
    cooperatives), so the first field officer does not wait; a request before then builds or waits."""
    ds = getattr(app.state, "dataset", None) if hasattr(app, "state") else None
    if ds is not None:
        coll = ds.collections["cooperatives"]

        def warm():
            try:
                point_index(coll)
                search_index(coll, ds)
            except Exception:  # pragma: no cover - the request path builds again and reports
                logger.exception("warming the field-work indexes failed")

        threading.Thread(target=warm, name="coopgis-field-warm", daemon=True).start()
    yield


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["Field work"], lifespan=_warm_up)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)

    @router.get("/nearest", summary="The nearest cooperatives to a point, with distance and direction",
                response_class=Response,
                responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection"}})
    def nearest(request: Request,
                lon: str = Query(..., description="longitude (WGS 84); Persian digits allowed"),
                lat: str = Query(..., description="latitude (WGS 84); Persian digits allowed"),
                limit: str | None = Query(None, description=f"how many (default 10, at most {NEAREST_MAX_LIMIT}; "
                                                            "larger values are treated as the maximum)"),
                radius_km: str | None = Query(None, description="search radius in km (default 50, at most "
                                                                f"{NEAREST_MAX_RADIUS_KM:g})"),
                flt: CooperativeFilter = Depends(filters)):
        ds = _ds(request)
        x, y = parse_number(lon, "lon"), parse_number(lat, "lat")
        check_point(ds, x, y)
        size = parse_limit(limit, "limit", 10, NEAREST_MAX_LIMIT)
        radius = 50.0 if radius_km is None or not radius_km.strip() else parse_number(radius_km, "radius_km")
        if not 0 < radius <= NEAREST_MAX_RADIUS_KM:
            raise ApiError(f"radius_km={radius_km!r} must be more than 0 and at most {NEAREST_MAX_RADIUS_KM:g} km",
                           title="Radius out of range")
        coll = ds.collections["cooperatives"]
        mask = None if flt.is_empty() else flt.mask(coll)
        hit = nearest_rows(coll, x, y, radius, size, mask)
        features = [_feature(coll, int(r), _nearest_props(coll, int(r), d, b))
                    for r, d, b in zip(hit.rows, hit.distance_km, hit.bearing_deg)]
        head = {"type": "FeatureCollection", "numberMatched": hit.matched, "numberReturned": len(features),
                "timeStamp": _now(),
                "query": {"lon": x, "lat": y, "radius_km": radius, "limit": size},
                "nearest_place": ds.geocoder.nearest_place(x, y),
                "links": [link(self_url(request), "self", GEOJSON)]}
        return _collection(head, features)

    @router.get("/search", summary="Find cooperatives by registration number, name, village, city or county",
                response_class=Response,
                responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection"}})
    def search(request: Request,
               q: str | None = Query(None, description="registration number, part of a name, or a village, city "
                                                       f"or county name; 1..{SEARCH_MAX_QUERY} characters"),
               limit: str | None = Query(None, description=f"how many (default 20, at most {SEARCH_MAX_LIMIT})"),
               flt: CooperativeFilter = Depends(filters)):
        if q is not None and len(q) > 4 * SEARCH_MAX_QUERY:  # do not even normalise a huge value
            raise ApiError(f"q is {len(q)} characters long; the limit is {SEARCH_MAX_QUERY}", title="Query too long")
        text = norm(q)
        if not text:
            raise ApiError("give q: a registration number, part of a name, or a village, city or county name",
                           title="Missing query")
        if len(text) > SEARCH_MAX_QUERY:
            raise ApiError(f"q is {len(text)} characters long; the limit is {SEARCH_MAX_QUERY}",
                           title="Query too long")
        size = parse_limit(limit, "limit", 20, SEARCH_MAX_LIMIT)
        ds = _ds(request)
        coll = ds.collections["cooperatives"]
        mask = None if flt.is_empty() else flt.mask(coll)
        hits = search_rows(coll, text, size, mask, ds=ds)
        features = [_feature(coll, r, {"match": m, "score": s}) for r, m, s in hits]
        head = {"type": "FeatureCollection", "numberReturned": len(features), "timeStamp": _now(),
                "query": {"q": text, "limit": size},
                "links": [link(self_url(request), "self", GEOJSON)]}
        return _collection(head, features)

    # ---- location reports -------------------------------------------------------------------
    @router.post("/cooperatives/{registration_no:path}/location-reports", status_code=201,
                 summary="Report a verified location of a cooperative, for review",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": LocationReportIn.model_json_schema()}}}})
    def create_report(request: Request,
                      registration_no: str = Path(description="registration number (Persian digits allowed)"),
                      reporter: str = Depends(reporter_identity),
                      body: LocationReportIn = Depends(report_body)):
        ds = _ds(request)
        coll = ds.collections["cooperatives"]
        reg = registration_key(registration_no)
        row = coll.row_of(reg)
        if row is None:
            raise NotFound(f"no cooperative with registration number {registration_no!r}")
        check_point(ds, body.lon, body.lat)
        reg = str(coll.frame[coll.id_column].iat[row])
        log = _log(request)
        record = new_report(reg, reporter, current_location(coll, row), body.lon, body.lat, body.accuracy_m,
                            body.reason, body.note)
        with log.exclusive():  # the limits hold across threads and worker processes
            check_report_limits(log, reporter, reg, request.app.state.settings)
            try:
                log.append(record)
            except OSError as exc:
                raise storage_error(exc, "the report was not saved") from exc
        return JSONResponse(record, status_code=201,
                            headers={"Location": f"{base_url(request)}/location-reports/{record['id']}"})

    @router.get("/location-reports", summary="Location reports, newest first")
    def list_reports(request: Request, who: Principal = Depends(require("field_officer")),
                     status: str | None = Query(None, description="pending, accepted or rejected"),
                     registration_no: str | None = Query(None, description="only this cooperative's reports"),
                     limit: str | None = Query(None, description=f"how many (default 100, at most "
                                                                 f"{REPORTS_MAX_LIMIT})")):
        reg = registration_key(registration_no) if registration_no and registration_no.strip() else None
        return _report_list(request, _log(request), status, reg, limit)

    @router.get("/cooperatives/{registration_no:path}/location-reports",
                summary="Location reports of one cooperative, newest first")
    def cooperative_reports(request: Request, registration_no: str,
                            who: Principal = Depends(require("field_officer")),
                            status: str | None = Query(None, description="pending, accepted or rejected"),
                            limit: str | None = Query(None, description=f"how many (default 100, at most "
                                                                        f"{REPORTS_MAX_LIMIT})")):
        coll = _ds(request).collections["cooperatives"]
        reg = registration_key(registration_no)
        if coll.row_of(reg) is None:
            raise NotFound(f"no cooperative with registration number {registration_no!r}")
        return _report_list(request, _log(request), status, reg, limit)

    @router.get("/location-reports/{report_id}", summary="One location report")
    def one_report(request: Request, report_id: str, who: Principal = Depends(require("field_officer"))):
        rid = to_ascii_digits(norm(report_id)).lower()
        found = _log(request).report(rid) if re.fullmatch(r"[0-9a-f]{32}", rid) else None
        if not found:
            raise NotFound(f"no location report {report_id!r}")
        return JSONResponse(found)

    return router


# ---- parameters ------------------------------------------------------------------------------

def parse_number(value: str | float, name: str) -> float:
    """A finite number from a parameter; Persian/Arabic digits and the Persian decimal point allowed."""
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        try:
            v = float(to_ascii_digits(norm(value)).replace("٫", ".").replace(" ", ""))
        except ValueError:
            raise ApiError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise ApiError(f"{name}={value!r} is not a finite number")
    return v


def parse_limit(value: str | None, name: str, default: int, maximum: int) -> int:
    """A positive count (Persian digits allowed); larger than ``maximum`` is treated as ``maximum``."""
    if value is None or not value.strip():
        return default
    v = to_ascii_digits(norm(value)).replace(" ", "")
    if not v.isdigit() or int(v) < 1:
        raise ApiError(f"{name}={value!r} must be a whole number of at least 1")
    return min(int(v), maximum)


def registration_key(value: str) -> str:
    """A registration number as stored: normalised, ASCII digits, no spaces."""
    return to_ascii_digits(norm(value)).replace(" ", "")


def check_point(ds: Dataset, lon: float, lat: float) -> None:
    """400 unless lon/lat is a point in Iran; the message says what looks wrong."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ApiError(f"lon={lon:g}, lat={lat:g} is not a longitude/latitude pair: longitude runs -180..180 "
                       "and latitude -90..90", title="Invalid coordinates", issue="coord_out_of_range")
    issues = ds.geocoder.check_coordinates(lon, lat)
    if "coord_zero" in issues:
        raise ApiError(f"lon={lon:g}, lat={lat:g}: a zero longitude or latitude is not a place in Iran "
                       "(the phone may not have a location fix yet)", title="Invalid coordinates",
                       issue="coord_zero")
    if "coord_swapped" in issues:
        raise ApiError(f"lon={lon:g}, lat={lat:g} is outside Iran, but the coordinates look swapped: "
                       f"lon={lat:g}, lat={lon:g} is in Iran", title="Coordinates look swapped",
                       issue="coord_swapped")
    if "coord_outside_iran" in issues:
        raise ApiError(f"the point lon={lon:g}, lat={lat:g} is outside Iran; only Iran's cooperatives are served",
                       title="Point outside Iran", issue="coord_outside_iran")


# ---- nearest ---------------------------------------------------------------------------------

@dataclass
class PointIndex:
    """The located cooperatives sorted by latitude, so a radius becomes a slice before any trigonometry."""

    rows: np.ndarray        # row numbers in the collection
    lat: np.ndarray         # degrees, ascending
    lat_rad: np.ndarray
    lon_rad: np.ndarray
    cos_lat: np.ndarray


@dataclass
class Nearest:
    rows: np.ndarray
    distance_km: np.ndarray
    bearing_deg: np.ndarray
    matched: int            # cooperatives inside the radius (after filters)


def point_index(coll: Collection) -> PointIndex:
    idx = getattr(coll, "_field_points", None)
    if idx is None:
        lon, lat = coll.lon, coll.lat
        located = np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))
        order = located[np.argsort(lat[located], kind="stable")]
        la = lat[order]
        idx = PointIndex(order, la, np.radians(la), np.radians(lon[order]), np.cos(np.radians(la)))
        coll._field_points = idx
    return idx


def nearest_rows(coll: Collection, lon: float, lat: float, radius_km: float, limit: int,
                 mask: np.ndarray | None = None) -> Nearest:
    """The ``limit`` nearest located rows within ``radius_km`` (great circle), nearest first."""
    idx = point_index(coll)
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
    if k < matched:
        part = np.argpartition(d, k - 1)[:k]
        sel, d = sel[part], d[part]
    rows = idx.rows[sel]
    order = np.lexsort((rows, d))  # by distance, then row number: stable for equal distances
    sel, d, rows = sel[order], d[order], rows[order]
    phi2, dlam = idx.lat_rad[sel], idx.lon_rad[sel] - lam
    bearing = np.degrees(np.arctan2(np.sin(dlam) * idx.cos_lat[sel],
                                    math.cos(phi) * np.sin(phi2) - math.sin(phi) * idx.cos_lat[sel] * np.cos(dlam)))
    return Nearest(rows, d, np.mod(bearing, 360.0), matched)


def direction(bearing_deg: float) -> tuple[str, str]:
    """(English, Persian) compass word of 8 for a bearing in degrees."""
    return DIRECTIONS[int(((bearing_deg % 360) + 22.5) // 45) % 8]


def geo_uri(lon: float, lat: float, name: str | None) -> str:
    """RFC 5870 ``geo:`` URI with a labelled query, which Android and iOS map apps open."""
    pt = f"{lat:.6f},{lon:.6f}"
    label = f"({quote(name, safe='')})" if name else ""
    return f"geo:{pt}?q={pt}{label}"


def _nearest_props(coll: Collection, row: int, distance_km: float, bearing_deg: float) -> dict:
    en, fa = direction(bearing_deg)
    name = coll.frame["name"].iat[row]
    return {"distance_km": round(float(distance_km), 2), "bearing_deg": round(float(bearing_deg), 1) % 360,
            "direction_fa": fa, "direction_en": en,
            "geo_uri": geo_uri(float(coll.lon[row]), float(coll.lat[row]), name if isinstance(name, str) else None)}


# ---- search ----------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Distinct word keys of a text column and, per word, the rows it occurs in."""

    words: list[str]
    postings: list[np.ndarray]
    position: dict[str, int]

    @classmethod
    def build(cls, texts) -> Vocabulary:
        rows: dict[str, list[int]] = {}
        cache: dict[str, str] = {}
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                continue
            for tok in tokens(text):
                k = cache.get(tok)
                if k is None:
                    k = cache[tok] = key(tok, prefixes=False)
                if k:
                    lst = rows.setdefault(k, [])
                    if not lst or lst[-1] != i:
                        lst.append(i)
        words = list(rows)
        return cls(words, [np.asarray(rows[w], dtype=np.int64) for w in words],
                   {w: i for i, w in enumerate(words)})


@dataclass
class KeyColumn:
    """Matching keys of one column: joined into one string for substring search, and grouped by value."""

    keys: list[str]
    lengths: np.ndarray
    joined: str
    starts: np.ndarray          # offset of each row's key in ``joined`` (keys are separated by newlines)
    groups: dict[str, np.ndarray]

    @classmethod
    def build(cls, values, to_key) -> KeyColumn:
        cache: dict[str, str] = {}
        keys = []
        for v in values:
            if not isinstance(v, str):
                keys.append("")
                continue
            k = cache.get(v)
            if k is None:
                k = cache[v] = to_key(v)
            keys.append(k)
        lengths = np.fromiter((len(k) for k in keys), np.int64, len(keys))
        starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if k:
                groups.setdefault(k, []).append(i)
        return cls(keys, lengths, "\n".join(keys) + "\n", starts,
                   {k: np.asarray(v, np.int64) for k, v in groups.items()})

    def containing(self, needle: str, allowed: np.ndarray | None = None, need: int | None = None) -> np.ndarray:
        """Rows whose key contains ``needle``, in row order; with ``allowed``/``need``, the first ``need``
        allowed ones. Keys hold no newline, so a hit never spans two rows."""
        out: list[int] = []
        if not needle or "\n" in needle:
            return np.empty(0, np.int64)
        text, starts, n = self.joined, self.starts, len(self.starts)
        i = text.find(needle)
        while i >= 0:
            r = int(np.searchsorted(starts, i, "right")) - 1
            if allowed is None or allowed[r]:
                out.append(r)
                if need is not None and len(out) >= need:
                    break
            if r + 1 >= n:
                break
            i = text.find(needle, int(starts[r + 1]))  # one hit per row is enough
        return np.asarray(out, np.int64)


@dataclass
class SearchIndex:
    name: KeyColumn
    name_words: Vocabulary
    place: KeyColumn
    county: KeyColumn
    latin: dict[str, np.ndarray]      # latin_key of English place/county names -> rows
    place_keys: list[str]             # distinct place/county keys, for fuzzy matching
    latin_keys: list[str]
    addresses: list                   # the address column; its keys are made when first needed
    _address: KeyColumn | None = None

    @property
    def address(self) -> KeyColumn:
        if self._address is None:
            with _BUILD_LOCK:
                if self._address is None:
                    self._address = KeyColumn.build(self.addresses, lambda v: key(v, prefixes=False))
        return self._address


def search_index(coll: Collection, ds: Dataset | None = None) -> SearchIndex:
    idx = getattr(coll, "_field_search", None)
    if idx is not None:
        return idx
    with _BUILD_LOCK:
        idx = getattr(coll, "_field_search", None)
        if idx is None:
            idx = _build_search_index(coll, ds)
            coll._field_search = idx
    return idx


def _build_search_index(coll: Collection, ds: Dataset | None) -> SearchIndex:
    f = coll.frame
    names = f["name"].tolist()
    name = KeyColumn.build(names, lambda v: key(v, prefixes=False))
    place = KeyColumn.build(f["place"].tolist(), key)
    county = KeyColumn.build(f["county"].tolist(), key)
    latin: dict[str, list[np.ndarray]] = {}
    if ds is not None:
        b = ds.boundaries
        en_of_place = {}
        p = b.places
        for lvl, code, en in zip(p["level"], p["code"], p["name_en"]):
            if isinstance(en, str) and en:
                en_of_place.setdefault((lvl, str(code)), en)
        for (lvl, code), rows in f.groupby(["place_level", "place_code"], dropna=True).indices.items():
            en = en_of_place.get((lvl, str(code)))
            if en and latin_key(en):
                latin.setdefault(latin_key(en), []).append(np.asarray(rows, np.int64))
        en_of_county = dict(zip(b.counties["osm_relation_id"].astype("int64"), b.counties["name_en"]))
        for osm, rows in f.groupby("county_osm", dropna=True).indices.items():
            en = en_of_county.get(int(osm))
            if isinstance(en, str) and latin_key(en):
                latin.setdefault(latin_key(en), []).append(np.asarray(rows, np.int64))
    latin_rows = {k: np.unique(np.concatenate(v)) for k, v in latin.items()}
    return SearchIndex(name, Vocabulary.build(names), place, county, latin_rows,
                       sorted(set(place.groups) | set(county.groups)), sorted(latin_rows), f["address"].tolist())


def search_rows(coll: Collection, text: str, limit: int, mask: np.ndarray | None = None,
                ds: Dataset | None = None) -> list[tuple[int, str, float]]:
    """Up to ``limit`` (row, match, score), best first: registration number, name, place, address, fuzzy."""
    idx = search_index(coll, ds)
    n = len(coll)
    allowed = np.ones(n, bool) if mask is None else mask.copy()   # rows not yet taken and passing the filters
    out: list[tuple[int, str, float]] = []

    def take(rows: np.ndarray, match: str, scores: np.ndarray | float) -> None:
        """Add the best of ``rows`` (higher score first, then row order) until ``limit`` is reached."""
        rows = np.asarray(rows, np.int64)
        tenths = np.broadcast_to(np.round(np.asarray(scores, float) * 10).astype(np.int64), rows.shape)
        keep = allowed[rows]
        rows, tenths = rows[keep], tenths[keep]
        room = limit - len(out)
        if not len(rows) or room <= 0:
            return
        rank = -tenths * (n + 1) + rows          # one integer: score descending, then row ascending
        if len(rank) > room:
            part = np.argpartition(rank, room - 1)[:room]
            rows, tenths, rank = rows[part], tenths[part], rank[part]
        order = np.argsort(rank, kind="stable")
        for r, t in zip(rows[order], tenths[order]):
            out.append((int(r), match, float(t) / 10))
            allowed[r] = False

    def full() -> bool:
        return len(out) >= limit

    # 1. registration number; a number that is one is not looked for anywhere else
    reg = registration_key(text)
    row = coll.row_of(reg)
    if row is not None:
        take(np.array([row]), "registration_no", SCORE["registration_no"])
    numeric = reg.isdigit()
    if full() or (numeric and row is not None):
        return out
    latin = is_latin(text)
    qkey = key(text)
    words = [w for w in (key(t, prefixes=False) for t in tokens(text)) if w]
    # 2. name holds every word of the query (as part of a word, or across the spaces of the name)
    if words:
        hit = None
        for w in words:
            m = np.zeros(n, bool)
            ids = [i for i, v in enumerate(idx.name_words.words) if w in v]
            if ids:
                m[np.concatenate([idx.name_words.postings[i] for i in ids])] = True
            else:  # the name may write it with or without a space: "احمد آباد" / "احمدآباد"
                m[idx.name.containing(w)] = True
            hit = m if hit is None else (hit & m)
            if not hit.any():
                break
        hit = np.flatnonzero(hit & allowed) if hit is not None else np.empty(0, np.int64)
        if len(hit):
            covered = sum(len(w) for w in words)
            take(hit, "name", SCORE["name"] + 9.0 * np.minimum(1.0, covered / np.maximum(idx.name.lengths[hit], 1)))
    if full() or numeric:  # digits in addresses are house numbers; fuzzy digits match anything
        return out
    # 3. the village or city, or the county, is the query
    if latin:
        lk = latin_key(text)
        if lk in idx.latin:
            take(idx.latin[lk], "place", SCORE["place"] + 5)
    elif qkey:
        if qkey in idx.place.groups:
            take(idx.place.groups[qkey], "place", SCORE["place"] + 5)
        if not full() and qkey in idx.county.groups:
            take(idx.county.groups[qkey], "place", SCORE["place"])
    if full():
        return out
    # 4. the address holds the query (a village the geocoder did not resolve)
    if not latin and len(qkey) >= 3:
        take(idx.address.containing(qkey, allowed, limit - len(out)), "address", SCORE["address"])
    if full():
        return out
    # 5. fuzzy: every query word close to a word of the name, or the query close to a place name
    similarity = np.zeros(n)     # best rapidfuzz similarity per row, 0 = no fuzzy match
    if latin:
        for k, sim, _ in process.extract(latin_key(text), idx.latin_keys, scorer=fuzz.ratio,
                                         score_cutoff=FUZZY_CUTOFF, limit=None):
            rows = idx.latin[k]
            similarity[rows] = np.maximum(similarity[rows], sim)
    else:
        long_words = [w for w in words if len(w) >= 3]  # a fuzzy one- or two-letter word matches anything
        total: np.ndarray | None = None
        for w in long_words:
            best = np.zeros(n)
            for _, sim, i in process.extract(w, idx.name_words.words, scorer=fuzz.ratio,
                                             score_cutoff=FUZZY_CUTOFF, limit=None):
                rows = idx.name_words.postings[i]
                best[rows] = np.maximum(best[rows], sim)
            total = best if total is None else np.where((total > 0) & (best > 0), total + best, 0.0)
        if total is not None:
            similarity = total / len(long_words)
        if len(qkey) >= 3:
            for k, sim, _ in process.extract(qkey, idx.place_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF,
                                             limit=None):
                for groups in (idx.place.groups, idx.county.groups):
                    rows = groups.get(k)
                    if rows is not None:
                        similarity[rows] = np.maximum(similarity[rows], sim)
    rows = np.flatnonzero(similarity)
    if len(rows):
        take(rows, "fuzzy", _fuzzy_score(similarity[rows]))
    return out


def _fuzzy_score(similarity):
    """A rapidfuzz similarity (80..100) mapped into the fuzzy range 50..69."""
    return SCORE["fuzzy"] + (np.asarray(similarity, float) - FUZZY_CUTOFF) * 0.95


# ---- location reports ------------------------------------------------------------------------

class LocationReportIn(BaseModel):
    """A field officer's verified location of a cooperative."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="longitude (WGS 84)")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="latitude (WGS 84)")
    accuracy_m: float = Field(gt=0, le=10_000, allow_inf_nan=False,
                              description="accuracy of the position in metres, as the phone reports it")
    reason: str = Field(min_length=1, max_length=500, description="why the location is corrected")
    note: str | None = Field(None, max_length=2000, description="anything else the reviewer should know")
    reporter: str | None = Field(None, max_length=100,
                                 description="ignored: the reporter is the owner of the bearer token")

    @field_validator("lon", "lat", "accuracy_m", mode="before")
    @classmethod
    def _digits(cls, v):
        if isinstance(v, str):  # "۵۱٫۳۸" from a Persian keyboard
            return to_ascii_digits(norm(v)).replace("٫", ".").replace(" ", "")
        return v

    @field_validator("reason", "reporter", mode="before")
    @classmethod
    def _one_line(cls, v):
        return norm(v) if isinstance(v, str) else v

    @field_validator("note", mode="before")
    @classmethod
    def _lines(cls, v):
        if isinstance(v, str):  # keep the officer's line breaks, normalise each line
            v = "\n".join(norm(line) for line in v.replace("\r\n", "\n").split("\n")).strip("\n")
            return v or None
        return v


async def report_body(request: Request) -> LocationReportIn:
    """The JSON body of a location report: at most 16 KB, JSON, checked by :class:`LocationReportIn`."""
    too_large = ApiError(f"the request body is larger than {MAX_REPORT_BODY // 1024} KB", status=413,
                         title="Request body too large")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REPORT_BODY:
        raise too_large
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.split(";")[0].lower():
        raise ApiError(f"send the report as application/json, not {ctype}", status=415,
                       title="Unsupported media type")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_REPORT_BODY:
            raise too_large
    try:
        data = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError:
        raise ApiError("the request body is not valid JSON", title="Invalid body") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object", title="Invalid body")
    try:
        return LocationReportIn.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False,
                                                                   include_context=False)]) from None


def reporter_identity(who: Principal = Depends(require("field_officer"))) -> str:
    """Who reports: the field officer the bearer token belongs to (never a name typed in the body)."""
    return who.name


def current_location(coll: Collection, row: int) -> dict:
    lon, lat = float(coll.lon[row]), float(coll.lat[row])
    precision = coll.frame["precision"].iat[row]
    ok = math.isfinite(lon) and math.isfinite(lat)
    return {"lon": lon if ok else None, "lat": lat if ok else None,
            "precision": precision if isinstance(precision, str) else None}


def _report_list(request: Request, log: ReportLog, status: str | None, registration_no: str | None,
                 limit: str | None) -> JSONResponse:
    st = norm(status).lower() if status else None
    if st == "":
        st = None
    if st is not None and st not in STATUSES:
        raise ApiError(f"status={status!r}: use one of {', '.join(STATUSES)}")
    size = parse_limit(limit, "limit", 100, REPORTS_MAX_LIMIT)
    reports, skipped = log.query(status=st, registration_no=registration_no)
    page = reports[:size]
    return JSONResponse({"numberMatched": len(reports), "numberReturned": len(page), "skipped_lines": skipped,
                         "reports": page, "links": [link(self_url(request), "self", "application/json")]})


def check_report_limits(log: ReportLog, reporter: str, registration_no: str, settings: ServiceSettings) -> None:
    """429 when the reporter sent ``reports_per_hour`` reports in the last hour, or the cooperative already
    has ``pending_reports_per_cooperative`` reports waiting; counted from the log, so every worker agrees."""
    now = time.time()
    recent = log.submitted_since(reporter, now - 3600)
    if len(recent) >= settings.reports_per_hour:
        wait = max(1, math.ceil(recent[-settings.reports_per_hour] + 3600 - now))
        raise ApiError(f"{reporter} sent {len(recent)} location reports in the last hour; at most "
                       f"{settings.reports_per_hour} are accepted per hour. Retry in {wait} s", status=429,
                       title="Too many reports", headers={"Retry-After": str(wait)})
    waiting = log.pending(registration_no)
    if waiting >= settings.pending_reports_per_cooperative:
        raise ApiError(f"cooperative {registration_no} already has {waiting} location reports waiting for review "
                       f"(at most {settings.pending_reports_per_cooperative}); send more once an administrator has "
                       "decided on them", status=429, title="Too many pending reports")


def carry_over_indexes(old: Collection, new: Collection) -> None:
    """Let a collection whose cooperatives only moved keep the search index of the one it replaces.

    Names, places and addresses do not move, so the index stays right for them; a moved
    cooperative is still found under its former county's name until the next reload.
    """
    found = getattr(old, "_field_search", None)
    if found is not None and len(old) == len(new):
        new._field_search = found


# ---- helpers ---------------------------------------------------------------------------------

def _ds(request: Request) -> Dataset:
    return request.app.state.dataset


def _log(request: Request) -> ReportLog:
    return request.app.state.report_log


def _feature(coll: Collection, row: int, extra: dict) -> bytes:
    """The cooperative's public feature with ``extra`` properties appended."""
    ids, geoms, props = coll.parts()
    p = props[row]
    more = orjson.dumps(extra)[1:-1]
    body = p[:-1] + (b"," if len(p) > 2 else b"") + more + b"}"
    return b'{"type":"Feature","id":' + ids[row] + b',"geometry":' + geoms[row] + b',"properties":' + body + b"}"


def _collection(head: dict, features: list[bytes]) -> Response:
    body = orjson.dumps(head)[:-1] + b',"features":[' + b",".join(features) + b"]}"
    return Response(body, media_type=GEOJSON)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
