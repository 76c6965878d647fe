"""The served dataset: the stored cooperatives and the boundary collections, indexed for reading.

A :class:`Dataset` is built once when the app starts (or reloads) and then only
read: filters are numpy masks over column arrays, bounding boxes are range
tests on the point arrays, and each cooperative's public GeoJSON feature is
serialised once, so a page of items is a join of ready bytes.

The indexes that serve requests (features, nearest, search, names) belong to the dataset and its
collections and are made once, on first use or when warmed.

Not here: reading request values (``filters.py``), writing data (``store.py``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import shapely

from coopgis.boundaries import Boundaries
from coopgis.figures import COUNTS, PER_CAPITA, AreaFigures
from coopgis.geocode import Geocoder
from coopgis.joins import CLASS_WORDS, border_quota, deprivation_of_counties, quota_words
from coopgis.names import NameIndex
from coopgis.nearest import NearestIndex
from coopgis.packed import Packed
from coopgis.placenames import LabelTable
from coopgis.privacy import mask_numbers
from coopgis.search import SearchIndex, search_index_of
from coopgis.standins import FieldGuide, build_guide
from coopgis.stats import StatsIndex
from coopgis.text import few_distinct, to_persian_digits
from coopgis.vocab import KINDS, SECTORS, STATUSES, label

# Properties of a cooperative that anyone may see. Contact phone, the raw `extra`
# columns and internal row numbers are never among them.
PUBLIC_COLUMNS = (
    "registration_no", "name", "kind", "kind_fa", "sector", "sector_fa", "status", "status_fa",
    "members", "jobs", "women_led", "registered_on", "registered_on_jalali", "registered_year",
    "province", "province_name", "county", "county_code", "district", "rural_district", "place",
    "precision", "confidence", "uncertainty_m", "deprivation_class", "deprived", "border", "border_quota_usd",
    "address",
)

# GIS staff also see how each location was found; nothing here identifies a person.
STAFF_COLUMNS = PUBLIC_COLUMNS + (
    "geocode_issues", "place_level", "place_code", "county_osm", "given_province", "given_county",
    "given_district", "given_rural_district", "given_place", "given_lon", "given_lat", "synthetic", "source_row",
)
# Personal data: only an administrator sees it, and only in a cooperative's own record.
PERSONAL_COLUMNS = ("phone", "extra")
# Free text a clerk typed: a phone number or national ID written into it is masked wherever it is served.
MASKED_COLUMNS = ("name", "address", "given_province", "given_county", "given_district", "given_rural_district",
                  "given_place")

COLLECTIONS = {
    "cooperatives": {"title": "Cooperatives", "title_fa": "تعاونی‌ها", "geometry": "point",
                     "description": "Iran's cooperatives, geocoded from their addresses and joined to "
                                    "province, county, deprivation class and border flag."},
    "provinces": {"title": "Provinces", "title_fa": "استان‌ها", "geometry": "polygon",
                  "description": "The 31 provinces (OpenStreetMap) with cooperative totals."},
    "counties": {"title": "Counties", "title_fa": "شهرستان‌ها", "geometry": "polygon",
                 "description": "The 478 counties (OpenStreetMap) with official codes, border flag and "
                                "cooperative totals."},
    "deprivation": {"title": "Deprivation", "title_fa": "محرومیت", "geometry": "polygon",
                    "description": "Published deprivation classes per county, each with its source; "
                                   "no_data where nothing was published."},
}
ATTRIBUTION = ("© OpenStreetMap contributors (ODbL); Contains GeoNames data (https://www.geonames.org), CC BY 4.0; "
               "Data from Who's On First (https://whosonfirst.org/docs/licenses/), includes data from foursquare "
               "quattroshapes (CC BY); official divisions from django-iranian-cities (GPL-3.0); Iran Post GNAF via "
               "masterking32/iran-states-cities-districts (MIT)")
# The same sources in one short line, for the corner of a map (the full line is in every page's footer
# and in the API).
ATTRIBUTION_SHORT = ("© OpenStreetMap contributors · GeoNames (CC BY 4.0) · Who's On First · quattroshapes · "
                     "django-iranian-cities · Iran Post GNAF")

# The serialised features of a large point collection are written once to files (in the cache folder,
# named by a digest of the rows and of this module) and read from them (``Packed.opened``): every worker on
# the machine reads the same pages of the kernel's page cache, and a restart reads them instead of
# serialising again. They are read with ``pread``, near ones together, not memory-mapped: mapped, a page of
# 1,000 scattered features mapped the large folios around each of them, and within seconds of a mixed load
# every worker held the whole 76 MB properties file at 100,000 cooperatives (+88 MB resident). Read, the
# features of a Tehran page of 1,000 take 1.1 ms rather than 0.55 (37 reads); those of a page scattered over
# the file (a bbox far from the cities) 1.7 ms rather than 0.45.
FEATURE_FILE_MIN_ROWS = 10_000
KEEP_FEATURE_FILES = 48          # the newest files kept in the folder (3 per collection and level of a dataset)
LAZY = ("guide", "names", "labels", "figures", "stats", "search")   # what a Dataset makes on first use


@dataclass
class Collection:
    """One served collection: its table, id column and ready-made feature bytes."""

    name: str
    frame: gpd.GeoDataFrame
    id_column: str
    properties: tuple[str, ...]             # public
    staff_properties: tuple[str, ...] | None = None
    lon: np.ndarray | None = None           # points only
    lat: np.ndarray | None = None
    bounds: np.ndarray | None = None        # polygons: minx, miny, maxx, maxy per row
    files: Path | None = None               # the folder of its feature files (None: kept in memory only)
    _parts: dict[str, tuple[Packed, Packed, Packed]] = field(default_factory=dict, repr=False)
    _row_of_id: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)   # ids sorted, their rows
    _nearest: NearestIndex | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _parts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cached: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def extent(self) -> list[float]:
        b = self.frame.total_bounds
        return [round(float(v), 6) for v in b] if np.isfinite(b).all() else [44.0, 25.0, 63.4, 39.8]

    def columns(self, level: str = "public") -> tuple[str, ...]:
        """The properties shown at an access level: ``public`` or ``staff``."""
        return self.staff_properties if level == "staff" and self.staff_properties else self.properties

    def parts_made(self, level: str = "public") -> bool:
        """True once :meth:`parts` of ``level`` are made (asking for them then costs nothing)."""
        return (level if level == "staff" and self.staff_properties else "public") in self._parts

    def parts(self, level: str = "public") -> tuple[Packed, Packed, Packed]:
        """Per row: the serialised id, CRS84 geometry and properties of a level, made once."""
        level = level if level == "staff" and self.staff_properties else "public"
        if level not in self._parts:
            # made once: a request during the warm-up waits for the warming thread instead of making them too
            with self._parts_lock:
                if level not in self._parts:
                    self._parts[level] = self._made_parts(level)
        return self._parts[level]

    def _made_parts(self, level: str) -> tuple[Packed, Packed, Packed]:
        """The parts of a level: mapped from their files when written before, else serialised (and written)."""
        columns = self.columns(level)
        if self.files is None or (self.lon is not None and len(self) < FEATURE_FILE_MIN_ROWS):
            return _serialise(self.frame, self.id_column, columns)
        digest = _rows_digest(self.frame, self.id_column, columns, self.lon, self.lat)
        paths = [self.files / f"{self.name}-{digest}-{level}-{part}.packed" for part in ("ids", "geoms", "props")]
        ids, geoms, props = Packed.kept(paths, lambda: _serialise(self.frame, self.id_column, columns),
                                        KEEP_FEATURE_FILES, size=len(self))
        return ids, geoms, props

    def feature(self, i: int, geometry: bytes | None = None, level: str = "public") -> bytes:
        """One GeoJSON Feature; ``geometry`` replaces the CRS84 geometry (for another CRS)."""
        ids, geoms, props = self.parts(level)
        return _feature(ids[i], geometry or geoms[i], props[i])

    def features(self, rows: np.ndarray, level: str = "public") -> bytes:
        """The GeoJSON Features of ``rows``, comma-joined (:meth:`feature` of each, in one pass)."""
        ids, geoms, props = self.parts(level)
        return b",".join(map(_feature, ids.items(rows), geoms.items(rows), props.items(rows)))

    def feature_with(self, i: int, extra: dict, level: str = "public") -> bytes:
        """One GeoJSON Feature with ``extra`` properties after the row's own."""
        ids, geoms, props = self.parts(level)
        p = props[i]
        more = orjson.dumps(extra)[1:-1]
        return _feature(ids[i], geoms[i], p[:-1] + (b"," if len(p) > 2 and more else b"") + more + b"}")

    @property
    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Longitudes and latitudes of a point collection (NaN where a row has no location)."""
        if self.lon is None or self.lat is None:
            raise TypeError(f"{self.name} is not a point collection")
        return self.lon, self.lat

    def cached(self, key, make):
        """A value derived from this collection's rows (typed column arrays for filters), made once."""
        if key not in self._cached:
            value = make()
            with self._lock:
                self._cached.setdefault(key, value)
        return self._cached[key]

    def nearest_index(self) -> NearestIndex:
        """The located points sorted by latitude, for nearest-neighbour searches (points only; made once)."""
        if self._nearest is None:
            with self._lock:
                if self._nearest is None:
                    self._nearest = NearestIndex.build(*self.points)
        return self._nearest

    def location(self, row: int) -> dict:
        """Where a point row is served now: ``{lon, lat, precision}`` (None for what is unknown)."""
        lons, lats = self.points
        lon, lat = float(lons[row]), float(lats[row])
        precision = self.frame["precision"].iat[row]
        ok = math.isfinite(lon) and math.isfinite(lat)
        return {"lon": lon if ok else None, "lat": lat if ok else None,
                "precision": precision if isinstance(precision, str) else None}

    def row_of(self, feature_id: str) -> int | None:
        """The row of an id (its text; the last row when ids repeat), None when there is none."""
        if self._row_of_id is None:
            with self._lock:
                if self._row_of_id is None:
                    self._row_of_id = _sorted_ids(self.frame[self.id_column])
        keys, rows = self._row_of_id
        key = np.bytes_(str(feature_id).encode("utf-8"))
        at = int(np.searchsorted(keys, key, side="right")) - 1
        return int(rows[at]) if at >= 0 and keys[at] == key else None

    def rows_in_bbox(self, bbox: tuple[float, float, float, float]) -> np.ndarray:
        """Rows that intersect a CRS84 bbox, ascending: for points, the rows within the bbox's longitudes
        (two binary searches over the points sorted by longitude) tested for latitude, rather than a test
        of every point, when those are fewer than an eighth of the rows (a city, a province)."""
        if self.lon is None or self.lat is None:
            return np.flatnonzero(self.in_bbox(bbox))
        minx, miny, maxx, maxy = bbox
        order, lon_sorted = self.by_longitude()
        a, b = int(np.searchsorted(lon_sorted, minx, "left")), int(np.searchsorted(lon_sorted, maxx, "right"))
        if b - a > len(order) // 8:
            return np.flatnonzero(self.in_bbox(bbox))
        candidates = order[a:b]
        lat = self.lat[candidates]
        return np.sort(candidates[(lat >= miny) & (lat <= maxy)]).astype(np.int64)

    def by_longitude(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows in order of longitude (rows with no location last) and their longitudes (made once)."""
        def make() -> tuple[np.ndarray, np.ndarray]:
            order = np.argsort(self.points[0], kind="stable").astype(np.int32)
            return order, self.points[0][order]
        return self.cached("by_longitude", make)

    def in_bbox(self, bbox: tuple[float, float, float, float]) -> np.ndarray:
        """Boolean mask of rows that intersect a CRS84 bbox."""
        minx, miny, maxx, maxy = bbox
        if self.lon is not None and self.lat is not None:
            lon, lat = self.lon, self.lat
            with np.errstate(invalid="ignore"):
                return (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
        b = self.bounds
        if b is None:
            raise TypeError(f"{self.name} has neither points nor bounds")
        return (b[:, 0] <= maxx) & (b[:, 2] >= minx) & (b[:, 1] <= maxy) & (b[:, 3] >= miny)


class Dataset:
    """Everything the service reads, built from the stored cooperatives and the boundaries."""

    def __init__(self, cooperatives: gpd.GeoDataFrame, boundaries: Boundaries, report: dict | None = None,
                 geocoder: Geocoder | None = None, verified: dict[str, dict] | None = None,
                 villages: list[tuple[str, float, float]] | None = None, feature_files: Path | None = None):
        """``geocoder``: shared with a previous dataset, or None to make one on first use (about 1.5 s: not
        at start-up; the warm-up makes it), then taught ``villages`` ((code, lon, lat) of verified points).
        ``feature_files``: the folder where the serialised features are kept and mapped from."""
        self.boundaries = boundaries
        self._geocoder = geocoder
        self._villages = list(villages or ())
        self._files = feature_files   # where features and the search index are kept (None: in memory only)
        # What the ingest of the served file found, in figures: the refused rows themselves stay in the
        # store's report.json (the service shows their count; 2.3 MB of Python objects at 100,000 rows).
        self.ingest_report = {k: v for k, v in (report or {}).items() if k != "quarantine"}
        self.verified = dict(verified or {})   # registration number -> the accepted decision applied
        self._names: NameIndex | None = None
        self._search: SearchIndex | None = None
        self._labels: LabelTable | None = None
        self._guide: FieldGuide | None = None
        self._figures: AreaFigures | None = None
        self._stats: StatsIndex | None = None
        # One lock per structure (Python's locks are not fair: a request waiting on a lock the warm-up holds
        # while it builds several structures in a row would wait for all of them).
        self._locks = {name: threading.Lock() for name in LAZY}
        self._geocoder_lock = threading.Lock()
        coops = _one_chunk(cooperatives.reset_index(drop=True).copy())
        if "uncertainty_m" not in coops.columns:  # a store written before uncertainty was measured
            coops["uncertainty_m"] = np.nan
        if "county_osm" in coops.columns and len(coops):
            # The deprivation class, and so the quota, follow the current deprivation layer (a
            # COOPGIS_DEPRIVATION table, the quota rule), not the one of the day of the ingest.
            dep = deprivation_of_counties(coops["county_osm"], boundaries)
            coops["deprivation_class"] = dep["deprivation_class"]
            coops["deprived"] = dep["deprived"]
            coops["border_quota_usd"] = border_quota(coops["kind"], coops["deprived"])
        for col in MASKED_COLUMNS:
            if col in coops.columns:
                coops[col] = _masked(coops[col])
        coops["kind_fa"] = coops["kind"].map(lambda c: label(KINDS, c) if isinstance(c, str) else None)
        coops["sector_fa"] = coops["sector"].map(lambda c: label(SECTORS, c) if isinstance(c, str) else None)
        coops["status_fa"] = coops["status"].map(lambda c: label(STATUSES, c) if isinstance(c, str) else None)
        # Jalali dates in Persian digits: they are for reading, and GDAL would take "1402/02/31" for a
        # (Gregorian, impossible) date and fail; `registered_on` is the machine-readable ISO date.
        coops["registered_on_jalali"] = coops["registered_on_jalali"].map(
            lambda v: to_persian_digits(v) if isinstance(v, str) else None)
        coops = _dictionary_encoded(coops)
        self.cooperatives = coops
        pts = coops.geometry
        has = pts.notna() & ~pts.is_empty
        lon = np.full(len(coops), np.nan)
        lat = np.full(len(coops), np.nan)
        lon[has.to_numpy()] = pts[has].x.to_numpy()
        lat[has.to_numpy()] = pts[has].y.to_numpy()
        self.collections: dict[str, Collection] = {
            "cooperatives": Collection("cooperatives", coops, "registration_no", PUBLIC_COLUMNS,
                                       tuple(c for c in STAFF_COLUMNS if c in coops.columns), lon=lon, lat=lat,
                                       files=feature_files),
        }
        provinces, counties, deprivation = self._boundary_tables()
        for name, frame, id_col in (("provinces", provinces, "iso_3166_2"), ("counties", counties, "osm_relation_id"),
                                    ("deprivation", deprivation, "osm_relation_id")):
            props = tuple(c for c in frame.columns if c != "geometry")
            self.collections[name] = Collection(name, frame, id_col, props, bounds=frame.geometry.bounds.to_numpy(),
                                                files=feature_files)

    @property
    def feature_files(self) -> Path | None:
        """The folder where serialised features and indexes are kept and mapped from (None: in memory only)."""
        return self._files

    def warm(self) -> None:
        """Serialise the public features and sort the points by longitude now, so no request waits for it."""
        self.collections["cooperatives"].parts()
        self.collections["cooperatives"].by_longitude()

    def warm_indexes(self) -> None:
        """Build what requests would make on first use now (about 4 s for 100,000 cooperatives): the
        geocoder, the nearest and search indexes and the field guide, the names filters read, and the
        area figures and group codes of the statistics. (Made by the first requests instead, amid their
        passing buffers, they left the heap 10 MB larger.)"""
        self.geocoder  # noqa: B018  (made on first use)
        self.collections["cooperatives"].nearest_index()
        self.search_index()
        self.field_guide()
        self.names  # noqa: B018
        self.stats_index  # noqa: B018  (the area figures first)

    def field_guide(self) -> FieldGuide:
        """Per cooperative: stand-in or not, the area it stands for, a real place to go to (made on first use)."""
        if self._guide is None:
            with self._locks["guide"]:
                if self._guide is None:
                    coll = self.collections["cooperatives"]
                    self._guide = build_guide(coll.frame, *coll.points, self.boundaries)
        return self._guide

    @property
    def geocoder(self) -> Geocoder:
        """The geocoder over the boundaries (made on first use, with the villages learnt from verified points)."""
        if self._geocoder is None:
            with self._geocoder_lock:   # its own lock: the name index takes the geocoder under its own lock
                if self._geocoder is None:
                    geocoder = Geocoder(self.boundaries)
                    for code, lon, lat in self._villages:
                        geocoder.learn_village(code, lon, lat)
                    self._geocoder = geocoder
        return self._geocoder

    @property
    def names(self) -> NameIndex:
        """Province and county names of the boundaries, for filters (made on first use)."""
        if self._names is None:
            with self._locks["names"]:
                if self._names is None:
                    self._names = NameIndex(self.boundaries, self.geocoder)
        return self._names

    def place_labels(self) -> LabelTable:
        """The place-name labels of the boundaries, with their zooms (read with the boundaries' cache)."""
        if self._labels is None:
            with self._locks["labels"]:
                if self._labels is None:
                    self._labels = self.boundaries.labels()
        return self._labels

    @property
    def labels_made(self) -> LabelTable | None:
        """The labels if they were made already (None: not yet)."""
        return self._labels

    def lend_labels(self, other: Dataset) -> None:
        """Use ``other``'s labels when it has made them over the same boundaries (a reload)."""
        if other.boundaries is self.boundaries and self._labels is None:
            self._labels = other._labels
    @property
    def figures(self) -> AreaFigures:
        """Which province and county each cooperative counts in, and the census figures (made on first use)."""
        if self._figures is None:
            with self._locks["figures"]:
                if self._figures is None:
                    self._figures = AreaFigures(self.cooperatives, self.boundaries)
        return self._figures

    @property
    def stats_index(self) -> StatsIndex:
        """Group codes of the cooperatives for the dashboard's figures (made on first use)."""
        if self._stats is None:
            figures = self.figures
            with self._locks["stats"]:
                if self._stats is None:
                    self._stats = StatsIndex(self.cooperatives, figures, self.boundaries)
        return self._stats

    def search_index(self) -> SearchIndex:
        """The search index of the cooperatives (made on first use)."""
        if self._search is None:
            with self._locks["search"]:
                if self._search is None:
                    self._search = search_index_of(self.cooperatives, self.boundaries, self._files)
        return self._search

    def with_verified(self, accepted: dict[str, dict]) -> Dataset:
        """This dataset with more accepted locations applied, without reading the store again.

        Only the cooperatives that moved are joined and serialised again; the boundary totals are
        recounted. Everything else (boundaries, geocoder, the other rows' feature bytes) is shared.
        """
        from coopgis.corrections import apply_verified, learn_villages

        frame = apply_verified(self.cooperatives, accepted, self.boundaries)
        learn_villages(self.geocoder, frame, accepted)
        out = copy.copy(self)
        out._locks = {name: threading.Lock() for name in LAZY}
        moved = np.flatnonzero(frame["registration_no"].astype(str).isin(list(accepted)).to_numpy())
        out._guide = self._guide.verified(moved) if self._guide is not None else None
        out._figures = None
        out._stats = None
        # The search index and the name index stay: names, places and addresses do not move (a moved
        # cooperative is found under its former county's name until the next reload).
        out.cooperatives = frame
        out.verified = {**self.verified, **accepted}
        old = self.collections["cooperatives"]
        lon, lat = (a.copy() for a in old.points)
        points = frame.geometry.values[moved]
        lon[moved] = [p.x if p is not None and not p.is_empty else np.nan for p in points]
        lat[moved] = [p.y if p is not None and not p.is_empty else np.nan for p in points]
        coll = Collection("cooperatives", frame, old.id_column, old.properties, old.staff_properties, lon=lon, lat=lat)
        coll._row_of_id = old._row_of_id
        for level, (ids, geoms, props) in list(old._parts.items()):
            _, new_geoms, new_props = _serialise(frame.iloc[moved], old.id_column, coll.columns(level))
            coll._parts[level] = (ids, geoms.replaced(moved, new_geoms), props.replaced(moved, new_props))
        out.collections = {**self.collections, "cooperatives": coll}
        provinces, counties, deprivation = out._boundary_tables()
        for name, table, id_col in (("provinces", provinces, "iso_3166_2"), ("counties", counties, "osm_relation_id"),
                                    ("deprivation", deprivation, "osm_relation_id")):
            out.collections[name] = Collection(name, table, id_col, self.collections[name].properties,
                                               bounds=self.collections[name].bounds)
        return out

    @property
    def synthetic(self) -> bool:
        """True when the served registry is a synthetic sample."""
        return bool(self.ingest_report.get("synthetic")) or "sample" in str(self.ingest_report.get("file", "")).lower()

    def _boundary_tables(self) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
        b = self.boundaries
        figures = self.figures.of()
        census = b.census()
        provinces = b.provinces[["iso_3166_2", "name_fa", "name_en", "geometry"]].copy()
        counties = b.counties[["osm_relation_id", "province_iso", "display_name_fa", "name_en",
                               "official_county_code", "border", "border_km", "geometry"]].copy()
        counties = counties.rename(columns={"display_name_fa": "name_fa"})
        for frame, values in ((provinces, figures.provinces), (counties, figures.counties)):
            for col in (*COUNTS, "in_deprived_areas"):
                frame[col] = values[col].astype(int)
            for col in PER_CAPITA:
                frame[col] = np.round(values[col], 3)
        if census is not None:
            p = census.provinces.reindex(provinces["iso_3166_2"])
            provinces["population_1395"] = pd.array(p["population"].to_numpy(), dtype="Int64")
            c = census.counties.reindex(counties["osm_relation_id"])
            for col in ("census_unit", "census_unit_name", "unit_link"):
                counties[col] = c[col].fillna("").to_numpy(dtype=object)
            counties["unit_population_1395"] = pd.array(c["population"].to_numpy(), dtype="Int64")
            for frame, table in ((provinces, p), (counties, c)):
                for col in ("unemployment_rate_pct", "illiteracy_pct_15plus"):
                    frame[col] = table[col].to_numpy(float)
        provinces["geometry"] = provinces.pop("geometry")
        counties["geometry"] = counties.pop("geometry")
        deprivation = b.counties[["osm_relation_id", "province_iso", "display_name_fa", "deprivation_class",
                                  "deprived", "source_url", "note", "province_shdi", "province_shdi_year",
                                  "border", "geometry"]].rename(columns={"display_name_fa": "name_fa"}).copy()
        deprivation["deprived"] = deprivation["deprived"].map(lambda v: None if pd.isna(v) else bool(v))
        deprivation.insert(4, "class_words", deprivation["deprivation_class"].map(CLASS_WORDS).fillna(""))
        deprivation.insert(6, "border_quota", [quota_words("border_dwellers", d) for d in deprivation["deprived"]])
        return (gpd.GeoDataFrame(provinces.reset_index(drop=True), geometry="geometry", crs=b.provinces.crs),
                gpd.GeoDataFrame(counties.reset_index(drop=True), geometry="geometry", crs=b.counties.crs),
                deprivation.reset_index(drop=True))


def _one_chunk(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each Arrow text column in one piece: a store read gives one piece per row group, and
    picking rows from a column in pieces joins the pieces first (about 50 ms per column at 1,000,000
    rows, for a tile of 50 points or a page of items), from one piece it takes the rows alone."""
    for col in frame.columns:
        values = frame[col].array
        if isinstance(values, pd.arrays.ArrowStringArray):
            chunks = values.__arrow_array__()
            if chunks.num_chunks > 1:
                whole = pa.chunked_array([chunks.combine_chunks()])
                frame[col] = pd.Series(pd.arrays.ArrowStringArray(whole, dtype=frame[col].dtype), index=frame.index)
    return frame


def _sorted_ids(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The ids' UTF-8 texts sorted, with the row of each: a binary search finds a row (1.6 MB at 100,000
    cooperatives, where a dict of the texts took 11.5 MB)."""
    keys = np.array([str(v).encode("utf-8") for v in ids], dtype=bytes)
    order = np.argsort(keys, kind="stable")
    return keys[order], order.astype(np.int32)


def _dictionary_encoded(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each text column of few distinct values (kind, province, county, precision and their
    labels) as categories: a code per row and each text once (35 MB less at 100,000 cooperatives)."""
    for col in frame.columns:
        values = frame[col]
        if isinstance(values.dtype, pd.StringDtype) and few_distinct(values):
            frame[col] = values.astype("category")
    return frame


def _masked(column: pd.Series) -> pd.Series:
    """A text column with phone-like and ID-like numbers masked (each distinct value masked once)."""
    values = column.dropna().unique()
    changed = {v: m for v in values if isinstance(v, str) and (m := mask_numbers(v)) != v}
    return column.map(lambda v: changed.get(v, v)) if changed else column


def plain_value(v):
    """A JSON/MVT-ready Python value: numpy scalars unwrapped, every kind of missing value as None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, str):
        return v
    try:
        return None if pd.isna(v) else str(v)
    except (TypeError, ValueError):
        return str(v)


def right_sized(data: bytes) -> bytes:
    """A copy of exactly ``len(data)`` bytes: orjson's output keeps its (larger) working buffer."""
    return memoryview(data).tobytes()


def _feature(id_: bytes, geometry: bytes, properties: bytes) -> bytes:
    """A GeoJSON Feature from the JSON of its id, geometry and properties."""
    return b'{"type":"Feature","id":' + id_ + b',"geometry":' + geometry + b',"properties":' + properties + b"}"


def _rows_digest(frame: pd.DataFrame, id_column: str, columns: tuple[str, ...], lon: np.ndarray | None,
                 lat: np.ndarray | None) -> str:
    """A digest of what a collection's features are made of: the values of its columns, its points (or
    its geometries' WKB, for polygons), and the code that serialises them (this module)."""
    h = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=16)
    h.update(repr((id_column, columns, len(frame))).encode())
    for col in (id_column, *columns):
        if col in frame.columns:
            h.update(pd.util.hash_pandas_object(frame[col], index=False).to_numpy().tobytes())
    if lon is None or lat is None:
        for wkb in shapely.to_wkb(np.asarray(frame.geometry.values), hex=False):
            h.update(b"" if wkb is None else wkb)
    else:
        h.update(np.ascontiguousarray(lon).tobytes())
        h.update(np.ascontiguousarray(lat).tobytes())
    return h.hexdigest()


def _serialise(frame: gpd.GeoDataFrame, id_column: str, properties: tuple[str, ...],
               chunk: int = 10_000) -> tuple[Packed, Packed, Packed]:
    """JSON bytes of each row's id, geometry (RFC 7946) and properties.

    ``chunk`` rows at a time: the Python values of every cell exist only for one chunk (made at once
    for 100,000 rows they were about 250 MB, and left the heap fragmented after)."""
    cols = list(properties)

    def ids():
        for start in range(0, len(frame), chunk):
            yield from (orjson.dumps(plain_value(v)) for v in frame[id_column].iloc[start:start + chunk].tolist())

    def geoms():
        for start in range(0, len(frame), chunk):
            geo = shapely.to_geojson(frame.geometry.values[start:start + chunk])  # None stays None
            yield from (g.encode() if isinstance(g, str) else b"null" for g in geo)

    def props():
        for start in range(0, len(frame), chunk):
            part = frame.iloc[start:start + chunk]
            # Column by column to Python values (None for every kind of missing), then one dict per row.
            columns = [part[c].astype(object).where(part[c].notna(), None).tolist() for c in cols]
            yield from (orjson.dumps(dict(zip(cols, values, strict=False)), default=plain_value)
                        for values in zip(*columns, strict=False))

    return Packed(ids()), Packed(geoms()), Packed(props())
