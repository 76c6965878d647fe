"""Errors as RFC 9457 ``application/problem+json``, registered once on the app.

Routers raise :class:`ApiError` (or a subclass) with a message written for the
user; anything else becomes a 500 with a generic message and is logged, never
echoed back.
"""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from coopgis.budget import BudgetExceeded
from coopgis.errors import InputError
from coopgis.media import PROBLEM

log = logging.getLogger("coopgis")



class ApiError(InputError):
    """An error whose message is safe and useful to show to the caller, with its HTTP status and headers.

    The core raises :class:`coopgis.errors.InputError` (400); routers raise this for what only
    HTTP has (404, 413, 429 ...).
    """

    def __init__(self, detail: str, *, status: int | None = None, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: object):
        super().__init__(detail, title=title, **extra)
        self.headers = headers or {}
        if status is not None:
            self.status = status


class NotFound(ApiError):
    status = 404
    title = "Not found"


def storage_error(exc: OSError, what: str) -> ApiError:
    """The error a client gets when the server cannot write: 507 for a full disk, else 503, naming the cause."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(f"the server's disk is full: {what}. Try again later, and tell the administrator",
                        status=507, title="Insufficient storage", cause="disk_full")
    causes = {errno.EROFS: "the disk is read-only", errno.EIO: "the disk failed to write"}
    cause = causes.get(exc.errno or 0, "the server cannot write to its disk")
    return ApiError(f"{cause}: {what}. Try again later, and tell the administrator", status=503,
                    title="Storage unavailable", headers={"Retry-After": "60"}, cause="storage")


def problem(status: int, title: str, detail: str, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        headers = exc.headers if isinstance(exc, ApiError) else None
        return problem(exc.status, exc.title, exc.detail, request.url.path, headers or None, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        parts = [_said(e) for e in exc.errors()]
        return problem(400, "Invalid parameter", "; ".join(parts) or "invalid request", request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        title = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}.get(exc.status_code,
                                                                                                  "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Several routes can share a path (GET and POST of location reports): list them all.
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        return problem(exc.status_code, title, detail, request.url.path, headers or None)

    @app.exception_handler(BudgetExceeded)
    async def _budget(request: Request, exc: BudgetExceeded):
        return problem(503, "Took too long", f"this request needed more than its time budget of {exc.seconds:g} s; "
                       "narrow it (bbox, filters, a smaller limit) or try again later", request.url.path,
                       {"Retry-After": "60"})

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):  # a disk problem, said as such
            log.error("cannot write on %s: %s", request.url.path, exc)
            err = storage_error(exc, "nothing was saved")
            return problem(err.status, err.title, err.detail, request.url.path, err.headers, **err.extra)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "Internal error", "the server failed to answer this request; it has been logged",
                       request.url.path)


def _said(error: dict) -> str:
    """One validation error in words: the parameter, its value and what it must be."""
    where = ".".join(str(x) for x in error.get("loc", ()) if x not in ("query", "path", "body"))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    words = {
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "string_too_long": f"may be at most {ctx.get('max_length')} characters long",
    }.get(str(error.get("type")))
    if words and where:
        shown = f"={value!r}" if isinstance(value, (str, int, float)) and len(str(value)) <= 40 else ""
        return f"{where}{shown} {words}"
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's (included routers looked into)."""
    from starlette.routing import Match, Mount

    methods: set[str] = set()
    # Inside a mounted app (static files) the scope's root_path is the mount's; match from the app's root.
    scope = {**request.scope, "method": "GET",
             "root_path": request.scope.get("app_root_path", request.scope.get("root_path", ""))}
    for route in _flat(request.app.routes):
        match, _ = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):  # static files: read only
            methods |= {"GET", "HEAD"}
        elif getattr(route, "methods", None):
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")  # answered for every GET (api/methods.py)
    return sorted(methods)


def _flat(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)   # FastAPI keeps included routers as one route
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route
