"""Standalone map files: a preset with every asset inlined and a bounded selection embedded as GeoJSON.

For e-mail or a USB stick: the file opens from ``file://`` with no network and
no server. The selection is filtered with the same parameters as the API and is
refused above ``MapSettings.max_render`` cooperatives (the served pages load
tiles instead and have no such limit). Boundaries are simplified along shared
edges (``shapely.coverage_simplify``) so neighbours still meet.
"""

from __future__ import annotations

import geopandas as gpd
import jdatetime
import numpy as np
import orjson
import shapely

from coopgis.dataset import Dataset, plain_value
from coopgis.filters import FILTER_NAMES, CooperativeFilter, parse_filter, select
from coopgis.mappage import Page, page_facts, render_page
from coopgis.maps import MapSettings, Preset
from coopgis.text import to_persian_digits

POINT_FIELDS = ("registration_no", "name", "kind", "sector", "status", "members", "jobs", "precision", "county",
                "province", "deprived", "border", "women_led")
PROVINCE_FIELDS = ("iso_3166_2", "name_fa", "cooperatives", "members", "jobs", "in_deprived_areas")
COUNTY_FIELDS = ("osm_relation_id", "province_iso", "name_fa", "official_county_code", "border", "cooperatives",
                 "members", "jobs", "in_deprived_areas")
DEPRIVATION_FIELDS = ("deprivation_class", "deprived", "source_url", "note")
PROVINCE_TOLERANCE = 0.03      # degrees; coverage_simplify removes vertices below this squared area
COUNTY_TOLERANCE = 0.02
NATIONAL_LABEL_ZOOM = 9        # a file of the whole country names places down to cities, not villages
LABEL_MARGIN = 0.1             # degrees of labels kept around the selected provinces or counties


class RenderError(Exception):
    """A standalone file that cannot be made; the message says why and what to do."""


class SelectionTooLarge(RenderError):
    """More cooperatives match than a standalone file may hold."""

    def __init__(self, matched: int, limit: int):
        self.matched, self.limit = matched, limit
        super().__init__(
            f"{matched:,} cooperatives match; a standalone file holds at most {limit:,}. Narrow the selection "
            "with --province, --county, --kind, --sector, --status, --deprived, --registered-year or "
            "--precision (the served map at /maps has no such limit: it loads tiles).")


def parse_filters(dataset: Dataset, values: dict[str, str | None]) -> CooperativeFilter:
    """The API's filters from plain values (CLI options); InputError for unknown values, as in the API."""
    return parse_filter(dataset, {name: values.get(name) for name in FILTER_NAMES})


def render_standalone(preset: Preset, dataset: Dataset, flt: CooperativeFilter, map_settings: MapSettings,
                      cluster_max_zoom: int = 11, label: str = "", made: str | None = None) -> str:
    """The HTML of a standalone file; :class:`RenderError` when the preset or selection does not fit.

    ``made`` is the Jalali date the file says it was made (default: today).
    """
    if preset.controls["field"]:
        raise RenderError(f"the map {preset.name!r} needs the server (nearest cooperatives, search, location "
                          "reports); render a map without a field panel, such as national, deprivation or "
                          "sectors")
    coll = dataset.collections["cooperatives"]
    rows = select(coll, flt, None)
    if len(rows) > map_settings.max_render:
        raise SelectionTooLarge(len(rows), map_settings.max_render)
    lons, lats = coll.points
    rows = rows[np.isfinite(lons[rows]) & np.isfinite(lats[rows])]
    provinces = flt.province or (sorted(set(coll.frame["province"].iloc[rows].dropna())) if flt.county else None)
    data = {"cooperatives": _points(coll, rows),
            "provinces": _polygons(dataset.collections["provinces"].frame, PROVINCE_FIELDS, PROVINCE_TOLERANCE),
            "counties": _counties(dataset, provinces),
            "places": _labels(dataset, flt)}
    extra = {}
    if len(rows) and (flt.province or flt.county):
        lon, lat = lons[rows], lats[rows]
        extra["fit"] = [[float(lat.min()), float(lon.min())], [float(lat.max()), float(lon.max())]]
    made = made or jdatetime.date.today().strftime("%Y/%m/%d")
    note = (f"پرونده مستقل، ساخته‌شده {to_persian_digits(made)}: {to_persian_digits(f'{len(rows):,}')} تعاونی"
            + (f" (\u2068{label}\u2069)" if label else "") + ". رنگ استان‌ها و شهرستان‌ها جمع کل داده‌هاست.")
    page = Page(base="", web_dir=map_settings.web_dir, facts=page_facts(dataset, cluster_max_zoom), inline=True,
                data=data, note=note, extra=extra)
    return render_page(preset, page)


def _labels(dataset: Dataset, flt: CooperativeFilter) -> list[list]:
    """The place-name labels the file shows: every label of the selected provinces or counties (with a
    margin), or the labels down to :data:`NATIONAL_LABEL_ZOOM` for the whole country."""
    table = dataset.place_labels()
    areas = None
    if flt.county:
        counties = dataset.collections["counties"].frame
        areas = counties[counties["osm_relation_id"].astype(str).isin([str(c) for c in flt.county])]
    elif flt.province:
        provinces = dataset.collections["provinces"].frame
        areas = provinces[provinces["iso_3166_2"].isin(flt.province)]
    if areas is None or areas.empty:
        return table.records(table.rows_in((-180, -90, 180, 90), NATIONAL_LABEL_ZOOM))
    minx, miny, maxx, maxy = areas.total_bounds
    return table.records(table.rows_in((minx - LABEL_MARGIN, miny - LABEL_MARGIN, maxx + LABEL_MARGIN,
                                        maxy + LABEL_MARGIN)))


def _points(coll, rows: np.ndarray) -> dict:
    frame = coll.frame.iloc[rows]
    values = {f: frame[f].tolist() if f in frame else [None] * len(rows) for f in POINT_FIELDS}
    feats = []
    for i, (x, y) in enumerate(zip(coll.lon[rows].tolist(), coll.lat[rows].tolist(), strict=False)):
        props = {f: plain_value(values[f][i]) for f in POINT_FIELDS}
        feats.append({"type": "Feature", "id": props["registration_no"],
                      "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                      "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def _counties(dataset: Dataset, provinces: list[str] | None) -> dict:
    counties = dataset.collections["counties"].frame
    deprivation = dataset.collections["deprivation"].frame.set_index("osm_relation_id")
    frame = counties.join(deprivation[list(DEPRIVATION_FIELDS)], on="osm_relation_id")
    if provinces:
        frame = frame[frame["province_iso"].isin(provinces)]
    return _polygons(frame, COUNTY_FIELDS + DEPRIVATION_FIELDS, COUNTY_TOLERANCE)


def _polygons(frame: gpd.GeoDataFrame, fields: tuple[str, ...], tolerance: float) -> dict:
    geoms = shapely.set_precision(shapely.coverage_simplify(frame.geometry.values, tolerance), 0.001)
    texts = shapely.to_geojson(geoms)
    records = frame[list(fields)].astype(object).to_dict("records")
    feats = [{"type": "Feature", "geometry": orjson.loads(t),
              "properties": {k: plain_value(v) for k, v in r.items()}}
             for t, r in zip(texts, records, strict=False) if t is not None]
    return {"type": "FeatureCollection", "features": feats}
