"""Load the shipped boundaries and gazetteer into one prepared, cached object.

:class:`Boundaries` holds the province and county polygons (with the border flag
and the deprivation class joined on), and the gazetteer: every official place
from province down to village, with a coordinate where one is honestly known.
Villages take their points from ``village_points.csv`` (strong and weak name
matches, see :mod:`coopgis.village_points`); cities from ``place_coordinates.csv``.
Loading is cached as a pickle keyed by the input files' sizes and times, so a
start-up after the first costs a fraction of a second.

It does not geocode (``geocode.py``) and does not rebuild the data
(``build_boundaries.py``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coopgis.census import Census, load_census
from coopgis.distance import haversine_km
from coopgis.joins import deprived_of_class
from coopgis.text import few_distinct, key, norm

if TYPE_CHECKING:
    from coopgis.placenames import LabelTable

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "boundaries"
CACHE_VERSION = "6"


# Entries of the official village list that are not settlements: wells, farms, pumps,
# companies, poultry and cattle farms, mines, stations, factories, barracks.
NOT_SETTLEMENT = re.compile(
    r"^(?:(?:چاه|مزرعه|کوره|سد|پایگاه|اردوگاه|زندان|مجتمع|شهرک صنعتی|کشت و صنعت|پرورش|تاسیسات|پمپ|انبار|"
    r"کارگاه|معدن)(?:\s|$)"
    # These are written glued to the owner's name too ("موتورحاجی").
    r"|موتور|تلمبه|مرغداری|گاوداری|دامداری|دامپروری|کارخانه|شرکت|ایستگاه|پاسگاه|پادگان|گلخانه)")

# The deprivation layer's columns, whether shipped or a replacement file.
DEPRIVATION_COLUMNS = ("deprivation_class", "deprived", "source_url", "note",
                       "province_shdi", "province_shdi_year", "province_shdi_source")


class BoundariesError(Exception):
    """The boundaries folder is missing a file or holds one that cannot be read."""


@dataclass
class Boundaries:
    provinces: gpd.GeoDataFrame
    counties: gpd.GeoDataFrame
    places: pd.DataFrame
    country: shapely.Geometry
    source_dir: Path
    _trees: dict = field(default_factory=dict, repr=False)
    _census: list = field(default_factory=list, repr=False)     # [Census | None] once read
    _labels: list = field(default_factory=list, repr=False)     # [LabelTable] once made (kept in the cache)

    def census(self) -> Census | None:
        """The census 1395 tables of this folder (read on first use), None when the folder has none."""
        if not self._census:
            self._census.append(load_census(self.source_dir))
        return self._census[0]

    def labels(self) -> LabelTable:
        """The gazetteer's place-name labels with the zooms they show at, made with the cache: making them
        takes about a second and leaves ~100 MB of a process's heap in pieces; reading them, 12 ms and 11 MB."""
        if not self._labels:
            from coopgis.placenames import build_labels

            self._labels.append(build_labels(self))
        return self._labels[0]

    # ---- lookups ----------------------------------------------------------------
    def province_name(self, iso: str, lang: str = "fa") -> str | None:
        """Display name of a province by ISO 3166-2 code."""
        row = self.provinces.loc[self.provinces["iso_3166_2"] == iso]
        if row.empty:
            return None
        return row.iloc[0]["name_fa" if lang == "fa" else "name_en"]

    def county_tree(self) -> shapely.STRtree:
        if "county" not in self._trees:
            self._trees["county"] = shapely.STRtree(self.counties.geometry.values)
        return self._trees["county"]

    def province_tree(self) -> shapely.STRtree:
        if "province" not in self._trees:
            self._trees["province"] = shapely.STRtree(self.provinces.geometry.values)
        return self._trees["province"]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_trees"] = {}
        state["_census"] = []
        return state


