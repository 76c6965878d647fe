"""Per-county offline field packs: one zip a field officer takes along where there is no signal.

:func:`build_pack` writes, for one county, its cooperatives as GeoJSON (with the honest-list
properties of :mod:`coopgis.standins`, which the offline field page reads), KML (styled by
precision, Persian names), GPX waypoints (OsmAnd, Organic Maps, Locus) and CSV (UTF-8 with BOM,
the same columns as the API's download); the county's placed villages (GeoJSON, GPX) and its
boundary; a standalone HTML map of the county (place names, cooperatives by precision) that
opens from ``file://`` with no network; a Persian ``README.txt`` with the data's date, the counts
and the attribution; and ``MANIFEST.sha256`` over every other file (``sha256sum -c`` reads it).

The zip is deterministic: fixed timestamps and permissions, sorted entries, the data's own date
(never today's), stable element names in the HTML. The same data gives byte-identical files.
Only public fields are written, or the staff fields when ``level="staff"``.

Not here: HTTP (``api/packs.py``), the command line (``cli.py``), the standalone renderer
(``standalone.py``, reused for ``map.html``).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

import jdatetime
import numpy as np
import orjson
import shapely

from coopgis.dataset import ATTRIBUTION, Dataset
from coopgis.filters import CooperativeFilter, OutputCrs
from coopgis.formats import csv_stream
from coopgis.maps import MapSettings, Preset, PresetError, preset_from_text
from coopgis.standalone import render_standalone
from coopgis.standins import AREA_FA, PLACE_FA
from coopgis.text import to_persian_digits
from coopgis.vocab import PRECISION_FA

ZIP_TIME = (1980, 1, 1, 0, 0, 0)       # the earliest time a zip can hold: no build time leaks in
ZIP_LEVEL = 9
PACK_CLUSTER_MAX_ZOOM = 9              # the county map shows each cooperative from zoom 10
CRS84 = OutputCrs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", None, False)
GPX_SYMBOLS = {False: "Flag, Green", True: "Flag, Red"}
KML_COLORS = {False: "ff4f6e0b", True: "ff8a8a8a"}     # aabbggrr: the maps' green; grey for stand-ins
PACK_PRESET = """
title_fa = "بسته میدانی شهرستان"
title_en = "County field pack"
description_fa = "تعاونی‌های شهرستان با دقت مکانشان و نام آبادی‌ها، بدون نیاز به اینترنت."
description_en = "The county's cooperatives by the precision of their location, with place names; works offline."
audience = "field officers"
[view]
zoom = 9
min_zoom = 5
max_zoom = 18
[controls]
layers = true
fullscreen = false
scale = true
locate = true
[[layers]]
id = "counties"
source = "counties"
style = "outline"
title_fa = "مرز شهرستان‌ها"
title_en = "County outlines"
[[layers]]
id = "provinces"
source = "provinces"
style = "outline"
title_fa = "مرز استان‌ها"
title_en = "Province outlines"
[[layers]]
id = "cooperatives"
source = "cooperatives"
style = "clusters"
title_fa = "تعاونی‌ها"
title_en = "Cooperatives"
[legend]
sections = ["precision", "clusters"]
"""


class PackError(ValueError):
    """A pack that cannot be made; the message says why."""


class UnknownCounty(PackError):
    """No county goes by the name or number given."""


class AmbiguousCounty(PackError):
    """The name given is that of several counties (the message lists them)."""


@dataclass(frozen=True)
class Pack:
    """A finished pack: the zip's bytes, its file name and what it holds."""

    data: bytes
    filename: str
    county: int
    county_name: str
    cooperatives: int
    villages: int
    sha256: str


def pack_preset() -> Preset:
    """The map preset of a pack's ``map.html`` (not one of the served maps)."""
    try:
        return preset_from_text("pack", PACK_PRESET)
    except PresetError as exc:  # a programming error, said plainly
        raise PackError(str(exc)) from exc


