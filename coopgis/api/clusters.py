"""``/clusters/{z}/{x}/{y}``: the cooperatives of one cluster, page by page.

A cluster of the cooperatives' tiles at zoom z is the cell ``z+3/x/y`` (its ``cell``
property); this lists exactly the (filtered) cooperatives of that cell, in the order the
cluster summed them, so ``numberMatched`` equals the cluster's ``count``. The work is
:meth:`coopgis.tiles.TileEngine.cell_rows`; this router parses the address and pages.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from coopgis.api.errors import NotFound
from coopgis.api.limits import admit
from coopgis.api.links import base_url, link
from coopgis.api.params import CheckedRoute, Integer, filter_dependency
from coopgis.filters import CooperativeFilter, count
from coopgis.media import GEOJSON
from coopgis.tiles import CLUSTER_LEVELS

DEFAULT_PAGE = 20


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["Vector tiles"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)
    most = settings.cluster_page_max
    deepest = settings.cluster_max_zoom + CLUSTER_LEVELS

    @router.get("/clusters/{z}/{x}/{y}", summary="The cooperatives of one cluster (its cell z/x/y), paged",
                response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
    async def cluster(request: Request,
                      z: Integer = Path(ge=CLUSTER_LEVELS, le=deepest,
                                        description="zoom of the cell: the cluster's zoom + 3"),
                      x: Integer = Path(ge=0, description="column of the cell"),
                      y: Integer = Path(ge=0, description="row of the cell"),
                      limit: str | None = Query(None, max_length=12,
                                                description=f"page size (default {DEFAULT_PAGE}, at most {most}; "
                                                            "larger values are treated as the maximum)",
                                                json_schema_extra={"minimum": 1, "maximum": most}),
                      offset: Integer = Query(0, ge=0, le=settings.max_offset, description="cooperatives to skip"),
                      flt: CooperativeFilter = Depends(filters)):
        n = 2 ** z
        if x >= n or y >= n:
            raise NotFound(f"cell {z}/{x}/{y} is outside the grid: at zoom {z} x and y run 0..{n - 1}",
                           title="Cell out of range", detail_fa=f"خانه {z}/{x}/{y} بیرون از شبکه کاشی‌هاست")
        size = count(limit, "limit", DEFAULT_PAGE, most)
        await admit(request, "read", heavy=False)
        rows = request.app.state.tile_engine.cell_rows(z, x, y, None if flt.is_empty() else flt)
        coll = request.app.state.dataset.collections["cooperatives"]
        page = rows[offset:offset + size]
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
        here = f"{base_url(request)}/clusters/{z}/{x}/{y}"
        links = [link(here + "?" + urlencode(params + [("limit", size), ("offset", offset)]), "self", GEOJSON)]
        if offset + size < len(rows):
            links.append(link(here + "?" + urlencode(params + [("limit", size), ("offset", offset + size)]),
                              "next", GEOJSON, "next page"))
        if offset > 0:
            links.append(link(here + "?" + urlencode(params + [("limit", size), ("offset", max(0, offset - size))]),
                              "prev", GEOJSON, "previous page"))
        head = orjson.dumps({"type": "FeatureCollection", "numberMatched": int(len(rows)),
                             "numberReturned": int(len(page)), "cell": f"{z}/{x}/{y}", "links": links})
        body = head[:-1] + b',"features":[' + b",".join(coll.feature(int(i)) for i in page) + b"]}"
        return Response(body, media_type=GEOJSON)

    return router
