"""``/maps`` (the list of named maps), ``/maps/{name}`` (one map page) and ``/vendor/{file}`` (its libraries).

Map pages are rendered from the presets in ``MapSettings.maps_dir`` and kept
until the preset file, the dataset or the root path changes. They carry no
collection data: the browser loads tiles. Library files are served from an
explicit allow-list (:mod:`coopgis.assets`), with an ETag and gzip-compressed
when the client accepts it; when ``npm ci`` has not been run the map pages
answer 503 with the command to run instead of a page whose scripts would be
missing.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from coopgis.api.errors import ApiError, NotFound
from coopgis.api.html import render
from coopgis.api.links import base_url, negotiate, root_path
from coopgis.api.params import CheckedRoute
from coopgis.assets import ASSETS, JOINED, NPM_HINT, gzipped, media_of, missing_assets, read_asset
from coopgis.mappage import Page, page_facts, render_page
from coopgis.maps import MapSettings, Preset, load_presets
from coopgis.media import HTML, etag_matches

VENDOR_CACHE = "public, max-age=86400"
PAGE_CACHE = "no-cache"


def build_router(settings, map_settings: MapSettings) -> APIRouter:
    router = APIRouter(tags=["Maps"], route_class=CheckedRoute)
    # Per served dataset (a reloaded dataset starts afresh): its page facts and rendered pages.
    cache: WeakKeyDictionary = WeakKeyDictionary()
    lock = threading.Lock()

    def presets() -> tuple[dict[str, Preset], dict[str, str]]:
        return load_presets(map_settings.maps_dir)

    def page_for(request: Request, preset: Preset) -> bytes:
        dataset = request.app.state.dataset
        base = root_path(request)
        key = (preset.name, preset.path.stat().st_mtime_ns, base, settings.basemap_url)
        with lock:
            entry = cache.get(dataset)
            hit = entry["pages"].get(key) if entry else None
        if hit is not None:
            return hit
        facts = entry["facts"] if entry else page_facts(dataset, settings.cluster_max_zoom)
        body = render_page(preset, Page(base=base, web_dir=map_settings.web_dir, facts=facts,
                                          basemap_url=settings.basemap_url)).encode("utf-8")
        with lock:
            entry = cache.setdefault(dataset, {"facts": facts, "pages": {}})
            for old in [k for k in entry["pages"] if k[0] == preset.name]:
                del entry["pages"][old]
            entry["pages"][key] = body
        return body

    @router.get("/maps", summary="The named maps (HTML list, or JSON with f=json)")
    def maps_list(request: Request, f: str | None = Query(None, description="html or json")):
        fmt = negotiate(request, f, ("html", "json"))
        found, broken = presets()
        base = base_url(request)
        if fmt == "json":
            return JSONResponse({"maps": [p.summary(base) for p in found.values()],
                                 "dashboard": f"{base}/dashboard",
                                 "broken": [{"name": n, "error": e} for n, e in broken.items()]})
        return render(request, "maps.html", maps=list(found.values()), broken=broken,
                      missing=bool(missing_assets(map_settings.web_dir)), hint=NPM_HINT)

    @router.get("/maps/{name}", summary="One map page (HTML, Persian, right to left)", response_class=Response)
    def map_page(request: Request, name: str = Path(description="a map name from /maps")):
        found, broken = presets()
        if name in broken:
            raise ApiError(f"the map {name!r} cannot be shown: {broken[name]}", status=500,
                           title="Broken map preset")
        preset = found.get(name)
        if preset is None:
            raise NotFound(f"no map {name!r}; maps are: {', '.join(found) or 'none'}")
        absent = missing_assets(map_settings.web_dir)
        if absent:
            raise ApiError(f"the map libraries are not installed ({len(absent)} files missing, e.g. "
                           f"{absent[0]}); {NPM_HINT}", status=503, title="Map libraries missing")
        # Sent as plain text with no validator: a security layer may put a fresh CSP nonce into
        # every <script> of each HTML response, which it cannot do in a gzip body or a 304.
        return Response(page_for(request, preset), media_type=HTML,
                        headers={"Cache-Control": PAGE_CACHE})

    @router.get("/vendor/{asset:path}", summary="A map library file (allow-listed)", response_class=Response,
                include_in_schema=False)
    async def vendor(request: Request, asset: str):
        # async: the files are read once and kept (assets.read_asset), so no worker thread is needed; a map
        # page asks for a dozen of them before its first clusters
        if asset not in ASSETS and asset not in JOINED:
            raise NotFound(f"no file {asset!r} is served under /vendor")
        try:
            body = read_asset(map_settings.web_dir, asset)
        except FileNotFoundError:
            raise ApiError(f"{asset} is not installed; {NPM_HINT}", status=503,
                           title="Map libraries missing") from None
        etag = _etag(body)
        return _send(request, body, gzipped(map_settings.web_dir, asset), etag, media_of(asset), VENDOR_CACHE)

    return router


@lru_cache(maxsize=128)
def _etag(body: bytes) -> str:
    """The ETag of a vendor file (its bytes are one kept object: hashed once)."""
    return '"v' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _send(request: Request, body: bytes, packed: bytes | None, etag: str, media: str, cache: str) -> Response:
    """A response with ETag/304 and gzip when the client accepts it."""
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if packed is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        return Response(packed, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(body, media_type=media, headers=headers)