def load_boundaries(directory: str | Path | None = None, *, deprivation: str | Path | None = None,
                    cache_dir: str | Path | None = None) -> Boundaries:
    """Load the boundaries folder (default: the shipped one), from the cache when fresh.

    ``deprivation`` names a replacement deprivation table (CSV, same columns as
    ``boundaries/deprivation.csv``, rows keyed by ``osm_relation_id`` or
    ``official_county_code``); it replaces the shipped classes without code changes.
    """
    directory = Path(directory or DEFAULT_DIR)
    deprivation = Path(deprivation) if deprivation else directory / "deprivation.csv"
    inputs = [directory / n for n in ("provinces.geojson", "counties.geojson", "place_coordinates.csv",
                                      "village_points.csv",
                                      "divisions/province.csv", "divisions/county.csv",
                                      "divisions/district.csv", "divisions/rural_district.csv",
                                      "divisions/city.csv", "divisions/village.csv",
                                      "gazetteer/geonames_ir.csv")] + [deprivation]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise BoundariesError(f"boundaries data missing: {', '.join(missing)} "
                              "(rebuild with: python -m coopgis.build_boundaries)")
    cache_file = _cache_path(inputs, cache_dir)
    if cache_file is not None and cache_file.is_file():
        try:
            with cache_file.open("rb") as f:
                return pickle.load(f)
        except Exception:  # a stale or half-written cache is rebuilt, never trusted
            pass
    result = _build(directory, deprivation)
    if cache_file is not None:
        result.labels()
        _write_cache(cache_file, result)
    return result


# ---- building -----------------------------------------------------------------------

def _build(directory: Path, deprivation_path: Path) -> Boundaries:
    try:
        provinces = gpd.read_file(directory / "provinces.geojson", engine="pyogrio")
        counties = gpd.read_file(directory / "counties.geojson", engine="pyogrio")
    except Exception as exc:
        raise BoundariesError(f"cannot read boundary polygons in {directory}: {exc}") from exc
    counties = counties.merge(_read_deprivation(deprivation_path, counties), on="osm_relation_id", how="left")
    counties["deprivation_class"] = counties["deprivation_class"].fillna("no_data")
    places = _compact_texts(_gazetteer(directory, provinces, counties))
    county_points = places[places["level"] == "county"].drop_duplicates("county_osm").set_index("county_osm")
    counties["point_lon"] = counties["osm_relation_id"].map(county_points["point_lon"])
    counties["point_lat"] = counties["osm_relation_id"].map(county_points["point_lat"])
    country = shapely.union_all(provinces.geometry.values)
    shapely.prepare(country)
    shapely.contains_xy(country, 53.0, 32.5)   # its index is built now, before threads share it (joins.py)
    return Boundaries(provinces=provinces, counties=counties, places=places,
                      country=country, source_dir=directory)


def _compact_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """The gazetteer's text columns held compactly (the pickle keeps it so):

    - a column of few distinct values (7 levels, 31 provinces, the coordinates' sources and methods, 448
      county, 1,099 district and 2,637 rural-district ids over 104,000 places) as categories, a small code
      per row: 1-1.7 MB each as text, 0.1-0.2 MB so;
    - the other text columns (names, codes, official ids) as Arrow text: 13 MB less than a Python string
      per row for the codes and ids alone (a missing text is NaN, as in every ``str`` column)."""
    for c in frame.columns:
        values = frame[c]
        if not (pd.api.types.is_object_dtype(values) or isinstance(values.dtype, pd.StringDtype)):
            continue
        if few_distinct(values):
            frame[c] = values.astype("category")
        elif pd.api.types.is_object_dtype(values):
            frame[c] = values.astype("str")
    return frame


def _read_deprivation(path: Path, counties: gpd.GeoDataFrame) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise BoundariesError(f"cannot read deprivation table {path}: {exc}") from exc
    absent = [c for c in ("deprivation_class",) if c not in table.columns]
    if absent or not ({"osm_relation_id", "official_county_code"} & set(table.columns)):
        raise BoundariesError(f"deprivation table {path} needs columns deprivation_class and "
                              "osm_relation_id or official_county_code")
    if "osm_relation_id" not in table.columns or (table["osm_relation_id"] == "").all():
        codes = counties[["osm_relation_id", "official_county_code"]].dropna()
        table = table.merge(codes.astype(str), on="official_county_code", how="inner")
    table = table[table["osm_relation_id"] != ""].copy()
    table["osm_relation_id"] = table["osm_relation_id"].astype(int)
    for col in DEPRIVATION_COLUMNS:
        if col not in table.columns:
            table[col] = ""
    given = table["deprived"].map({"True": True, "true": True, "1": True, "False": False, "false": False, "0": False})
    # Listed: deprived. Only a ministry list's `not_deprived` class says "not deprived"; a list that
    # is silent about an area (not_listed) or missing (no_data) leaves it unknown (joins.deprived_of_class).
    table["deprived"] = [deprived_of_class(c, g) for c, g in zip(table["deprivation_class"], given, strict=True)]
    table["province_shdi"] = pd.to_numeric(table["province_shdi"], errors="coerce")
    return table[["osm_relation_id", *DEPRIVATION_COLUMNS]].drop_duplicates("osm_relation_id")


