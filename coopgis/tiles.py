"""The vector tile engine: cooperatives clustered on a grid, boundaries simplified and clipped.

Tiles are addressed in the WebMercatorQuad grid (XYZ, y down from the north, as
OSM/Google/MapLibre use it). This module knows nothing about HTTP: the router
(``api/tiles.py``) parses the address and the filters and asks
:meth:`TileEngine.tile` for ready bytes.

Cooperatives
    Every located cooperative gets a position in "world units" ``u, v`` in [0, 1)
    (Web Mercator scaled to the unit square, v down) and a 62-bit Morton code of
    ``floor(u * 2**31), floor(v * 2**31)``. The points are sorted by that code once per
    dataset, so the points of any tile (z, x, y) are one contiguous run of the sorted
    arrays, found with two binary searches.

    At z <= ``cluster_max_zoom`` the points are clustered on a fixed grid aligned with
    the tile grid: each tile is cut into 8 x 8 cells (:data:`CLUSTER_LEVELS` = 3), i.e.
    cells of 32 px of a 256-px tile, 512 units of the 4096 MVT extent. A cell of
    zoom z is exactly the tile of zoom z + 3 containing the point, so each point falls
    in exactly one cell of exactly one tile and the counts over all tiles of a zoom add
    up to the number of (filtered, located) cooperatives. Because the sort is by
    Morton code, the members of one cell are also contiguous: grouping is a
    ``np.flatnonzero(np.diff(cell))`` and ``np.add.reduceat`` away, with no Python loop
    over points. A cell with two or more cooperatives gives one cluster feature (a
    Point at the mean Web Mercator position of its members; ``cluster: true``,
    ``count``, ``members``, ``jobs`` sums and the kind breakdown: ``kinds`` {code:
    count} in GeoJSON, flat ``kind_<code>`` counts in MVT, zero counts left out). A
    cell with one cooperative gives that cooperative itself. Above
    ``cluster_max_zoom`` every cooperative is its own feature. Points get no tile
    buffer: a point is in one tile only.

Cluster contents
    A cluster's ``cell`` property is the address ``z/x/y`` of its cell as a tile of zoom
    z + 3; :meth:`TileEngine.cell_rows` lists exactly the (filtered) cooperatives of that
    tile, the same contiguous run of sorted points the cluster was summed from, so their
    number equals the cluster's ``count``.

Boundaries (provinces, counties, deprivation)
    Provinces and counties carry the figures of the cooperatives (counts, members, jobs,
    per 10,000 inhabitants) under the request's thematic filters (kind, sector, status, ...;
    a province or county filter frames a map, it does not blank the other areas): the same
    clipped geometry with the figures of :meth:`coopgis.figures.AreaFigures.of` in its
    properties. Projected to Web Mercator metres once, simplified per zoom lazily (tolerance half
    a pixel of a 256-px tile at that zoom; only the rows a tile touches, kept per
    zoom level in a small LRU; zooms above :data:`SIMPLIFY_MAX_ZOOM` share the z14
    geometry), then clipped to the tile plus a buffer of :data:`BUFFER` / 4096 of the
    tile on each side (64 units in MVT, the same margin for GeoJSON). Counties and
    deprivation share one geometry cache.

Places (place-name labels)
    The labels of :mod:`coopgis.placenames`, whose zooms were decided once for the whole country,
    sorted by Morton code like the cooperatives: a tile is the run of its area with
    ``min_zoom <= z <= max_zoom``, each label's GeoJSON bytes made once. A label is in the
    tile of its point only.

Formats
    MVT (extent 4096, y down, layer named as the collection) and GeoJSON
    (FeatureCollection in longitude/latitude, RFC 7946). An empty tile is an empty
    FeatureCollection, or a 0-byte MVT body (a tile with no layers, which MVT clients
    accept). Encoded tiles are kept in a bounded LRU keyed by layer, z, x, y, format
    and the normalised filter; each carries an ETag (hash of the body).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import orjson
import pandas as pd
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2

from coopgis.dataset import KEEP_FEATURE_FILES, Collection, Dataset, plain_value, right_sized
from coopgis.figures import Figures
from coopgis.media import GEOJSON, MVT
from coopgis.packed import Packed
from coopgis.placenames import LABEL_MAX_ZOOM, LABEL_MIN_ZOOM, LabelTable
from coopgis.vocab import KINDS

EXTENT = 4096                 # MVT tile extent
BUFFER = 64                   # polygon clip buffer, in units of the 4096 extent
CLUSTER_LEVELS = 3            # a tile is cut into 2**3 x 2**3 cluster cells (32 px of 256)
INDEX_BITS = 31               # bits per axis of the Morton code
SIMPLIFY_MAX_ZOOM = 14        # deeper zooms reuse the z14 simplification
SIMPLIFY_CACHE_LEVELS = 16    # zoom levels of simplified geometry kept per geometry set
FILTER_CACHE_SIZE = 64        # filter masks kept per dataset
EARTH_RADIUS = 6378137.0
WORLD_M = 2 * math.pi * EARTH_RADIUS          # width of the Web Mercator world, metres
MAX_LAT = 85.0511287798066                   # latitude at v = 0 (the edge of WebMercatorQuad)

TILE_MEDIA = {"mvt": MVT, "geojson": GEOJSON}
POINT_LAYER = "cooperatives"
POLYGON_LAYERS = ("provinces", "counties", "deprivation")
FIGURE_LAYERS = ("provinces", "counties")     # polygon layers whose figures follow the filters
PLACES_LAYER = "places"      # place-name labels (coopgis.placenames): a tile layer, not a collection
LAYERS = (POINT_LAYER, *POLYGON_LAYERS, PLACES_LAYER)

# Properties of a single cooperative in a tile (a short subset of the public columns;
# never phone). `county` is the county name, `province` the ISO 3166-2 code.
POINT_PROPERTIES = ("registration_no", "name", "kind", "kind_fa", "sector", "status", "members", "jobs",
                    "precision", "uncertainty_m", "county", "province")


# ---- tile grid math ---------------------------------------------------------------------------

def lonlat_to_world(lon, lat):
    """Longitude/latitude to Web Mercator world units u (east) and v (south) in [0, 1]."""
    lon = np.asarray(lon, dtype=float)
    lat = np.clip(np.asarray(lat, dtype=float), -MAX_LAT, MAX_LAT)
    u = (lon + 180.0) / 360.0
    s = np.sin(np.radians(lat))
    v = 0.5 - np.log((1 + s) / (1 - s)) / (4 * np.pi)
    return u, v


def world_to_lonlat(u, v):
    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    return u * 360.0 - 180.0, np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * v))))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """west, south, east, north of a tile in degrees."""
    n = 2 ** z
    (w, e), (n_, s) = world_to_lonlat(np.array([x / n, (x + 1) / n]), np.array([y / n, (y + 1) / n]))
    return float(w), float(s), float(e), float(n_)


def mercator_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """minx, miny, maxx, maxy of a tile in EPSG:3857 metres."""
    size = WORLD_M / 2 ** z
    half = WORLD_M / 2
    return (x * size - half, half - (y + 1) * size, (x + 1) * size - half, half - y * size)


def _spread(a):
    """Spread the low 32 bits of each value to the even bits (numpy uint64 or Python int)."""
    a = a & 0x00000000FFFFFFFF
    a = (a | (a << 16)) & 0x0000FFFF0000FFFF
    a = (a | (a << 8)) & 0x00FF00FF00FF00FF
    a = (a | (a << 4)) & 0x0F0F0F0F0F0F0F0F
    a = (a | (a << 2)) & 0x3333333333333333
    return (a | (a << 1)) & 0x5555555555555555


def morton(ix, iy):
    """Morton (Z-order) code of integer cell coordinates: x bits even, y bits odd."""
    if isinstance(ix, np.ndarray):
        ix = ix.astype(np.uint64)
        iy = iy.astype(np.uint64)
        return _spread(ix) | (_spread(iy) << np.uint64(1))
    return _spread(int(ix)) | (_spread(int(iy)) << 1)


def _to_mercator(xy: np.ndarray) -> np.ndarray:
    lon = xy[:, 0]
    lat = np.clip(xy[:, 1], -MAX_LAT, MAX_LAT)
    return np.column_stack([np.radians(lon) * EARTH_RADIUS,
                            np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * EARTH_RADIUS])


def _to_lonlat(xy: np.ndarray) -> np.ndarray:
    lon = np.degrees(xy[:, 0] / EARTH_RADIUS)
    lat = np.degrees(2 * np.arctan(np.exp(xy[:, 1] / EARTH_RADIUS)) - np.pi / 2)
    return np.round(np.column_stack([lon, lat]), 7)


# ---- results and caches -----------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    body: bytes
    etag: str            # quoted, ready for the ETag header
    features: int
    media_type: str


def make_tile(body: bytes, features: int, fmt: str) -> Tile:
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    return Tile(body, f'"{fmt[0]}{digest}"', features, TILE_MEDIA[fmt])


class LRU:
    """A small thread-safe LRU mapping."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def filter_key(flt) -> tuple:
    """A hashable, order-independent key of a CooperativeFilter (empty tuple: no filter)."""
    if flt is None:
        return ()
    out = []
    for name, value in sorted(vars(flt).items()):
        if value is None:
            continue
        out.append((name, tuple(sorted(set(value))) if isinstance(value, (list, tuple, set)) else value))
    return tuple(out)


