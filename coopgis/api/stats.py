"""``GET /stats``: the dashboard's figures by province, county, kind or sector, as JSON or CSV."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from coopgis.api.errors import ApiError
from coopgis.api.params import CooperativeFilter, cooperative_filter, parse_bbox, select
from coopgis.stats import FIELDS, GROUPS, group_stats


def build_router() -> APIRouter:
    router = APIRouter(tags=["Statistics"])

    @router.get("/stats", summary="Cooperatives, members, jobs, women-led, troubled, deprived share, "
                                  "border-dwellers' quotas per group")
    def stats(request: Request,
              by: str = Query("province", description="province, county, kind or sector"),
              bbox: str | None = Query(None, description="minx,miny,maxx,maxy (CRS84)"),
              f: str | None = Query(None, description="json or csv"),
              flt: CooperativeFilter = Depends(cooperative_filter)):
        if by not in GROUPS:
            raise ApiError(f"by={by!r}: use one of {', '.join(GROUPS)}")
        fmt = (f or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")).lower()
        if fmt not in ("json", "csv"):
            raise ApiError(f"f={f!r}: use json or csv")
        coll = request.app.state.dataset.collections["cooperatives"]
        rows = select(coll, flt, parse_bbox(bbox))
        table = group_stats(coll.frame.iloc[rows] if len(rows) < len(coll) else coll.frame, by)
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["key", "name", *FIELDS])
            for r in table:
                w.writerow([r["key"], r["name"], *(r[k] for k in FIELDS)])
            return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="stats-{by}.csv"'})
        return JSONResponse({"by": by, "matched": int(len(rows)), "rows": table})

    return router



