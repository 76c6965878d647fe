"""OGC API - Features (Part 1 Core, GeoJSON, HTML, OpenAPI 3.0; Part 2 CRS by reference).

Landing page, conformance, collections, items (with bbox, bbox-crs, crs, limit,
offset and property filters) and single features; items also download as CSV,
GeoPackage and KML. Formats are chosen by ``f=`` or the Accept header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from coopgis import budget, formats
from coopgis.api.errors import ApiError, NotFound
from coopgis.api.html import render
from coopgis.api.limits import admit
from coopgis.api.links import base_url, link, negotiate, self_url
from coopgis.api.pages import front_door, item_context, items_context
from coopgis.api.params import filter_dependency
from coopgis.api.security import principal
from coopgis.auth import Principal
from coopgis.dataset import ATTRIBUTION, COLLECTIONS, Collection, Dataset
from coopgis.filters import CRS84, SUPPORTED_CRS, CooperativeFilter, parse_bbox, parse_crs, select
from coopgis.media import GEOJSON, GPKG, JSON, KML, MEDIA, OPENAPI, TEXT_CSV, TEXT_HTML
from coopgis.text import to_persian_digits

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
F_DESCRIPTION = "output format: json, geojson, html; items also csv, gpkg, kml"


def build_router(settings) -> APIRouter:
    router = APIRouter(tags=["OGC API - Features"])
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
                link(f"{base}/maps", "alternate", TEXT_HTML, "Maps"),
            ],
        }
        if fmt == "html":   # the Persian front door (api/pages.py); clients keep the JSON landing
            return render(request, "landing.html", doc=body, dataset=ds(request), **front_door(request))
        return JSONResponse(body)

    @router.get("/conformance", summary="Conformance classes")
    def conformance(request: Request, f: str | None = Query(None, description=F_DESCRIPTION)):
        fmt = negotiate(request, f, ("json", "html"))
        body = {"conformsTo": CONFORMANCE}
        if fmt == "html":
            return render(request, "conformance.html", doc=body)
        return JSONResponse(body)

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
                    flt: CooperativeFilter = Depends(filters),
                    who: Principal = Depends(principal)):
        coll = get_collection(request, collection_id)
        fmt = negotiate(request, f, ("geojson", "json", "html", "csv", "gpkg", "kml"))
        size = page_size(settings, fmt, limit)
        group, heavy = items_cost(fmt, size, not flt.is_empty(), settings.free_page_size)
        if group is not None:  # after the format, size and filters are known, before any work
            await admit(request, group, heavy)
        level = "staff" if who.can("gis_staff") else "public"
        return await run_in_threadpool(_items, request, coll, fmt, size, limit, offset, bbox, bbox_crs, crs, flt,
                                       level)

    @router.get("/collections/{collection_id}/items/{feature_id:path}", summary="One feature",
                response_class=Response)
    def item(request: Request, collection_id: str, feature_id: str,
             crs: str | None = Query(None, description="output CRS"),
             f: str | None = Query(None, description="json, geojson or html"),
             who: Principal = Depends(principal)):
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


def _items(request: Request, coll: Collection, fmt: str, size: int, limit: int | None, offset: int,
           bbox: str | None, bbox_crs: str | None, crs: str | None, flt: CooperativeFilter, level: str) -> Response:
    """An items answer (a page, an HTML page or a download), worked out in a worker thread."""
    out_crs = parse_crs(crs)
    box = parse_bbox(bbox, bbox_crs)
    rows = select(coll, flt, box)
    budget.check()
    settings = request.app.state.settings
    matched = len(rows)
    if fmt in ITEM_DOWNLOADS:
        most = settings.max_download if level == "staff" else min(settings.max_download,
                                                                  settings.public_max_download)
        return download(request, coll, rows, out_crs, fmt, most, paged=limit is not None,
                        limit=limit, offset=offset, level=level)
    page = rows[offset:offset + size]
    if fmt == "html":
        return render(request, "items.html", coll=coll, rows=page, matched=matched, offset=offset,
                      limit=size, links=page_links(request, matched, offset, size, "html"),
                      title=COLLECTIONS[coll.name]["title_fa"], **items_context(request, coll, matched, level))
    head = {
        "numberMatched": matched, "numberReturned": int(len(page)),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": page_links(request, matched, offset, size, "geojson"),
    }
    body = formats.geojson_stream(coll, page, out_crs, head, level)
    if len(page) <= BIG_PAGE:  # a small page in one piece: streaming costs a thread hop per chunk
        return Response(b"".join(body), media_type=MEDIA["geojson"], headers=crs_headers(out_crs))
    return StreamingResponse(body, media_type=MEDIA["geojson"], headers=crs_headers(out_crs))


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
    return {
        "id": name, "title": meta["title"], "description": meta["description"],
        "title_fa": meta["title_fa"], "itemType": "feature",
        "extent": {"spatial": {"bbox": [coll.extent], "crs": CRS84}},
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


def download(request: Request, coll: Collection, rows: np.ndarray, crs, fmt: str, max_download: int,
             paged: bool, limit: int | None, offset: int, level: str = "public") -> Response:
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
    name = f"{coll.name}.{formats.EXTENSION[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', **crs_headers(crs)}
    if fmt == "csv":
        return StreamingResponse(formats.csv_stream(coll, rows, crs, level), media_type=MEDIA["csv"],
                                 headers=headers)
    if fmt == "kml" and crs.epsg not in (None, 4326):
        raise ApiError("KML is always in WGS 84 longitude/latitude; leave crs out for f=kml")
    body = formats.ogr_file(coll, rows, crs, "GPKG" if fmt == "gpkg" else "KML", level)
    return Response(body, media_type=MEDIA[fmt], headers=headers)


def _json(value) -> bytes:
    return orjson.dumps(value)
