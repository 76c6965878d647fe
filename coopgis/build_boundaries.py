"""Rebuild ``boundaries/`` from the raw open data in ``shared/data``.

Run: ``python -m coopgis.build_boundaries --source ../shared/data --out boundaries``.

Raw files are copied unchanged (their licences travel with them). Derived files:

- ``provinces.geojson``: the OSM provinces plus the official province id.
- ``counties.geojson``: the OSM counties plus a display name, the official
  code, and the border flag derived from the geometry (``border``, ``border_km``).
- ``deprivation.csv``: one row per county with the published deprivation
  class and its source; ``no_data`` where nothing was published.
- ``place_coordinates.csv``: coordinates for official cities and villages,
  each matched by name within its own county to GeoNames or Iran Post GNAF.

This module is for rebuilding data, not for serving it (see ``boundaries.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from coopgis.text import key, norm

# Iran-centred Albers equal-area, as used in shared/data/reports/QUALITY.md.
IRAN_ALBERS = "+proj=aea +lat_0=32 +lon_0=54 +lat_1=27 +lat_2=37 +datum=WGS84 +units=m"

# A county whose outline runs along the country's outer boundary for at least this
# many kilometres is a border county; shorter contacts are corners, not borders.
BORDER_MIN_KM = 1.0

# OSM relation 6555266 is tagged معمولان but holds the old Poldokhtar county
# (shared/data/reports/NAME_MATCH.md); the official پلدختر has no polygon of its own.
POLDOKHTAR_OSM = 6555266
POLDOKHTAR_OFFICIAL_CODE = "1508"

RAW_FILES = (
    "divisions/province.csv", "divisions/county.csv", "divisions/district.csv",
    "divisions/city.csv", "divisions/rural_district.csv", "divisions/village.csv",
    "divisions/LICENSE",
    "gazetteer/geonames_ir.csv", "gazetteer/geonames_admin1_to_iso.csv", "gazetteer/gnaf_places.csv",
    "crosswalk/osm_county_to_official.csv", "crosswalk/official_county_to_osm.csv",
    "crosswalk/gnaf_to_official_city.csv", "crosswalk/official_city_to_gnaf.csv",
    "deprivation/province_indicators.csv", "deprivation/less_developed_counties_2019.csv",
    "deprivation/deprived_areas_2009_annex.csv", "deprivation/SOURCES.md",
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

    _write_geojson(provinces, out / "provinces.geojson")
    _write_geojson(counties, out / "counties.geojson")
    deprivation.to_csv(out / "deprivation.csv", index=False)
    places.to_csv(out / "place_coordinates.csv", index=False)

    summary = {
        "provinces": len(provinces),
        "counties": len(counties),
        "border_counties": int(counties["border"].sum()),
        "deprivation_classes": deprivation["deprivation_class"].value_counts().to_dict(),
        "place_coordinates": places.groupby(["level", "source"]).size().rename("n").reset_index()
        .to_dict("records"),
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
            cls, deprived, url = "not_listed", False, ""
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
    villages = pd.read_csv(d / "village.csv", dtype=str)
    county_ids = pd.read_csv(d / "county.csv", dtype=str).set_index("id")["code"]
    to_osm = pd.read_csv(source / "crosswalk/official_county_to_osm.csv", dtype=str)
    osm_of_code = dict(zip(to_osm["official_county_code"], to_osm["osm_relation_id"]))
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
    used_geonames: set[int] = set()

    def geonames_match(osm_id: str | None, name: str) -> int | None:
        hits = gn_index.get((osm_id, key(name)), []) if osm_id else []
        return hits[0] if len(hits) == 1 else None

    # Cities: GNAF city points are good (median 0.4 km from GeoNames); county rows are not towns.
    gnaf_city = gnaf[(gnaf["type"] == "city") & (gnaf["coord_status"] == "ok")].set_index("id")
    matched = city_to_gnaf[(city_to_gnaf["gnaf_type"] == "city") & (city_to_gnaf["match"] != "none")]
    gnaf_of_city = dict(zip(matched["official_city_id"], matched["gnaf_id"]))
    for _, c in cities[cities["city_type"] == "0"].iterrows():
        osm_id = osm_of_code.get(county_ids.get(c["county"]))
        gi = geonames_match(osm_id, c["name"])
        gid = gnaf_of_city.get(c["id"])
        if gi is not None:
            g = geonames.loc[gi]
            used_geonames.add(gi)
            rows.append(_coord_row("city", c, g["lon"], g["lat"], "geonames", g["geonameid"]))
        elif gid is not None and gid in gnaf_city.index:
            g = gnaf_city.loc[gid]
            rows.append(_coord_row("city", c, g["lon"], g["lat"], "gnaf", gid))

    # Villages: only GeoNames has village points; a name must be unique in its county on both sides.
    villages = villages.assign(_key=villages["name"].map(key))
    dup = villages.duplicated(["county", "_key"], keep=False)
    for _, v in villages[~dup].iterrows():
        osm_id = osm_of_code.get(county_ids.get(v["county"]))
        gi = geonames_match(osm_id, v["name"])
        if gi is not None and gi not in used_geonames:
            g = geonames.loc[gi]
            rows.append(_coord_row("village", v, g["lon"], g["lat"], "geonames", g["geonameid"]))
    out = pd.DataFrame(rows)
    return out.sort_values(["level", "official_id"], key=lambda s: s.astype(int) if s.name == "official_id"
                           else s).reset_index(drop=True)


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
