"""Geocoding endpoints: ``GET /geocode?q=`` and ``GET /reverse?lon=&lat=``."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from coopgis.api.errors import ApiError
from coopgis.api.params import CheckedRoute
from coopgis.filters import number
from coopgis.settings import ServiceSettings
from coopgis.text import norm


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["Geocoding"], route_class=CheckedRoute)
    max_len = settings.max_query_length

    @router.get("/geocode", summary="Geocode an address (Persian, Arabic letter forms or Latin)")
    def geocode(request: Request,
                q: str | None = Query(None, max_length=max_len,
                                      description=f"the address, at most {max_len} characters"),
                province: str | None = Query(None, max_length=max_len),
                county: str | None = Query(None, max_length=max_len),
                district: str | None = Query(None, max_length=max_len),
                rural_district: str | None = Query(None, max_length=max_len),
                place: str | None = Query(None, max_length=max_len, description="city or village")):
        if not any(v and norm(v) for v in (q, province, county, district, rural_district, place)):
            raise ApiError("give q (an address) or at least one of province, county, district, "
                           "rural_district, place")
        g = request.app.state.dataset.geocoder
        result = g.geocode(q, province=province, county=county, district=district,
                           rural_district=rural_district, place=place)
        return JSONResponse({"query": q, **result.to_dict()})

    @router.get("/reverse", summary="Province, county, deprivation, border flag and nearest place of a point")
    def reverse(request: Request, lon: str = Query(..., max_length=40, description="longitude (WGS 84)"),
                lat: str = Query(..., max_length=40, description="latitude (WGS 84)")):
        x, y = number(lon, "lon"), number(lat, "lat")
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            raise ApiError(f"lon={lon!r}, lat={lat!r} is not a longitude/latitude pair")
        return JSONResponse(request.app.state.dataset.geocoder.reverse(x, y))

    return router
