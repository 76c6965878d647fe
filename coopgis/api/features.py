"""OGC API - Features (Part 1 Core, GeoJSON, HTML, OpenAPI 3.0; Part 2 CRS by reference).

Landing page, conformance, collections, items (with bbox, bbox-crs, crs, limit,
offset and property filters) and single features; items also download as CSV,
GeoPackage and KML. Formats are chosen by ``f=`` or the Accept header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from coopgis import budget, formats, queryables
from coopgis.api import ogc_tiles
from coopgis.api.errors import ApiError, NotFound
from coopgis.api.html import render
from coopgis.api.limits import admit
from coopgis.api.links import base_url, link, negotiate, self_url
from coopgis.api.methods import DOWNLOAD_FLAG
from coopgis.api.pages import front_door, item_context, items_context
from coopgis.api.params import CheckedRoute, filter_dependency
from coopgis.api.ranges import Answer, respond, wants_range
from coopgis.api.security import caller
from coopgis.auth import PUBLIC, Principal
from coopgis.dataset import ATTRIBUTION, COLLECTIONS, Collection, Dataset
from coopgis.filters import CRS84, SUPPORTED_CRS, CooperativeFilter, OutputCrs, parse_bbox, parse_crs, select
from coopgis.media import GEOJSON, GPKG, JSON, KML, MEDIA, OPENAPI, TEXT_CSV, TEXT_HTML
from coopgis.query import (
    Interval,
    parse_datetime,
    parse_properties,
    parse_skip_geometry,
    parse_sortby,
    sort_rows,
    temporal_extent,
)
from coopgis.text import to_persian_digits

if TYPE_CHECKING:   # pygeofilter and lark (9 MB in each worker) load with the first CQL2 filter
    from coopgis.cql2 import Cql2Filter

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    # Part 3 (Filtering) and CQL2: only the classes checked by tests/test_cql2.py
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    # sortby, as OGC API - Records defines it
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/sorting",
]
F_DESCRIPTION = "output format: json, geojson, html; items also csv, gpkg, kml"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
SCHEMA_JSON = "application/schema+json"
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["OGC API - Features"], route_class=CheckedRoute)
    filters = filter_dependency(settings.max_filter_values, settings.max_filter_length)
    default_limit, max_limit = settings.default_limit, settings.max_limit

    @router.get("/", summary="Landing page")
    def landing(request: Request, f: str | None = Query(None, description=F_DESCRIPTION)):
        fmt = negotiate(request, f, ("json", "html"))
        base = base_url(request)
        body = {
            "title": "coopgis — نقشه مکان‌مند تعاونی‌های کشور",
            "description": "Iran's cooperatives: OGC API - Features, vector tiles, geocoding and statistics. "
                           + ATTRIBUTION,
            "links": [
                link(f"{base}/?f=json", "self", JSON, "This document"),
                link(f"{base}/?f=html", "alternate", TEXT_HTML, "This document as HTML"),
                link(f"{base}/api", "service-desc", OPENAPI,
                     "The API definition (OpenAPI 3.0)"),
                link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
                link(f"{base}/collections", "data", JSON, "Collections"),
                link(f"{base}/tileMatrixSets", "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", JSON,
                     "Tile matrix sets"),
                link(f"{base}/maps", "alternate", TEXT_HTML, "Maps"),
            ],
        }
        if fmt == "html":   # the Persian front door (api/pages.py); clients keep the JSON landing
            return render(request, "landing.html", doc=body, dataset=ds(request), **front_door(request))
        return JSONResponse(body)

    conformance_doc = {"conformsTo": CONFORMANCE + ogc_tiles.CONFORMANCE}
    conformance_json = JSONResponse(conformance_doc).body   # the same bytes every time: made once

    @router.get("/conformance", summary="Conformance classes")
    async def conformance(request: Request, f: str | None = Query(None, description=F_DESCRIPTION)):
        # async: the JSON answer is a constant (no worker thread for it); the HTML page is rendered in one
        fmt = negotiate(request, f, ("json", "html"))
        if fmt == "html":
            return await run_in_threadpool(render, request, "conformance.html", doc=conformance_doc)
        return Response(conformance_json, media_type=JSON)

    @router.get("/collections", summary="Collections")
    def collections(request: Request, f: str | None = Query(None, description=F_DESCRIPTION)):
        fmt = negotiate(request, f, ("json", "html"))
        base = base_url(request)
        body = {
            "links": [link(f"{base}/collections?f=json", "self", JSON),
                      link(f"{base}/collections?f=html", "alternate", TEXT_HTML)],
            "collections": [collection_doc(request, name) for name in COLLECTIONS],
            "crs": SUPPORTED_CRS,
        }
        if fmt == "html":
            return render(request, "collections.html", doc=body)
        return JSONResponse(body)

    @router.get("/collections/{collection_id}", summary="One collection")
    def collection(request: Request, collection_id: str = Path(description="cooperatives, provinces, "
                                                                             "counties or deprivation"),
                   f: str | None = Query(None, description=F_DESCRIPTION)):
        fmt = negotiate(request, f, ("json", "html"))
        doc = collection_doc(request, get_collection(request, collection_id).name)
        if fmt == "html":
            return render(request, "collection.html", doc=doc)
        return JSONResponse(doc)

    @router.get("/collections/{collection_id}/queryables", summary="Queryable properties (JSON Schema)",
                response_class=Response)
    def queryables_doc(request: Request,
                       collection_id: str = Path(description="cooperatives, provinces, counties or deprivation"),
                       f: str | None = Query(None, description="json (JSON Schema)")):
        coll = get_collection(request, collection_id)
        negotiate(request, f, ("json",))
        href = f"{base_url(request)}/collections/{coll.name}/queryables"
        meta = COLLECTIONS[coll.name]
        doc = queryables.schema(coll, meta["geometry"], href, f"{meta['title']} — {meta['title_fa']}")
        return Response(_json(doc), media_type=SCHEMA_JSON)

    @router.get("/collections/{collection_id}/items", summary="Features of a collection, filtered and paged",
                response_class=Response)
    async def items(request: Request,
                    collection_id: str = Path(description="cooperatives, provinces, counties or deprivation"),
                    bbox: str | None = Query(None, max_length=200,
                                             description="minx,miny,maxx,maxy in bbox-crs (default CRS84)"),
                    bbox_crs: str | None = Query(None, alias="bbox-crs", max_length=200, description="CRS of bbox"),
                    crs: str | None = Query(None, max_length=200,
                                            description="output CRS: " + ", ".join(SUPPORTED_CRS)),
                    limit: int | None = Query(None, ge=1, description=f"page size (default {default_limit}, "
                                                                       f"maximum {max_limit}, {settings.max_html_limit}"
                                                                       " as HTML; larger values are treated as "
                                                                       "the maximum)",
                                              json_schema_extra={"maximum": max_limit, "default": default_limit}),
                    offset: int = Query(0, ge=0, le=settings.max_offset, description="features to skip"),
                    f: str | None = Query(None, description=F_DESCRIPTION),
                    datetime_: str | None = Query(None, alias="datetime", max_length=100,
                                                  description="registration date (registered_on) of cooperatives: "
                                                              "a date, a date-time or an interval "
                                                              "(2015-01-01/2020-12-31, ../2020-01-01, 2015-01-01/..)"),
                    filter_: str | None = Query(None, alias="filter", max_length=settings.max_cql2_length,
                                                description="a CQL2 filter over the queryables (see "
                                                            "/collections/{id}/queryables), e.g. kind = 'production' "
                                                            "AND members > 10 AND S_INTERSECTS(geometry, "
                                                            f"BBOX(51,35,52,36)); at most {settings.max_cql2_nodes} "
                                                            "terms"),
                    filter_lang: str | None = Query(None, alias="filter-lang", max_length=20,
                                                    description="cql2-text (default) or cql2-json"),
                    filter_crs: str | None = Query(None, alias="filter-crs", max_length=200,
                                                   description="CRS of the geometries in filter (default CRS84)"),
                    sortby: str | None = Query(None, max_length=1000,
                                               description="properties to sort by, comma-separated; -name descending"),
                    properties: str | None = Query(None, max_length=2000,
                                                   description="the properties to write, comma-separated"),
                    skip_geometry: str | None = Query(None, alias="skipGeometry", max_length=10,
                                                      description="true: features without geometry"),
                    flt: CooperativeFilter = Depends(filters),
                    who: Principal = Depends(caller)):
        return await items_answer(request, collection_id, bbox, bbox_crs, crs, limit, offset, f, datetime_, filter_,
                                  filter_lang, filter_crs, sortby, properties, skip_geometry, flt, who)

    async def items_simple(request: Request, params: dict[str, str]) -> Response | None:
        """items with at most limit, offset and f (plain values), without credentials: the most common request
        (a client paging through a collection) answered without FastAPI reading the 24 parameters the
        operation declares; anything unusual goes on to the operation itself."""
        limit, offset, f = params.get("limit"), params.get("offset", "0"), params.get("f")
        if (limit is not None and not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 10 ** 9)) \
                or not (offset.isascii() and offset.isdigit() and int(offset) <= settings.max_offset) \
                or (f is not None and f not in ("json", "geojson")) or request.scope.get(DOWNLOAD_FLAG) \
                or wants_range(request):
            return None
        return await items_answer(request, request.path_params["collection_id"], None, None, None,
                                  None if limit is None else int(limit), int(offset), f, None, None, None, None,
                                  None, None, None, CooperativeFilter(), PUBLIC)

    items_route = next(r for r in router.routes if getattr(r, "path", None) == "/collections/{collection_id}/items")
    assert isinstance(items_route, CheckedRoute)
    items_route.simple = items_simple
    items_route.simple_params = frozenset({"limit", "offset", "f"})

    async def items_answer(request: Request, collection_id: str, bbox, bbox_crs, crs, limit, offset, f, datetime_,
                           filter_, filter_lang, filter_crs, sortby, properties, skip_geometry,
                           flt: CooperativeFilter, who: Principal) -> Response:
        coll = get_collection(request, collection_id)
        fmt = negotiate(request, f, ("geojson", "json", "html", "csv", "gpkg", "kml"))
        size = page_size(settings, fmt, limit)
        level = "staff" if who.can("gis_staff") else "public"
        q = ItemsQuery(
            bbox=parse_bbox(bbox, bbox_crs), crs=parse_crs(crs), flt=_cooperative_filter(coll, flt),
            when=parse_datetime(datetime_, coll),
            cql2=_cql2(request, coll, filter_, filter_lang, filter_crs),
            sortby=parse_sortby(sortby, coll),
            columns=parse_properties(properties, coll, coll.columns(level)),
            skip_geometry=parse_skip_geometry(skip_geometry))
        answers = request.app.state.answers
        whole = bool(request.scope.get(DOWNLOAD_FLAG))   # items.geojson: a file, not a page
        key = (coll.name, fmt, level, whole, tuple(sorted(request.query_params.multi_items())))
        group, heavy = items_cost(fmt, size, q.narrowed(), settings.free_page_size)
        if whole and fmt == "geojson":
            group, heavy = "download", True
        if fmt != "html" and (fmt in ITEM_DOWNLOADS or wants_range(request)):
            cached = answers.get(ds(request), key)
            if cached is not None:
                # The pieces of one /vsicurl/ read (Range, HEAD) cost nothing; a whole file again costs its
                # rate, but no turn at the heavy gate: it is made already.
                if group is not None and not wants_range(request):
                    await admit(request, group, heavy=False)
                return respond(request, cached)
        if group is not None:  # after the format, size and filters are known, before any work
            await admit(request, group, heavy)
        if group is None and q.bbox is None and fmt in ("geojson", "json") and coll.parts_made(level):
            # a free page of ready feature bytes (no mask, no range test): less work than a worker-thread hop
            out = _items(request, coll, fmt, size, limit, offset, q, level)
        else:
            out = await run_in_threadpool(_items, request, coll, fmt, size, limit, offset, q, level)
        if isinstance(out, Answer):
            if fmt in ITEM_DOWNLOADS or whole or wants_range(request):
                # kept for the reads that follow (a client reading a file in ranges asks its size first);
                # a page read once is not kept: 37 MB of pages per process after a mixed load otherwise
                answers.put(ds(request), key, out)
            return respond(request, out)
        return out

    @router.get("/collections/{collection_id}/items/{feature_id:path}", summary="One feature",
                response_class=Response)
    def item(request: Request, collection_id: str, feature_id: str,
             crs: str | None = Query(None, description="output CRS"),
             f: str | None = Query(None, description="json, geojson or html"),
             who: Principal = Depends(caller)):
        coll = get_collection(request, collection_id)
        level = "staff" if who.can("gis_staff") else "public"
        fmt = negotiate(request, f, ("geojson", "json", "html"))
        out_crs = parse_crs(crs)
        row = coll.row_of(feature_id)
        if row is None:
            raise NotFound(f"no feature {feature_id!r} in collection {collection_id!r}",
                           detail_fa=f"در مجموعه {COLLECTIONS[coll.name]['title_fa']} عارضه‌ای با شناسه "
                                     f"«{feature_id}» نیست")
        base = base_url(request)
        here = f"{base}/collections/{coll.name}/items/{quote(str(feature_id), safe='')}"
        if fmt == "html":
            return render(request, "item.html", coll=coll, row=row, here=here, **item_context(request, coll, row))
        rows = np.array([row])
        geom = formats.geometries_in(coll, rows, out_crs)
        feature = coll.feature(row, geom[0] if geom else None, level)
        links = [link(here + "?f=json", "self", GEOJSON),
                 link(here + "?f=html", "alternate", TEXT_HTML),
                 link(f"{base}/collections/{coll.name}", "collection", JSON)]
        body = feature[:-1] + b',"links":' + _json(links) + b"}"
        return Response(body, media_type=MEDIA["geojson"], headers=crs_headers(out_crs))

    return router


ITEM_DOWNLOADS = ("csv", "gpkg", "kml")
BIG_PAGE = 1000          # a GeoJSON page larger than this is a download


def page_size(settings, fmt: str, limit: int | None) -> int:
    """Items on a page of ``fmt``: the limit asked for (or the default), at most the maximum."""
    most = min(settings.max_html_limit, settings.max_limit) if fmt == "html" else settings.max_limit
    return min(limit or settings.default_limit, most)


def items_cost(fmt: str, size: int, filtered: bool, free: int = 100) -> tuple[str | None, bool]:
    """(rate-limit group or None, heavy?) of an items request.

    A GeoJSON page of at most ``free`` features (``COOPGIS_FREE_PAGE_SIZE``) without property
    filters costs about as much as one feature and is free; filtered pages (a mask over every
    row), bigger pages, HTML pages and downloads are charged and take their turn at the heavy gate.
    """
    if fmt in ITEM_DOWNLOADS or (fmt != "html" and size > BIG_PAGE):
        return "download", True
    if fmt == "html":
        return ("download" if size > free else "read"), True
    if size > free or filtered:
        return "read", True
    return None, False


@dataclass(frozen=True)
class ItemsQuery:
    """An items request's selection and output, parsed: bbox, filters, datetime, CQL2, order, properties."""

    bbox: tuple[float, float, float, float] | None = None
    crs: OutputCrs = OutputCrs(CRS84, None, False)
    flt: CooperativeFilter | None = None
    when: Interval | None = None
    cql2: Cql2Filter | None = None
    sortby: list[tuple[str, bool]] | None = None
    columns: tuple[str, ...] | None = None
    skip_geometry: bool = False

    def narrowed(self) -> bool:
        """True when the request filters or sorts (a mask or an order over every row)."""
        return bool((self.flt is not None and not self.flt.is_empty()) or self.when or self.cql2 or self.sortby)

    def rows(self, coll: Collection) -> np.ndarray:
        """The selected rows, in the asked order."""
        rows = select(coll, self.flt, self.bbox)
        if self.when is not None or self.cql2 is not None:
            m = np.zeros(len(coll), bool)
            m[rows] = True
            if self.when is not None:
                m &= self.when.mask(coll)
            budget.check()
            if self.cql2 is not None:
                m &= self.cql2.mask(coll)
            rows = np.flatnonzero(m)
        budget.check()
        return sort_rows(coll, rows, self.sortby)


