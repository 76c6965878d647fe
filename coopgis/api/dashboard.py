"""``/dashboard``: the management dashboard, a Persian page of province figures with simple bar charts.

The numbers are :func:`coopgis.stats.group_stats` over the served cooperatives,
the same function behind ``/stats``, so the page and the CSV download agree.
Charts are inline SVG drawn on the server; the page needs no script at all.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from coopgis.api.html import render
from coopgis.maps import MapSettings, load_presets
from coopgis.stats import group_stats

COLUMNS = (("cooperatives", "تعاونی‌ها"), ("members", "اعضا"), ("jobs", "اشتغال"), ("women_led", "زن‌سرپرست"),
           ("troubled", "مشکل‌دار"), ("in_deprived_areas", "در مناطق محروم"))


def build_router(map_settings: MapSettings) -> APIRouter:
    router = APIRouter(tags=["Maps"])

    @router.get("/dashboard", summary="Management dashboard (HTML, Persian): figures by province")
    def dashboard(request: Request):
        dataset = request.app.state.dataset
        rows = group_stats(dataset.stats_index, "province")
        provinces = [r for r in rows if r["key"] != "total"]
        total = rows[-1]
        by_kind = [r for r in group_stats(dataset.stats_index, "kind") if r["key"] != "total"]
        charts = [
            {"id": "chart-cooperatives", "title": "شمار تعاونی‌ها در هر استان",
             "bars": bars(provinces, "cooperatives")},
            {"id": "chart-jobs", "title": "اشتغال در هر استان", "bars": bars(provinces, "jobs")},
            {"id": "chart-kinds", "title": "شمار تعاونی‌ها بر پایه نوع", "bars": bars(by_kind, "cooperatives")},
        ]
        maps, _ = load_presets(map_settings.maps_dir)
        return render(request, "dashboard.html", rows=provinces, total=total, columns=COLUMNS, charts=charts,
                      maps=list(maps.values()), synthetic=dataset.synthetic)

    return router


def bars(rows: list[dict], field: str) -> list[dict]:
    """Bars of one figure, largest first, each with its share of the largest (0..1)."""
    ordered = sorted(rows, key=lambda r: r[field], reverse=True)
    top = max((r[field] for r in ordered), default=0) or 1
    return [{"key": r["key"], "label": r["name"] or r["key"], "value": r[field], "frac": r[field] / top}
            for r in ordered]
