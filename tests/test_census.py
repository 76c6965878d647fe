"""Census 1395 on today's counties: like is divided by like."""

from __future__ import annotations

import pandas as pd
import pytest

from coopgis.census import per_capita


@pytest.fixture(scope="module")
def census(boundaries):
    return pd.read_csv(boundaries.source_dir / "census1395.csv", dtype={"census_unit": str, "unit_osm_ids": str},
                       keep_default_na=False)


def _county(boundaries, census, name):
    c = boundaries.counties
    osm = int(c.loc[c["display_name_fa"] == name, "osm_relation_id"].iloc[0])
    return census[census["osm_relation_id"] == osm].iloc[0]


def test_every_census_county_reaches_todays_map_and_the_nation_adds_up(census, boundaries):
    units = census[census["census_unit"] != ""].drop_duplicates("census_unit")
    raw = pd.read_csv(boundaries.source_dir / "population/population_county_2016.csv", dtype=str)
    assert len(units) == len(raw) == 429
    assert units["population"].astype(int).sum() == 79_926_270
    prov = pd.read_csv(boundaries.source_dir / "census1395_provinces.csv")
    assert prov["population"].sum() == 79_926_270 and len(prov) == 31


def test_a_county_created_after_the_census_shares_its_census_countys_population(census, boundaries):
    zarqan = _county(boundaries, census, "زرقان")          # created 1395-1398 from Shiraz
    shiraz = _county(boundaries, census, "شیراز")
    assert zarqan["unit_link"] == "carved_1398" and shiraz["unit_link"] == "same"
    assert zarqan["census_unit"] == shiraz["census_unit"]
    assert int(zarqan["population"]) == int(shiraz["population"]) == 1_869_001
    assert set(shiraz["unit_osm_ids"].split("|")) >= {str(zarqan["osm_relation_id"]), str(shiraz["osm_relation_id"])}


def test_a_county_newer_than_the_official_list_joins_its_parents_unit_or_has_none(census):
    new = census[census["unit_link"] == "carved_new"]
    assert len(new) >= 25
    for _, row in new.iterrows():
        assert str(row["osm_relation_id"]) in row["unit_osm_ids"].split("|")
    none = census[census["unit_link"] == "none"]
    assert (none["census_unit"] == "").all() and none["population"].eq("").all()


def test_per_capita_is_per_ten_thousand_and_unknown_without_population():
    assert per_capita([50, 3, 7], [100_000, 0, None]).tolist()[0] == 5.0
    out = per_capita([50, 3, 7], [100_000, 0, None])
    assert pd.isna(out.iloc[1]) and pd.isna(out.iloc[2])
