"""Errors as RFC 9457 ``application/problem+json``, registered once on the app; Persian pages for browsers.

Routers raise :class:`ApiError` (or a subclass) with a message written for the
user; anything else becomes a 500 with a generic message and is logged, never
echoed back. A browser (a request that prefers ``text/html``, or ``f=html``) gets the
same error as a Persian HTML page; an API client whose ``Accept-Language`` prefers
Persian gets a Persian ``detail`` (the English one in ``detail_en``).
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
from coopgis.store import StoreError

log = logging.getLogger("coopgis")



class ApiError(InputError):
    """An error whose message is safe and useful to show to the caller, with its HTTP status and headers.

    The core raises :class:`coopgis.errors.InputError` (400); routers raise this for what only
    HTTP has (404, 413, 429 ...).
    """

    def __init__(self, detail: str, *, status: int | None = None, title: str | None = None,
                 headers: dict[str, str] | None = None, detail_fa: str | None = None, **extra: object):
        super().__init__(detail, title=title, detail_fa=detail_fa, **extra)
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


# Persian words per status, for errors that carry no Persian detail of their own.
TITLE_FA = {400: "درخواست نادرست", 401: "نیاز به توکن", 403: "بدون اجازه", 404: "پیدا نشد",
            405: "روش درخواست پذیرفته نیست", 406: "قالب درخواستی ارائه نمی‌شود", 412: "نسخه تغییر کرده است",
            413: "بیش از اندازه بزرگ", 428: "نسخه لازم است", 429: "درخواست‌های بیش از اندازه",
            500: "خطای سرور", 503: "سرویس اکنون در دسترس نیست", 507: "دیسک سرور پر است"}
DETAIL_FA = {400: "یکی از مقدارهای درخواست خوانده نشد؛ جزئیات انگلیسی در پایین آمده است.",
             401: "این کار توکن می‌خواهد: سرآیند Authorization: Bearer <token>.",
             403: "نقش شما اجازه این کار را ندارد.",
             404: "صفحه یا داده‌ای با این نشانی نیست.",
             405: "این نشانی این روش درخواست را نمی‌پذیرد.",
             413: "درخواست یا انتخاب بیش از اندازه بزرگ است؛ آن را کوچک‌تر کنید.",
             429: "در این دقیقه درخواست‌های زیادی فرستاده‌اید؛ کمی صبر کنید و دوباره بکوشید.",
             500: "سرور نتوانست پاسخ دهد؛ خطا ثبت شد.",
             503: "سرور اکنون سرش شلوغ است یا کار بیش از زمانش طول کشید؛ کمی بعد دوباره بکوشید.",
             507: "دیسک سرور پر است؛ به مدیر سامانه خبر دهید."}


def prefers_html(request: Request) -> bool:
    """A browser's request: ``f=html``, or an Accept header that ranks text/html above JSON."""
    if request.query_params.get("f", "").strip().lower() == "html":
        return True
    return _best(request.headers.get("accept", ""), ("text/html", "application/json", "application/problem+json",
                                                      "application/geo+json")) == "text/html"


def prefers_persian(request: Request) -> bool:
    """True when the request's Accept-Language ranks Persian first."""
    return _best(request.headers.get("accept-language", ""), ("fa", "en", "*"), prefix=True) == "fa"


def _best(header: str, choices: tuple[str, ...], prefix: bool = False) -> str | None:
    best, best_q = None, 0.0
    for part in header.split(","):
        value, _, params = part.strip().partition(";")
        value = value.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        hit = next((c for c in choices if value == c or (prefix and value.split("-")[0] == c)), None)
        if hit is not None and q > best_q:
            best, best_q = hit, q
    return best


def problem(status: int, title: str, detail: str, instance: str | None = None,
            headers: dict[str, str] | None = None, request: Request | None = None, detail_fa: str | None = None,
            **extra):
    """The error as problem+json, or as a Persian HTML page when a browser asked."""
    fa = detail_fa or DETAIL_FA.get(status) or DETAIL_FA[500 if status >= 500 else 400]
    if request is not None and prefers_html(request):
        from coopgis.api.html import render  # html.py reaches this module through links.py

        try:
            page = render(request, "error.html", status=status, code=status, title=title, detail=detail,
                          title_fa=TITLE_FA.get(status, "خطا"), detail_fa=fa)
        except Exception:  # an error page must never fail; the problem document below still answers
            log.exception("rendering the error page failed")
        else:
            for k, v in (headers or {}).items():
                page.headers[k] = v
            return page
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    if request is not None and prefers_persian(request):
        body["detail_en"], body["detail"] = detail, fa
        headers = {**(headers or {}), "Content-Language": "fa"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        headers = exc.headers if isinstance(exc, ApiError) else None
        return problem(exc.status, exc.title, exc.detail, request.url.path, headers or None, request,
                       exc.detail_fa, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        parts = [_said(e) for e in exc.errors()]
        return problem(400, "Invalid parameter", "; ".join(parts) or "invalid request", request.url.path,
                       request=request, detail_fa="مقدار یکی از پارامترهای درخواست پذیرفته نیست: "
                                                  + "؛ ".join(parts))

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
        return problem(exc.status_code, title, detail, request.url.path, headers or None, request)

    @app.exception_handler(BudgetExceeded)
    async def _budget(request: Request, exc: BudgetExceeded):
        return problem(503, "Took too long", f"this request needed more than its time budget of {exc.seconds:g} s; "
                       "narrow it (bbox, filters, a smaller limit) or try again later", request.url.path,
                       {"Retry-After": "60"}, request, "این درخواست بیش از زمان مجازش طول کشید؛ آن را با "
                                                       "محدوده یا پالایه کوچک‌تر کنید یا بعداً دوباره بکوشید.")

    @app.exception_handler(StoreError)
    async def _store_unavailable(request: Request, exc: StoreError):
        # The message names the store (never a password) and why; the database may be restarting.
        log.error("the store is unavailable on %s: %s", request.url.path, exc)
        return problem(503, "Store unavailable", "the service's store cannot be reached right now; nothing was "
                       "changed. Try again shortly", request.url.path, {"Retry-After": "5"})

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):  # a disk problem, said as such
            log.error("cannot write on %s: %s", request.url.path, exc)
            err = storage_error(exc, "nothing was saved")
            return problem(err.status, err.title, err.detail, request.url.path, err.headers, request, err.detail_fa,
                           **err.extra)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "Internal error", "the server failed to answer this request; it has been logged",
                       request.url.path, request=request)


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