class Codes:
    """A column as codes into its distinct values (Python values, None for missing): ``col[idx]`` is an
    object array of the values of positions ``idx``. Distinct values are made once: a column of 100,000
    values of a few kinds costs 100,000 small integers, not 100,000 Python objects (the frame's text is
    Arrow, so a plain object array would be a copy of every cell in every worker). ``rows``: the frame
    rows in the order of the positions (default: the frame's order)."""

    def __init__(self, frame: pd.DataFrame, name: str, rows: np.ndarray | None = None):
        n = len(frame) if rows is None else len(rows)
        if name not in frame.columns:
            self.codes = np.full(n, -1, np.int32)
            self.values = np.array([None], dtype=object)
            return
        codes, uniques = pd.factorize(frame[name], use_na_sentinel=True)
        # the smallest signed type that holds the codes and -1: a byte a row for a column of a few kinds
        width = np.int8 if len(uniques) < 2 ** 7 else np.int16 if len(uniques) < 2 ** 15 else np.int32
        self.codes = np.asarray(codes if rows is None else codes[rows], width)
        values = np.empty(len(uniques) + 1, dtype=object)       # the last slot: missing (code -1)
        values[:-1] = [plain_value(v) for v in uniques.tolist()]
        self.values = values

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, idx) -> np.ndarray:
        return self.values[self.codes[idx]]

    def tolist(self) -> list:
        return self.values[self.codes].tolist()


