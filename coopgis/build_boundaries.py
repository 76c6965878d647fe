"""Rebuild ``boundaries/`` from the raw open data in ``shared/data``.

Run: ``python -m coopgis.build_boundaries --source ../shared/data --out boundaries``.

Raw files are copied unchanged (their licences travel with them). Derived files:

- ``provinces.geojson``: the OSM provinces plus the official province id.
- ``counties.geojson``: the OSM counties plus a display name, the official
  code, and the border flag derived from the geometry (``border``, ``border_km``).
- ``deprivation.csv``: one row per county with the published deprivation
  class and its source; ``no_data`` where nothing was published.
- ``place_coordinates.csv``: coordinates for official cities, each matched by
  name within its own county to GeoNames or Iran Post GNAF.
- ``census1395.csv`` and ``census1395_provinces.csv``: census 1395 population and
  county indicators on today's counties, through census units (``coopgis.census``).
- ``village_points.csv``: official villages placed at populated places of the
  Who's On First / GeoNames places file (``coopgis.village_points`` has the rules),
  with checks that stop the build when the result is not what it should be.

This module is for rebuilding data, not for serving it (see ``boundaries.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from coopgis.boundaries import NOT_SETTLEMENT
from coopgis.census import census_tables
from coopgis.joins import locate_points
from coopgis.text import key, norm
from coopgis.village_points import STRONG_METHODS, match_villages, name_key

# Iran-centred Albers equal-area, as used in shared/data/reports/QUALITY.md.
IRAN_ALBERS = "+proj=aea +lat_0=32 +lon_0=54 +lat_1=27 +lat_2=37 +datum=WGS84 +units=m"

# A county whose outline runs along the country's outer boundary for at least this
# many kilometres is a border county; shorter contacts are corners, not borders.
BORDER_MIN_KM = 1.0

# OSM relation 6555266 is tagged معمولان but holds the old Poldokhtar county
# (shared/data/reports/NAME_MATCH.md); the official پلدختر has no polygon of its own.
POLDOKHTAR_OSM = 6555266
POLDOKHTAR_OFFICIAL_CODE = "1508"

# A county created after the official list takes the villages of the official county it was carved
# from: the neighbour (same province) whose unique village names its places carry most often, with at
# least this many such names and twice as many as the next neighbour.
PARENT_MIN_VOTES = 5
# A place this close to another county (degrees, about 3 km) may be that county's village (a weak match).
NEAR_COUNTY_DEGREES = 0.03

# Checks that stop the build (village points). The target was 40,000 strong; the open data
# supports about 39,000 under the matching rules (see SOURCES.md), so the build stops below this floor.
MIN_STRONG_VILLAGES = 38_500
MIN_STRONG_INSIDE_SHARE = 0.94


class BuildError(Exception):
    """A check of the rebuilt data failed; the message says which and by how much."""

RAW_FILES = (
    "divisions/province.csv", "divisions/county.csv", "divisions/district.csv",
    "divisions/city.csv", "divisions/rural_district.csv", "divisions/village.csv",
    "divisions/LICENSE",
    "gazetteer/geonames_ir.csv", "gazetteer/geonames_admin1_to_iso.csv", "gazetteer/gnaf_places.csv",
    "gazetteer/wof_iran_places.csv",
    "crosswalk/osm_county_to_official.csv", "crosswalk/official_county_to_osm.csv",
    "crosswalk/gnaf_to_official_city.csv", "crosswalk/official_city_to_gnaf.csv",
    "deprivation/province_indicators.csv", "deprivation/less_developed_counties_2019.csv",
    "deprivation/deprived_areas_2009_annex.csv", "deprivation/SOURCES.md",
    "deprivation/census1395_county_indicators.csv",
    "population/population_county_2016.csv", "population/population_province_2016.csv",
    "population/population_county_2011.csv", "population/population_province_2011.csv",
    "population/crosswalk_official1398_to_census1395.csv", "population/population_match_report.json",
    "reports/QUALITY.md", "reports/NAME_MATCH.md", "reports/GAZETTEER_HUNT.md",
    "PROVENANCE.md",
)


def build(source: Path, out: Path) -> dict:
    """Copy the raw files and write the derived ones; return a summary."""
    out.mkdir(parents=True, exist_ok=True)
    for rel in RAW_FILES:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, out / rel)

    provinces = gpd.read_file(source / "boundaries/provinces.geojson")
    counties = gpd.read_file(source / "boundaries/counties.geojson")
    official_provinces = pd.read_csv(source / "divisions/province.csv", dtype=str)
    official_counties = pd.read_csv(source / "divisions/county.csv", dtype=str)

    provinces = _provinces(provinces, official_provinces)
    counties = _counties(counties, provinces, official_counties)
    deprivation = _deprivation(source, counties)
    places = _place_coordinates(source, counties)
    city_geonames = set(places.loc[places["source"] == "geonames", "source_id"])
    villages, village_summary = village_points(source, counties, used_geonames=city_geonames)
    census_counties, census_provinces, census_summary = census_tables(source, counties,
                                                                      village_summary["new_county_parents"])

    _write_geojson(provinces, out / "provinces.geojson")
    _write_geojson(counties, out / "counties.geojson")
    deprivation.to_csv(out / "deprivation.csv", index=False)
    places.to_csv(out / "place_coordinates.csv", index=False)
    villages.to_csv(out / "village_points.csv", index=False)
    census_counties.to_csv(out / "census1395.csv", index=False)
    census_provinces.to_csv(out / "census1395_provinces.csv", index=False)

    summary = {
        "provinces": len(provinces),
        "counties": len(counties),
        "border_counties": int(counties["border"].sum()),
        "deprivation_classes": deprivation["deprivation_class"].value_counts().to_dict(),
        "place_coordinates": places.groupby(["level", "source"]).size().rename("n").reset_index()
        .to_dict("records"),
        "village_points": village_summary,
        "census1395": census_summary,
    }
    (out / "build_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    return summary


def _provinces(provinces: gpd.GeoDataFrame, official: pd.DataFrame) -> gpd.GeoDataFrame:
    official = official.assign(iso_3166_2="IR-" + official["code"].str.zfill(2))
    merged = provinces.merge(
        official[["iso_3166_2", "id"]].rename(columns={"id": "official_province_id"}),
        on="iso_3166_2", how="left", validate="one_to_one")
    cols = ["iso_3166_2", "name_fa", "name_en", "official_province_id", "wikidata",
            "osm_relation_id", "osm_name", "geometry"]
    return merged[cols].sort_values("iso_3166_2").reset_index(drop=True)


def _counties(counties: gpd.GeoDataFrame, provinces: gpd.GeoDataFrame,
              official: pd.DataFrame) -> gpd.GeoDataFrame:
    names = official.set_index("code")["name"]
    display = []
    for _, row in counties.iterrows():
        code = row["official_county_code"]
        if row["osm_relation_id"] == POLDOKHTAR_OSM:
            display.append("پلدختر (معمولان)")
        elif isinstance(code, str) and code:
            display.append(norm(names[code]))
        else:
            display.append(norm(row["name_fa"]))
    counties = counties.assign(display_name_fa=display)
    counties.loc[counties["osm_relation_id"] == POLDOKHTAR_OSM, "official_county_code"] = POLDOKHTAR_OFFICIAL_CODE
    counties.loc[counties["osm_relation_id"] == POLDOKHTAR_OSM, "official_county_id"] = (
        official.loc[official["code"] == POLDOKHTAR_OFFICIAL_CODE, "id"].iloc[0])

    # Border: length of the county outline lying on the country's outer boundary.
    country = shapely.union_all(provinces.geometry.values)
    outer = gpd.GeoSeries([country.boundary], crs=4326).to_crs(IRAN_ALBERS).iloc[0]
    outlines = counties.geometry.boundary.to_crs(IRAN_ALBERS)
    shared_km = shapely.length(shapely.intersection(outlines.values, outer)) / 1000.0
    counties = counties.assign(border_km=shared_km.round(1), border=shared_km >= BORDER_MIN_KM)
    cols = ["osm_relation_id", "province_iso", "display_name_fa", "name_fa", "name_en",
            "official_county_id", "official_county_code", "border", "border_km",
            "wikidata", "osm_name", "geometry"]
    return counties[cols].sort_values(["province_iso", "osm_relation_id"]).reset_index(drop=True)


def _deprivation(source: Path, counties: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per county: the published class with its source, or no_data."""
    listed19 = pd.read_csv(source / "deprivation/less_developed_counties_2019.csv", dtype=str)
    annex09 = pd.read_csv(source / "deprivation/deprived_areas_2009_annex.csv", dtype=str)
    indicators = pd.read_csv(source / "deprivation/province_indicators.csv", dtype=str)
    shdi = indicators[indicators["indicator"].str.contains("SHDI")]
    shdi = shdi.sort_values("year").drop_duplicates("iso_3166_2", keep="last").set_index("iso_3166_2")

    linked19 = listed19.dropna(subset=["osm_relation_id"]).set_index("osm_relation_id")
    unresolved19 = set(listed19.loc[listed19["osm_relation_id"].isna(), "province_iso"])
    provinces19 = set(listed19["province_iso"]) - unresolved19
    annex = annex09.dropna(subset=["osm_relation_id"]).set_index("osm_relation_id")

    rows = []
    for _, c in counties.iterrows():
        rid = str(c["osm_relation_id"])
        iso = c["province_iso"]
        if rid in linked19.index:
            r = linked19.loc[rid]
            cls, deprived, url = "less_developed_2019", True, r["source_url"]
            note = ("Ministry of Interior list of 31 least-developed counties (one per province), "
                    f"announced {r['announced'] or 'date not given by this source'}")
        elif rid in annex.index:
            r = annex.loc[rid]
            cls, deprived, url, note = "deprived_2009", True, r["source_url"], r["note"]
        elif iso in provinces19:
            cls, deprived, url = "not_listed", None, ""   # silent, so unknown: never "not deprived"
            note = ("not this province's county in the 2019 least-developed list; "
                    "no county-level deprivation measure was published")
        else:
            cls, deprived, url = "no_data", None, ""
            note = ("no county-level deprivation figure found for this province"
                    + ("; its 2019 list entry 'مغان' names no single county" if iso in unresolved19 else ""))
        s = shdi.loc[iso] if iso in shdi.index else None
        rows.append({
            "osm_relation_id": c["osm_relation_id"], "official_county_code": c["official_county_code"],
            "province_iso": iso, "name_fa": c["display_name_fa"],
            "deprivation_class": cls, "deprived": deprived,
            "source_url": url, "note": note,
            "province_shdi": None if s is None else float(s["value"]),
            "province_shdi_year": None if s is None else s["year"],
            "province_shdi_source": None if s is None else s["source_url"],
        })
    return pd.DataFrame(rows)


