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

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from coopgis.api.errors import ApiError
from coopgis.api.limits import CLIENT, SLOT, Limits, Turn, client_key
from coopgis.auth import PUBLIC, Principal, TokenError

CREDENTIAL_PARAMS = ("access_token", "token", "api_key", "apikey", "key", "auth", "bearer", "password",
                     "authorization", "id_token", "refresh_token", "secret")
GEOCODE_PATHS = frozenset({"/geocode", "/reverse", "/search", "/nearest"})
_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


def principal(request: Request) -> Principal:
    """The caller: PUBLIC without credentials, else the token's owner; 401 for a bad token."""
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


async def caller(request: Request) -> Principal:
    """:func:`principal` as a FastAPI dependency: a request without credentials (most of them) is answered
    on the event loop; a token is checked in a worker thread (the token file or the database is read)."""
    if "authorization" not in request.headers:
        return PUBLIC
    return await run_in_threadpool(principal, request)


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


class SecurityMiddleware:
    """Security headers, CSP nonces on HTML, credentials in URLs, body size, rate limits (pure ASGI).

    It also names the client each request is charged to (:func:`~coopgis.api.limits.client_key`)
    and gives back the request's turn at the heavy gate once the response is complete.
    """

    def __init__(self, app, settings, limits: Limits | None = None):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.limits = limits or Limits(settings)
        self.basemap_origin = _origin(settings.basemap_url)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = _refuse(scope, self.max_body)
        if refused is not None:
            return await _problem(send, *refused)
        client = client_key(scope, self.limits.trusted)
        if client != (scope.get("client") or ("?", 0))[0]:
            scope["client"] = (client, 0)  # the real client, in the access log too
        state = scope.setdefault("state", {})
        state[CLIENT] = client
        turn = state[SLOT] = Turn()
        try:
            if scope["path"] in GEOCODE_PATHS:  # geocoding and search: charged and heavy, whatever is asked
                try:
                    self.limits.charge(client, "geocode")
                    await self.limits.enter(state)
                except ApiError as exc:
                    return await _problem(send, exc.status, exc.title, exc.detail,
                                          [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()])
            await self._respond(scope, receive, send)
        finally:
            turn.give_back()

    async def _respond(self, scope, receive, send):
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        # Only an HTML page is held back (its script tags get the nonce); every other answer passes on at once
        # with the constant headers appended (one list, made at import).
        page: dict[str, Any] = {}   # nonce, start, chunks: set once the answer is known to be HTML
        started = False

        async def wrapped_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                hdrs = message.get("headers", ())
                if not next((v for k, v in hdrs if k.lower() == b"content-type"), b"").startswith(b"text/html"):
                    return await send({**message, "headers": [*hdrs, *STATIC_HEADERS]})
                nonce = page["nonce"] = secrets.token_urlsafe(16)
                page["chunks"] = []
                page["start"] = {**message, "headers": [*(h for h in hdrs if h[0].lower() != b"content-length"),
                                                        *STATIC_HEADERS, (b"content-security-policy",
                                                                          self._csp(nonce))]}
                return None
            if message["type"] == "http.response.body" and page:
                page["chunks"].append(message.get("body", b""))
                if message.get("more_body"):
                    return None
                body = _SCRIPT_TAG.sub(b'<script nonce="' + page["nonce"].encode() + b'"', b"".join(page["chunks"]))
                start = page["start"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
                await send(start)
                return await send({"type": "http.response.body", "body": body})
            return await send(message)

        try:
            await self.app(scope, limited_receive, wrapped_send)
        except BodyTooLarge:
            if not started:
                await _problem(send, 413, "Request body too large",
                               f"request bodies are limited to {self.max_body} bytes")

    def _csp(self, nonce: str) -> bytes:
        img = "'self' data: blob:" + (f" {self.basemap_origin}" if self.basemap_origin else "")
        return (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                f"img-src {img}; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
                f"base-uri 'self'; form-action 'self'; frame-ancestors 'none'").encode()


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit, however it was sent (Content-Length or chunked): 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"request bodies are limited to {limit} bytes")


def _refuse(scope, max_body: int) -> tuple[int, str, str] | None:
    """(status, title, detail) of a request refused before the app sees it, else None."""
    query = scope.get("query_string", b"")
    if query:
        names = {unquote_plus(pair.split(b"=", 1)[0].decode("latin-1")).strip().lower()
                 for pair in query.split(b"&") if pair}
        for name in CREDENTIAL_PARAMS:
            if name in names:
                return (400, "Credentials in URL", f"credentials are not accepted in the query string ({name}=); "
                                                   "send 'Authorization: Bearer <token>'")
    for k, v in scope.get("headers") or ():
        if k == b"content-length":
            try:
                too_big = int(v) > max_body
            except ValueError:
                return 400, "Bad request", "Content-Length is not a number"
            if too_big:
                return 413, "Request body too large", f"request bodies are limited to {max_body} bytes"
    return None


# The headers every answer gets, made once (a tuple: never changed in place; each answer's list is its own).
STATIC_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(self), camera=(), microphone=()"))


async def _problem(send, status: int, title: str, detail: str, extra: list | None = None) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, *STATIC_HEADERS, *(extra or ())]})
    await send({"type": "http.response.body", "body": body})


class RedactCredentials(logging.Filter):
    """Keeps credentials out of log lines: the values of credential-like query parameters (however
    their names are percent-encoded) and anything shaped like a bearer token are replaced."""

    _TOKEN = re.compile(r"[A-Za-z0-9_\-]{40,}")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact(record.msg)
        return True


def redact(text: str) -> str:
    """``text`` (a path with its query, or a log message) without credential values."""
    path, sep, query = text.partition("?")
    if sep:
        pairs = []
        for pair in query.split("&"):
            name, eq, _ = pair.partition("=")
            if eq and unquote_plus(name).strip().lower() in CREDENTIAL_PARAMS:
                pair = name + "=[redacted]"
            pairs.append(pair)
        text = path + "?" + "&".join(pairs)
    return RedactCredentials._TOKEN.sub("[redacted]", text)


def install_log_redaction() -> None:
    """Add the redaction filter to uvicorn's access and error logs (once per process)."""
    for name in ("uvicorn.access", "uvicorn.error", "coopgis"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    m = re.match(r"^(https?://[^/{}]+)", url.replace("{s}", "*"))
    return m.group(1) if m else None