def build_pack(dataset: Dataset, county: int, map_settings: MapSettings, level: str = "public") -> Pack:
    """The pack of the county with OSM relation id ``county``; PackError when it is not a county."""
    counties = dataset.collections["counties"].frame
    match = counties.loc[counties["osm_relation_id"] == int(county)]
    if match.empty:
        raise UnknownCounty(f"no county with OSM relation id {county}")
    info = match.iloc[0]
    coll = dataset.collections["cooperatives"]
    osm = coll.frame["county_osm"].to_numpy(dtype=float, na_value=np.nan)
    rows = np.flatnonzero(osm == float(county))
    lon, lat = coll.points
    located = rows[np.isfinite(lon[rows]) & np.isfinite(lat[rows])]
    villages = _villages(dataset, int(county))
    date = _data_date(dataset)
    files: dict[str, bytes] = {}
    files["cooperatives.geojson"] = _cooperatives_geojson(dataset, rows, level)
    files["cooperatives.csv"] = b"".join(csv_stream(coll, rows, CRS84, level))
    points = _points(dataset, located)
    files["cooperatives.gpx"] = _gpx(
        [(pt.lon, pt.lat, pt.name, pt.description, "تقریبی" if pt.stand_in else "معلوم", GPX_SYMBOLS[pt.stand_in])
         for pt in points], f"تعاونی‌های شهرستان {info['name_fa']}", date)
    files["cooperatives.kml"] = _kml(points, str(info["name_fa"]))
    files["villages.geojson"] = orjson.dumps({"type": "FeatureCollection", "features": villages})
    files["villages.gpx"] = _gpx(
        [(f["geometry"]["coordinates"][0], f["geometry"]["coordinates"][1],
          f["properties"]["name"] + ("؟" if f["properties"]["unsure"] else ""),
          "روستا؛ نقطه " + ("قطعی نیست (نام‌یابی ضعیف یا دور از دیگر آبادی‌های دهستان)" if f["properties"]["unsure"]
                            else "از نام‌یابی قوی"), "روستا", "Village") for f in villages],
        f"آبادی‌های شهرستان {info['name_fa']}", date)
    files["county.geojson"] = _county_geojson(match)
    files["map.html"] = _map_html(dataset, int(county), str(info["name_fa"]), map_settings, len(rows), date)
    files["README.txt"] = _readme(dataset, info, rows, located, villages, date, level).encode("utf-8")
    files["MANIFEST.sha256"] = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n"
                                       for n in sorted(files)).encode("ascii")
    data = _zip(files)
    return Pack(data=data, filename=f"coopgis-pack-{int(county)}.zip", county=int(county),
                county_name=str(info["name_fa"]), cooperatives=len(rows), villages=len(villages),
                sha256=hashlib.sha256(data).hexdigest())


def resolve_county(dataset: Dataset, value: str) -> int:
    """The OSM relation id of a county named by OSM id, official code or name; PackError when unknown or
    ambiguous (the message lists the candidates)."""
    ids = dataset.names.county(value) or []
    distinct = sorted({int(i) for i in ids})
    if not distinct:
        raise UnknownCounty(f"no county {value!r}: give its OSM relation id, official code or name")
    if len(distinct) > 1:
        counties = dataset.collections["counties"].frame.set_index("osm_relation_id")
        named = ", ".join(f"{i} ({counties.loc[i, 'name_fa']}, {counties.loc[i, 'province_iso']})" for i in distinct)
        raise AmbiguousCounty(f"{value!r} names {len(distinct)} counties: {named}; give the OSM relation id")
    return distinct[0]


# ---- the files ---------------------------------------------------------------------------------

def _cooperatives_geojson(dataset: Dataset, rows: np.ndarray, level: str) -> bytes:
    coll = dataset.collections["cooperatives"]
    guide = dataset.field_guide()
    lon, lat = coll.points
    names, precision = coll.frame["name"].to_numpy(object), coll.frame["precision"].to_numpy(object)
    uncertainty = coll.frame["uncertainty_m"].to_numpy(dtype=float, na_value=np.nan)
    parts = []
    for r in rows.tolist():
        honest = guide.describe(r, precision[r] if isinstance(precision[r], str) else None, float(lon[r]),
                                float(lat[r]), names[r] if isinstance(names[r], str) else None)
        honest["approximate"] = bool(honest["stand_in"] or (np.isfinite(uncertainty[r]) and uncertainty[r] > 0))
        honest["geo_uri"] = honest["directions"]["geo_uri"] if honest["directions"] else None
        parts.append(coll.feature_with(r, honest, level))
    return b'{"type":"FeatureCollection","features":[' + b",".join(parts) + b"]}"