def _gazetteer(directory: Path, provinces: gpd.GeoDataFrame, counties: gpd.GeoDataFrame) -> pd.DataFrame:
    """All places, one row each, with their parents and a coordinate where known."""
    d = directory / "divisions"
    read = lambda name: pd.read_csv(d / name, dtype=str, keep_default_na=False)  # noqa: E731
    o_prov, o_county, o_dist = read("province.csv"), read("county.csv"), read("district.csv")
    o_rd, o_city, o_village = read("rural_district.csv"), read("city.csv"), read("village.csv")
    coords = pd.read_csv(directory / "place_coordinates.csv", dtype={"official_id": str, "source_id": str})
    village_points = pd.read_csv(directory / "village_points.csv", dtype=str, keep_default_na=False)
    geonames = pd.read_csv(directory / "gazetteer/geonames_ir.csv", dtype=str, keep_default_na=False)

    iso_of_prov = dict(zip(o_prov["id"], "IR-" + o_prov["code"].str.zfill(2), strict=False))
    osm_of_county = {cid: int(osm) for cid, osm in zip(counties["official_county_id"], counties["osm_relation_id"],
                                                        strict=False)
                     if isinstance(cid, str) and cid}

    frames = []

    def frame(level: str, table: pd.DataFrame, **cols) -> pd.DataFrame:
        out = pd.DataFrame({"level": level, "official_id": table["id"], "code": table["code"],
                            "name": table["name"].map(norm)})
        out["province_iso"] = table["province"].map(iso_of_prov)
        for col, series in cols.items():
            out[col] = series
        return out

    frames.append(frame("province", o_prov.assign(province=o_prov["id"])))
    frames.append(frame("county", o_county, county_id=o_county["id"]))
    frames.append(frame("district", o_dist, county_id=o_dist["county"], district_id=o_dist["id"]))
    frames.append(frame("rural_district", o_rd, county_id=o_rd["county"], district_id=o_rd["district"],
                        rural_district_id=o_rd["id"]))
    real_cities = o_city[o_city["city_type"] == "0"]
    frames.append(frame("city", real_cities, county_id=real_cities["county"], district_id=real_cities["district"]))
    frames.append(frame("village", o_village, county_id=o_village["county"], district_id=o_village["district"],
                        rural_district_id=o_village["rural_district"]))
    places = pd.concat(frames, ignore_index=True)
    places["county_osm"] = places["county_id"].map(osm_of_county)

    # Counties that OSM has and the official list does not (created from about 2019).
    new = counties[counties["official_county_code"].isna() | (counties["official_county_code"] == "")]
    places = pd.concat([places, pd.DataFrame({
        "level": "county", "official_id": None, "code": None, "name": new["display_name_fa"].map(norm),
        "province_iso": new["province_iso"], "county_osm": new["osm_relation_id"]})], ignore_index=True)

    # Coordinates of cities (place_coordinates.csv) and villages (village_points.csv) from the build step.
    vp = village_points
    located = pd.concat([
        coords[coords["level"] == "city"][["level", "official_id", "lon", "lat", "source", "source_id"]],
        pd.DataFrame({"level": "village", "official_id": vp["village_id"], "lon": vp["lon"].astype(float),
                      "lat": vp["lat"].astype(float), "source": "wof", "source_id": vp["source_id"],
                      "point_strength": vp["strength"], "point_method": vp["method"],
                      "point_outlier": vp["outlier"].map({"True": True, "False": False}),
                      "km_to_rural_district": pd.to_numeric(vp["km_to_rural_district"], errors="coerce")}),
    ], ignore_index=True).set_index(["level", "official_id"])
    idx = pd.MultiIndex.from_arrays([places["level"], places["official_id"]])
    hit = located.reindex(idx)
    places["lon"] = hit["lon"].to_numpy()
    places["lat"] = hit["lat"].to_numpy()
    places["coord_source"] = hit["source"].to_numpy()
    places["source_id"] = hit["source_id"].to_numpy()
    places["point_strength"] = hit["point_strength"].to_numpy()
    places["point_method"] = hit["point_method"].to_numpy()
    places["point_outlier"] = hit["point_outlier"].fillna(False).astype(bool).to_numpy()
    places["km_to_rural_district"] = hit["km_to_rural_district"].astype(float).to_numpy()

    # GeoNames places that matched no official city or village are still populated places.
    used = set(coords.loc[coords["source"] == "geonames", "source_id"]) | set(vp.loc[vp["geonameid"] != "",
                                                                                      "geonameid"])
    free = geonames[~geonames["geonameid"].isin(used) & (geonames["name_fa"] != "")]
    places = pd.concat([places, pd.DataFrame({
        "level": "place", "official_id": None, "code": None, "name": free["name_fa"].map(norm),
        "province_iso": free["province_iso"], "county_osm": free["county_osm_relation_id"].astype(int),
        "lon": free["lon"].astype(float), "lat": free["lat"].astype(float), "coord_source": "geonames",
        "source_id": free["geonameid"], "name_en": free["name"],
        "population": pd.to_numeric(free["population"], errors="coerce")})], ignore_index=True)

    # English names: GeoNames for located places, OSM for counties and provinces.
    gn_en = dict(zip(geonames["geonameid"], geonames["name"], strict=False))
    from_gn = places["coord_source"] == "geonames"
    places.loc[from_gn, "name_en"] = places.loc[from_gn, "source_id"].map(gn_en)
    gn_pop = dict(zip(geonames["geonameid"], pd.to_numeric(geonames["population"], errors="coerce"), strict=False))
    city_gn = from_gn & (places["level"] == "city")
    places.loc[city_gn, "population"] = places.loc[city_gn, "source_id"].map(gn_pop)
    wof_en = _wof_english(directory, vp)
    from_wof = places["coord_source"] == "wof"
    places.loc[from_wof, "name_en"] = places.loc[from_wof, "source_id"].map(wof_en)
    en_county = dict(zip(counties["osm_relation_id"], counties["name_en"], strict=False))
    is_county = places["level"] == "county"
    places.loc[is_county, "name_en"] = places.loc[is_county, "county_osm"].map(en_county)
    en_prov = dict(zip(provinces["iso_3166_2"], provinces["name_en"], strict=False))
    is_prov = places["level"] == "province"
    places.loc[is_prov, "name_en"] = places.loc[is_prov, "province_iso"].map(en_prov)
    # County display names follow the counties layer, so the geocoder and joins agree.
    disp = dict(zip(counties["osm_relation_id"], counties["display_name_fa"], strict=False))
    places.loc[is_county, "display_name"] = places.loc[is_county, "county_osm"].map(disp)
    places["display_name"] = places["display_name"].fillna(places["name"])

    places["key"] = places["name"].map(key)
    places["point_outlier"] = places["point_outlier"].fillna(False).astype(bool)
    places["settlement"] = ~(places["level"].isin(["village"]) & places["name"].str.match(NOT_SETTLEMENT))
    _place_county_and_province_points(places, provinces, counties, geonames)
    places["county_osm"] = places["county_osm"].astype("Int64")
    for col in ("official_id", "code", "county_id", "district_id", "rural_district_id"):
        places[col] = places[col].astype(object).where(places[col].notna(), None)
    # The coordinates' own ids (WOF, GeoNames) served only to join their names and populations above.
    return places.drop(columns="source_id").reset_index(drop=True)


