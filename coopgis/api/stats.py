"""``GET /stats``: the dashboard's figures by province, county, kind or sector, as JSON or CSV."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from coopgis.api.errors import ApiError
from coopgis.api.limits import admit
from coopgis.api.params import filter_dependency
from coopgis.filters import CooperativeFilter, parse_bbox, select
from coopgis.media import CSV, TEXT_CSV
from coopgis.stats import FIELDS, GROUPS, group_stats


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["Statistics"])
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)

    @router.get("/stats", summary="Cooperatives, members, jobs, women-led, troubled, deprived share, "
                                  "border-dwellers' quotas per group")
    async def stats(request: Request,
                    by: str = Query("province", max_length=20, description="province, county, kind or sector"),
                    bbox: str | None = Query(None, max_length=200, description="minx,miny,maxx,maxy (CRS84)"),
                    f: str | None = Query(None, max_length=20, description="json or csv"),
                    flt: CooperativeFilter = Depends(filters)):
        if by not in GROUPS:
            raise ApiError(f"by={by!r}: use one of {', '.join(GROUPS)}")
        fmt = (f or ("csv" if TEXT_CSV in request.headers.get("accept", "") else "json")).strip().lower()
        if fmt not in ("json", "csv"):
            raise ApiError(f"f={f!r}: use json or csv")
        await admit(request, "read", heavy=True)
        return await run_in_threadpool(_stats, request, by, bbox, fmt, flt)

    return router


def _stats(request: Request, by: str, bbox: str | None, fmt: str, flt: CooperativeFilter) -> Response:
    coll = request.app.state.dataset.collections["cooperatives"]
    rows = select(coll, flt, parse_bbox(bbox))
    table = group_stats(coll.frame.iloc[rows] if len(rows) < len(coll) else coll.frame, by)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["key", "name", *FIELDS])
        for r in table:
            w.writerow([r["key"], r["name"], *(r[k] for k in FIELDS)])
        return Response("\ufeff" + buf.getvalue(), media_type=CSV,
                        headers={"Content-Disposition": f'attachment; filename="stats-{by}.csv"'})
    return JSONResponse({"by": by, "matched": int(len(rows)), "rows": table})
