"""Output encodings of a selection of features: GeoJSON (streamed), CSV, GeoPackage and KML.

Each encoder takes a collection, the selected row numbers and an output CRS (and, where
asked, the properties to write and whether to leave the geometry out), and returns an
iterator of bytes (GeoJSON, CSV) or a finished file: a GeoPackage 1.2 written by GDAL through
pyogrio (typed fields, dates as DATE), KML 2.2 written here (placemarks named in Persian,
styled by kind, typed ExtendedData). Only the properties of the caller's access level are
ever written.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import orjson
import pandas as pd
import shapely

from coopgis import budget
from coopgis.dataset import Collection, plain_value
from coopgis.filters import OutputCrs, transformer
from coopgis.queryables import column_type

CHUNK = 2000
EXTENSION = {"geojson": "geojson", "json": "json", "csv": "csv", "gpkg": "gpkg", "kml": "kml"}
# Spreadsheet programs run cells that start with these as formulas.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def geometries_in(coll: Collection, rows: np.ndarray, crs: OutputCrs) -> list[bytes] | None:
    """Serialised geometries of ``rows`` in ``crs``; None means the cached CRS84 ones apply."""
    if crs.epsg is None:
        return None
    geoms = coll.frame.geometry.values[rows]
    if crs.epsg == 4326:
        out = shapely.transform(geoms, lambda xy: xy[:, ::-1])  # EPSG:4326 is latitude first
    else:
        t = transformer(crs.epsg)
        out = shapely.transform(geoms, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
    return [g.encode() if isinstance(g, str) else b"null" for g in shapely.to_geojson(out)]


def feature_chunks(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str = "public",
                   columns: tuple[str, ...] | None = None, skip_geometry: bool = False) -> Iterator[bytes]:
    """Comma-joined Feature bytes of ``rows``, a chunk at a time (``columns``: only these properties;
    ``skip_geometry``: geometry null)."""
    if columns is not None or skip_geometry:
        yield from _shaped_chunks(coll, rows, crs, level, columns, skip_geometry)
        return
    for start in range(0, len(rows), CHUNK):
        budget.check()
        part = rows[start:start + CHUNK]
        geoms = geometries_in(coll, part, crs)
        if geoms is None:
            yield coll.features(part, level)
        else:
            yield b",".join(coll.feature(int(i), g, level) for i, g in zip(part, geoms, strict=False))


def geojson_stream(coll: Collection, rows: np.ndarray, crs: OutputCrs, head: dict,
                   level: str = "public", columns: tuple[str, ...] | None = None,
                   skip_geometry: bool = False) -> Iterator[bytes]:
    """A FeatureCollection as a stream: ``head`` members, then the features chunk by chunk."""
    yield b'{"type":"FeatureCollection",' + orjson.dumps(head)[1:-1] + b',"features":['
    first = True
    for chunk in feature_chunks(coll, rows, crs, level, columns, skip_geometry):
        if chunk:
            yield (b"" if first else b",") + chunk
            first = False
    yield b"]}"


def csv_stream(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str = "public",
               columns: tuple[str, ...] | None = None, skip_geometry: bool = False) -> Iterator[bytes]:
    """CSV with a BOM (so Excel reads Persian), x/y columns for points, formulas neutralised."""
    cols = list(_with_id(coll, columns) if columns is not None else coll.columns(level))
    points = coll.lon is not None and not skip_geometry
    xy_names = ["lat", "lon"] if crs.lat_first else (["lon", "lat"] if crs.epsg is None else ["x", "y"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols + (xy_names if points else []))
    yield "\ufeff".encode() + buf.getvalue().encode()
    frame = coll.frame
    for start in range(0, len(rows), CHUNK):
        budget.check()
        part = rows[start:start + CHUNK]
        buf = io.StringIO()
        writer = csv.writer(buf)
        values = frame[cols].iloc[part].astype(object).where(frame[cols].iloc[part].notna(), None)
        if points:
            lons, lats = coll.points
            x, y = lons[part], lats[part]
            if crs.epsg not in (None, 4326):
                x, y = transformer(crs.epsg).transform(x, y)
            if crs.lat_first:
                x, y = y, x
        for n, row in enumerate(values.itertuples(index=False, name=None)):
            cells = [_cell(v) for v in row]
            if points:
                cells += ["" if np.isnan(x[n]) else round(float(x[n]), 6 if crs.epsg in (None, 4326) else 2),
                          "" if np.isnan(y[n]) else round(float(y[n]), 6 if crs.epsg in (None, 4326) else 2)]
            writer.writerow(cells)
        yield buf.getvalue().encode()


GPKG_VERSION = "1.2"   # GDAL 3.6 and QGIS 3.22 read 1.2 without a warning; 1.4 (pyogrio's GDAL default) they do not
_gdal_config = threading.Lock()


def gpkg_file(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str = "public",
              columns: tuple[str, ...] | None = None, skip_geometry: bool = False,
              changed: str | None = None) -> bytes:
    """A GeoPackage 1.2 of the selection (R-tree triggers of 1.2, dates as DATE, the id kept), written by
    GDAL through pyogrio; returns its bytes. ``changed`` (ISO time) is written as the contents' last
    change, so the same selection gives the same bytes."""
    cols = _with_id(coll, columns if columns is not None else coll.columns(level))
    frame = coll.frame.iloc[rows]
    data, masks = [], []
    for col in cols:
        values, mask = _ogr_field(frame[col], col)
        data.append(values)
        masks.append(mask)
    geometry = None
    if not skip_geometry:
        geoms = frame.geometry.values
        if crs.epsg is not None:
            geoms = frame.geometry.to_crs(crs.epsg).values
        geometry = shapely.to_wkb(np.asarray(geoms, dtype=object))
    import pyogrio  # GDAL's libraries take ~28 MB of a worker: loaded by the first GeoPackage asked for
    import pyogrio.raw as raw

    fd, path = tempfile.mkstemp(suffix=".gpkg")
    os.close(fd)
    os.unlink(path)
    try:
        kwargs: dict = {}
        if geometry is not None:
            kwargs.update(geometry_type="Point" if coll.lon is not None else "MultiPolygon",
                          promote_to_multi=coll.lon is None, crs=f"EPSG:{crs.epsg or 4326}")
        with _gdal_config:  # OGR_CURRENT_DATE is process-wide
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": changed or "2000-01-01T00:00:00.000Z"})
            try:
                raw.write(path, geometry, data, list(cols), field_mask=masks, layer=coll.name, driver="GPKG",
                          dataset_options={"VERSION": GPKG_VERSION}, **kwargs)
            finally:
                pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
        with open(path, "rb") as f:
            return f.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def kml_file(coll: Collection, rows: np.ndarray, level: str = "public", columns: tuple[str, ...] | None = None,
             skip_geometry: bool = False, styles: dict[str, str] | None = None, style_column: str | None = None,
             name_column: str | None = None) -> bytes:
    """KML 2.2 of the selection in WGS 84: placemarks named by ``name_column``, styled by the value of
    ``style_column`` (colour per value, ``#rrggbb``), properties typed in a Schema as ExtendedData."""
    cols = _with_id(coll, columns if columns is not None else coll.columns(level))
    frame = coll.frame.iloc[rows]
    name = xml_escape(coll.name)
    types = {c: _KML_TYPES.get(column_type(frame[c], c), "string") for c in cols}
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2">\n<Document>',
           f"<name>{name}</name>", f'<Schema name="{name}" id="{name}">']
    out += [f'<SimpleField name="{xml_escape(c)}" type="{t}"/>' for c, t in types.items()]
    out.append("</Schema>")
    for value, color in (styles or {}).items():
        abgr = "ff" + color[5:7] + color[3:5] + color[1:3]
        out.append(f'<Style id="{xml_escape(value)}"><IconStyle><color>{abgr}</color><scale>0.8</scale></IconStyle>'
                   f"<LineStyle><color>{abgr}</color><width>1</width></LineStyle>"
                   f"<PolyStyle><color>80{abgr[2:]}</color></PolyStyle></Style>")
    parts = [b"\n".join(p.encode() for p in out)]
    values = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in cols}
    names: list = values[name_column] if name_column in values else frame[name_column].tolist() \
        if name_column else [None] * len(frame)
    ids = frame[coll.id_column].tolist()
    style_values = frame[style_column].tolist() if style_column and style_column in frame.columns else None
    geoms = None if skip_geometry else frame.geometry.values
    for n in range(len(frame)):
        if n % CHUNK == 0:
            budget.check()
        pm = [f'<Placemark id="{xml_escape(str(ids[n]))}">']
        label = names[n]
        pm.append(f"<name>{xml_escape(str(label if label is not None else ids[n]))}</name>")
        if style_values is not None and isinstance(style_values[n], str) and styles and style_values[n] in styles:
            pm.append(f"<styleUrl>#{xml_escape(style_values[n])}</styleUrl>")
        pm.append(f'<ExtendedData><SchemaData schemaUrl="#{name}">')
        for c in cols:
            v = values[c][n]
            if v is not None:
                pm.append(f'<SimpleData name="{xml_escape(c)}">{xml_escape(_kml_value(v))}</SimpleData>')
        pm.append("</SchemaData></ExtendedData>")
        if geoms is not None and geoms[n] is not None and not geoms[n].is_empty:
            pm.append(_kml_geometry(geoms[n]))
        pm.append("</Placemark>")
        parts.append("".join(pm).encode())
    parts.append(b"</Document>\n</kml>\n")
    return b"\n".join(parts)