def _wof_english(directory: Path, village_points: pd.DataFrame) -> dict[str, str]:
    """Romanised names of the places that give villages their points (for English search and labels)."""
    path = directory / "gazetteer/wof_iran_places.csv"
    if not path.is_file():
        return {}
    wof = pd.read_csv(path, usecols=["source_id", "name"], dtype=str, keep_default_na=False)
    wof = wof[wof["source_id"].isin(set(village_points["source_id"]))]
    return dict(zip(wof["source_id"], wof["name"], strict=False))


def _place_county_and_province_points(places: pd.DataFrame, provinces: gpd.GeoDataFrame,
                                      counties: gpd.GeoDataFrame, geonames: pd.DataFrame) -> None:
    """Give counties, districts, rural districts and provinces a point that lies inside them.

    A county's point is its seat town when a city of the county's name has a
    coordinate, else its most populous known place, else a point of its polygon;
    the geocoder reports any such point with precision ``county``, never finer.
    """
    gn = geonames.assign(population=pd.to_numeric(geonames["population"], errors="coerce").fillna(0),
                         lon=geonames["lon"].astype(float), lat=geonames["lat"].astype(float),
                         county_osm=geonames["county_osm_relation_id"].astype(int))
    biggest = gn.sort_values("population", ascending=False).drop_duplicates("county_osm").set_index("county_osm")
    rep = counties.set_index("osm_relation_id").geometry.representative_point()
    located_cities = places[(places["level"] == "city") & places["lon"].notna()]
    seat = {(r.county_osm, r.key): (r.lon, r.lat) for r in located_cities.itertuples()}

    county_rows = places[places["level"] == "county"]
    point: dict[int, tuple[float, float, str]] = {}
    for osm_id, name_key in zip(county_rows["county_osm"], county_rows["key"], strict=False):
        if (osm_id, name_key) in seat and point.get(osm_id, ("", "", ""))[2] != "county_seat":
            point[osm_id] = (*seat[(osm_id, name_key)], "county_seat")
    for osm_id in counties["osm_relation_id"]:
        if osm_id in point:
            continue
        if osm_id in biggest.index:
            b = biggest.loc[osm_id]
            point[osm_id] = (b["lon"], b["lat"], "county_largest_place")
        else:
            p = rep.loc[osm_id]
            point[osm_id] = (round(p.x, 6), round(p.y, 6), "county_polygon")
    table = pd.DataFrame.from_dict(point, orient="index", columns=["lon", "lat", "how"])
    osm = places["county_osm"]
    places["point_lon"] = osm.map(table["lon"])
    places["point_lat"] = osm.map(table["lat"])
    places["point_source"] = osm.map(table["how"])

    # A province's point is its most populous known place (normally its capital).
    prov_big = gn.sort_values("population", ascending=False).drop_duplicates("province_iso").set_index("province_iso")
    is_prov = places["level"] == "province"
    places.loc[is_prov, "point_lon"] = places.loc[is_prov, "province_iso"].map(prov_big["lon"])
    places.loc[is_prov, "point_lat"] = places.loc[is_prov, "province_iso"].map(prov_big["lat"])
    places.loc[is_prov, "point_source"] = "province_largest_place"
    # How far a county's or province's point may be from a place in it: to its farthest boundary vertex.
    county_radius = _farthest_vertex_m(counties.set_index("osm_relation_id").geometry, table["lon"], table["lat"])
    places["area_radius_m"] = np.nan
    is_county = places["level"] == "county"
    places.loc[is_county, "area_radius_m"] = places.loc[is_county, "county_osm"].map(county_radius)
    prov_pts = places.loc[is_prov].set_index("province_iso")
    prov_radius = _farthest_vertex_m(provinces.set_index("iso_3166_2").geometry, prov_pts["point_lon"],
                                     prov_pts["point_lat"])
    places.loc[is_prov, "area_radius_m"] = places.loc[is_prov, "province_iso"].map(prov_radius)
    # Places with their own coordinate use it as their point.
    own = places["lon"].notna()
    places.loc[own, "point_lon"] = places.loc[own, "lon"]
    places.loc[own, "point_lat"] = places.loc[own, "lat"]
    places.loc[own, "point_source"] = places.loc[own, "coord_source"]


