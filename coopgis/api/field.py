"""Field work: ``GET /nearest``, ``GET /search`` and location reports.

Field officers on phones with weak connections find the cooperatives around
them (``/nearest``: distance, bearing, compass word and a ``geo:`` link that
opens the phone's map app), look one up by registration number or name
(``/search``), and report a verified location for one
(``POST /cooperatives/{registration_no}/location-reports``), which is recorded
for review in the append-only log of :mod:`coopgis.location_reports`.

Every parameter goes through the Persian normaliser, so Persian and Arabic
digits and letter forms work. The indexes behind nearest and search are built
once per served collection (set as an attribute on it) on first use.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coopgis.api.errors import ApiError, NotFound, storage_error
from coopgis.api.links import base_url, link, self_url
from coopgis.api.params import CheckedRoute, Integer, count_query, filter_dependency
from coopgis.api.security import require
from coopgis.auth import Principal
from coopgis.dataset import Collection, Dataset, plain_value
from coopgis.distance import haversine_km
from coopgis.filters import CooperativeFilter, count, number
from coopgis.geocode import join_county
from coopgis.location_reports import STATUSES, LocationReportLog, new_report
from coopgis.media import GEOJSON, JSON
from coopgis.nearest import direction, initial_bearing, nearest_rows
from coopgis.search import search_rows
from coopgis.settings import ServiceSettings
from coopgis.standins import FieldGuide
from coopgis.text import norm, to_ascii_digits
from coopgis.values import registration_no_key

MAX_IDEMPOTENCY_KEY = 100
IDEMPOTENCY_KEY = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_IDEMPOTENCY_KEY}}}")


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["Field work"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)
    most_nearest, most_radius = settings.nearest_max_limit, settings.nearest_max_radius_km
    most_found, longest_q = settings.search_max_limit, settings.search_max_query_length
    most_reports = settings.reports_max_limit

    @router.get("/nearest", summary="The nearest cooperatives to a point, with distance and direction",
                response_class=Response,
                responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection"}})
    def nearest(request: Request,
                lon: str = Query(..., max_length=40, description="longitude (WGS 84); Persian digits allowed"),
                lat: str = Query(..., max_length=40, description="latitude (WGS 84); Persian digits allowed"),
                limit: Integer | None = count_query(10, most_nearest),
                radius_km: str | None = Query(None, max_length=40,
                                              description=f"search radius in km (default 50, at most {most_radius:g})"),
                flt: CooperativeFilter = Depends(filters)):
        ds = _ds(request)
        x, y = number(lon, "lon"), number(lat, "lat")
        check_point(ds, x, y)
        size = count(limit, "limit", 10, most_nearest)
        radius = 50.0 if radius_km is None or not radius_km.strip() else number(radius_km, "radius_km")
        if not 0 < radius <= most_radius:
            raise ApiError(f"radius_km={radius_km!r} must be more than 0 and at most {most_radius:g} km",
                           title="Radius out of range")
        coll = ds.collections["cooperatives"]
        mask = None if flt.is_empty() else flt.mask(coll)
        guide = ds.field_guide()
        hit = nearest_rows(coll.nearest_index(), x, y, radius, size, mask, stand_in=guide.stand_in)
        features = [_feature(coll, int(r), _nearest_props(coll, guide, int(r), d, b, (x, y)))
                    for r, d, b in zip(hit.rows, hit.distance_km, hit.bearing_deg, strict=False)]
        head = {"type": "FeatureCollection", "numberMatched": hit.matched, "numberReturned": len(features),
                "timeStamp": _now(),
                "query": {"lon": x, "lat": y, "radius_km": radius, "limit": size},
                "nearest_place": ds.geocoder.nearest_place(x, y),
                "county": _county_here(request, ds, x, y),
                "links": [link(self_url(request), "self", GEOJSON)]}
        return _collection(head, features)

    @router.get("/search", summary="Find cooperatives by registration number, name, village, city or county",
                response_class=Response,
                responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection"}})
    def search(request: Request,
               q: str | None = Query(None, max_length=4 * longest_q,
                                     description="registration number, part of a name, or a village, city "
                                                 f"or county name; 1..{longest_q} characters once normalised"),
               limit: Integer | None = count_query(20, most_found),
               lon: str | None = Query(None, max_length=40, description="the searcher's longitude (WGS 84), for "
                                                                           "distance and direction; with lat"),
               lat: str | None = Query(None, max_length=40, description="the searcher's latitude (WGS 84); with lon"),
               flt: CooperativeFilter = Depends(filters)):
        text = _search_text(q, longest_q)
        size = count(limit, "limit", 20, most_found)
        ds = _ds(request)
        here = _here(ds, lon, lat)
        coll = ds.collections["cooperatives"]
        mask = None if flt.is_empty() else flt.mask(coll)
        hits = search_rows(ds.search_index(), coll.row_of, text, size, mask)
        guide = ds.field_guide()
        features = [_feature(coll, r, {"match": m, "score": s, **_search_props(coll, guide, r, here)})
                    for r, m, s in hits]
        query = {"q": text, "limit": size} | ({"lon": here[0], "lat": here[1]} if here else {})
        head = {"type": "FeatureCollection", "numberReturned": len(features), "timeStamp": _now(),
                "query": query, "links": [link(self_url(request), "self", GEOJSON)]}
        return _collection(head, features)

    # ---- location reports -------------------------------------------------------------------
    @router.post("/cooperatives/{registration_no:path}/location-reports", status_code=201,
                 summary="Report a verified location of a cooperative, for review",
                 openapi_extra={"requestBody": {"required": True, "content": {JSON: {
                     "schema": LocationReportIn.model_json_schema()}}}})
    def create_report(request: Request,
                      registration_no: str = Path(description="registration number (Persian digits allowed)"),
                      reporter: str = Depends(reporter_identity),
                      body: LocationReportIn = Depends(report_body),
                      idempotency_key: str | None = Header(
                          None, alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY,
                          description="a key the client makes once per report (e.g. a UUID) and sends again with "
                                      "every retry: the report is recorded once, and a retry answers the "
                                      "recorded report (header Idempotent-Replayed: true)")):
        ds = _ds(request)
        coll = ds.collections["cooperatives"]
        reg = registration_no_key(registration_no)
        row = coll.row_of(reg)
        if row is None:
            raise NotFound(f"no cooperative with registration number {registration_no!r}")
        check_point(ds, body.lon, body.lat)
        key = _idempotency_key(idempotency_key)
        reg = str(coll.frame[coll.id_column].iat[row])
        log = _log(request)
        record = new_report(reg, reporter, coll.location(row), body.lon, body.lat, body.accuracy_m,
                            body.reason, body.note, idempotency_key=key)
        with log.exclusive():  # the limits and the keys hold across threads and worker processes
            sent = log.by_idempotency_key(reporter, key) if key else None
            if sent is not None:  # a retry: answer what was recorded, record nothing, charge nothing
                if sent.get("fingerprint") != record["fingerprint"]:
                    raise ApiError(f"Idempotency-Key {key!r} was used for another report (report {sent['id']}); "
                                   "make a new key for each report", status=409, title="Idempotency key reused")
                return JSONResponse(sent, status_code=201, headers={
                    "Location": f"{base_url(request)}/location-reports/{sent['id']}", "Idempotent-Replayed": "true"})
            check_report_limits(log, reporter, reg, request.app.state.settings)
            try:
                log.append(record)
            except OSError as exc:
                raise storage_error(exc, "the report was not saved") from exc
        return JSONResponse(record, status_code=201,
                            headers={"Location": f"{base_url(request)}/location-reports/{record['id']}"})

    @router.get("/location-reports", summary="Location reports, newest first")
    def list_reports(request: Request, who: Principal = Depends(require("field_officer")),
                     status: str | None = Query(None, max_length=40, description="pending, accepted or rejected"),
                     registration_no: str | None = Query(None, max_length=100,
                                                          description="only this cooperative's reports"),
                     limit: Integer | None = count_query(100, most_reports)):
        reg = registration_no_key(registration_no) if registration_no and registration_no.strip() else None
        return _report_list(request, _log(request), status, reg, count(limit, "limit", 100, most_reports))

    @router.get("/cooperatives/{registration_no:path}/location-reports",
                summary="Location reports of one cooperative, newest first")
    def cooperative_reports(request: Request, registration_no: str,
                            who: Principal = Depends(require("field_officer")),
                            status: str | None = Query(None, max_length=40,
                                                       description="pending, accepted or rejected"),
                            limit: Integer | None = count_query(100, most_reports)):
        coll = _ds(request).collections["cooperatives"]
        reg = registration_no_key(registration_no)
        if coll.row_of(reg) is None:
            raise NotFound(f"no cooperative with registration number {registration_no!r}")
        return _report_list(request, _log(request), status, reg, count(limit, "limit", 100, most_reports))

    @router.get("/location-reports/{report_id}", summary="One location report")
    def one_report(request: Request, report_id: str, who: Principal = Depends(require("field_officer"))):
        rid = to_ascii_digits(norm(report_id)).lower()
        found = _log(request).report(rid) if re.fullmatch(r"[0-9a-f]{32}", rid) else None
        if not found:
            raise NotFound(f"no location report {report_id!r}")
        return JSONResponse(found)

    return router


# ---- parameters ------------------------------------------------------------------------------

def _search_text(q: str | None, longest: int) -> str:
    """The normalised search query; 400 when it is missing or longer than ``longest`` characters."""
    if q is not None and len(q) > 4 * longest:  # do not even normalise a huge value
        raise ApiError(f"q is {len(q)} characters long; the limit is {longest}", title="Query too long")
    text = norm(q)
    if not text:
        raise ApiError("give q: a registration number, part of a name, or a village, city or county name",
                       title="Missing query")
    if len(text) > longest:
        raise ApiError(f"q is {len(text)} characters long; the limit is {longest}", title="Query too long")
    return text


def _idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header: 1 to 100 letters, digits and - _ . : (a UUID fits); 400 otherwise."""
    if value is None:
        return None
    key = value.strip()
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} letters, digits, '-', '_', '.' or ':' "
                       "(a UUID fits)", title="Invalid Idempotency-Key")
    return key


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


