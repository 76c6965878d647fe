"""``/dashboard``: the management dashboard, a Persian page of figures with simple bar charts.

The numbers are :func:`coopgis.stats.group_stats` over the served cooperatives, the same function
behind ``/stats``, so the page and its CSV agree. Filters (kind, sector, status, ...) are the API's,
given by a form; the charts, the tables and the CSV link follow them. ``province=`` drills down to
that province's counties. Per-capita columns are per 10,000 inhabitants (census 1395), counties by
their census unit. Charts are inline SVG drawn on the server; the page needs no script at all.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from coopgis.api.html import render
from coopgis.api.params import CheckedRoute, filter_dependency
from coopgis.filters import FILTER_NAMES, CooperativeFilter
from coopgis.maps import MapSettings, load_presets
from coopgis.stats import group_stats
from coopgis.vocab import KINDS, SECTORS, STATUSES

COLUMNS = (("cooperatives", "تعاونی‌ها"), ("members", "اعضا"), ("jobs", "اشتغال"), ("women_led", "زن‌سرپرست"),
           ("troubled", "مشکل‌دار"), ("in_deprived_areas", "در مناطق فهرست‌شده محروم"))
PER_CAPITA = (("cooperatives_per_10k", "تعاونی در ۱۰هزار نفر"), ("members_per_10k", "عضو در ۱۰هزار نفر"),
              ("jobs_per_10k", "شغل در ۱۰هزار نفر"))
FORM = ("kind", "sector", "status")


def build_router(map_settings: MapSettings, settings=None) -> APIRouter:
    router = APIRouter(tags=["Maps"], route_class=CheckedRoute)
    filters = filter_dependency(getattr(settings, "max_filter_values", 100), getattr(settings, "max_filter_length",
                                                                                     2000))

    @router.get("/dashboard", summary="Management dashboard (HTML, Persian): figures by province, county, kind, "
                                      "status and year, filtered like /stats")
    def dashboard(request: Request, flt: CooperativeFilter = Depends(filters)):
        ds = request.app.state.dataset
        coll = ds.collections["cooperatives"]
        index = ds.stats_index
        mask = None if flt.is_empty() else flt.mask(coll)
        thematic = flt.thematic()
        thematic_mask = None if thematic.is_empty() else thematic.mask(coll)
        area = ds.figures.of(thematic_mask)
        province = flt.province[0] if flt.province and len(flt.province) == 1 and not flt.county else None
        provinces = group_stats(index, "province", thematic_mask, area)
        areas = group_stats(index, "county", mask, area, whole_country=False) if province else provinces
        total = areas[-1]
        rows = [r for r in areas[:-1] if r["key"] != "unknown"]
        by_kind = [r for r in group_stats(index, "kind", mask) if r["key"] != "total"]
        by_status = [r for r in group_stats(index, "status", mask) if r["key"] not in ("total", "unknown")]
        by_year = sorted((r for r in group_stats(index, "year", mask) if r["key"] not in ("total", "unknown")),
                         key=lambda r: int(r["key"]))
        where = "شهرستان" if province else "استان"
        charts = [
            {"id": "chart-years", "title": "ثبت تعاونی‌ها در هر سال (خورشیدی)", "bars": bars(by_year, "cooperatives",
                                                                                               ordered=False)},
            {"id": "chart-status", "title": "شمار تعاونی‌ها بر پایه وضعیت", "bars": bars(by_status, "cooperatives")},
            {"id": "chart-cooperatives", "title": f"شمار تعاونی‌ها در هر {where}", "bars": bars(rows, "cooperatives")},
            {"id": "chart-per-capita", "title": f"تعاونی در هر ۱۰٬۰۰۰ نفر در هر {where} (سرشماری ۱۳۹۵)",
             "bars": bars([r for r in rows if r["cooperatives_per_10k"] is not None], "cooperatives_per_10k")},
            {"id": "chart-kinds", "title": "شمار تعاونی‌ها بر پایه نوع", "bars": bars(by_kind, "cooperatives")},
        ]
        given = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_NAMES and v]
        thematic_given = [(k, v) for k, v in given if k not in ("province", "county")]
        csv_by = [("by", "county")] if province else [("by", "province")]
        maps, _ = load_presets(map_settings.maps_dir)
        return render(request, "dashboard.html", rows=rows, total=total, columns=COLUMNS, per_capita=PER_CAPITA,
                      charts=charts, maps=list(maps.values()), synthetic=ds.synthetic, province=province,
                      province_name=next((r["name"] for r in provinces if r["key"] == province), None),
                      troubled=next((r for r in by_status if r["key"] == "troubled"), None),
                      form=FORM, given=dict(thematic_given),
                      choices={"kind": KINDS, "sector": SECTORS, "status": STATUSES},
                      query=lambda extra=(): urlencode(list(thematic_given) + list(extra)),
                      csv=urlencode(csv_by + given + [("f", "csv")]))

    return router


def bars(rows: list[dict], field: str, ordered: bool = True) -> list[dict]:
    """Bars of one figure (largest first unless ``ordered`` is False), each with its share of the largest (0..1)."""
    shown = sorted(rows, key=lambda r: r[field] or 0, reverse=True) if ordered else list(rows)
    top = max((r[field] or 0 for r in shown), default=0) or 1
    return [{"key": r["key"], "label": r["name"] or r["key"], "value": r[field], "frac": (r[field] or 0) / top}
            for r in shown]