def _place_coordinates(source: Path, counties: gpd.GeoDataFrame) -> pd.DataFrame:
    """Coordinates for official cities and villages, matched by name inside their county."""
    d = source / "divisions"
    cities = pd.read_csv(d / "city.csv", dtype=str)
    county_ids = pd.read_csv(d / "county.csv", dtype=str).set_index("id")["code"]
    to_osm = pd.read_csv(source / "crosswalk/official_county_to_osm.csv", dtype=str)
    osm_of_code = dict(zip(to_osm["official_county_code"], to_osm["osm_relation_id"], strict=False))
    osm_of_code[POLDOKHTAR_OFFICIAL_CODE] = str(POLDOKHTAR_OSM)

    geonames = pd.read_csv(source / "gazetteer/geonames_ir.csv", dtype=str)
    gnaf = pd.read_csv(source / "gazetteer/gnaf_places.csv", dtype=str)
    city_to_gnaf = pd.read_csv(source / "crosswalk/official_city_to_gnaf.csv", dtype=str)

    # GeoNames names by (county relation, key); a key naming two places is ambiguous.
    gn_index: dict[tuple[str, str], list[int]] = {}
    for i, row in geonames.iterrows():
        names = {row["name_fa"]} | set(str(row["name_fa_variants"]).split("|"))
        for name in names:
            if isinstance(name, str) and name and name != "nan":
                gn_index.setdefault((row["county_osm_relation_id"], key(name)), []).append(i)
    gn_index = {k: sorted(set(v)) for k, v in gn_index.items()}

    rows = []

    def geonames_match(osm_id: str | None, name: str) -> int | None:
        hits = gn_index.get((osm_id, key(name)), []) if osm_id else []
        return hits[0] if len(hits) == 1 else None

    # Cities: GNAF city points are good (median 0.4 km from GeoNames); county rows are not towns.
    gnaf_city = gnaf[(gnaf["type"] == "city") & (gnaf["coord_status"] == "ok")].set_index("id")
    matched = city_to_gnaf[(city_to_gnaf["gnaf_type"] == "city") & (city_to_gnaf["match"] != "none")]
    gnaf_of_city = dict(zip(matched["official_city_id"], matched["gnaf_id"], strict=False))
    for _, c in cities[cities["city_type"] == "0"].iterrows():
        osm_id = osm_of_code.get(county_ids.get(c["county"]))
        gi = geonames_match(osm_id, c["name"])
        gid = gnaf_of_city.get(c["id"])
        if gi is not None:
            g = geonames.loc[gi]
            rows.append(_coord_row("city", c, g["lon"], g["lat"], "geonames", g["geonameid"]))
        elif gid is not None and gid in gnaf_city.index:
            g = gnaf_city.loc[gid]
            rows.append(_coord_row("city", c, g["lon"], g["lat"], "gnaf", gid))

    # Villages are placed from the larger places file (village_points below).
    out = pd.DataFrame(rows)
    return out.sort_values(["level", "official_id"], key=lambda s: s.astype(int) if s.name == "official_id"
                           else s).reset_index(drop=True)


