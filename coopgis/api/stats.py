"""``GET /stats``: the dashboard's figures by province, county, kind, sector, status or Jalali year, as JSON or CSV.

Province and county rows carry per-capita figures (per 10,000 inhabitants, census 1395) and the
census indicators; the JSON also gives the choropleth's class breaks of every area under the
thematic filters, so a map coloured by a filter draws its legend from the same numbers.
"""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from coopgis.api.errors import ApiError
from coopgis.api.limits import admit
from coopgis.api.params import CheckedRoute, filter_dependency
from coopgis.census import CENSUS_SOURCE, PER
from coopgis.figures import COUNTS, PER_CAPITA, class_breaks
from coopgis.filters import CooperativeFilter, parse_bbox
from coopgis.media import CSV, TEXT_CSV
from coopgis.stats import FIELDS, GROUPS, group_stats


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["Statistics"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)

    @router.get("/stats", summary="Cooperatives, members, jobs, women-led, troubled, deprived share, "
                                  "border-dwellers' quotas per group")
    async def stats(request: Request,
                    by: str = Query("province", max_length=20,
                                    description="province, county, kind, sector, status or year (Jalali "
                                                "registration year)"),
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
    ds = request.app.state.dataset
    coll = ds.collections["cooperatives"]
    box = parse_bbox(bbox)
    mask = None if flt.is_empty() else flt.mask(coll)
    if box is not None:
        mask = coll.in_bbox(box) if mask is None else mask & coll.in_bbox(box)
    thematic = flt.thematic()
    area = ds.figures.of(None if thematic.is_empty() else thematic.mask(coll))
    whole = box is None and not flt.names_a_place()
    table = group_stats(ds.stats_index, by, mask, area, whole_country=whole)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["key", "name", *FIELDS])
        for r in table:
            w.writerow([r["key"], r["name"], *("" if r[k] is None else r[k] for k in FIELDS)])
        return Response("\ufeff" + buf.getvalue(), media_type=CSV,
                        headers={"Content-Disposition": f'attachment; filename="stats-{by}.csv"'})
    matched = len(coll) if mask is None else int(mask.sum())
    body: dict = {"by": by, "matched": matched, "rows": table,
                  "census": {"source": CENSUS_SOURCE, "year": 1395, "per": PER}}
    if by in ("province", "county"):
        level = area.provinces if by == "province" else area.counties
        body["breaks"] = {m: class_breaks(level[m]) for m in (*COUNTS, *PER_CAPITA)}
    return JSONResponse(body)
