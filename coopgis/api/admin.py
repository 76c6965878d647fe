"""A cooperative's own record, review of location reports, the audit log and reloading.

- ``GET /cooperatives/{registration_no}``: one cooperative with the fields the
  caller's role may see (an administrator also sees personal data, here only),
  and an ``ETag`` of its location state.
- ``POST /location-reports/{id}/decision`` (administrator, ``If-Match`` required):
  accept or reject a report. Accepting moves the cooperative to the reported
  point with precision ``verified`` and recomputes its joins; a stale ``If-Match``
  (someone changed it meanwhile) is a 412, so no update is lost.
- ``GET /audit`` (administrator): every report and decision, oldest first.
- ``POST /admin/reload`` (administrator): serve the store again after an ingest.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from coopgis.api.errors import ApiError, NotFound, storage_error
from coopgis.api.links import base_url, link
from coopgis.api.params import CheckedRoute
from coopgis.api.security import caller, require
from coopgis.auth import Principal
from coopgis.corrections import location_etag
from coopgis.dataset import PERSONAL_COLUMNS, Collection, Dataset
from coopgis.location_reports import LocationReportLog, ReviewError
from coopgis.media import GEOJSON, JSON
from coopgis.text import norm, to_ascii_digits
from coopgis.values import registration_no_key

MAX_COMMENT = 2000


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(pattern="^(accepted|rejected)$", description="accepted or rejected")
    comment: str | None = Field(None, max_length=MAX_COMMENT)


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["Cooperative records and review"], route_class=CheckedRoute)

    @router.get("/cooperatives/{registration_no:path}", summary="One cooperative, with the fields your role may see")
    def record(request: Request, registration_no: str, who: Principal = Depends(caller)):
        coll, row = _find(request, registration_no)
        level = "staff" if who.can("gis_staff") else "public"
        feature = orjson.loads(coll.feature(row, level=level))
        if who.can("admin"):
            for col in PERSONAL_COLUMNS:
                value = coll.frame[col].iat[row] if col in coll.frame.columns else None
                feature["properties"][col] = value if isinstance(value, str) else None
        reg = quote(str(feature["id"]), safe="")
        feature["links"] = [
            link(f"{base_url(request)}/cooperatives/{reg}", "self", GEOJSON),
            link(f"{base_url(request)}/cooperatives/{reg}/location-reports", "related", JSON,
                 "location reports"),
        ]
        return Response(orjson.dumps(feature), media_type=GEOJSON,
                        headers={"ETag": _etag(coll, row, _log(request)), "Cache-Control": "no-store"})

    @router.post("/location-reports/{report_id}/decision", summary="Accept or reject a location report "
                 "(administrator; send If-Match with the cooperative's ETag)")
    def decide(request: Request, report_id: str, body: DecisionIn, who: Principal = Depends(require("admin"))):
        rid = to_ascii_digits(norm(report_id)).lower()
        if_match = (request.headers.get("if-match") or "").strip()
        if not if_match:
            raise ApiError("send If-Match with the ETag of GET /cooperatives/{registration_no}, so a change "
                           "made meanwhile is not overwritten", status=428, title="Precondition required")
        if if_match == "*" or if_match.startswith("W/"):
            raise ApiError("If-Match must be the cooperative's ETag from GET /cooperatives/{registration_no}, not "
                           f"{if_match!r}: a decision is made on the location you saw, so '*' is not accepted",
                           status=428, title="Precondition required")
        log = _log(request)

        def locate(registration_no: str) -> tuple[str, dict]:
            coll, row = _find(request, registration_no)
            return str(coll.frame[coll.id_column].iat[row]), coll.location(row)

        try:
            event = log.decide(rid, body.decision, who.name, body.comment, if_match, locate)
        except ReviewError as exc:
            raise ApiError(exc.detail, status=exc.status, title=exc.title,
                           headers={"ETag": exc.etag} if exc.etag else None) from None
        except OSError as exc:
            raise storage_error(exc, "the decision was not saved") from exc
        if body.decision == "accepted":
            request.app.state.apply_decisions()   # this worker serves it now; the others within a second
        coll, row = _find(request, event["registration_no"])
        return JSONResponse(event, headers={"ETag": _etag(coll, row, log)})

    @router.get("/audit", summary="The audit log: every location report and decision (administrator)")
    def audit(request: Request, registration_no: str | None = Query(None, max_length=100),
              limit: int = Query(min(1000, settings.audit_max_limit), ge=1, le=settings.audit_max_limit),
              who: Principal = Depends(require("admin"))):
        reg = registration_no_key(registration_no) if registration_no and registration_no.strip() else None
        events, matched, skipped = _log(request).events(reg, limit)
        return JSONResponse({"numberMatched": matched, "skipped_lines": skipped, "events": events})

    @router.post("/admin/reload", summary="Serve the store again, e.g. after `coopgis ingest` (administrator)")
    def reload(request: Request, who: Principal = Depends(require("admin"))):
        request.app.state.reload_dataset()
        ds: Dataset = request.app.state.dataset
        return JSONResponse({"cooperatives": len(ds.cooperatives), "report": {
            k: ds.ingest_report.get(k) for k in ("file", "created", "rows", "accepted", "quarantined")}})

    return router


def _find(request: Request, registration_no: str) -> tuple[Collection, int]:
    coll = request.app.state.dataset.collections["cooperatives"]
    row = coll.row_of(registration_no_key(registration_no))
    if row is None:
        raise NotFound(f"no cooperative with registration number {registration_no!r}")
    return coll, row


def _log(request: Request) -> LocationReportLog:
    return request.app.state.location_reports


def _etag(coll: Collection, row: int, log: LocationReportLog) -> str:
    reg = str(coll.frame[coll.id_column].iat[row])
    loc = coll.location(row)
    return location_etag(reg, loc["lon"], loc["lat"], loc["precision"], log.last_decision_id(reg) or "-")