def _cooperative_filter(coll: Collection, flt: CooperativeFilter) -> CooperativeFilter | None:
    if coll.name == "cooperatives":
        return flt
    if not flt.is_empty():
        raise ApiError(f"kind, sector, status, province, county, deprived, border, women_led, registered_year and "
                       f"precision filter cooperatives; {coll.name} are filtered with filter= (CQL2) or bbox",
                       title="Filter not offered")
    return None


def _cql2(request: Request, coll: Collection, text: str | None, lang: str | None,
          crs: str | None) -> Cql2Filter | None:
    settings = request.app.state.settings
    if text is None:
        if lang is not None or crs is not None:
            raise ApiError("filter-lang and filter-crs describe a filter; give filter too", title="Invalid filter")
        return None
    from coopgis.cql2 import parse_cql2

    return parse_cql2(text, lang, coll, parse_crs(crs, "filter-crs") if crs else None, settings.max_cql2_length,
                      settings.max_cql2_nodes, settings.max_filter_values)


def _items(request: Request, coll: Collection, fmt: str, size: int, limit: int | None, offset: int,
           q: ItemsQuery, level: str) -> Response | Answer:
    """An items answer (a page, an HTML page or a download), worked out in a worker thread (a free page of
    ready bytes on the event loop)."""
    rows = q.rows(coll)
    settings = request.app.state.settings
    matched = len(rows)
    if fmt in ITEM_DOWNLOADS or (fmt == "geojson" and request.scope.get(DOWNLOAD_FLAG)):
        most = settings.max_download if level == "staff" else min(settings.max_download,
                                                                  settings.public_max_download)
        return download(request, coll, rows, q, fmt, most, paged=limit is not None, limit=limit, offset=offset,
                        level=level)
    page = rows[offset:offset + size]
    if fmt == "html":
        return render(request, "items.html", coll=coll, rows=page, matched=matched, offset=offset,
                      limit=size, links=page_links(request, matched, offset, size, "html"),
                      title=COLLECTIONS[coll.name]["title_fa"],
                      **items_context(request, coll, matched, level, q.columns))
    head = {
        "numberMatched": matched, "numberReturned": int(len(page)),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": page_links(request, matched, offset, size, "geojson"),
    }
    body = b"".join(formats.geojson_stream(coll, page, q.crs, head, level, q.columns, q.skip_geometry))
    return Answer(body, MEDIA["geojson"], crs_headers(q.crs))