class Lookup:
    """A column of (nearly) distinct values, read from the frame when asked: ``col[idx]`` as in
    :class:`Codes`, without a Python object per row (names and registration numbers)."""

    def __init__(self, frame: pd.DataFrame, name: str, rows: np.ndarray):
        self.column = frame[name]
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        part = self.column.iloc[self.rows[idx]]
        out = np.empty(len(part), dtype=object)
        out[:] = [plain_value(v) for v in part.astype(object).where(part.notna(), None).tolist()]
        return out


class MvtIds:
    """MVT feature ids (unsigned integers, None where an id is not one) of the rows of an id column."""

    def __init__(self, ids: Codes | Lookup):
        self.ids = ids

    def __getitem__(self, idx) -> np.ndarray:
        out = np.empty(len(np.atleast_1d(idx)), dtype=object)
        out[:] = [_mvt_id(v) for v in self.ids[idx].tolist()]
        return out


def _point_column(frame: pd.DataFrame, name: str, rows: np.ndarray) -> Codes | Lookup:
    """Codes for a column of repeated values, a lookup for one of (nearly) distinct values."""
    if name in frame.columns and frame[name].nunique(dropna=True) > len(frame) // 4:
        return Lookup(frame, name, rows)
    return Codes(frame, name, rows)


def _mvt_id(value) -> int | None:
    """An MVT feature id (unsigned integer) when the value is one, else None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value) if 0 <= value < 2 ** 64 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    return None


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def encode_point_layer(name: str, features: list[tuple[int | None, int, int, dict]]) -> bytes:
    """An MVT tile of one point layer: (id, px, py, properties) in tile pixels, y down.

    Written with the vector_tile protobuf classes directly: per feature this costs a
    few microseconds, where mapbox_vector_tile.encode goes through shapely per point.
    """
    if not features:
        return b""
    tile = vector_tile_pb2.tile()
    layer = tile.layers.add()
    layer.version = 2
    layer.name = name
    layer.extent = EXTENT
    keys: dict[str, int] = {}
    values: dict[tuple, int] = {}
    add_feature = layer.features.add
    point = vector_tile_pb2.tile.Point
    for fid, px, py, props in features:
        tags = []
        for k, v in props.items():
            if v is None:
                continue
            ki = keys.get(k)
            if ki is None:
                ki = keys[k] = len(keys)
                layer.keys.append(k)
            vk = (type(v), v)
            vi = values.get(vk)
            if vi is None:
                vi = values[vk] = len(values)
                val = layer.values.add()
                if isinstance(v, bool):
                    val.bool_value = v
                elif isinstance(v, int):
                    if v < 0:
                        val.sint_value = v
                    else:
                        val.uint_value = v
                elif isinstance(v, float):
                    val.double_value = v
                else:
                    val.string_value = str(v)
            tags.append(ki)
            tags.append(vi)
        f = add_feature()
        if fid is not None:
            f.id = fid
        f.tags.extend(tags)
        f.type = point
        f.geometry.extend((9, _zigzag(px), _zigzag(py)))
    return tile.SerializeToString()


# ---- cooperatives -----------------------------------------------------------------------------

class PointIndex:
    """The located cooperatives sorted by Morton code, with what tiles need of them."""

    def __init__(self, coll: Collection):
        lon, lat = coll.points
        located = np.isfinite(lon) & np.isfinite(lat)
        rows = np.flatnonzero(located)
        u, v = lonlat_to_world(lon[rows], lat[rows])
        scale = float(2 ** INDEX_BITS)
        top = 2 ** INDEX_BITS - 1
        ix = np.clip(np.floor(u * scale), 0, top).astype(np.uint64)
        iy = np.clip(np.floor(v * scale), 0, top).astype(np.uint64)
        codes = morton(ix, iy)
        order = np.argsort(codes, kind="stable")
        self.rows = rows[order]
        self.codes = codes[order]
        self.u = u[order]
        self.v = v[order]
        self._lon, self._lat = lon, lat   # the collection's own arrays (by row), not copies in Morton order
        frame = coll.frame           # read in place: a copy of its columns in Morton order cost ~150 MB at 1,000,000
        self.members = self._counts(frame, "members")
        self.jobs = self._counts(frame, "jobs")
        known = [t.code for t in KINDS]
        present = [k for k in pd.unique(frame["kind"].dropna()) if k not in known] if "kind" in frame else []
        self.kind_codes = known + sorted(str(k) for k in present)
        if "kind" in frame:
            cat = pd.Categorical(frame["kind"], categories=self.kind_codes)
            self.kind_idx = np.asarray(cat.codes, dtype=np.int16)[self.rows]   # -1: no kind
        else:
            self.kind_idx = np.full(len(rows), -1, np.int16)
        self.columns = {name: _point_column(frame, name, self.rows) for name in POINT_PROPERTIES}
        self.sums = PrefixSums.build(self)
        self.ids = self.columns["registration_no"]
        self.mvt_ids = MvtIds(self.ids)

    def _counts(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        if name not in frame:
            return np.zeros(len(self.rows), np.int64)
        return pd.to_numeric(frame[name], errors="coerce").fillna(0).to_numpy(np.int64)[self.rows]

    def lonlat(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitudes and latitudes of the points at positions ``idx`` (Morton order)."""
        rows = self.rows[idx]
        return self._lon[rows], self._lat[rows]

    def __len__(self) -> int:
        return len(self.codes)

    def span(self, z: int, x: int, y: int) -> tuple[int, int]:
        """Sorted positions [lo, hi) of the points in a tile."""
        shift = 2 * (INDEX_BITS - z)
        m = morton(x, y)
        lo = int(np.searchsorted(self.codes, np.uint64(m << shift), side="left"))
        hi = int(np.searchsorted(self.codes, np.uint64((m + 1) << shift), side="left"))
        return lo, hi

    def properties(self, idx: np.ndarray) -> list[dict]:
        cols = [self.columns[c][idx].tolist() for c in POINT_PROPERTIES]
        out = []
        for values in zip(*cols, strict=False):
            p = {"cluster": False, "count": 1}
            p.update(zip(POINT_PROPERTIES, values, strict=False))
            out.append(p)
        return out


