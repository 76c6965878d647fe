"""Per-capita figures, census indicators, the quota rule and the filtered choropleth, checked against hand
computations from the raw census files and the served cooperatives (the CSV download)."""

from __future__ import annotations

import io

import mapbox_vector_tile
import morecantile
import numpy as np
import pandas as pd
import pytest

TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def served(client):
    """The served cooperatives as a planner downloads them (CSV, public fields)."""
    r = client.get("/collections/cooperatives/items?f=csv")
    assert r.status_code == 200
    return pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def raw(boundaries):
    folder = boundaries.source_dir / "population"
    read = lambda name: pd.read_csv(folder / name, dtype=str, keep_default_na=False)  # noqa: E731
    return {"county": read("population_county_2016.csv"), "province": read("population_province_2016.csv"),
            "walk": read("crosswalk_official1398_to_census1395.csv")}


def _hand(served: pd.DataFrame, raw: dict, official_name: str) -> tuple[float, float, int]:
    """(cooperatives, members) per 10,000 of a county's 1395 census county, and its population, by hand:
    the census county from the raw table, every official county of today that the crosswalk puts in it,
    the served cooperatives of those counties."""
    county = raw["county"]
    code = county.loc[county["official_county_name"] == official_name, "sci_county_code"].iloc[0]
    population = int(county.loc[county["sci_county_code"] == code, "population"].iloc[0])
    members_of_unit = set(raw["walk"].loc[raw["walk"]["census1395_sci_code"] == code, "official_county_code"])
    mine = served[served["county_code"].isin(members_of_unit)]
    members = pd.to_numeric(mine["members"], errors="coerce").fillna(0).sum()
    return round(len(mine) * 10_000 / population, 2), round(members * 10_000 / population, 2), population


def _osm(boundaries, name: str) -> int:
    c = boundaries.counties
    return int(c.loc[c["display_name_fa"] == name, "osm_relation_id"].iloc[0])


def _tile_feature(client, layer: str, lon: float, lat: float, z: int, fid, query: str = "") -> dict:
    t = TMS.tile(lon, lat, z)
    fc = client.get(f"/tiles/{layer}/{z}/{t.x}/{t.y}.geojson{query}").json()
    return next(f["properties"] for f in fc["features"] if f["id"] == fid)


@pytest.mark.parametrize("name", ["شیراز", "زرقان", "اراک"])
def test_county_per_capita_matches_a_hand_computation(client, served, raw, boundaries, name):
    # Zarqan was carved from Shiraz after the 1395 census: both are divided by Shiraz's 1395 population,
    # with the cooperatives of both.
    official = "شیراز" if name == "زرقان" else name
    per_coop, per_member, population = _hand(served, raw, official)
    osm = _osm(boundaries, name)
    row = next(r for r in client.get("/stats?by=county").json()["rows"] if r["key"] == str(osm))
    assert row["population_1395"] == population
    assert row["cooperatives_per_10k"] == pytest.approx(per_coop, abs=0.006)
    assert row["members_per_10k"] == pytest.approx(per_member, abs=0.006)
    assert row["unit_link"] == ("carved_1398" if name == "زرقان" else "same")
    point = boundaries.counties.loc[boundaries.counties["osm_relation_id"] == osm].geometry.representative_point()
    props = _tile_feature(client, "counties", point.x.iloc[0], point.y.iloc[0], 7, osm)
    assert props["cooperatives_per_10k"] == row["cooperatives_per_10k"]
    assert props["unit_population_1395"] == population and props["census_unit_name"] == official


def test_zarqan_and_shiraz_show_the_same_per_capita_but_their_own_counts(client, boundaries, served):
    rows = {r["key"]: r for r in client.get("/stats?by=county").json()["rows"]}
    zarqan, shiraz = rows.get(str(_osm(boundaries, "زرقان"))), rows[str(_osm(boundaries, "شیراز"))]
    if zarqan is None:
        pytest.skip("the sample has no cooperative in Zarqan")
    assert zarqan["cooperatives_per_10k"] == shiraz["cooperatives_per_10k"]
    assert zarqan["cooperatives"] == int((served["county"] == "زرقان").sum())
    assert shiraz["cooperatives"] == int((served["county"] == "شیراز").sum())


def test_province_per_capita_matches_a_hand_computation(client, served, raw):
    population = int(raw["province"].loc[raw["province"]["province_iso"] == "IR-07", "population"].iloc[0])
    fars = served[served["province"] == "IR-07"]
    jobs = pd.to_numeric(fars["jobs"], errors="coerce").fillna(0).sum()
    row = next(r for r in client.get("/stats?by=province").json()["rows"] if r["key"] == "IR-07")
    assert row["population_1395"] == population == 4_851_274
    assert row["cooperatives_per_10k"] == pytest.approx(round(len(fars) * 10_000 / population, 2), abs=0.006)
    assert row["jobs_per_10k"] == pytest.approx(round(jobs * 10_000 / population, 2), abs=0.006)
    props = _tile_feature(client, "provinces", 52.53, 29.61, 5, "IR-07")
    assert props["jobs_per_10k"] == row["jobs_per_10k"] and props["population_1395"] == population


