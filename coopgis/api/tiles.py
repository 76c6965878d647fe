"""Vector tiles (MVT and GeoJSON) in the WebMercatorQuad grid, and TileJSON 3.0.0 per layer.

``/tiles/{layer}/{z}/{x}/{y}.mvt`` and ``.geojson`` for cooperatives (clustered up
to ``cluster_max_zoom``, filtered like items), the boundary layers provinces,
counties and deprivation (simplified and clipped per tile; provinces and counties carry
the figures of the cooperatives under the filters' thematic part: kind, sector, status ...)
and ``places``, the place-name labels every map draws (:mod:`coopgis.placenames`).
The tile work is in :mod:`coopgis.tiles`; this router parses addresses, answers conditional
requests and sets caching headers.

:class:`WarmTiles` (pure ASGI, innermost of the app's layers) answers a tile that is already in the
tile cache, asked for without a query string, before FastAPI's routing and parameter parsing (which cost
several times the answer itself): the same status, headers and body the route gives, and the same route
template in /metrics. Everything else (a query, Persian digits, a tile not made yet, any error) goes on
to the route.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from coopgis import tiles as engine_mod
from coopgis.api.errors import ApiError, NotFound
from coopgis.api.limits import admit
from coopgis.api.links import base_url
from coopgis.api.params import CheckedRoute, filter_dependency
from coopgis.dataset import ATTRIBUTION, COLLECTIONS
from coopgis.filters import CooperativeFilter
from coopgis.media import GEOJSON, MVT, etag_matches
from coopgis.settings import ServiceSettings
from coopgis.text import to_ascii_digits
from coopgis.vocab import KINDS

CACHE_CONTROL = "public, max-age=300"
FORMATS = {"mvt": "mvt", "pbf": "mvt", "geojson": "geojson", "json": "geojson"}
FILTER_PARAMS = ("kind", "sector", "status", "province", "county", "deprived", "border", "women_led",
                 "registered_year", "precision")
_INT = re.compile(r"-?[0-9]+")

COOPERATIVE_FIELDS = {
    "cluster": "Boolean: true for a cluster of two or more cooperatives, false for one cooperative",
    "count": "Number: cooperatives in the feature (1 for a single cooperative)",
    "members": "Number: members (summed over a cluster)",
    "jobs": "Number: jobs (summed over a cluster)",
    "registration_no": "String: registration number (single cooperatives)",
    "name": "String: name (single cooperatives)",
    "kind": "String: kind code (single cooperatives)",
    "kind_fa": "String: kind in Persian (single cooperatives)",
    "sector": "String: sector code (single cooperatives)",
    "status": "String: active, troubled or dissolved (single cooperatives)",
    "precision": "String: geocoding precision (single cooperatives)",
    "uncertainty_m": "Number: how far the cooperative may be from the point, in metres (0: it is there; "
                     "single cooperatives)",
    "county": "String: county name (single cooperatives)",
    "province": "String: province ISO 3166-2 code (single cooperatives)",
    "cell": "String: the cluster's cell as a tile address z/x/y (clusters); /clusters/{z}/{x}/{y} lists its "
            "cooperatives",
}

PLACES = {"title": "Place names", "title_fa": "نام مکان‌ها",
          "description": "Persian labels of provinces, counties, cities and placed villages, each shown from the "
                         "zoom where it has room (decided once for the whole country, so labels never overlap)."}
PLACE_FIELDS = {
    "name": "String: the place's Persian name",
    "kind": "String: province, county, city, village, or village_unsure (a weak or outlier village point)",
    "min_zoom": "Number: the smallest zoom the label shows at",
    "max_zoom": "Number: the largest zoom the label shows at (99: every deeper zoom)",
    "rank": "Number: importance, 0 first (province > county > city by population > village)",
}
IRAN_EXTENT = [44.0, 25.0, 63.4, 39.8]


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["Vector tiles"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)
    min_zoom, max_zoom = settings.min_zoom, settings.max_zoom

    def check_layer(request: Request, layer: str) -> str:
        if layer not in engine_mod.LAYERS or (layer not in request.app.state.dataset.collections
                                              and layer != engine_mod.PLACES_LAYER):
            raise NotFound(f"no tile layer {layer!r}; layers are: {', '.join(engine_mod.LAYERS)}")
        return layer

    @router.get("/tiles", summary="Tile layers")
    def layers(request: Request):
        base = base_url(request)
        return JSONResponse({
            "layers": [{"id": name, "title": COLLECTIONS[name]["title"], "title_fa": COLLECTIONS[name]["title_fa"],
                        "tilejson": f"{base}/tiles/{name}/tilejson.json",
                        "tiles": [f"{base}/tiles/{name}/{{z}}/{{x}}/{{y}}.mvt"]}
                       for name in engine_mod.LAYERS if name in request.app.state.dataset.collections]
                      + [{"id": engine_mod.PLACES_LAYER, "title": PLACES["title"], "title_fa": PLACES["title_fa"],
                          "tilejson": f"{base}/tiles/{engine_mod.PLACES_LAYER}/tilejson.json",
                          "tiles": [f"{base}/tiles/{engine_mod.PLACES_LAYER}/{{z}}/{{x}}/{{y}}.mvt"]}],
            "attribution": ATTRIBUTION,
        })

    @router.get("/tiles/{layer}/tilejson.json", summary="TileJSON 3.0.0 of a tile layer")
    def tilejson(request: Request,
                 layer: str = Path(description="cooperatives, provinces, counties, deprivation or places"),
                 format: str | None = Query(None, description="tile format in the URL template: mvt "
                                                              "(default) or geojson"),
                 flt: CooperativeFilter = Depends(filters)):
        check_layer(request, layer)
        fmt = FORMATS.get((format or "mvt").strip().lower())
        if fmt is None:
            raise ApiError(f"format={format!r} is not offered; use mvt or geojson", title="Unsupported format")
        ext = "mvt" if fmt == "mvt" else "geojson"
        url = f"{base_url(request)}/tiles/{layer}/{{z}}/{{x}}/{{y}}.{ext}"
        if layer == engine_mod.POINT_LAYER or layer in engine_mod.FIGURE_LAYERS:
            carried = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS and v != ""]
            if carried:
                url += "?" + urlencode(carried)
        places = layer == engine_mod.PLACES_LAYER
        extent = IRAN_EXTENT if places else request.app.state.dataset.collections[layer].extent
        center_zoom = max(min_zoom, min(5, max_zoom))
        maxzoom = max_zoom
        fields = vector_fields(request, layer, fmt)
        doc = {
            "tilejson": "3.0.0",
            "name": f"coopgis {layer}",
            "description": (PLACES if places else COLLECTIONS[layer])["description"],
            "version": "1.0.0",
            "attribution": ATTRIBUTION,
            "scheme": "xyz",
            "tiles": [url],
            "minzoom": min_zoom,
            "maxzoom": maxzoom,
            "bounds": extent,
            "center": [round((extent[0] + extent[2]) / 2, 4), round((extent[1] + extent[3]) / 2, 4), center_zoom],
            "vector_layers": [{"id": layer, "description": (PLACES if places else COLLECTIONS[layer])["title"],
                               "fields": fields,
                               "minzoom": min_zoom, "maxzoom": maxzoom}],
        }
        if layer == engine_mod.POINT_LAYER:
            doc["cluster_max_zoom"] = settings.cluster_max_zoom
        return JSONResponse(doc, headers={"Cache-Control": CACHE_CONTROL})

    @router.get("/tiles/{layer}/{z}/{x}/{y}", summary="One vector tile (MVT or GeoJSON)",
                response_class=Response,
                responses={200: {"content": {MVT: {},
                                             GEOJSON: {}}},
                           304: {"description": "Not modified (If-None-Match matched the ETag)"}})
    async def tile(request: Request,
             layer: str = Path(description="cooperatives, provinces, counties, deprivation or places"),
             z: str = Path(description=f"zoom level, {min_zoom}..{max_zoom} (Persian digits allowed)",
                           json_schema_extra={"type": "integer", "minimum": min_zoom, "maximum": max_zoom}),
             x: str = Path(description="column, 0 .. 2^z - 1 (Persian digits allowed)",
                           json_schema_extra={"type": "integer", "minimum": 0, "maximum": 2 ** max_zoom - 1}),
             y: str = Path(max_length=20, description="row, 0 .. 2^z - 1, with the format: {y}.mvt or {y}.geojson",
                           json_schema_extra={"pattern": r"^[0-9۰-۹]+\.(mvt|geojson)$"}),
             flt: CooperativeFilter = Depends(filters)):
        check_layer(request, layer)
        row, dot, ext = y.rpartition(".")
        if not dot:
            raise NotFound(f"tile {y!r} has no format; ask for {y}.mvt or {y}.geojson", title="Unknown format")
        fmt = FORMATS.get(ext.lower())
        if fmt is None:
            raise NotFound(f"tiles are offered as .mvt (Mapbox Vector Tile) or .geojson, not .{ext}",
                           title="Unknown format")
        zi, xi, yi = parse_int(z, "z"), parse_int(x, "x"), parse_int(row, "y")
        if not min_zoom <= zi <= max_zoom:
            raise NotFound(f"zoom {z} is outside this service's zoom levels {min_zoom}..{max_zoom}",
                           title="Tile out of range")
        n = 2 ** zi
        for name, value in (("x", xi), ("y", yi)):
            if not 0 <= value < n:
                raise NotFound(f"{name}={value} is outside the grid: at zoom {zi} {name} runs 0..{n - 1}",
                               title="Tile out of range")
        return await tile_response(request, layer, zi, xi, yi, fmt, flt)

    return router


async def tile_response(request: Request, layer: str, z: int, x: int, y: int, fmt: str,
                        flt: CooperativeFilter | None) -> Response:
    """One tile of a layer (checked address), from the tile cache or made now; 304 for a matching ETag."""
    eng: engine_mod.TileEngine = request.app.state.tile_engine
    filtered = layer == engine_mod.POINT_LAYER or layer in engine_mod.FIGURE_LAYERS
    args = (layer, z, x, y, fmt, flt if filtered else None)
    t = eng.cached(*args)
    if t is None:  # the cold path: charged to the client, and one of the heavy requests at a time
        await admit(request, "tiles", heavy=True)
        t = await run_in_threadpool(eng.tile, *args)
    headers = {"ETag": t.etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(request.headers.get("if-none-match"), t.etag):
        return Response(status_code=304, headers=headers)
    return Response(t.body, media_type=t.media_type, headers=headers)


def parse_int(value: str, name: str) -> int:
    """A tile index from the path; Persian digits are fine, anything else is a 400."""
    v = to_ascii_digits(value.strip())
    if not _INT.fullmatch(v):
        raise ApiError(f"{name}={value!r} must be a whole number", title="Invalid tile address")
    if len(v) > 12:
        raise NotFound(f"{name}={value} is outside the tile grid", title="Tile out of range")
    return int(v)


def vector_fields(request: Request, layer: str, fmt: str) -> dict[str, str]:
    """TileJSON ``fields`` of a layer: name -> type and meaning."""
    if layer == engine_mod.PLACES_LAYER:
        return dict(PLACE_FIELDS)
    if layer == engine_mod.POINT_LAYER:
        fields = dict(COOPERATIVE_FIELDS)
        if fmt == "geojson":
            fields["kinds"] = "Object: {kind code: cooperatives} of a cluster"
        else:
            for t in KINDS:
                fields[f"kind_{t.code}"] = f"Number: cooperatives of kind {t.code} in a cluster (absent when 0)"
        return fields
    coll = request.app.state.dataset.collections[layer]
    out = {}
    for col in coll.properties:
        s = coll.frame[col]
        kind = s.dtype.kind
        if kind == "O":     # object columns: judge by the values (e.g. deprived: True/False/None)
            values = s.dropna()
            if len(values) and all(isinstance(v, (bool, np.bool_)) for v in values):
                kind = "b"
            elif len(values) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                     for v in values):
                kind = "f"
        out[col] = "Boolean" if kind == "b" else "Number" if kind in "iuf" else "String"
    return out


TILE_ROUTE = "/tiles/{layer}/{z}/{x}/{y}"
_WARM = re.compile(r"^/tiles/([a-z]+)/([0-9]{1,2})/([0-9]{1,9})/([0-9]{1,9})\.([a-z]+)$")


class WarmTiles:
    """A cached tile without a query string answered before routing (pure ASGI); all else goes on.

    ``route`` is the tile route of :func:`build_router` (``TILE_ROUTE``): a request answered here is
    counted under it in /metrics, as the router would have it.
    """

    def __init__(self, app, route: BaseRoute):
        self.app = app
        self.route = route

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["query_string"] or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        m = _WARM.match(_path(scope))
        if m is None:
            return await self.app(scope, receive, send)
        layer, z, x, y, ext = m.groups()
        fmt = FORMATS.get(ext)
        eng: engine_mod.TileEngine | None = getattr(scope["app"].state, "tile_engine", None)
        t = eng.cached(layer, int(z), int(x), int(y), fmt) if eng is not None and fmt is not None else None
        if t is None:
            return await self.app(scope, receive, send)
        scope["route"] = self.route
        headers = {"ETag": t.etag, "Cache-Control": CACHE_CONTROL}
        match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        if match is not None and etag_matches(match.decode("latin-1"), t.etag):
            return await Response(status_code=304, headers=headers)(scope, receive, send)
        return await Response(t.body, media_type=t.media_type, headers=headers)(scope, receive, send)


def tile_route(router) -> BaseRoute:
    """The route of ``/tiles/{layer}/{z}/{x}/{y}`` in a router made by :func:`build_router`."""
    return next(r for r in router.routes if getattr(r, "path", None) == TILE_ROUTE)


def _path(scope) -> str:
    path = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
