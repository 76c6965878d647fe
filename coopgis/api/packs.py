"""``GET /packs/{county}.zip``: a county's offline field pack (field officers and above).

The pack is made by :func:`coopgis.packs.build_pack` (public fields, or the staff fields for GIS
staff and administrators), kept per served dataset (``COOPGIS_PACK_CACHE_SIZE``) for the next
officer of the same county, and sent with a strong ``ETag`` (its SHA-256: the same data gives the
same bytes), so a phone that has it already gets a 304. A download: charged to the client's download rate and one of the
heavy requests at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from urllib.parse import quote
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from coopgis.api.errors import ApiError, NotFound
from coopgis.api.limits import admit
from coopgis.api.params import CheckedRoute
from coopgis.api.security import require
from coopgis.assets import NPM_HINT, missing_assets
from coopgis.auth import Principal
from coopgis.maps import MapSettings
from coopgis.media import etag_matches
from coopgis.packs import AmbiguousCounty, Pack, UnknownCounty, build_pack, resolve_county
from coopgis.settings import ServiceSettings

ZIP = "application/zip"


def build_router(settings: ServiceSettings, map_settings: MapSettings) -> APIRouter:
    router = APIRouter(tags=["Field work"], route_class=CheckedRoute)
    kept: WeakKeyDictionary = WeakKeyDictionary()
    lock = threading.Lock()

    def pack_of(dataset, county: int, level: str) -> Pack:
        with lock:
            cache = kept.setdefault(dataset, OrderedDict())
            hit = cache.get((county, level))
            if hit is not None:
                cache.move_to_end((county, level))
                return hit
        pack = build_pack(dataset, county, map_settings, level)
        with lock:
            cache[(county, level)] = pack
            while len(cache) > settings.pack_cache_size:
                cache.popitem(last=False)
        return pack

    @router.get("/packs/{county}.zip", summary="A county's offline field pack (field officer and above)",
                response_class=Response,
                responses={200: {"content": {ZIP: {}}, "description": "the pack: GeoJSON, KML, GPX, CSV, the "
                                 "county's villages and boundary, a standalone map, README.txt, MANIFEST.sha256"},
                           304: {"description": "Not modified (If-None-Match matched the ETag)"}})
    async def pack(request: Request,
                   county: str = Path(max_length=100, description="the county: OSM relation id, official code or "
                                                                  "name (Persian digits allowed)"),
                   who: Principal = Depends(require("field_officer"))):
        dataset = request.app.state.dataset
        try:
            osm = resolve_county(dataset, county)
        except AmbiguousCounty as exc:
            raise ApiError(str(exc), title="Ambiguous county") from None
        except UnknownCounty as exc:
            raise NotFound(str(exc)) from None
        if missing_assets(map_settings.web_dir):
            raise ApiError(f"the map libraries are not installed, so the pack's map cannot be made; {NPM_HINT}",
                           status=503, title="Map libraries missing")
        level = "staff" if who.can("gis_staff") else "public"
        await admit(request, "download", heavy=True)
        made = await run_in_threadpool(pack_of, dataset, osm, level)
        headers = {"ETag": f'"{made.sha256}"', "Cache-Control": "private, no-cache",
                   "Content-Disposition": f'attachment; filename="{made.filename}"; '
                                          f"filename*=UTF-8''{quote(made.filename)}",
                   "X-Pack-Cooperatives": str(made.cooperatives), "X-Pack-County": str(made.county),
                   "Vary": "Authorization"}
        if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return Response(made.data, media_type=ZIP, headers=headers)

    return router