KML_DATA = ("registration_no", "kind_fa", "sector_fa", "status_fa", "precision", "uncertainty_m", "place",
            "rural_district", "district")


@dataclass
class _Point:
    """A located cooperative as the waypoint and placemark files say it."""

    lon: float
    lat: float
    name: str
    description: str
    stand_in: bool
    data: dict[str, str]


def _points(dataset: Dataset, rows: np.ndarray) -> list[_Point]:
    """The located ``rows`` with their names and Persian descriptions (column by column, not row by row)."""
    coll = dataset.collections["cooperatives"]
    guide = dataset.field_guide()
    lon, lat = coll.points
    columns = {c: coll.frame[c].iloc[rows].to_numpy(dtype=object) for c in (*KML_DATA, "name")}
    out = []
    for k, r in enumerate(rows.tolist()):
        values = {c: _text(columns[c][k]) for c in columns}
        stand_in = bool(guide.stand_in[r])
        name = values["name"] or values["registration_no"]
        out.append(_Point(float(lon[r]), float(lat[r]), f"{name} (مکان تقریبی)" if stand_in else name,
                          _description(values, stand_in, guide.area[r], guide.goto_level[r], guide.goto_name[r]),
                          stand_in, {c: values[c] for c in KML_DATA}))
    return out


def _description(values: dict[str, str], stand_in: bool, area: str | None, goto_level: str | None,
                 goto_name: str | None) -> str:
    """What a waypoint or placemark says of its point, in Persian."""
    precision = values["precision"]
    words = [f"شماره ثبت {to_persian_digits(values['registration_no'])}",
             f"دقت مکان: {PRECISION_FA.get(precision, precision)}"]
    try:
        metres = float(values["uncertainty_m"])
    except ValueError:
        metres = 0.0
    if metres > 0:
        words.append("تا حدود " + _distance_fa(metres) + " دورتر")
    if stand_in:
        words.append(" ".join(f"مکان دقیق این تعاونی معلوم نیست؛ این نقطه نماینده {AREA_FA.get(precision, '')} "
                              f"{area or ''} است، نه جای تعاونی".split()))
        if goto_name:
            words.append(f"نزدیک‌ترین آبادی معلوم: {PLACE_FA.get(goto_level or '', '')} {goto_name}".strip())
    return "؛ ".join(words)


def _distance_fa(metres: float) -> str:
    if metres < 1000:
        return _fa_number(max(100, round(metres / 100) * 100)) + " متر"
    km = round(metres / 1000, 1) if metres < 10_000 else round(metres / 1000)
    return to_persian_digits(f"{km:g}").replace(".", "٫") + " کیلومتر"


def _fa_number(n: int) -> str:
    """A whole number in Persian digits with the Persian thousands separator."""
    return to_persian_digits(f"{n:,}").replace(",", "٬")


def _gpx(points: list[tuple], title: str, date: str) -> bytes:
    """GPX 1.1 waypoints: (lon, lat, name, description, type, symbol)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<gpx version="1.1" creator="coopgis" xmlns="http://www.topografix.com/GPX/1/1">',
           f"<metadata><name>{escape(title)}</name><desc>{escape(ATTRIBUTION)}</desc>"
           f"<time>{escape(date)}T00:00:00Z</time></metadata>"]
    for lon, lat, name, desc, kind, sym in points:
        out.append(f'<wpt lat="{lat:.6f}" lon="{lon:.6f}"><name>{escape(name)}</name><desc>{escape(desc)}</desc>'
                   f"<sym>{escape(sym)}</sym><type>{escape(kind)}</type></wpt>")
    out.append("</gpx>\n")
    return "\n".join(out).encode("utf-8")


def _kml(points: list[_Point], county_name: str) -> bytes:
    """KML 2.2: a folder of known locations and one of stand-ins, each styled, with Persian names."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>',
           f"<name>{escape('تعاونی‌های شهرستان ' + county_name)}</name>",
           f"<description>{escape(ATTRIBUTION)}</description>"]
    for stand_in in (False, True):
        out.append(f'<Style id="{"approximate" if stand_in else "known"}"><IconStyle><color>{KML_COLORS[stand_in]}'
                   f"</color><scale>{'0.8' if stand_in else '1.1'}</scale></IconStyle>"
                   "<LabelStyle><scale>0.8</scale></LabelStyle></Style>")
    for stand_in, title in ((False, "مکان معلوم (دقیق، تأییدشده، روستا یا شهر)"),
                            (True, "مکان تقریبی: نقطه نماینده دهستان، بخش، شهرستان یا استان")):
        out.append(f"<Folder><name>{escape(title)}</name>")
        for pt in points:
            if pt.stand_in != stand_in:
                continue
            data = "".join(f"<Data name={quoteattr(c)}><value>{escape(v)}</value></Data>" for c, v in pt.data.items())
            out.append(f"<Placemark><name>{escape(pt.name)}</name><description>{escape(pt.description)}</description>"
                       f"<styleUrl>#{'approximate' if stand_in else 'known'}</styleUrl>"
                       f"<ExtendedData>{data}</ExtendedData>"
                       f"<Point><coordinates>{pt.lon:.6f},{pt.lat:.6f}</coordinates></Point></Placemark>")
        out.append("</Folder>")
    out.append("</Document></kml>\n")
    return "\n".join(out).encode("utf-8")