def _farthest_vertex_m(geoms: gpd.GeoSeries, lon: pd.Series, lat: pd.Series) -> pd.Series:
    """Per area (same index): metres from its point to the farthest vertex of its polygon."""
    out = {}
    for ident, geom in geoms.items():
        if ident not in lon.index or pd.isna(lon.get(ident)):
            continue
        xy = shapely.get_coordinates(geom)
        out[ident] = float(np.max(haversine_km(float(lon[ident]), float(lat[ident]), xy[:, 0], xy[:, 1]))) * 1000
    return pd.Series(out, dtype=float).round(0)


def _cache_path(inputs: list[Path], cache_dir: str | Path | None) -> Path | None:
    cache_dir = Path(cache_dir or os.environ.get("COOPGIS_CACHE_DIR") or Path.home() / ".cache" / "coopgis")
    digest = hashlib.sha256(CACHE_VERSION.encode())
    for p in inputs:
        st = p.stat()
        digest.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    for src in (Path(__file__), Path(__file__).with_name("text.py"), Path(__file__).with_name("placenames.py")):
        digest.update(src.read_bytes())
    return cache_dir / f"boundaries-{digest.hexdigest()[:16]}.pickle"


def _write_cache(path: Path, value: Boundaries) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".boundaries-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs start-up time
