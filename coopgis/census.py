"""Census 1395 (2016) population and county indicators, on the counties of today.

Counties have changed since the census: 19 official counties were created between
1395 and 1398 and about 30 more since (OpenStreetMap has them, the official list does
not). A per-capita figure must divide cooperatives and population of the same area,
so each census county of 1395 is a **census unit**: the OSM counties of today that lie
in it (the official crosswalk 1398 -> 1395 for the official counties; for a county
newer than the official list, the official county it was carved from, found by the
village-points build). Every OSM county of a unit shows the unit's figures; a county
whose parent is not known has **no census unit** (never a 1395 population over a
smaller polygon of today).

Census indicators (unemployment, illiteracy of the population aged 15+) are what the
census printed; they are not a deprivation class and are never called one.

Not here: the cooperatives' counts (``stats.py``), drawing (``mapview.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from coopgis.text import norm

CENSUS_YEAR_JALALI = 1395
CENSUS_YEAR = 2016
CENSUS_SOURCE = ("Statistical Centre of Iran, National Population and Housing Census 1395 (2016), county tables")
PER = 10_000    # per-capita figures are per 10,000 inhabitants

# One row per OSM county (the file boundaries/census1395.csv).
COUNTY_COLUMNS = ("osm_relation_id", "province_iso", "census_unit", "census_unit_name", "unit_link",
                  "unit_osm_ids", "population", "urban", "rural", "pop_15plus", "unemployment_rate_pct",
                  "illiteracy_pct_15plus")
# How an OSM county reaches its census unit.
LINKS = {
    "same": "the county as it was at the census",
    "carved_1398": "created 1395-1398: its census county through the official crosswalk",
    "carved_new": "created after the official list: the official county it was carved from, then the crosswalk",
    "none": "no census unit: the county it was carved from is not known",
}


# The words a page shows next to a census figure.
CENSUS_LABEL_FA = "سرشماری ۱۳۹۵"
LINK_FA = {
    "same": "همان شهرستان سرشماری ۱۳۹۵",
    "carved_1398": "جداشده پس از ۱۳۹۵: با شهرستان مادر در سرشماری شمرده شده",
    "carved_new": "جداشده پس از فهرست رسمی: با شهرستان مادر در سرشماری شمرده شده",
    "none": "بدون واحد سرشماری: شهرستان مادر معلوم نیست",
}


@dataclass(frozen=True)
class Census:
    """The shipped census tables, ready to join: per OSM county and per province."""

    counties: pd.DataFrame        # index osm_relation_id: COUNTY_COLUMNS less the id
    provinces: pd.DataFrame       # index iso_3166_2: population, urban, rural, unemployment_rate_pct,
    #                               illiteracy_pct_15plus (from the census counts of the province's counties)

    @property
    def national_population(self) -> int:
        return int(self.provinces["population"].sum())


def load_census(directory: Path) -> Census | None:
    """The census tables of a boundaries folder (``census1395.csv``, ``census1395_provinces.csv``), or None.

    Province indicators are recomputed from the printed counts of the county table
    (``deprivation/census1395_county_indicators.csv``): unemployed / active and illiterate / 15+.
    """
    county_file, province_file = directory / "census1395.csv", directory / "census1395_provinces.csv"
    if not county_file.is_file() or not province_file.is_file():
        return None
    counties = pd.read_csv(county_file, dtype={"census_unit": str, "census_unit_name": str, "unit_osm_ids": str},
                           keep_default_na=False, na_values={c: [""] for c in COUNTY_COLUMNS[6:]})
    for col in ("census_unit", "census_unit_name", "unit_osm_ids"):
        counties[col] = counties[col].fillna("")
    counties = counties.set_index("osm_relation_id")
    provinces = pd.read_csv(province_file).set_index("iso_3166_2")
    provinces["unemployment_rate_pct"] = np.nan
    provinces["illiteracy_pct_15plus"] = np.nan
    counts_file = directory / "deprivation/census1395_county_indicators.csv"
    if counts_file.is_file():
        ind = pd.read_csv(counts_file, usecols=["province_iso", "pop_15plus", "active", "unemployed",
                                                "illiterate_15plus"])
        by = ind.groupby("province_iso").sum()
        provinces["unemployment_rate_pct"] = (by["unemployed"] * 100 / by["active"]).round(2)
        provinces["illiteracy_pct_15plus"] = (by["illiterate_15plus"] * 100 / by["pop_15plus"]).round(2)
    return Census(counties=counties, provinces=provinces)


class CensusError(Exception):
    """The census files do not add up; the message says what."""


def census_tables(source: Path, counties: gpd.GeoDataFrame, parents: dict[str, str]) -> tuple[
        pd.DataFrame, pd.DataFrame, dict]:
    """(per OSM county, per province, summary) from ``source/population`` and the county indicators.

    ``parents``: OSM relation id of a county newer than the official list -> official county id
    of the county it was carved from (``build_summary.json``'s ``new_county_parents``).
    """
    pop = pd.read_csv(source / "population/population_county_2016.csv", dtype=str, keep_default_na=False)
    prov = pd.read_csv(source / "population/population_province_2016.csv", dtype=str, keep_default_na=False)
    walk = pd.read_csv(source / "population/crosswalk_official1398_to_census1395.csv", dtype=str,
                       keep_default_na=False)
    ind = pd.read_csv(source / "deprivation/census1395_county_indicators.csv", dtype=str, keep_default_na=False)

    unit_of_code = dict(zip(walk["official_county_code"], walk["census1395_sci_code"], strict=True))
    unit_of_id = dict(zip(walk["official_county_id"], walk["census1395_sci_code"], strict=True))
    carved = set(walk.loc[walk["same_unit"] != "yes", "official_county_code"])
    rows = []
    for osm, iso, code in zip(counties["osm_relation_id"].astype(str), counties["province_iso"],
                              counties["official_county_code"].fillna("").astype(str), strict=True):
        if code and code in unit_of_code:
            unit, link = unit_of_code[code], ("carved_1398" if code in carved else "same")
        elif osm in parents and parents[osm] in unit_of_id:
            unit, link = unit_of_id[parents[osm]], "carved_new"
        else:
            unit, link = "", "none"
        rows.append({"osm_relation_id": int(osm), "province_iso": iso, "census_unit": unit, "unit_link": link})
    table = pd.DataFrame(rows)

    units = pop.set_index("sci_county_code")
    names = units["official_county_name"].where(units["official_county_name"] != "", units["county"]).map(norm)
    ind = ind.set_index("sci_county_code")
    members = table[table["census_unit"] != ""].groupby("census_unit")["osm_relation_id"].apply(
        lambda s: "|".join(str(x) for x in sorted(s)))
    got = table["census_unit"]
    table["census_unit_name"] = got.map(names).fillna("")
    table["unit_osm_ids"] = got.map(members).fillna("")
    for col in ("population", "urban", "rural"):
        table[col] = pd.array(got.map(pd.to_numeric(units[col])), dtype="Int64")
    table["pop_15plus"] = pd.array(got.map(pd.to_numeric(ind["pop_15plus"])), dtype="Int64")
    table["unemployment_rate_pct"] = got.map(pd.to_numeric(ind["unemployment_rate_pct_computed"]))
    table["illiteracy_pct_15plus"] = got.map(pd.to_numeric(ind["illiteracy_pct_15plus_computed"]))
    table = table[list(COUNTY_COLUMNS)]

    provinces = pd.DataFrame({
        "iso_3166_2": prov["province_iso"],
        **{c: pd.to_numeric(prov[c]).astype("int64") for c in ("population", "urban", "rural")},
    }).sort_values("iso_3166_2").reset_index(drop=True)

    summary = _check(table, units, provinces, pop)
    return table, provinces, summary


def _check(table: pd.DataFrame, units: pd.DataFrame, provinces: pd.DataFrame, pop: pd.DataFrame) -> dict:
    """Stop unless every census unit reaches today's map and the totals add up."""
    reached = set(table["census_unit"]) - {""}
    missing = sorted(set(units.index) - reached)
    national = int(pd.to_numeric(pop["population"]).sum())
    if missing:
        raise CensusError(f"census units with no county of today: {', '.join(missing)}")
    if int(provinces["population"].sum()) != national:
        raise CensusError(f"provinces add up to {int(provinces['population'].sum()):,}, counties to {national:,}")
    unit_provinces = table[table["census_unit"] != ""].groupby("census_unit")["province_iso"].nunique()
    return {
        "census_units": len(units),
        "population": national,
        "osm_counties_by_link": table["unit_link"].value_counts().to_dict(),
        "no_census_unit": table.loc[table["unit_link"] == "none", "osm_relation_id"].astype(str).tolist(),
        "units_over_several_counties_of_today": int((table[table["census_unit"] != ""]
                                                      .groupby("census_unit").size() > 1).sum()),
        "units_across_provinces": unit_provinces[unit_provinces > 1].index.tolist(),
    }


def per_capita(count, population):
    """``count`` per 10,000 inhabitants (None where the population is unknown or zero)."""
    c = pd.to_numeric(pd.Series(count), errors="coerce")
    p = pd.to_numeric(pd.Series(population), errors="coerce")
    out = (c * PER / p).where(p > 0)
    return out.round(2)