def test_a_county_with_no_census_unit_is_never_divided(client, boundaries):
    census = pd.read_csv(boundaries.source_dir / "census1395.csv", dtype=str, keep_default_na=False)
    none = int(census.loc[census["unit_link"] == "none", "osm_relation_id"].iloc[0])
    props = client.get(f"/collections/counties/items/{none}").json()["properties"]
    assert props["unit_link"] == "none" and props["unit_population_1395"] is None
    assert props["cooperatives_per_10k"] is None and props["jobs_per_10k"] is None


def test_census_indicators_are_the_census_printed_rates_not_deprivation(client, boundaries):
    ind = pd.read_csv(boundaries.source_dir / "deprivation/census1395_county_indicators.csv", dtype=str)
    arak = ind[ind["official_county_name"] == "اراک"].iloc[0]
    props = client.get(f"/collections/counties/items/{_osm(boundaries, 'اراک')}").json()["properties"]
    assert props["unemployment_rate_pct"] == float(arak["unemployment_rate_pct_computed"])
    assert props["illiteracy_pct_15plus"] == float(arak["illiteracy_pct_15plus_computed"])
    markazi = ind[ind["province_iso"] == "IR-00"]
    want = round(markazi["unemployed"].astype(int).sum() * 100 / markazi["active"].astype(int).sum(), 2)
    row = next(r for r in client.get("/stats?by=province").json()["rows"] if r["key"] == "IR-00")
    assert row["unemployment_rate_pct"] == want
    deprivation = client.get("/collections/deprivation/items?limit=1").json()["features"][0]["properties"]
    assert "unemployment_rate_pct" not in deprivation and "illiteracy_pct_15plus" not in deprivation


def test_stats_quota_columns_follow_the_published_lists(client, served, boundaries):
    dep = pd.read_csv(boundaries.source_dir / "deprivation.csv", dtype=str, keep_default_na=False)
    listed = set(dep.loc[dep["deprivation_class"].isin(["less_developed_2019", "deprived_2009"]),
                         "official_county_code"])
    border = served[served["kind"] == "border_dwellers"]
    on_list = border["county_code"].isin(listed)
    total = client.get("/stats?by=province").json()["rows"][-1]
    assert total["border_dwellers"] == len(border)
    assert total["quota_600_usd"] == int(on_list.sum())
    assert total["quota_300_usd"] == 0            # no ministry list given: 300 is never assumed
    assert total["quota_unknown"] == int((~on_list).sum())
    assert set(border.loc[~on_list, "border_quota_usd"]) <= {""}
    assert set(border.loc[on_list, "border_quota_usd"]) <= {"600"}


@pytest.mark.parametrize("fmt", ["geojson", "mvt"])
def test_the_choropleth_tiles_carry_the_filtered_figures(client, dataset, fmt):
    frame = dataset.cooperatives
    housing = frame[frame["kind"] == "housing"]
    want = housing.groupby("province").agg(n=("registration_no", "size"), jobs=("jobs", "sum"))
    t = TMS.tile(53.7, 32.4, 4)
    url = f"/tiles/provinces/4/{t.x}/{t.y}.{fmt}?kind=housing&province=IR-07"   # a province frames, never blanks
    r = client.get(url)
    assert r.status_code == 200
    if fmt == "geojson":
        feats = {f["id"]: f["properties"] for f in r.json()["features"]}
    else:
        feats = {f["properties"]["iso_3166_2"]: f["properties"]
                 for f in mapbox_vector_tile.decode(r.content)["provinces"]["features"]}
    assert len(feats) >= 25
    for iso, p in feats.items():
        assert p["cooperatives"] == int(want["n"].get(iso, 0)), iso
        assert p["jobs"] == int(want["jobs"].get(iso, 0)), iso
    plain = client.get(url.split("?")[0])
    assert plain.content != r.content
    assert r.headers["etag"] != plain.headers["etag"]


def test_stats_breaks_colour_the_filtered_choropleth(client):
    body = client.get("/stats?by=county&kind=housing").json()
    assert body["census"]["year"] == 1395 and body["census"]["per"] == 10_000
    breaks = body["breaks"]["cooperatives_per_10k"]
    assert breaks == sorted(breaks) and all(isinstance(b, float) for b in breaks)
    values = np.array([r["cooperatives_per_10k"] for r in body["rows"][:-1] if r["cooperatives_per_10k"]])
    assert len(breaks) >= 2 and values.min() <= breaks[0] * 1.5
