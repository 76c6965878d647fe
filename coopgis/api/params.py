"""Query parameters shared by items, downloads, tiles, stats and field work, declared for FastAPI.

Each dependency declares its parameters with their limits (so ``/api`` shows them) and
reads them into the core's types (:mod:`coopgis.filters`); it parses nothing itself.

Not here: what a filter means or how values are read (``filters.py``, ``values.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from coopgis.errors import InputError
from coopgis.filters import FILTER_NAMES, CooperativeFilter, parse_filter
from coopgis.text import norm, to_ascii_digits


def _digits(value: Any) -> Any:
    """Persian and Arabic digits (and spaces around them) read as ASCII before a number is validated."""
    return to_ascii_digits(norm(value)).replace(" ", "") if isinstance(value, str) else value


# An integer parameter: the schema says integer, and ۲۰ (Persian digits) is read as 20.
Integer = Annotated[int, BeforeValidator(_digits)]


def count_query(default: int, maximum: int, what: str = "how many") -> Any:
    """A page-size parameter: at least 1, ``default`` when absent; a larger value is read as ``maximum``.

    The maximum is published in the schema; values above it are capped, not refused, so a
    client asking for more gets the most there is.
    """
    # The bounds are published here and checked by filters.count (pydantic does not apply ``ge`` through
    # the BeforeValidator's Annotated type, and values above the maximum are capped, not refused).
    return Query(None, description=f"{what} (default {default}, at most {maximum}; larger values are "
                                         "treated as the maximum; Persian digits allowed)",
                 json_schema_extra={"minimum": 1, "maximum": maximum, "default": default})


def filter_dependency(max_values: int = 100, max_length: int = 2000):
    """The FastAPI dependency of the cooperative filters, with their limits in the OpenAPI document.

    A parameter longer than ``max_length`` characters is refused (400) before any of it is
    read, and one naming more than ``max_values`` values too, so a filter costs at most
    ``max_values`` look-ups of distinct values, whatever the request repeats.
    """
    many = f"; comma-separated, at most {max_values} values and {max_length} characters"

    def one(description: str):
        return Query(None, max_length=max_length, description=description + many)

    async def cooperative_filter(
        request: Request,
        kind: str | None = one("cooperative kind(s): code or Persian name (production, تولیدی, ...)"),
        sector: str | None = one("sector(s) (beekeeping, زنبورداری, ...)"),
        status: str | None = one("active, troubled, dissolved (or فعال، مشکل‌دار، منحل)"),
        province: str | None = one("province(s): ISO 3166-2 (IR-07), Persian or English name"),
        county: str | None = one("county: official code, OSM relation id, or Persian name"),
        deprived: str | None = Query(None, max_length=20,
                                     description="true: in a county on a published deprivation list"),
        border: str | None = Query(None, max_length=20, description="true: in a border county"),
        women_led: str | None = Query(None, max_length=20, description="true: women-led cooperatives"),
        registered_year: str | None = Query(None, max_length=40,
                                            description="Jalali registration year, or a range 1395..1400"),
        precision: str | None = one("geocoding precision(s): exact, village, city, county, ..."),
    ) -> CooperativeFilter:
        """FastAPI dependency: the filters as given, checked against the vocabularies.

        ``async``: a bounded look-up (at most ``max_values`` values of ``max_length`` characters), done on
        the event loop rather than through a worker thread, which would cost more than the look-up."""
        values = {"kind": kind, "sector": sector, "status": status, "province": province, "county": county,
                  "deprived": deprived, "border": border, "women_led": women_led,
                  "registered_year": registered_year, "precision": precision}
        return parse_filter(request.app.state.dataset, values, max_values, max_length)

    return cooperative_filter


class CheckedRoute(APIRoute):
    """A route whose operation refuses query parameters it does not define: a 400 naming them.

    OGC API - Features ``/req/core/query-param-unknown``: a misspelt filter (``kindd=``, ``fliter=``)
    must not answer the whole unfiltered collection. The names an operation defines are read from
    its route's parameters (its dependencies' included), so they are the ones ``/api`` publishes.
    Every router of the app is made with it (``APIRouter(route_class=CheckedRoute)``).

    The check wraps the route's handler, so it runs before the operation's own parameters are read (as
    an app-wide dependency would) and costs nothing when there is no query string; a dependency would be
    solved by FastAPI on every request.
    """

    # An operation may also offer ``simple(request, params) -> Response | None``: it is called with the
    # query's values (a dict of str) when every name is in ``simple_params``, each once, and there is no
    # Authorization header, before FastAPI reads the operation's own parameters (which costs more than a
    # small answer); None hands the request on to the operation. Errors are answered as the operation's.
    simple: Any = None
    simple_params: frozenset[str] = frozenset()

    def get_route_handler(self):
        handler = super().get_route_handler()
        known: frozenset[str] | None = None

        async def checked(request: Request):
            nonlocal known
            query = request.scope.get("query_string")
            if self.simple is not None and "authorization" not in request.headers:
                pairs = request.query_params.multi_items() if query else []
                params = dict(pairs)
                if len(params) == len(pairs) and params.keys() <= self.simple_params:
                    answer = await self.simple(request, params)
                    if answer is not None:
                        return answer
            if query:
                if known is None:
                    known = _query_names(self.dependant)
                    if str(self.path).startswith(BROWSER_FILTERED):
                        known = known | set(FILTER_NAMES)
                unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in known]
                if unknown:
                    allowed = ", ".join(sorted(known)) or "none"
                    raise InputError(f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                                     f"{', '.join(repr(u) for u in unknown)}; this operation takes: {allowed}",
                                     title="Unknown parameter", parameters=unknown)
            return await handler(request)

        return checked


# Map pages read the cooperative filters in the browser (core.js pageFilterFromUrl) and pass them to the tiles.
BROWSER_FILTERED = ("/maps/",)
_NAMES: dict[int, tuple[object, frozenset[str]]] = {}   # id(dependant) -> (dependant, its query names)


def _query_names(dependant) -> frozenset[str]:
    entry = _NAMES.get(id(dependant))
    cached = entry[1] if entry is not None and entry[0] is dependant else None
    if cached is None:
        names: set[str] = set()
        stack = [dependant]
        while stack:
            d = stack.pop()
            names.update(p.alias for p in d.query_params)
            stack.extend(d.dependencies)
        cached = frozenset(names)
        _NAMES[id(dependant)] = (dependant, cached)
    return cached
