"""What the field and review pages need beyond the API: their service worker, the review page, sign-in.

- ``GET /field-sw.js``: the service worker of the field page (``coopgis/web/sw.js``), with the list of
  files it keeps for offline use (the field page and every allow-listed script, style and font), a
  version that changes when any of them does, how many tiles it keeps (``COOPGIS_OFFLINE_TILES``) and
  how long it waits for the network (``COOPGIS_OFFLINE_WAIT_SECONDS``). The page registers it with the
  scope of the field page only, so no other page is served from its caches.
- ``GET /admin/reports``: the review screen (Persian, right to left). The page itself holds no
  data; its script reads the pending reports with the administrator's token (roles as in the API).
- ``GET /whoami``: the owner and role of the bearer token, so a page can check a token once when
  it is entered (401 for an unknown one) and show who is signed in.
"""

from __future__ import annotations

import hashlib

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from coopgis.api.admin import MAX_COMMENT
from coopgis.api.errors import ApiError
from coopgis.api.html import render
from coopgis.api.links import root_path
from coopgis.api.params import CheckedRoute
from coopgis.api.security import principal
from coopgis.assets import ASSETS, NPM_HINT, missing_assets, read_asset, vendor_url
from coopgis.auth import Principal
from coopgis.maps import MapSettings
from coopgis.settings import ServiceSettings

JS = "text/javascript; charset=utf-8"
ROLE_FA = {"public": "عمومی", "field_officer": "کارشناس میدانی", "gis_staff": "کارشناس GIS", "admin": "مدیر سامانه"}
FIELD_PAGE = "/maps/field"
SW_TEMPLATE = "sw.js"


def build_router(settings: ServiceSettings, map_settings: MapSettings) -> APIRouter:
    router = APIRouter(tags=["Field work"], route_class=CheckedRoute)

    @router.get("/whoami", summary="Who the bearer token belongs to (a page's sign-in check)")
    def whoami(who: Principal = Depends(principal)):
        signed_in = who.role != "public"
        return JSONResponse({"name": who.name if signed_in else None, "role": who.role,
                             "role_fa": ROLE_FA.get(who.role, who.role)}, headers={"Cache-Control": "no-store"})

    @router.get("/field-sw.js", summary="The field page's service worker (offline use)", response_class=Response,
                include_in_schema=False)
    def service_worker(request: Request):
        absent = missing_assets(map_settings.web_dir)
        if absent:
            raise ApiError(f"the map libraries are not installed; {NPM_HINT}", status=503,
                           title="Map libraries missing")
        base = root_path(request)
        files = [vendor_url(base, name) for name in sorted(ASSETS)]
        digest = hashlib.sha256(b"".join(read_asset(map_settings.web_dir, n) for n in sorted(ASSETS)))
        template = (map_settings.web_dir / SW_TEMPLATE).read_bytes()
        digest.update(template)
        config = {"version": digest.hexdigest()[:16], "base": base, "page": base + FIELD_PAGE, "files": files,
                  "tiles_kept": settings.offline_tiles, "wait_ms": round(settings.offline_wait_seconds * 1000)}
        body = template.replace(b"/*COOPGIS_CONFIG*/{}", orjson.dumps(config))
        # The browser checks for a new worker on each visit; no-cache keeps that check honest.
        return Response(body, media_type=JS, headers={"Cache-Control": "no-cache"})

    @router.get("/admin/reports", summary="The review screen of location reports (HTML, Persian)",
                include_in_schema=False)
    def review_page(request: Request):
        base = root_path(request)
        return render(request, "review.html", vendor=lambda name: vendor_url(base, name), base_path=base,
                      basemap=settings.basemap_url, missing=bool(missing_assets(map_settings.web_dir)),
                      hint=NPM_HINT, max_comment=MAX_COMMENT)

    return router
