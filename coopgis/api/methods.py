"""What every route gets once, as thin ASGI layers: HEAD for every GET, item URLs with a file suffix,
and CORS for public reads.

- :class:`HeadAsGet`: FastAPI routes a HEAD request nowhere (405). Here a HEAD is answered as
  the GET of the same URL with its body left out (status, ``Content-Length``, ``ETag`` and
  the rest of the headers as the GET's), so desktop tools and ``/vsicurl/`` can look before
  they read.
- :class:`ItemSuffixes`: ``/collections/{id}/items.csv`` (``.gpkg``, ``.kml``, ``.geojson``) for
  readers that go by the file name.
- :class:`PublicCors`: with ``COOPGIS_CORS_PUBLIC=true``, the public read-only resources (the
  OGC API documents, items, queryables, tiles, TileJSON, tile matrix sets) answer
  ``Access-Control-Allow-Origin: *`` to GET and HEAD and to their preflight, without
  credentials: a map page on any origin can draw the tiles and read the items, and no
  browser sends a cookie or token with them. Off by default. Other routes (records with
  personal data, reports, audit, admin) never get it.

Not here: the security headers and limits (``security.py``).
"""

from __future__ import annotations

import re

HEAD_FLAG = "coopgis.head"
DOWNLOAD_FLAG = "coopgis.download"   # items.geojson: the whole selection as a file, like items.csv
ITEM_SUFFIX = re.compile(r"^/collections/([^/]+)/items\.(geojson|csv|gpkg|kml)$")
PUBLIC_READ = re.compile(r"^/(|api|conformance|collections(/.*)?|tiles(/.*)?|tileMatrixSets(/.*)?)$")
EXPOSED = b"ETag, Content-Range, Accept-Ranges, Content-Length, Content-Crs, Content-Disposition, Link"
ALLOWED_HEADERS = b"Accept, Accept-Language, If-None-Match, If-Range, Range"


class HeadAsGet:
    """HEAD answered as GET without the body (pure ASGI)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        scope = {**scope, "method": "GET", HEAD_FLAG: True}

        async def headless(message):
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return None  # the rest of a streamed body: not sent
                return await send({"type": "http.response.body", "body": b""})
            return await send(message)

        return await self.app(scope, receive, headless)


class ItemSuffixes:
    """``/collections/{id}/items.csv`` (also ``.gpkg``, ``.kml``, ``.geojson``) is the items operation with
    ``f`` taken from the URL: some readers decide a file's format by its name (GDAL's CSV driver by
    ``.csv``), and the file name a browser saves is the URL's. Any ``f=`` in the query is replaced."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "/items." in scope["path"]:   # the regex only for candidates
            m = ITEM_SUFFIX.match(_path(scope))
            if m is not None:
                path = scope["path"].rsplit(".", 1)[0]
                query = [p for p in scope.get("query_string", b"").split(b"&") if p and not p.startswith(b"f=")]
                query.append(b"f=" + m.group(2).encode())
                scope = {**scope, "path": path, "raw_path": path.encode(), "query_string": b"&".join(query),
                         DOWNLOAD_FLAG: True}
        return await self.app(scope, receive, send)


class PublicCors:
    """``Access-Control-Allow-Origin: *`` on public read-only resources, GET/HEAD only, no credentials."""

    def __init__(self, app, max_age: int = 600):
        self.app = app
        self.max_age = str(max_age).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not PUBLIC_READ.match(_path(scope)):
            return await self.app(scope, receive, send)
        origin = asked_method = None
        for k, v in scope.get("headers") or ():   # the two headers read here, without a dict of all of them
            if k == b"origin":
                origin = v
            elif k == b"access-control-request-method":
                asked_method = v
        if origin is None:
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method == "OPTIONS" and asked_method is not None:
            asked = asked_method.decode("latin-1").strip().upper()
            ok = asked in ("GET", "HEAD")
            out = [(b"vary", b"Origin")]
            if ok:
                out += [(b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, HEAD"),
                        (b"access-control-allow-headers", ALLOWED_HEADERS), (b"access-control-max-age", self.max_age)]
            await send({"type": "http.response.start", "status": 204 if ok else 403, "headers": out})
            return await send({"type": "http.response.body", "body": b""})
        if method not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)

        async def with_cors(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
                kept += [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", EXPOSED)]
                message = {**message, "headers": kept}
            return await send(message)

        return await self.app(scope, receive, with_cors)


def _path(scope) -> str:
    path = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"
