"""The HTTP side of security: credentials, security headers, body-size and rate limits.

- :func:`principal` reads ``Authorization: Bearer <token>``; no header means the
  public role; a wrong or malformed token is a 401. Credentials in the query
  string are refused (400), so they never land in logs or browser history.
- :func:`require` makes a dependency that lets only a role or a higher one pass (403).
- :class:`SecurityMiddleware` (pure ASGI) adds security headers to every answer,
  a Content-Security-Policy with a fresh nonce on each HTML page (every
  ``<script>`` tag of the page gets it), refuses bodies over the size limit
  (413), and rate-limits the expensive endpoints per client (429).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Callable

import orjson
from fastapi import Request

from coopgis.api.errors import ApiError
from coopgis.auth import PUBLIC, Principal, TokenError

CREDENTIAL_PARAMS = ("access_token", "token", "api_key", "apikey", "key", "auth")
_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


def principal(request: Request) -> Principal:
    """The caller: PUBLIC without credentials, else the token's owner; 401 for a bad token."""
    for name in CREDENTIAL_PARAMS:
        if name in request.query_params:
            raise ApiError(f"credentials are not accepted in the query string ({name}=); send "
                           "'Authorization: Bearer <token>'", title="Credentials in URL")
    header = request.headers.get("authorization")
    if header is None:
        return PUBLIC
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("the Authorization header must be 'Bearer <token>'", status=401,
                       title="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    tokens = getattr(request.app.state, "tokens", None)
    try:
        who = tokens.verify(token.strip()) if tokens is not None else None
    except TokenError:
        raise ApiError("credentials cannot be checked right now", status=503, title="Unavailable") from None
    if who is None:
        raise ApiError("unknown or revoked token", status=401, title="Unauthorized",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return who


def require(role: str) -> Callable[[Request], Principal]:
    """A dependency that admits ``role`` and higher roles only."""

    def dependency(request: Request) -> Principal:
        who = principal(request)
        if not who.can(role):
            if who.role == "public":
                raise ApiError(f"this needs the {role} role: send 'Authorization: Bearer <token>'",
                               status=401, title="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
            raise ApiError(f"{who.name} ({who.role}) may not do this; it needs the {role} role",
                           status=403, title="Forbidden")
        return who

    dependency.__name__ = f"require_{role}"
    return dependency


class RateLimiter:
    """Token buckets per (client, group): ``rate`` requests per minute, bursts up to ``burst``."""

    def __init__(self, rate_per_minute: float, burst: int):
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, group: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get((client, group), (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[(client, group)] = (tokens - 1, now)
                if len(self._buckets) > 100_000:  # bounded memory under a flood of clients
                    self._buckets.clear()
                return 0.0
            self._buckets[(client, group)] = (tokens, now)
            return (1 - tokens) / self.rate


def expensive_group(path: str, query: bytes) -> str | None:
    """Which rate-limited group a request falls in, if any."""
    if path in ("/geocode", "/reverse", "/search", "/nearest"):
        return "geocode"
    if path.startswith("/collections/") and path.endswith("/items"):
        q = query.decode("latin-1").lower()
        if any(f"f={f}" in q for f in ("csv", "gpkg", "kml")) or "limit=" in q and _big_limit(q):
            return "download"
    return None


def _big_limit(query: str) -> bool:
    m = re.search(r"(?:^|&)limit=(\d+)", query)
    return bool(m) and int(m.group(1)) > 1000


class SecurityMiddleware:
    """Security headers, CSP nonces on HTML, body-size limit and rate limits (pure ASGI)."""

    def __init__(self, app, settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.limits = {"geocode": RateLimiter(settings.rate_geocode_per_minute, settings.rate_burst),
                       "download": RateLimiter(settings.rate_download_per_minute, settings.rate_burst)}
        self.basemap_origin = _origin(settings.basemap_url)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _problem(send, 400, "Bad request", "Content-Length is not a number")
            if too_big:
                return await _problem(send, 413, "Request body too large",
                                      f"request bodies are limited to {self.max_body} bytes")
        group = expensive_group(scope["path"], scope.get("query_string", b""))
        if group is not None:
            client = (scope.get("client") or ("?", 0))[0]
            wait = self.limits[group].allow(client, group)
            if wait > 0:
                return await _problem(send, 429, "Too many requests",
                                      f"too many {group} requests from this client; retry in "
                                      f"{math.ceil(wait)} s", [(b"retry-after", str(math.ceil(wait)).encode())])

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        nonce = secrets.token_urlsafe(16)
        state = {"html": False, "start": None, "chunks": []}

        async def wrapped_send(message):
            if message["type"] == "http.response.start":
                hdrs = [(k, v) for k, v in message.get("headers", [])]
                ctype = next((v for k, v in hdrs if k.lower() == b"content-type"), b"")
                hdrs += _static_headers()
                if ctype.startswith(b"text/html"):
                    state["html"] = True
                    hdrs.append((b"content-security-policy", self._csp(nonce)))
                    state["start"] = {**message, "headers": [(k, v) for k, v in hdrs
                                                             if k.lower() != b"content-length"]}
                    return
                return await send({**message, "headers": hdrs})
            if message["type"] == "http.response.body" and state["html"]:
                state["chunks"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', b"".join(state["chunks"]))
                start = state["start"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
                await send(start)
                return await send({"type": "http.response.body", "body": body})
            return await send(message)

        try:
            await self.app(scope, limited_receive, wrapped_send)
        except _BodyTooLarge:
            await _problem(send, 413, "Request body too large", f"request bodies are limited to {self.max_body} bytes")

    def _csp(self, nonce: str) -> bytes:
        img = "'self' data: blob:" + (f" {self.basemap_origin}" if self.basemap_origin else "")
        return (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                f"img-src {img}; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
                f"base-uri 'self'; form-action 'self'; frame-ancestors 'none'").encode()


class _BodyTooLarge(Exception):
    pass


def _static_headers() -> list[tuple[bytes, bytes]]:
    return [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"geolocation=(self), camera=(), microphone=()")]


async def _problem(send, status: int, title: str, detail: str, extra: list | None = None) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + _static_headers() + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    m = re.match(r"^(https?://[^/{}]+)", url.replace("{s}", "*"))
    return m.group(1) if m else None
