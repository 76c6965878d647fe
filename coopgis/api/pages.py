"""Pages for people: the Persian front door's figures, help pages per kind of user, and what the HTML views of
collections, items and one item need beyond the OGC documents (labels, filters, download limits, a small map).

The OGC routes (``features.py``) decide the format; when it is HTML they render their template with the
context made here. ``/help`` and ``/help/{audience}`` are served from here.
"""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Path, Request

from coopgis.api.errors import NotFound
from coopgis.api.html import render
from coopgis.api.params import CheckedRoute
from coopgis.dataset import ATTRIBUTION_SHORT, Collection
from coopgis.filters import FILTER_NAMES
from coopgis.labels import ITEM_COLUMNS, ITEM_HIDDEN, field_label, missing
from coopgis.maps import MapSettings, load_presets
from coopgis.vocab import KINDS, PRECISION_FA, SECTORS, STATUSES

AUDIENCES = {
    "planners": "برنامه‌ریزان و مدیران",
    "field": "کارشناسان میدانی",
    "gis": "کارشناسان GIS",
}
DOWNLOADS = (("csv", "CSV (اکسل)"), ("gpkg", "GeoPackage"), ("kml", "KML (گوگل ارث)"), ("geojson", "GeoJSON"))
FORM_FILTERS = ("kind", "sector", "status", "province", "registered_year", "women_led", "border", "deprived",
                "precision")


def build_router(map_settings: MapSettings) -> APIRouter:
    router = APIRouter(tags=["Pages"], route_class=CheckedRoute)

    @router.get("/help", summary="Help pages (HTML, Persian): one per kind of user")
    def help_index(request: Request):
        return render(request, "help.html", audience=None, audiences=AUDIENCES,
                      **front_door(request, map_settings))

    @router.get("/help/{audience}", summary="Help for planners, field officers or GIS staff (HTML, Persian)")
    def help_page(request: Request, audience: str = Path(description="planners, field or gis")):
        if audience not in AUDIENCES:
            raise NotFound(f"no help page {audience!r}; pages are: {', '.join(AUDIENCES)}",
                           detail_fa=f"راهنمای «{audience}» نداریم؛ راهنماها: " + "، ".join(AUDIENCES.values()))
        return render(request, "help.html", audience=audience, audiences=AUDIENCES,
                      **front_door(request, map_settings))

    return router


def front_door(request: Request, map_settings: MapSettings | None = None) -> dict:
    """What the Persian front door says the service holds, and where to go from it."""
    ds = request.app.state.dataset
    settings = request.app.state.settings
    coops = ds.cooperatives
    maps, _ = load_presets((map_settings or MapSettings()).maps_dir)
    located = np.isfinite(ds.collections["cooperatives"].lon).sum()
    return {
        "figures": {"cooperatives": int(len(coops)),
                    "members": int(coops["members"].fillna(0).sum()) if len(coops) else 0,
                    "jobs": int(coops["jobs"].fillna(0).sum()) if len(coops) else 0,
                    "located": int(located),
                    "troubled": int((coops["status"] == "troubled").sum()) if len(coops) else 0,
                    "provinces": len(ds.collections["provinces"]), "counties": len(ds.collections["counties"])},
        "maps": list(maps.values()), "synthetic": ds.synthetic, "sources": ATTRIBUTION_SHORT,
        "public_max_download": settings.public_max_download, "max_download": settings.max_download,
    }


def items_context(request: Request, coll: Collection, matched: int, level: str,
                  columns: tuple[str, ...] | None = None) -> dict:
    """The items page's extras: its columns (``properties=``, or the usual ones), the filter form's values and
    choices, the download buttons (the ``items.csv``-style URLs: each one the whole selection as a file)."""
    settings = request.app.state.settings
    ds = request.app.state.dataset
    most = settings.max_download if level == "staff" else min(settings.max_download, settings.public_max_download)
    given = {k: v for k, v in request.query_params.items() if k in FILTER_NAMES and v}
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k not in ("f", "limit", "offset") and v]
    query = urlencode(kept)
    downloads = [{"format": fmt, "title": title, "href": f"items.{fmt}" + (f"?{query}" if query else "")}
                 for fmt, title in DOWNLOADS]
    provinces = ds.collections["provinces"].frame
    return {
        "columns": list(columns) if columns else ITEM_COLUMNS.get(coll.name, coll.properties[:10]),
        "field_label": field_label,
        "filters": given,
        "form": coll.name == "cooperatives",
        "choices": {"kind": [(t.code, t.fa) for t in KINDS], "sector": [(t.code, t.fa) for t in SECTORS],
                    "status": [(t.code, t.fa) for t in STATUSES],
                    "province": sorted(zip(provinces["iso_3166_2"], provinces["name_fa"], strict=True),
                                       key=lambda p: p[1]),
                    "precision": list(PRECISION_FA.items())},
        "downloads": downloads, "download_limit": most, "too_many": matched > most,
        "staff": level == "staff", "public_max_download": settings.public_max_download,
        "province_names": dict(zip(provinces["iso_3166_2"], provinces["name_fa"], strict=True)),
    }


def item_context(request: Request, coll: Collection, row: int) -> dict:
    """One item page's extras: Persian labels, and the small map's configuration."""
    ds = request.app.state.dataset
    provinces = ds.collections["provinces"].frame
    cfg: dict = {"base": request.scope.get("app_root_path", request.scope.get("root_path", "")).rstrip("/"),
                 "attribution": ATTRIBUTION_SHORT, "lon": None, "lat": None}
    if coll.lon is not None:
        lon, lat = coll.points
        if np.isfinite(lon[row]) and np.isfinite(lat[row]):
            cfg.update(lon=float(lon[row]), lat=float(lat[row]))
            u = coll.frame["uncertainty_m"].iat[row] if "uncertainty_m" in coll.frame else None
            cfg["uncertainty_m"] = None if u is None or missing(u) else float(u)
            cfg["coarse"] = coll.frame["precision"].iat[row] in ("county", "province", "district", "rural_district")
    elif coll.bounds is not None:
        b = coll.bounds[row]
        cfg["bounds"] = [[float(b[1]), float(b[0])], [float(b[3]), float(b[2])]]
    return {"field_label": field_label, "map_config": cfg, "hidden": ITEM_HIDDEN,
            "province_names": dict(zip(provinces["iso_3166_2"], provinces["name_fa"], strict=True))}