def _here(ds: Dataset, lon: str | None, lat: str | None) -> tuple[float, float] | None:
    """The searcher's point when both lon and lat are given (checked like /nearest), else None."""
    given = [v for v in (lon, lat) if v is not None and v.strip()]
    if not given:
        return None
    if len(given) == 1:
        raise ApiError("give both lon and lat (the searcher's location), or neither", title="Incomplete location")
    x, y = number(lon or "", "lon"), number(lat or "", "lat")
    check_point(ds, x, y)
    return x, y


def _honest(coll: Collection, guide: FieldGuide, row: int, here: tuple[float, float] | None) -> dict:
    """What every field list says of a cooperative's point: approximate or not, stand-in or not, the area a
    stand-in stands for, and where its directions lead (never to a stand-in point)."""
    lon, lat = coll.points
    name = coll.frame["name"].iat[row]
    precision = coll.frame["precision"].iat[row]
    uncertainty = coll.frame["uncertainty_m"].iat[row]
    out = guide.describe(row, precision if isinstance(precision, str) else None, float(lon[row]), float(lat[row]),
                         name if isinstance(name, str) else None, here)
    metres = plain_value(uncertainty)
    out["approximate"] = bool(out["stand_in"] or (isinstance(metres, (int, float)) and metres > 0))
    out["geo_uri"] = out["directions"]["geo_uri"] if out["directions"] else None
    return out