@dataclass
class PrefixSums:
    """Running sums over the sorted points, and where each zoom's cells begin.

    Without a filter, a tile's clusters are differences of these sums: no work per
    point at request time (supercluster gets the same effect by precomputing zooms).
    """

    u: np.ndarray
    v: np.ndarray
    members: np.ndarray
    jobs: np.ndarray
    kinds: np.ndarray                      # (points + 1, kinds)
    starts: dict[int, np.ndarray]          # zoom -> sorted positions where a cluster cell begins

    @classmethod
    def build(cls, index: PointIndex) -> PrefixSums:
        run = lambda a: np.concatenate(([0], np.cumsum(a)))  # noqa: E731
        k = len(index.kind_codes)
        onehot = np.zeros((len(index), k), np.int32)
        ok = index.kind_idx >= 0
        onehot[np.flatnonzero(ok), index.kind_idx[ok]] = 1
        kinds = np.vstack([np.zeros((1, k), np.int32), np.cumsum(onehot, axis=0, dtype=np.int32)])
        starts = {}
        for z in range(0, INDEX_BITS - CLUSTER_LEVELS + 1):
            cell = index.codes >> np.uint64(2 * (INDEX_BITS - min(z + CLUSTER_LEVELS, INDEX_BITS)))
            starts[z] = np.concatenate(([0], np.flatnonzero(cell[1:] != cell[:-1]) + 1)).astype(np.int32)
            if len(starts[z]) == len(index):  # every point has its own cell from here on
                break
        return cls(run(index.u), run(index.v), run(index.members), run(index.jobs), kinds, starts)


@dataclass
class Clusters:
    """Grid cells of one tile: counts, sums, mean positions; ``first`` is a member's position."""

    count: np.ndarray
    u: np.ndarray
    v: np.ndarray
    members: np.ndarray
    jobs: np.ndarray
    kinds: np.ndarray          # (cells, kinds)
    first: np.ndarray          # sorted position of the first member of each cell


def cluster(index: PointIndex, idx: np.ndarray, z: int) -> Clusters:
    """Group the points ``idx`` (sorted positions, ascending, all in one tile of zoom z) by cell."""
    level = min(z + CLUSTER_LEVELS, INDEX_BITS)
    cell = index.codes[idx] >> np.uint64(2 * (INDEX_BITS - level))
    starts = np.concatenate(([0], np.flatnonzero(cell[1:] != cell[:-1]) + 1))
    count = np.diff(np.append(starts, len(idx)))
    u = np.add.reduceat(index.u[idx], starts) / count
    v = np.add.reduceat(index.v[idx], starts) / count
    members = np.add.reduceat(index.members[idx], starts)
    jobs = np.add.reduceat(index.jobs[idx], starts)
    k = len(index.kind_codes)
    cell_no = np.repeat(np.arange(len(starts)), count)
    kind = index.kind_idx[idx]
    ok = kind >= 0
    kinds = np.bincount(cell_no[ok] * k + kind[ok], minlength=len(starts) * k).reshape(len(starts), k)
    return Clusters(count, u, v, members, jobs, kinds, idx[starts])


def cluster_span(index: PointIndex, lo: int, hi: int, z: int) -> Clusters:
    """:func:`cluster` of all points of a tile (sorted positions [lo, hi)), from the running sums."""
    sums = index.sums
    cells = sums.starts.get(z)
    if cells is None or hi <= lo:
        return cluster(index, np.arange(lo, hi), z)
    starts = cells[np.searchsorted(cells, lo):np.searchsorted(cells, hi)]
    ends = np.append(starts[1:], hi)
    count = ends - starts
    return Clusters(count, (sums.u[ends] - sums.u[starts]) / count, (sums.v[ends] - sums.v[starts]) / count,
                    sums.members[ends] - sums.members[starts], sums.jobs[ends] - sums.jobs[starts],
                    sums.kinds[ends] - sums.kinds[starts], starts)