_KML_TYPES = {"integer": "int", "number": "double", "boolean": "bool", "string": "string", "date": "string"}


def _with_id(coll: Collection, cols) -> tuple[str, ...]:
    """The columns to write, the collection's id column first when it is not among them."""
    cols = tuple(cols)
    return cols if coll.id_column in cols else (coll.id_column, *cols)


def _ogr_field(column, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, null mask) of a column for GDAL: dates as datetime64[D] (a DATE field), nullable whole
    numbers and flags with a mask, text as Python strings."""
    kind = column_type(column, name)
    missing = column.isna().to_numpy(dtype=bool) if kind != "boolean" else None
    if kind == "date":
        return pd.to_datetime(column, errors="coerce", format="ISO8601").to_numpy(dtype="datetime64[D]"), None
    if kind == "integer":
        return column.to_numpy(dtype="int64", na_value=0), missing
    if kind == "number":
        return column.to_numpy(dtype="float64", na_value=np.nan), None
    if kind == "boolean":
        flags = column.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else bool(v))
        return flags.to_numpy(dtype=bool, na_value=False), flags.isna().to_numpy(dtype=bool)
    return column.astype(object).where(column.notna(), None).to_numpy(dtype=object), None


def _kml_value(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def _kml_geometry(geom) -> str:
    if geom.geom_type == "Point":
        return f"<Point><coordinates>{geom.x:.6f},{geom.y:.6f}</coordinates></Point>"
    polygons = [geom] if geom.geom_type == "Polygon" else list(getattr(geom, "geoms", []))
    parts = []
    for poly in polygons:
        if poly.geom_type != "Polygon":
            continue
        ring = lambda r: " ".join(f"{x:.6f},{y:.6f}" for x, y in r.coords)  # noqa: E731
        inner = "".join(f"<innerBoundaryIs><LinearRing><coordinates>{ring(r)}</coordinates></LinearRing>"
                        "</innerBoundaryIs>" for r in poly.interiors)
        parts.append(f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{ring(poly.exterior)}</coordinates>"
                     f"</LinearRing></outerBoundaryIs>{inner}</Polygon>")
    return "<MultiGeometry>" + "".join(parts) + "</MultiGeometry>"


def _shaped_chunks(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str, columns: tuple[str, ...] | None,
                   skip_geometry: bool) -> Iterator[bytes]:
    """Feature bytes with only ``columns`` as properties and/or no geometry, serialised now."""
    cols = list(columns if columns is not None else coll.columns(level))
    ids, geoms_crs84, _ = coll.parts(level)
    frame = coll.frame
    for start in range(0, len(rows), CHUNK):
        budget.check()
        part = rows[start:start + CHUNK]
        geoms = None if skip_geometry else geometries_in(coll, part, crs)
        sub = frame[cols].iloc[part]
        values = [sub[c].astype(object).where(sub[c].notna(), None).tolist() for c in cols]
        out = []
        for k, i in enumerate(part):
            props = orjson.dumps(dict(zip(cols, (v[k] for v in values), strict=True)), default=plain_value)
            geom = b"null" if skip_geometry else (geoms[k] if geoms is not None else geoms_crs84[int(i)])
            out.append(b'{"type":"Feature","id":' + ids[int(i)] + b',"geometry":' + geom + b',"properties":'
                       + props + b"}")
        yield b",".join(out)


def _cell(v) -> object:
    if v is None:
        return ""
    if isinstance(v, str):
        return "'" + v if v.startswith(FORMULA_START) else v
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return v