def _nearest_props(coll: Collection, guide: FieldGuide, row: int, distance_km: float, bearing_deg: float,
                   here: tuple[float, float]) -> dict:
    en, fa = direction(bearing_deg)
    return {"distance_km": round(float(distance_km), 2), "bearing_deg": round(float(bearing_deg), 1) % 360,
            "direction_fa": fa, "direction_en": en, **_honest(coll, guide, row, here)}


def _search_props(coll: Collection, guide: FieldGuide, row: int, here: tuple[float, float] | None) -> dict:
    out = _honest(coll, guide, row, here)
    lon, lat = coll.points
    x, y = float(lon[row]), float(lat[row])
    if here is not None and math.isfinite(x) and math.isfinite(y):
        bearing = initial_bearing(here[0], here[1], x, y)
        en, fa = direction(bearing)
        out = {"distance_km": round(float(haversine_km(here[0], here[1], x, y)), 2),
               "bearing_deg": round(bearing, 1) % 360, "direction_fa": fa, "direction_en": en, **out}
    return out


def _county_here(request: Request, ds: Dataset, lon: float, lat: float) -> dict | None:
    """The county the searcher stands in, with the address of its offline field pack."""
    osm = join_county(ds.boundaries, lon, lat)
    if osm is None:
        return None
    counties = ds.collections["counties"].frame
    row = counties.loc[counties["osm_relation_id"] == int(osm)]
    if row.empty:
        return None
    return {"osm_relation_id": int(osm), "name_fa": row["name_fa"].iat[0],
            "cooperatives": int(row["cooperatives"].iat[0]), "pack": f"{base_url(request)}/packs/{int(osm)}.zip"}


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
    """The JSON body of a location report: at most ``COOPGIS_MAX_REPORT_BODY_BYTES`` (16 KB), JSON, checked
    by :class:`LocationReportIn`."""
    most = request.app.state.settings.max_report_body_bytes
    too_large = ApiError(f"the request body is larger than {most // 1024} KB", status=413,
                         title="Request body too large")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > most:
        raise too_large
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.split(";")[0].lower():
        raise ApiError(f"send the report as application/json, not {ctype}", status=415,
                       title="Unsupported media type")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > most:
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


def _report_list(request: Request, log: LocationReportLog, status: str | None, registration_no: str | None,
                 size: int) -> JSONResponse:
    st = norm(status).lower() if status else None
    if st == "":
        st = None
    if st is not None and st not in STATUSES:
        raise ApiError(f"status={status!r}: use one of {', '.join(STATUSES)}")
    reports, skipped = log.query(status=st, registration_no=registration_no)
    page = reports[:size]
    return JSONResponse({"numberMatched": len(reports), "numberReturned": len(page), "skipped_lines": skipped,
                         "reports": page, "links": [link(self_url(request), "self", JSON)]})


def check_report_limits(log: LocationReportLog, reporter: str, registration_no: str, settings: ServiceSettings) -> None:
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


# ---- helpers ---------------------------------------------------------------------------------

def _ds(request: Request) -> Dataset:
    return request.app.state.dataset


def _log(request: Request) -> LocationReportLog:
    return request.app.state.location_reports


def _feature(coll: Collection, row: int, extra: dict) -> bytes:
    """The cooperative's public feature with ``extra`` properties appended."""
    return coll.feature_with(row, extra)


def _collection(head: dict, features: list[bytes]) -> Response:
    body = orjson.dumps(head)[:-1] + b',"features":[' + b",".join(features) + b"]}"
    return Response(body, media_type=GEOJSON)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
