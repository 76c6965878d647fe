"""Output encodings of a selection of features: GeoJSON (streamed), CSV, GeoPackage and KML.

Each encoder takes a collection, the selected row numbers and an output CRS,
and returns an iterator of bytes (GeoJSON, CSV) or a finished file (GeoPackage,
KML, written by GDAL through pyogrio). Only the collection's public
properties are ever written.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import orjson
import pyogrio
import shapely

from coopgis import budget
from coopgis.dataset import Collection
from coopgis.filters import OutputCrs, transformer

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


def feature_chunks(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str = "public") -> Iterator[bytes]:
    """Comma-joined Feature bytes of ``rows``, a chunk at a time."""
    for start in range(0, len(rows), CHUNK):
        budget.check()
        part = rows[start:start + CHUNK]
        geoms = geometries_in(coll, part, crs)
        if geoms is None:
            yield b",".join(coll.feature(int(i), level=level) for i in part)
        else:
            yield b",".join(coll.feature(int(i), g, level) for i, g in zip(part, geoms, strict=False))


def geojson_stream(coll: Collection, rows: np.ndarray, crs: OutputCrs, head: dict,
                   level: str = "public") -> Iterator[bytes]:
    """A FeatureCollection as a stream: ``head`` members, then the features chunk by chunk."""
    yield b'{"type":"FeatureCollection",' + orjson.dumps(head)[1:-1] + b',"features":['
    first = True
    for chunk in feature_chunks(coll, rows, crs, level):
        if chunk:
            yield (b"" if first else b",") + chunk
            first = False
    yield b"]}"


def csv_stream(coll: Collection, rows: np.ndarray, crs: OutputCrs, level: str = "public") -> Iterator[bytes]:
    """CSV with a BOM (so Excel reads Persian), x/y columns for points, formulas neutralised."""
    cols = list(coll.columns(level))
    points = coll.lon is not None
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


def ogr_file(coll: Collection, rows: np.ndarray, crs: OutputCrs, driver: str, level: str = "public") -> bytes:
    """A GeoPackage or KML file of the selection, written by GDAL; returns its bytes."""
    frame = coll.frame.iloc[rows][list(coll.columns(level)) + ["geometry"]].copy()
    for col in frame.columns:
        if col != "geometry" and frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    if driver == "KML":
        frame = frame.set_crs(4326, allow_override=True)
    elif crs.epsg is not None:
        frame = frame.to_crs(crs.epsg)
    suffix = ".gpkg" if driver == "GPKG" else ".kml"
    fd, path = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    os.unlink(path)
    try:
        kwargs: dict[str, object] = {"layer": coll.name}
        if driver == "KML":
            kwargs["dataset_options"] = {"NameField": "name" if "name" in frame.columns else coll.id_column}
        pyogrio.write_dataframe(frame, path, driver=driver, **kwargs)
        with open(path, "rb") as f:
            return f.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _cell(v) -> object:
    if v is None:
        return ""
    if isinstance(v, str):
        return "'" + v if v.startswith(FORMULA_START) else v
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return v

