"""Addresses and formats of HTTP answers: the service's base URL, this request's URL, links, and
the format a client asked for (``f=`` or ``Accept``).

Links are built from ``COOPGIS_PUBLIC_URL``, else the address the request reached (the
listening socket and the root path), never from the Host header, which any client can set.

Not here: media type names (``coopgis/media.py``).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request

from coopgis.api.errors import ApiError
from coopgis.media import ACCEPT, GEOJSON


def root_path(request: Request) -> str:
    """The path prefix the app is served under (``COOPGIS_ROOT_PATH`` or the proxy's), without a trailing /."""
    scope = request.scope
    return str(scope.get("app_root_path", scope.get("root_path", ""))).rstrip("/")


def base_url(request: Request) -> str:
    """The service's address for links: ``COOPGIS_PUBLIC_URL``, else the address the request reached
    (the listening socket, with the root path). Never the Host header, which any client can set."""
    public = request.app.state.settings.public_url
    if public:
        return public.rstrip("/")
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host, port = scope.get("server") or ("localhost", None)
    host = f"[{host}]" if ":" in str(host) else host
    netloc = host if port in (None, {"http": 80, "https": 443}.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{root_path(request)}"


def self_url(request: Request, query: bool = True) -> str:
    """This request's URL under :func:`base_url` (path and, when asked, query as received)."""
    path = request.scope.get("path", "/")
    root = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):]
    url = base_url(request) + quote(path)
    qs = request.scope.get("query_string", b"").decode("latin-1")
    return url + ("?" + qs if query and qs else "")


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def negotiate(request: Request, f: str | None, allowed: tuple[str, ...]) -> str:
    """The output format from ``f=`` or else the Accept header; JSON by default."""
    if f:
        fmt = f.strip().lower()
        if fmt in (GEOJSON,):
            fmt = "geojson"
        if fmt not in allowed:
            raise ApiError(f"f={f!r} is not offered here; use one of: {', '.join(allowed)}",
                           title="Unsupported format")
        return fmt
    accept = request.headers.get("accept", "")
    best, best_q = None, -1.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        fmt = ACCEPT.get(media, "")
        if fmt in ("json", "geojson") and fmt not in allowed:
            fmt = "json" if "json" in allowed else "geojson"
        if fmt in allowed and q > best_q:
            best, best_q = fmt, q
    if best:
        return best
    return "geojson" if "geojson" in allowed else "json"