# ---- polygons ---------------------------------------------------------------------------------

class GeometrySet:
    """Polygons in Web Mercator metres, simplified per zoom on demand, row by row.

    Only the rows a tile needs are simplified (and then kept), so the first tile of
    a deep zoom costs the simplification of a few counties, not of all of them.
    """

    def __init__(self, geoms: np.ndarray):
        self.merc = shapely.transform(geoms, _to_mercator)
        self.bounds = shapely.bounds(self.merc)      # simplification only shrinks these
        self._levels = LRU(SIMPLIFY_CACHE_LEVELS)
        self._lock = threading.Lock()

    def at(self, z: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Geometries of ``rows`` (default all) simplified for zoom z: half a 256-px pixel."""
        level = min(z, SIMPLIFY_MAX_ZOOM)
        rows = np.arange(len(self.merc)) if rows is None else rows
        simple = self._levels.get(level)
        if simple is None:
            with self._lock:
                simple = self._levels.get(level)
                if simple is None:
                    simple = np.full(len(self.merc), None, dtype=object)
                    self._levels.put(level, simple)
        missing = rows[np.array([g is None for g in simple[rows]], dtype=bool)]
        if len(missing):
            tolerance = WORLD_M / (256 * 2 ** level) / 2
            simple[missing] = shapely.simplify(self.merc[missing], tolerance, preserve_topology=True)
        return simple[rows]


class PolygonLayer:
    """A boundary collection ready for tiles: its geometry set, ids and properties."""

    def __init__(self, coll: Collection, geometry: GeometrySet):
        self.name = coll.name
        self.geometry = geometry
        frame = coll.frame
        self.ids = [plain_value(v) for v in frame[coll.id_column].tolist()]
        self.mvt_ids = [_mvt_id(v) for v in self.ids]
        cols = {c: Codes(frame, c).tolist() for c in coll.properties}
        self.props = [dict(zip(cols, values, strict=False))
                      for values in zip(*cols.values(), strict=False)] if cols else \
            [{} for _ in range(len(frame))]
        self.props_json = [orjson.Fragment(right_sized(orjson.dumps(p))) for p in self.props]
        self.ids_json = [orjson.Fragment(right_sized(orjson.dumps(i))) for i in self.ids]

    def clipped(self, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and geometries (Mercator) clipped to the tile plus the buffer."""
        bounds = self.geometry.bounds
        minx, miny, maxx, maxy = mercator_bounds(z, x, y)
        pad = (maxx - minx) * BUFFER / EXTENT
        minx, miny, maxx, maxy = minx - pad, miny - pad, maxx + pad, maxy + pad
        rows = np.flatnonzero((bounds[:, 0] <= maxx) & (bounds[:, 2] >= minx)
                              & (bounds[:, 1] <= maxy) & (bounds[:, 3] >= miny))
        if not len(rows):
            return rows, np.empty(0, dtype=object)
        clipped = shapely.clip_by_rect(self.geometry.at(z, rows), minx, miny, maxx, maxy)
        keep = ~shapely.is_empty(clipped)
        return rows[keep], clipped[keep]


class PlaceLayer:
    """Place-name labels ready for tiles: sorted by Morton code, each label's feature made once.

    Everything is held in arrays and one packed buffer (about 10 MB for the country's 43,000 labels;
    Python lists and dicts per label cost twenty times that in each worker).
    """

    PROPERTIES = ("name", "kind", "min_zoom", "max_zoom", "rank")

    def __init__(self, table: LabelTable, files: Path | None = None):
        """``files``: the folder the labels' GeoJSON features are written to once and read from (7.7 MB
        for the country: outside each worker's own memory; None: in memory). A tile's labels lie together
        in the file (sorted by Morton code): one read."""
        self.table = table
        u, v = lonlat_to_world(table.lon, table.lat)
        scale, top = float(2 ** INDEX_BITS), 2 ** INDEX_BITS - 1
        ix = np.clip(np.floor(u * scale), 0, top).astype(np.uint64)
        iy = np.clip(np.floor(v * scale), 0, top).astype(np.uint64)
        codes = morton(ix, iy)
        order = np.argsort(codes, kind="stable")
        self.codes = codes[order]
        self.u, self.v = u[order], v[order]
        self.min_zoom = table.min_zoom[order]
        self.max_zoom = table.max_zoom[order]
        self.rank = table.rank[order]
        self.name = table.name.subset(order)
        self.kind = table.kind[order]
        lon, lat = np.round(table.lon[order], 6), np.round(table.lat[order], 6)

        def features():
            for i, (r, x, y) in enumerate(zip(self.rank.tolist(), lon.tolist(), lat.tolist(), strict=True)):
                yield orjson.dumps({"type": "Feature", "id": int(r),
                                    "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": self._props(i)})

        paths = None if files is None else [files / f"places-{self._digest(lon, lat)}-labels.packed"]
        self.features = Packed.kept(paths, lambda: [Packed(features())], KEEP_FEATURE_FILES)[0]
        # Per zoom, the labels shown there in Morton order: their codes and positions. A tile is two
        # binary searches and a slice, however many labels other zooms have in its area.
        self.by_zoom: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for z in range(LABEL_MIN_ZOOM, LABEL_MAX_ZOOM + 1):
            shown = np.flatnonzero((self.min_zoom <= z) & (self.max_zoom >= z)).astype(np.int32)
            self.by_zoom[z] = (self.codes[shown], shown)

    def __len__(self) -> int:
        return len(self.codes)

    def _digest(self, lon: np.ndarray, lat: np.ndarray) -> str:
        """Of what the labels' features are made of: their texts, points, zooms and this module's code."""
        h = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=16)
        for arr in (lon, lat, self.min_zoom, self.max_zoom, self.rank):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(self.kind.tolist()).encode())
        h.update("\n".join(v or "" for v in self.name).encode())
        return h.hexdigest()

    def _props(self, i: int) -> dict:
        return {"name": self.name[i], "kind": self.kind[i], "min_zoom": int(self.min_zoom[i]),
                "max_zoom": int(self.max_zoom[i]), "rank": int(self.rank[i])}

    def span(self, z: int, x: int, y: int) -> tuple[int, int]:
        """[lo, hi) of the tile's labels in the zoom's arrays (:attr:`by_zoom`); z at least LABEL_MIN_ZOOM."""
        codes = self.by_zoom[min(z, LABEL_MAX_ZOOM)][0]      # deeper zooms show what the deepest shows
        shift = 2 * (INDEX_BITS - z)
        m = morton(x, y)
        return (int(np.searchsorted(codes, np.uint64(m << shift), side="left")),
                int(np.searchsorted(codes, np.uint64((m + 1) << shift), side="left")))

    def select(self, z: int, x: int, y: int) -> np.ndarray:
        """Sorted positions of the labels shown in a tile."""
        if z < LABEL_MIN_ZOOM:
            return np.empty(0, np.int64)
        lo, hi = self.span(z, x, y)
        return self.by_zoom[min(z, LABEL_MAX_ZOOM)][1][lo:hi].astype(np.int64)

    def tile(self, z: int, x: int, y: int, fmt: str) -> tuple[bytes, int]:
        if fmt == "geojson":
            idx = self.select(z, x, y)
            return (b'{"type":"FeatureCollection","features":['
                    + b",".join(self.features.items(idx)) + b"]}"), len(idx)
        idx = self.select(z, x, y)
        n = 2 ** z
        px = np.floor((self.u[idx] * n - x) * EXTENT).astype(np.int64).clip(0, EXTENT - 1)
        py = np.floor((self.v[idx] * n - y) * EXTENT).astype(np.int64).clip(0, EXTENT - 1)
        feats: list[tuple[int | None, int, int, dict]] = [
            (int(self.rank[i]), a, b, self._props(i)) for i, a, b in zip(idx.tolist(), px.tolist(), py.tolist(),
                                                                          strict=True)]
        return encode_point_layer(PLACES_LAYER, feats), len(feats)


