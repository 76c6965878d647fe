"""OGC API - Tiles for the four collections: tile matrix sets, tilesets and vector tiles.

``/tileMatrixSets`` and ``/tileMatrixSets/WebMercatorQuad`` (morecantile's definition of the
OGC two-dimensional tile matrix set), ``/collections/{id}/tiles`` (the tilesets of a
collection), ``/collections/{id}/tiles/WebMercatorQuad`` (tileset metadata) and
``/collections/{id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`` (Mapbox Vector
Tile, or GeoJSON with ``f=geojson``). The tiles are the same as ``/tiles/{layer}/{z}/{x}/{y}``
(one tile engine, one cache); GDAL's ``OGCAPI:`` driver and QGIS read them from here.

Not here: making tiles (``coopgis/tiles.py``), the XYZ URLs and TileJSON (``api/tiles.py``).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

import morecantile
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from coopgis import tiles as engine_mod
from coopgis.api.errors import NotFound
from coopgis.api.links import base_url, link, negotiate
from coopgis.api.params import CheckedRoute, filter_dependency
from coopgis.api.tiles import CACHE_CONTROL, FILTER_PARAMS, parse_int, tile_response
from coopgis.dataset import ATTRIBUTION, COLLECTIONS
from coopgis.filters import CRS84, CooperativeFilter
from coopgis.media import GEOJSON, JSON, MVT, TEXT_HTML
from coopgis.settings import ServiceSettings

TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
WEB_MERCATOR = "http://www.opengis.net/def/crs/EPSG/0/3857"
TMS_JSON = "application/json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/tilesetmetadata",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilesetmetadata",
]
TILE_FORMATS = {"mvt": "mvt", "pbf": "mvt", "geojson": "geojson", "json": "geojson"}


@lru_cache(maxsize=1)
def web_mercator_quad() -> dict:
    """morecantile's WebMercatorQuad as the JSON of OGC 2D Tile Matrix Set 2.0."""
    return morecantile.tms.get(TMS_ID).model_dump(mode="json", exclude_none=True)


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["OGC API - Tiles"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)
    min_zoom, max_zoom = settings.min_zoom, settings.max_zoom
    collection_path = Path(description="cooperatives, provinces, counties or deprivation")
    tms_path = Path(description=f"tile matrix set: {TMS_ID}")

    def layer_of(request: Request, collection_id: str) -> str:
        if collection_id not in engine_mod.LAYERS or collection_id not in request.app.state.dataset.collections:
            raise NotFound(f"no collection {collection_id!r} with tiles; collections are: "
                           + ", ".join(engine_mod.LAYERS))
        return collection_id

    def check_tms(tms_id: str) -> None:
        if tms_id != TMS_ID:
            raise NotFound(f"no tile matrix set {tms_id!r}; this service tiles in {TMS_ID}")

    @router.get("/tileMatrixSets", summary="Tile matrix sets")
    def tile_matrix_sets(request: Request, f: str | None = Query(None, description="json")):
        negotiate(request, f, ("json",))
        base = base_url(request)
        return JSONResponse({
            "tileMatrixSets": [{"id": TMS_ID, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
                                "crs": WEB_MERCATOR,
                                "links": [link(f"{base}/tileMatrixSets/{TMS_ID}", "self", TMS_JSON,
                                               "WebMercatorQuad (OGC 2D TMS 2.0)")]}],
            "links": [link(f"{base}/tileMatrixSets", "self", JSON)],
        })

    @router.get("/tileMatrixSets/{tile_matrix_set_id}", summary="One tile matrix set")
    def tile_matrix_set(request: Request, tile_matrix_set_id: str = tms_path,
                        f: str | None = Query(None, description="json")):
        negotiate(request, f, ("json",))
        check_tms(tile_matrix_set_id)
        return JSONResponse(web_mercator_quad(), headers={"Cache-Control": CACHE_CONTROL})

    @router.get("/collections/{collection_id}/tiles", summary="Vector tilesets of a collection")
    def tilesets(request: Request, collection_id: str = collection_path,
                 f: str | None = Query(None, description="json")):
        negotiate(request, f, ("json",))
        layer = layer_of(request, collection_id)
        base = base_url(request)
        href = f"{base}/collections/{layer}/tiles"
        return JSONResponse({
            "tilesets": [{"title": f"{COLLECTIONS[layer]['title']} ({TMS_ID})", "dataType": "vector",
                          "crs": WEB_MERCATOR, "tileMatrixSetURI": TMS_URI,
                          "links": [link(f"{href}/{TMS_ID}", "self", JSON, "Tileset metadata"),
                                    link(f"{base}/tileMatrixSets/{TMS_ID}", TILING_SCHEME, TMS_JSON,
                                         "WebMercatorQuad")]}],
            "links": [link(href, "self", JSON), link(f"{base}/collections/{layer}", "collection", JSON)],
        })

    @router.get("/collections/{collection_id}/tiles/{tile_matrix_set_id}", summary="Tileset metadata")
    def tileset(request: Request, collection_id: str = collection_path, tile_matrix_set_id: str = tms_path,
                f: str | None = Query(None, description="json"), flt: CooperativeFilter = Depends(filters)):
        negotiate(request, f, ("json",))
        layer = layer_of(request, collection_id)
        check_tms(tile_matrix_set_id)
        base = base_url(request)
        href = f"{base}/collections/{layer}/tiles/{TMS_ID}"
        carried = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS and v != ""]
        query = ("&" + urlencode(carried)) if carried and layer == engine_mod.POINT_LAYER else ""
        template = href + "/{tileMatrix}/{tileRow}/{tileCol}"
        extent = request.app.state.dataset.collections[layer].extent
        geometry_dimension = 0 if layer == engine_mod.POINT_LAYER else 2
        description = COLLECTIONS[layer]["description"]
        if layer == engine_mod.POINT_LAYER:
            description += f" Clustered up to zoom {settings.cluster_max_zoom}."
        doc = {
            "title": f"{COLLECTIONS[layer]['title']} — {COLLECTIONS[layer]['title_fa']}",
            "description": description,
            "dataType": "vector", "crs": WEB_MERCATOR, "tileMatrixSetURI": TMS_URI,
            "attribution": ATTRIBUTION,
            "boundingBox": {"lowerLeft": extent[:2], "upperRight": extent[2:], "crs": CRS84},
            "tileMatrixSetLimits": [_limits(z, extent) for z in range(min_zoom, max_zoom + 1)],
            "layers": [{"id": layer, "title": COLLECTIONS[layer]["title"], "dataType": "vector",
                        "geometryDimension": geometry_dimension, "minTileMatrix": str(min_zoom),
                        "maxTileMatrix": str(max_zoom), "crs": WEB_MERCATOR}],
            "links": [
                link(href, "self", JSON, "This tileset"),
                link(f"{base}/tileMatrixSets/{TMS_ID}", TILING_SCHEME, TMS_JSON, "WebMercatorQuad"),
                link(f"{base}/collections/{layer}", "collection", JSON),
                {**link(template + "?f=mvt" + query, "item", MVT, "Mapbox vector tiles"), "templated": True},
                {**link(template + "?f=geojson" + query, "item", GEOJSON, "GeoJSON tiles"), "templated": True},
                link(f"{base}/tiles/{layer}/tilejson.json", "describedby", JSON, "TileJSON"),
                link(f"{base}/maps", "alternate", TEXT_HTML, "Maps"),
            ],
        }
        return JSONResponse(doc, headers={"Cache-Control": CACHE_CONTROL})

    @router.get("/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
                summary="One vector tile (MVT or GeoJSON)", response_class=Response,
                responses={200: {"content": {MVT: {}, GEOJSON: {}}},
                           304: {"description": "Not modified (If-None-Match matched the ETag)"}})
    async def tile(request: Request, collection_id: str = collection_path, tile_matrix_set_id: str = tms_path,
                   tile_matrix: str = Path(description=f"zoom level, {min_zoom}..{max_zoom}",
                                           json_schema_extra={"type": "integer", "minimum": min_zoom,
                                                              "maximum": max_zoom}),
                   tile_row: str = Path(description="row, 0 .. 2^zoom - 1", max_length=12,
                                        json_schema_extra={"type": "integer", "minimum": 0}),
                   tile_col: str = Path(description="column, 0 .. 2^zoom - 1", max_length=12,
                                        json_schema_extra={"type": "integer", "minimum": 0}),
                   f: str | None = Query(None, description="mvt (default) or geojson"),
                   flt: CooperativeFilter = Depends(filters)):
        layer = layer_of(request, collection_id)
        check_tms(tile_matrix_set_id)
        fmt = TILE_FORMATS.get((f or "").strip().lower()) if f else _accepted(request)
        if fmt is None:
            from coopgis.api.errors import ApiError

            raise ApiError(f"f={f!r} is not offered for tiles; use mvt or geojson", title="Unsupported format")
        z, row, col = parse_int(tile_matrix, "tileMatrix"), parse_int(tile_row, "tileRow"), parse_int(tile_col,
                                                                                                          "tileCol")
        if not min_zoom <= z <= max_zoom:
            raise NotFound(f"tileMatrix {z} is outside this service's zoom levels {min_zoom}..{max_zoom}",
                           title="Tile out of range")
        n = 2 ** z
        for name, value in (("tileRow", row), ("tileCol", col)):
            if not 0 <= value < n:
                raise NotFound(f"{name}={value} is outside the grid: at tileMatrix {z} it runs 0..{n - 1}",
                               title="Tile out of range")
        return await tile_response(request, layer, z, col, row, fmt, flt)

    return router


def _accepted(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return "geojson" if GEOJSON in accept and MVT not in accept else "mvt"


def _limits(z: int, extent: list[float]) -> dict:
    """The tiles of zoom ``z`` that hold data (the collection's extent)."""
    tms = morecantile.tms.get(TMS_ID)
    west, south, east, north = extent
    ul = tms.tile(west, north, z)
    lr = tms.tile(east, south, z)
    return {"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y, "minTileCol": ul.x, "maxTileCol": lr.x}