# ---- helpers used by other routers too ---------------------------------------------------------

def ds(request: Request) -> Dataset:
    return request.app.state.dataset


def get_collection(request: Request, collection_id: str) -> Collection:
    coll = ds(request).collections.get(collection_id)
    if coll is None:
        raise NotFound(f"no collection {collection_id!r}; collections are: {', '.join(COLLECTIONS)}",
                       detail_fa=f"مجموعه «{collection_id}» نداریم؛ مجموعه‌ها: "
                                 + "، ".join(m["title_fa"] for m in COLLECTIONS.values()))
    return coll


def collection_doc(request: Request, name: str) -> dict:
    coll = ds(request).collections[name]
    meta = COLLECTIONS[name]
    base = base_url(request)
    href = f"{base}/collections/{name}"
    settings = request.app.state.settings
    extent: dict = {"spatial": {"bbox": [coll.extent], "crs": CRS84}}
    interval = temporal_extent(coll)
    if interval is not None:
        extent["temporal"] = {"interval": [interval], "trs": TRS}
    return {
        "id": name, "title": meta["title"], "description": meta["description"],
        "title_fa": meta["title_fa"], "itemType": "feature",
        "extent": extent,
        "crs": SUPPORTED_CRS, "storageCrs": CRS84,
        "numberOfFeatures": len(coll),
        "defaultLimit": settings.default_limit, "maxLimit": settings.max_limit,
        "attribution": ATTRIBUTION,
        "links": [
            link(href + "?f=json", "self", JSON),
            link(href + "?f=html", "alternate", TEXT_HTML),
            link(href + "/items?f=geojson", "items", GEOJSON, "Features as GeoJSON"),
            link(href + "/items?f=html", "items", TEXT_HTML, "Features as HTML"),
            link(href + "/items?f=csv", "enclosure", TEXT_CSV, "Download as CSV"),
            link(href + "/items?f=gpkg", "enclosure", GPKG, "Download as GeoPackage"),
            link(href + "/items?f=kml", "enclosure", KML, "Download as KML"),
            link(href + "/queryables", QUERYABLES_REL, SCHEMA_JSON, "Queryable properties (CQL2 filter, sortby)"),
            link(href + "/tiles", TILESETS_VECTOR, JSON, "Vector tilesets (OGC API - Tiles)"),
            link(f"{base}/tiles/{name}/tilejson.json", "tiles", JSON, "Vector tiles (TileJSON)"),
        ],
    }