def _text(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    try:
        if v != v:   # pandas' missing values
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


def _villages(dataset: Dataset, county: int) -> list[dict]:
    """The county's placed villages as GeoJSON features, with the zooms their labels show at."""
    p = dataset.boundaries.places
    osm = p["county_osm"].to_numpy(dtype=float, na_value=np.nan)
    ok = (p["level"] == "village").to_numpy() & (osm == float(county)) & p["lon"].notna().to_numpy() \
        & p["settlement"].to_numpy(bool)
    table = dataset.place_labels()
    zooms = {(table.code[i], table.kind[i]): (int(table.min_zoom[i]), int(table.max_zoom[i]))
             for i in np.flatnonzero(table.county_osm == county).tolist()}
    rd_names = dict(zip(p.loc[p["level"] == "rural_district", "official_id"],
                        p.loc[p["level"] == "rural_district", "name"], strict=False))
    out = []
    for r in p.loc[ok].sort_values("code", kind="stable").itertuples():
        unsure = r.point_strength != "strong" or bool(r.point_outlier)
        label = zooms.get((r.code, "village_unsure" if unsure else "village"))
        out.append({"type": "Feature", "id": r.code,
                    "geometry": {"type": "Point", "coordinates": [round(float(r.lon), 6), round(float(r.lat), 6)]},
                    "properties": {"name": " ".join(str(r.name).split()).strip("() "), "code": r.code,
                                   "rural_district": rd_names.get(r.rural_district_id),
                                   "strength": r.point_strength, "outlier": bool(r.point_outlier),
                                   "unsure": unsure, "label_min_zoom": label[0] if label else None,
                                   "label_max_zoom": label[1] if label else None}})
    return out


def _county_geojson(match) -> bytes:
    row = match.iloc[0]
    props = {"osm_relation_id": int(row["osm_relation_id"]), "name_fa": row["name_fa"], "name_en": row["name_en"],
             "official_county_code": row["official_county_code"] or None, "province_iso": row["province_iso"],
             "border": bool(row["border"]), "cooperatives": int(row["cooperatives"])}
    geometry = orjson.loads(shapely.to_geojson(shapely.set_precision(row.geometry, 1e-6)))
    return orjson.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": props["osm_relation_id"], "geometry": geometry, "properties": props}]})


def _map_html(dataset: Dataset, county: int, name: str, map_settings: MapSettings, count: int, date: str) -> bytes:
    """The county's standalone map, with stable element names so the same data gives the same bytes."""
    settings = MapSettings(maps_dir=map_settings.maps_dir, web_dir=map_settings.web_dir,
                           max_render=max(map_settings.max_render, count))
    made = jdatetime.date.fromgregorian(date=datetime.fromisoformat(date).date()).strftime("%Y/%m/%d")
    html = render_standalone(pack_preset(), dataset, CooperativeFilter(county=[str(county)]), settings,
                             PACK_CLUSTER_MAX_ZOOM, label=f"شهرستان {name}", made=made)
    return _stable_names(html).encode("utf-8")


def _stable_names(html: str) -> str:
    """folium names its elements with random hex ids; number them in order of appearance instead."""
    seen: dict[str, str] = {}

    def name(m: re.Match) -> str:
        return m.group(1) + "_" + seen.setdefault(m.group(2), f"{len(seen):032x}")

    return re.sub(r"(?<![0-9A-Za-z_])([a-z][a-z0-9_]*)_([0-9a-f]{32})(?![0-9a-f])", name, html)


def _readme(dataset: Dataset, info, rows: np.ndarray, located: np.ndarray, villages: list[dict], date: str,
            level: str) -> str:
    coll = dataset.collections["cooperatives"]
    guide = dataset.field_guide()
    stand_ins = int(guide.stand_in[located].sum())
    fa = _fa_number
    jalali = jdatetime.date.fromgregorian(date=datetime.fromisoformat(date).date()).strftime("%Y/%m/%d")
    precision = coll.frame["precision"].iloc[rows].value_counts()
    precision = precision[precision > 0]          # a column held as categories counts the absent ones too
    lines = [
        f"بسته میدانی شهرستان {info['name_fa']} ({info['name_en']})",
        f"شناسه شهرستان در OpenStreetMap: {int(info['osm_relation_id'])}"
        + (f"؛ کد رسمی: {info['official_county_code']}" if info["official_county_code"] else ""),
        f"تاریخ داده‌ها: {to_persian_digits(jalali)} ({date})",
        "",
        f"تعاونی‌ها: {fa(len(rows))} (با مکان: {fa(len(located))}؛ بی‌مکان: {fa(len(rows) - len(located))})",
        f"  مکان معلوم (دقیق، تأییدشده، روستا یا شهر): {fa(len(located) - stand_ins)}",
        f"  مکان تقریبی (نقطه نماینده دهستان، بخش، شهرستان یا استان): {fa(stand_ins)}",
    ]
    lines += [f"    {PRECISION_FA.get(k, k)}: {fa(int(v))}" for k, v in precision.items()]
    lines += [
        f"آبادی‌های مکان‌دار شهرستان: {fa(len(villages))}"
        f" (نقطه قطعی نیست: {fa(sum(1 for v in villages if v['properties']['unsure']))})",
        "",
        "پرونده‌ها:",
        "  map.html — نقشه شهرستان؛ بدون اینترنت در مرورگر باز می‌شود.",
        "  cooperatives.geojson — تعاونی‌ها (QGIS و برگه میدانی coopgis).",
        "  cooperatives.kml — تعاونی‌ها با نام فارسی، جدا به مکان معلوم و تقریبی (Google Earth، Organic Maps).",
        "  cooperatives.gpx — نقطه‌های راه (OsmAnd، Organic Maps، Locus)؛ «مکان تقریبی» در نام یعنی جای دقیق "
        "معلوم نیست.",
        "  cooperatives.csv — جدول (UTF-8 با BOM، برای Excel).",
        "  villages.geojson و villages.gpx — آبادی‌های مکان‌دار شهرستان.",
        "  county.geojson — مرز شهرستان.",
        "  MANIFEST.sha256 — چکیده SHA-256 همه پرونده‌ها (sha256sum -c MANIFEST.sha256).",
        "",
        "نقطه نماینده جای تعاونی نیست: تعاونی ممکن است تا فاصله گفته‌شده دورتر باشد. اگر جای درست را یافتید، "
        "در برگه میدانی «گزارش مکان درست» را بفرستید.",
        "فیلدها: " + ("عمومی و کارشناسی (GIS)" if level == "staff" else "فقط فیلدهای عمومی") +
        "؛ داده‌های شخصی (تلفن و ...) هرگز در بسته نیست.",
    ]
    if dataset.synthetic:
        lines.append("هشدار: این داده‌ها نمونه ساختگی‌اند و هیچ تعاونی واقعی را نشان نمی‌دهند.")
    lines += ["", "منابع و مجوزها:", ATTRIBUTION, ""]
    return "\n".join(lines)


def _data_date(dataset: Dataset) -> str:
    """The date of the served data (YYYY-MM-DD): the ingest's, or the latest accepted correction's if later."""
    stamps = [str(dataset.ingest_report.get("created") or "")]
    stamps += [str(d.get("at") or "") for d in dataset.verified.values()]
    latest = max((s for s in stamps if s), default="1970-01-01")
    return latest[:10]


def _zip(files: dict[str, bytes]) -> bytes:
    """A zip of ``files`` that depends on nothing but their names and bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            zf.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL)
    return buf.getvalue()