def village_points(source: Path, counties: gpd.GeoDataFrame, used_geonames: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[pd.DataFrame, dict]:
    """Official villages placed at the places of ``gazetteer/wof_iran_places.csv``, and the build summary.

    Each place is given the official county it lies in (point in polygon, then the county's
    official id; a county newer than the official list gives its parent's). Places already used
    as a city's coordinate (``used_geonames``) are left out. Stops with :class:`BuildError` when a
    check fails.
    """
    d = source / "divisions"
    village = pd.read_csv(d / "village.csv", dtype=str, keep_default_na=False)
    city = pd.read_csv(d / "city.csv", dtype=str, keep_default_na=False)
    wof = pd.read_csv(source / "gazetteer/wof_iran_places.csv", dtype=str, keep_default_na=False)

    lon, lat = wof["lon"].astype(float).to_numpy(), wof["lat"].astype(float).to_numpy()
    osm_ids = counties["osm_relation_id"].astype(str).to_numpy()
    official = counties["official_county_id"].fillna("").astype(str).to_numpy()
    where = locate_points(counties.geometry.values, lon, lat)
    place_osm = np.where(where >= 0, osm_ids[np.maximum(where, 0)], "")
    parents = _parent_counties(counties, village, wof, place_osm)
    county_of = dict(zip(osm_ids, official, strict=False)) | parents
    place_county = np.array([county_of.get(o, "") for o in place_osm], dtype=object)

    tree = shapely.STRtree(counties.geometry.values)
    src, hit = tree.query(shapely.points(lon, lat), predicate="dwithin", distance=NEAR_COUNTY_DEGREES)
    near: dict[int, set[str]] = {}
    for s, h in zip(src.tolist(), hit.tolist(), strict=False):
        c = county_of.get(osm_ids[h], "")
        if c and c != place_county[s]:
            near.setdefault(s, set()).add(c)

    is_city_point = wof["geonameid"].isin(used_geonames).to_numpy()
    places = pd.DataFrame({
        "source_id": wof["source_id"], "geonameid": wof["geonameid"], "name_fa": wof["name_fa"],
        "variants": wof["name_fa_variants"].str.split("|"), "name": wof["name"], "lon": lon, "lat": lat,
        "feature_code": wof["feature_code"],
        "county_id": np.where(is_city_point, "", place_county),
        "near_county_ids": [sorted(near.get(j, ())) if not is_city_point[j] else [] for j in range(len(wof))],
    })
    villages = pd.DataFrame({
        "village_id": village["id"], "village_code": village["code"], "name": village["name"],
        "county_id": village["county"], "rural_district_id": village["rural_district"],
        "settlement": ~village["name"].map(norm).str.match(NOT_SETTLEMENT),
    })
    cities = city.loc[city["city_type"] == "0", ["name", "county"]].rename(columns={"county": "county_id"})
    points = match_villages(villages, places, cities)
    points = points.sort_values("village_id", key=lambda s: s.astype(int)).reset_index(drop=True)
    province = pd.read_csv(d / "province.csv", dtype=str)
    iso_of = dict(zip(province["id"], "IR-" + province["code"].str.zfill(2), strict=False))
    summary = _village_summary(points, village, villages, counties, parents, wof, iso_of)
    _check_village_points(points, summary, wof, villages)
    return points, summary


def _parent_counties(counties: gpd.GeoDataFrame, village: pd.DataFrame, wof: pd.DataFrame,
                     place_osm: np.ndarray) -> dict[str, str]:
    """OSM relation id of each county newer than the official list -> the official county it was carved from."""
    names: dict[tuple[str, str], int] = {}
    for c, n in zip(village["county"], village["name"], strict=False):
        k = (c, name_key(n))
        names[k] = names.get(k, 0) + 1
    tree = shapely.STRtree(counties.geometry.values)
    out: dict[str, str] = {}
    new = counties[counties["official_county_id"].fillna("") == ""]
    for osm, iso, geom in zip(new["osm_relation_id"].astype(str), new["province_iso"], new.geometry, strict=False):
        neighbours = {counties["official_county_id"].iat[k] for k in tree.query(geom, predicate="intersects")
                      if counties["province_iso"].iat[k] == iso and counties["official_county_id"].iat[k]}
        votes = {c: 0 for c in neighbours if isinstance(c, str) and c}
        for j in np.flatnonzero(place_osm == osm):
            keys = {name_key(n) for n in [wof["name_fa"].iat[j], *wof["name_fa_variants"].iat[j].split("|")] if n}
            for c in votes:
                if any(names.get((c, k)) == 1 for k in keys):
                    votes[c] += 1
        ranked = sorted(votes.items(), key=lambda cv: -cv[1])
        if ranked and ranked[0][1] >= PARENT_MIN_VOTES and (len(ranked) == 1 or ranked[0][1] >= 2 * ranked[1][1]):
            out[osm] = ranked[0][0]
    return out


def _village_summary(points: pd.DataFrame, village: pd.DataFrame, villages: pd.DataFrame,
                     counties: gpd.GeoDataFrame, parents: dict[str, str], wof: pd.DataFrame,
                     iso_of: dict[str, str]) -> dict:
    strong = points[points["strength"] == "strong"]
    inside = _inside_own_county(strong, counties, parents)
    prov_of_village = dict(zip(village["id"], village["province"], strict=False))
    per_province = []
    settled = villages.assign(province=village["province"].to_numpy())
    placed_by = points.assign(province=points["village_id"].map(prov_of_village))
    for prov, group in sorted(settled.groupby("province"), key=lambda pg: iso_of.get(pg[0], pg[0])):
        got = placed_by[placed_by["province"] == prov]
        per_province.append({
            "province": iso_of.get(prov, prov), "official_villages": int(len(group)),
            "settlements": int(group["settlement"].sum()), "placed": int(len(got)),
            "placed_strong": int((got["strength"] == "strong").sum()),
            "placed_share_of_settlements": round(len(got) / max(int(group["settlement"].sum()), 1), 3),
        })
    return {
        "official_villages": int(len(village)),
        "settlements": int(villages["settlement"].sum()),
        "places_in_source": int(len(wof)),
        "places_abandoned_or_destroyed": int(wof["feature_code"].isin(["PPLQ", "PPLW"]).sum()),
        "placed": int(len(points)),
        "strong": int(len(strong)),
        "weak": int((points["strength"] == "weak").sum()),
        "by_method": points["method"].value_counts().to_dict(),
        "outliers": {"strong": int(strong["outlier"].sum()),
                     "weak": int(points.loc[points["strength"] == "weak", "outlier"].sum())},
        "recorded_twice_within_km": {"places": int((points["spread_km"] > 0).sum()),
                                     "max_spread_km": float(points["spread_km"].max() or 0)},
        "strong_inside_own_county": round(inside, 4),
        "target_strong": 40_000,
        "new_county_parents": parents,
        "per_province": per_province,
    }


def _inside_own_county(points: pd.DataFrame, counties: gpd.GeoDataFrame, parents: dict[str, str]) -> float:
    """Share of points inside their village's official county (or a newer county carved from it)."""
    if not len(points):
        return 0.0
    where = locate_points(counties.geometry.values, points["lon"].to_numpy(float), points["lat"].to_numpy(float))
    official = counties["official_county_id"].fillna("").astype(str).to_numpy()
    osm = counties["osm_relation_id"].astype(str).to_numpy()
    got = np.array([parents.get(osm[w], official[w]) if w >= 0 else "" for w in where], dtype=object)
    return float(np.mean(got == points["county_id"].astype(str).to_numpy()))


def _check_village_points(points: pd.DataFrame, summary: dict, wof: pd.DataFrame, villages: pd.DataFrame) -> None:
    """Stop the build when the village points break a rule or miss a floor."""
    problems = []
    if summary["strong"] < MIN_STRONG_VILLAGES:
        problems.append(f"only {summary['strong']:,} villages placed by strong rules (floor {MIN_STRONG_VILLAGES:,})")
    if summary["strong_inside_own_county"] < MIN_STRONG_INSIDE_SHARE:
        problems.append(f"{summary['strong_inside_own_county']:.1%} of strong points inside their county "
                        f"(at least {MIN_STRONG_INSIDE_SHARE:.0%} needed)")
    if points["village_code"].duplicated().any():
        problems.append("a village placed twice")
    if points["source_id"].duplicated().any():
        problems.append("a place used for two villages")
    dead = set(wof.loc[wof["feature_code"].isin(["PPLQ", "PPLW"]), "source_id"])
    if points["source_id"].isin(dead).any():
        problems.append("an abandoned or destroyed place used")
    not_settled = set(villages.loc[~villages["settlement"], "village_code"])
    if points["village_code"].isin(not_settled).any():
        problems.append("a non-settlement entry placed")
    if not set(points["method"]) <= set(STRONG_METHODS) | {"fuzzy", "transliteration", "outside_county"}:
        problems.append("an unknown matching rule")
    if problems:
        raise BuildError("village points: " + "; ".join(problems))


def _coord_row(level: str, row: pd.Series, lon: str, lat: str, source: str, source_id: str) -> dict:
    return {"level": level, "official_id": row["id"], "official_code": row["code"], "name": row["name"],
            "lon": round(float(lon), 6), "lat": round(float(lat), 6), "source": source, "source_id": source_id}


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Compact RFC 7946 GeoJSON, one feature per line so diffs stay readable."""
    features = json.loads(gdf.to_json(drop_id=True))["features"]
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    tmp = path.with_suffix(".tmp")
    tmp.write_text('{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n",
                   encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data"),
                        help="the raw open data folder (with PROVENANCE.md)")
    parser.add_argument("--out", type=Path, default=Path("boundaries"))
    args = parser.parse_args(argv)
    summary = build(args.source, args.out)
    print(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