def page_links(request: Request, matched: int, offset: int, size: int, fmt: str) -> list[dict]:
    """self/alternate/next/prev links that keep every other query parameter."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "f", "limit")]
    url = self_url(request, query=False)
    media = TEXT_HTML if fmt == "html" else GEOJSON

    def href(off: int, f: str) -> str:
        return url + "?" + urlencode(params + [("f", f), ("limit", size), ("offset", off)])

    out = [link(href(offset, fmt), "self", media),
           link(href(offset, "html" if fmt != "html" else "geojson"), "alternate",
                TEXT_HTML if fmt != "html" else GEOJSON)]
    if offset + size < matched:
        out.append(link(href(offset + size, fmt), "next", media, "next page"))
    if offset > 0:
        out.append(link(href(max(0, offset - size), fmt), "prev", media, "previous page"))
    return out


def crs_headers(crs) -> dict:
    return {"Content-Crs": f"<{crs.uri}>"}


def download(request: Request, coll: Collection, rows: np.ndarray, q: ItemsQuery, fmt: str, max_download: int,
             paged: bool, limit: int | None, offset: int, level: str = "public") -> Answer:
    """A whole filtered selection (or one page of it when limit is given) as a file."""
    if paged and limit is not None:
        rows = rows[offset:offset + limit]
    if len(rows) > max_download:
        raise ApiError(f"{len(rows)} features match; one download holds at most {max_download}"
                       + (" without a GIS staff token" if level == "public" else "")
                       + ". Narrow it with bbox, province or another filter, or page with limit/offset.",
                       status=413, title="Selection too large",
                       detail_fa=f"{to_persian_digits(f'{len(rows):,}')} عارضه پیدا شد؛ هر دریافت"
                                 + (" بدون توکن کارشناس GIS" if level == "public" else "")
                                 + f" حداکثر {to_persian_digits(f'{max_download:,}')} عارضه است. با استان، "
                                 "شهرستان، نوع یا محدوده انتخاب را کوچک‌تر کنید، یا با limit و offset صفحه‌به‌صفحه "
                                 "بگیرید.")
    crs = q.crs
    name = f"{coll.name}.{formats.EXTENSION[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', **crs_headers(crs)}
    if fmt == "geojson":
        head = {"numberMatched": len(rows), "numberReturned": len(rows),
                "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
        body = b"".join(formats.geojson_stream(coll, rows, crs, head, level, q.columns, q.skip_geometry))
    elif fmt == "csv":
        body = b"".join(formats.csv_stream(coll, rows, crs, level, q.columns, q.skip_geometry))
    elif fmt == "kml":
        if crs.epsg not in (None, 4326):
            raise ApiError("KML is always in WGS 84 longitude/latitude; leave crs out for f=kml")
        body = formats.kml_file(coll, rows, level, q.columns, q.skip_geometry, **kml_style(coll))
    else:
        changed = str(ds(request).ingest_report.get("created") or "") or None
        body = formats.gpkg_file(coll, rows, crs, level, q.columns, q.skip_geometry, _gdal_time(changed))
    return Answer(body, MEDIA[fmt], headers)


def kml_style(coll: Collection) -> dict:
    """How a collection's placemarks are named and coloured in KML."""
    from coopgis.mappage import CLASS_COLORS, KIND_COLORS

    name = "name" if "name" in coll.properties else "name_fa" if "name_fa" in coll.properties else None
    if coll.name == "cooperatives":
        return {"name_column": name, "style_column": "kind", "styles": KIND_COLORS}
    if coll.name == "deprivation":
        return {"name_column": name, "style_column": "deprivation_class", "styles": CLASS_COLORS}
    return {"name_column": name}


def _gdal_time(value: str | None) -> str | None:
    """An ISO time as GDAL's OGR_CURRENT_DATE wants it (YYYY-MM-DDTHH:MM:SS.sssZ), or None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _json(value) -> bytes:
    return orjson.dumps(value)