def _polygonal(g):
    """Only the polygon parts of a geometry (clipping and snapping can leave lines or points)."""
    if g is None:
        return None
    kind = shapely.get_type_id(g)
    if kind in (3, 6):
        return g
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
    polys = [q for p in parts for q in (shapely.get_parts(p) if shapely.get_type_id(p) == 6 else [p])]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _to_pixels(geoms: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """Mercator geometries to tile pixels (extent 4096, y down), snapped to the integer grid."""
    minx, _, _, maxy = mercator_bounds(z, x, y)
    scale = EXTENT / (WORLD_M / 2 ** z)

    def affine(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] - minx) * scale, (maxy - xy[:, 1]) * scale])

    px = shapely.transform(geoms, affine)
    try:
        snapped = shapely.set_precision(px, 1.0)
    except shapely.errors.GEOSException:
        snapped = shapely.set_precision(shapely.make_valid(px), 1.0)
    return snapped


# ---- the engine -------------------------------------------------------------------------------

class TileEngine:
    """Tiles of one dataset; built lazily per layer, encoded tiles kept in an LRU."""

    def __init__(self, dataset: Dataset, cluster_max_zoom: int = 11, cache_size: int = 4096):
        self.dataset = dataset
        self.cluster_max_zoom = cluster_max_zoom
        self.cache = LRU(cache_size)
        self._masks = LRU(FILTER_CACHE_SIZE)
        self._figures = LRU(FILTER_CACHE_SIZE)
        self._points: PointIndex | None = None
        self._polygons: dict[str, PolygonLayer] = {}
        self._geometry_sets: dict[tuple, GeometrySet] = {}
        self._places: PlaceLayer | None = None
        # One lock per structure: Python's locks are not fair, so a warm-up building the labels under the lock
        # a tile waits on would keep that tile waiting for the whole warm-up (measured: 1.8 s at start-up).
        self._points_lock = threading.Lock()
        self._polygons_lock = threading.RLock()
        self._places_lock = threading.Lock()

    # -- lazily built structures
    def points(self) -> PointIndex:
        if self._points is None:
            with self._points_lock:
                if self._points is None:
                    self._points = PointIndex(self.dataset.collections[POINT_LAYER])
        return self._points

    def polygons(self, name: str) -> PolygonLayer:
        layer = self._polygons.get(name)
        if layer is None:
            with self._polygons_lock:
                layer = self._polygons.get(name)
                if layer is None:
                    coll = self.dataset.collections[name]
                    geoms = np.asarray(coll.frame.geometry.array, dtype=object)
                    # Counties and deprivation hold the same geometry objects: simplify them once.
                    fingerprint = tuple(map(id, geoms))
                    gset = self._geometry_sets.get(fingerprint)
                    if gset is None:
                        gset = self._geometry_sets[fingerprint] = GeometrySet(geoms)
                    layer = self._polygons[name] = PolygonLayer(coll, gset)
        return layer

    def places(self) -> PlaceLayer:
        if self._places is None:
            with self._places_lock:
                if self._places is None:
                    self._places = PlaceLayer(self.dataset.place_labels(), self.dataset.feature_files)
        return self._places

    def lend_places(self, other: TileEngine) -> None:
        """Keep ``other``'s label tiles when this dataset has the same labels (a decision or a reload)."""
        if self._places is None and other._places is not None and other._places.table is self.dataset.labels_made:
            self._places = other._places

    def warm(self) -> None:
        """Build the point index, the polygon layers and the labels now rather than on the first tile."""
        self.points()
        for name in POLYGON_LAYERS:
            if name in self.dataset.collections:
                self.polygons(name)
        self.places()

    def filter_mask(self, flt) -> np.ndarray | None:
        """The filter as a boolean mask over the sorted points (None: no filter)."""
        key = filter_key(flt)
        if not key:
            return None
        mask = self._masks.get(key)
        if mask is None:
            index = self.points()
            mask = np.ascontiguousarray(flt.mask(self.dataset.collections[POINT_LAYER])[index.rows])
            self._masks.put(key, mask)
        return mask

    def area_figures(self, flt) -> Figures | None:
        """The provinces' and counties' figures under a filter's thematic part (None: unfiltered)."""
        thematic = flt.thematic() if flt is not None else None
        key = filter_key(thematic)
        if not key:
            return None
        figures = self._figures.get(key)
        if figures is None and thematic is not None:
            figures = self.dataset.figures.of(thematic.mask(self.dataset.collections[POINT_LAYER]))
            self._figures.put(key, figures)
        return figures

    def cell_rows(self, z: int, x: int, y: int, flt=None) -> np.ndarray:
        """Rows (dataset order numbers) of the cooperatives in the cluster cell z/x/y, in cluster order."""
        index = self.points()
        return index.rows[self.select(z, x, y, flt)]

    # -- the entry point
    def _key(self, layer: str, z: int, x: int, y: int, fmt: str, flt) -> tuple:
        if layer == POINT_LAYER:
            fkey = filter_key(flt)
        elif layer in FIGURE_LAYERS and flt is not None:
            fkey = filter_key(flt.thematic())
        else:
            fkey = ()
        return (layer, z, x, y, fmt, fkey)

    def cached(self, layer: str, z: int, x: int, y: int, fmt: str, flt=None) -> Tile | None:
        """The tile if it is in the cache, else None (without working on it)."""
        return self.cache.get(self._key(layer, z, x, y, fmt, flt))

    def tile(self, layer: str, z: int, x: int, y: int, fmt: str, flt=None) -> Tile:
        """The encoded tile, from the cache when it was made before."""
        if layer not in LAYERS or (layer != PLACES_LAYER and layer not in self.dataset.collections):
            raise KeyError(layer)
        key = self._key(layer, z, x, y, fmt, flt)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if layer == POINT_LAYER:
            body, n = self._point_tile(z, x, y, fmt, flt)
        elif layer == PLACES_LAYER:
            body, n = self.places().tile(z, x, y, fmt)
        else:
            figures = self.area_figures(flt) if layer in FIGURE_LAYERS else None
            body, n = self._polygon_tile(layer, z, x, y, fmt, figures)
        tile = make_tile(body, n, fmt)
        self.cache.put(key, tile)
        return tile

    # -- cooperatives
    def select(self, z: int, x: int, y: int, flt=None) -> np.ndarray:
        """Sorted positions of the (filtered) points in a tile."""
        index = self.points()
        lo, hi = index.span(z, x, y)
        mask = self.filter_mask(flt)
        if mask is None:
            return np.arange(lo, hi)
        return lo + np.flatnonzero(mask[lo:hi])

    def _point_tile(self, z: int, x: int, y: int, fmt: str, flt) -> tuple[bytes, int]:
        index = self.points()
        idx = self.select(z, x, y, flt)
        if not len(idx):
            return (b"" if fmt == "mvt" else b'{"type":"FeatureCollection","features":[]}'), 0
        n = 2 ** z
        if z <= self.cluster_max_zoom:
            filtered = self.filter_mask(flt) is not None
            c = cluster(index, idx, z) if filtered else cluster_span(index, int(idx[0]), int(idx[-1]) + 1, z)
            single = c.count == 1
            many = ~single
            singles = c.first[single]
            props: list[dict] = [{} for _ in range(len(c.count))]   # every slot is filled below
            for i, p in zip(np.flatnonzero(single).tolist(), index.properties(singles), strict=False):
                props[i] = p
            where = np.flatnonzero(many)
            kinds = index.kind_codes
            cells = _cells(index, c.first[many], z)
            for i, cnt, mem, job, row, cell in zip(where.tolist(), c.count[many].tolist(), c.members[many].tolist(),
                                                   c.jobs[many].tolist(), c.kinds[many].tolist(), cells,
                                                   strict=False):
                props[i] = {"cluster": True, "count": cnt, "members": mem, "jobs": job,
                            "kinds": {kinds[j]: k for j, k in enumerate(row) if k}, "cell": cell}
            u, v = c.u, c.v
            # A single cooperative sits at its own position, not a mean of one.
            u[single] = index.u[singles]
            v[single] = index.v[singles]
            ids = np.full(len(c.count), None, dtype=object)
            ids[single] = index.ids[singles] if fmt == "geojson" else index.mvt_ids[singles]
            lon, lat = world_to_lonlat(u, v)
            lon[single], lat[single] = index.lonlat(singles)
        else:
            props = index.properties(idx)
            u, v = index.u[idx], index.v[idx]
            ids = index.ids[idx] if fmt == "geojson" else index.mvt_ids[idx]
            lon, lat = index.lonlat(idx)
        if fmt == "geojson":
            feats = []
            for fid, x_, y_, p in zip(ids.tolist(), lon.tolist(), lat.tolist(), props, strict=False):
                feat = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x_, y_]},
                        "properties": p}
                if fid is not None:
                    feat["id"] = fid
                feats.append(feat)
            return right_sized(orjson.dumps({"type": "FeatureCollection", "features": feats})), len(feats)
        px = np.floor((u * n - x) * EXTENT).astype(np.int64).clip(0, EXTENT - 1)
        py = np.floor((v * n - y) * EXTENT).astype(np.int64).clip(0, EXTENT - 1)
        for p in props:                 # MVT has no nested values: kinds become kind_<code>
            breakdown = p.pop("kinds", None)
            if breakdown:
                p.update({f"kind_{k}": c for k, c in breakdown.items()})
        points = list(zip(ids.tolist(), px.tolist(), py.tolist(), props, strict=False))
        return encode_point_layer(POINT_LAYER, points), len(props)

    # -- boundaries
    def _polygon_tile(self, name: str, z: int, x: int, y: int, fmt: str,
                      figures: Figures | None = None) -> tuple[bytes, int]:
        """A boundary tile; with ``figures``, the same geometry with the figures of a filter in its properties."""
        layer = self.polygons(name)
        rows, geoms = layer.clipped(z, x, y)
        props = layer.props if figures is None else figures.merged(name, layer.props)

        if fmt == "geojson":
            if not len(rows):
                return b'{"type":"FeatureCollection","features":[]}', 0
            polys = [_polygonal(g) for g in shapely.transform(geoms, _to_lonlat)]
            keep = [i for i, g in enumerate(polys) if g is not None and not g.is_empty]
            texts = shapely.to_geojson(np.array([polys[i] for i in keep] + [None], dtype=object)[:-1])
            feats_json = [{"type": "Feature", "id": layer.ids_json[r], "geometry": orjson.Fragment(t),
                           "properties": layer.props_json[r] if figures is None else props[r]}
                          for r, t in zip(rows[keep].tolist(), texts, strict=False)]
            return right_sized(orjson.dumps({"type": "FeatureCollection", "features": feats_json})), len(feats_json)
        if not len(rows):
            return b"", 0
        px = _to_pixels(geoms, z, x, y)
        polys = [_polygonal(g) for g in px]
        keep = [i for i, g in enumerate(polys) if g is not None and not g.is_empty]
        # Exterior rings with positive area in y-down tile space (counter-clockwise in the raw numbers).
        oriented = shapely.orient_polygons(np.array([polys[i] for i in keep] + [None], dtype=object)[:-1],
                                           exterior_cw=False)
        feats = []
        for i, g in zip(keep, oriented, strict=False):
            r = int(rows[i])
            feat = {"geometry": g, "properties": props[r]}
            if layer.mvt_ids[r] is not None:
                feat["id"] = layer.mvt_ids[r]
            feats.append(feat)
        if not feats:
            return b"", 0
        return _encode_polygons(name, feats), len(feats)


def _encode_polygons(name: str, feats: list[dict]) -> bytes:
    return mapbox_vector_tile.encode(
        {"name": name, "features": feats},
        default_options={"extents": EXTENT, "y_coord_down": True, "check_winding_order": False,
                         "quantize_bounds": None})


def _cells(index: PointIndex, first: np.ndarray, z: int) -> list[str]:
    """The address ``z/x/y`` of each cluster's cell (a tile of zoom z + 3), from one member's position."""
    level = min(z + CLUSTER_LEVELS, INDEX_BITS)
    scale = float(2 ** INDEX_BITS)
    top = 2 ** INDEX_BITS - 1
    shift = INDEX_BITS - level
    cx = (np.clip(np.floor(index.u[first] * scale), 0, top).astype(np.int64) >> shift).tolist()
    cy = (np.clip(np.floor(index.v[first] * scale), 0, top).astype(np.int64) >> shift).tolist()
    return [f"{level}/{a}/{b}" for a, b in zip(cx, cy, strict=True)]
