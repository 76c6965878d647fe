"""The synthetic sample registry: deterministic, labelled, shaped by the published figures."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import shapely

from coopgis.boundaries import load_boundaries
from coopgis.registry import read_registry
from coopgis.sample import (
    BAD_ROW_REASONS,
    COLUMNS,
    COORDINATE_DEFECTS,
    KIND_WEIGHTS,
    PUBLISHED_KINDS,
    SAMPLE_LABEL,
    TRUTH_COLUMNS,
    generate_sample,
    write_sample,
)
from coopgis.text import is_latin, key, strip_prefix, to_ascii_digits
from coopgis.vocab import parse_kind, parse_sector, parse_status


@pytest.fixture(scope="module")
def boundaries():
    return load_boundaries()


@pytest.fixture(scope="module")
def small(boundaries):
    return generate_sample(3000, boundaries=boundaries)


@pytest.fixture(scope="module")
def big(boundaries):
    return generate_sample(20000, seed=7, boundaries=boundaries)


def _ints(series: pd.Series) -> np.ndarray:
    return series.map(to_ascii_digits).astype(int).to_numpy()


def _province_shapes(boundaries) -> dict:
    return dict(zip(boundaries.provinces["iso_3166_2"], boundaries.provinces.geometry.values, strict=False))


def test_same_size_and_seed_give_identical_csv(boundaries, tmp_path):
    a = generate_sample(2000, seed=5, boundaries=boundaries)
    b = generate_sample(2000, seed=5, boundaries=boundaries)
    pd.testing.assert_frame_equal(a, b)
    pa = write_sample(a, tmp_path / "a.csv", with_truth=True)
    pb = write_sample(b, tmp_path / "b.csv", with_truth=True)
    assert pa.read_bytes() == pb.read_bytes()
    c = generate_sample(2000, seed=6, boundaries=boundaries)
    assert not a["name"].equals(c["name"])


@pytest.mark.parametrize("size", [0, 1, 7, 31, 250])
def test_size_and_columns_are_exact(boundaries, size):
    df = generate_sample(size, boundaries=boundaries)
    assert len(df) == size
    assert list(df.columns) == [*COLUMNS, *TRUTH_COLUMNS]


def test_negative_size_is_refused(boundaries):
    with pytest.raises(ValueError):
        generate_sample(-1, boundaries=boundaries)


def test_write_sample_drops_truth_unless_asked(small, tmp_path):
    plain = write_sample(small, tmp_path / "plain.csv")
    header = plain.read_text(encoding="utf-8").split("\n", 1)[0]
    assert header == ",".join(COLUMNS)
    assert not plain.read_bytes().startswith(b"\xef\xbb\xbf")
    full = write_sample(small, tmp_path / "full.csv", with_truth=True)
    back = pd.read_csv(full, dtype=str, keep_default_na=False)
    assert list(back.columns) == [*COLUMNS, *TRUTH_COLUMNS]
    assert len(back) == len(small)


def test_every_name_is_labelled_synthetic(small):
    named = small[small["truth_bad_reason"] != "missing_name"]
    assert named["name"].str.contains(SAMPLE_LABEL, regex=False).all()
    assert (small.loc[small["truth_bad_reason"] == "missing_name", "name"] == "").all()
    assert small["synthetic"].isin(["true", "بله"]).all()
    phones = small["phone"].map(to_ascii_digits).str.replace(r"[ \-]", "", regex=True)
    assert phones[phones != ""].str.fullmatch(r"0900[0-9]{7}").all()


def test_all_provinces_have_cooperatives(small, boundaries):
    assert set(small["truth_province_iso"]) == set(boundaries.provinces["iso_3166_2"])
    assert set(small["truth_level"]) == {"city", "village"}


def test_structured_fields_name_the_true_places(small, boundaries):
    names = dict(zip(boundaries.provinces["iso_3166_2"], boundaries.provinces["name_fa"], strict=False))
    filled = small[small["province"] != ""]
    assert (filled["province"].map(lambda s: key(strip_prefix(s)))
            == filled["truth_province_iso"].map(lambda iso: key(names[iso]))).all()
    p = boundaries.places
    places = p[p["level"].isin(["city", "village"])].set_index("code")["name"]
    place = small[small["place"] != ""]
    same = place["place"].map(key) == place["truth_place_code"].map(places).map(key)
    assert same.mean() > 0.9            # the rest carry a deliberate typo
    for col, blank in (("place", 0.3), ("county", 0.1), ("district", 0.5)):
        share = (small.loc[small["truth_bad_reason"] != "no_location", col] == "").mean()
        assert blank - 0.05 < share < blank + 0.1, col


def test_village_truths_come_from_placed_villages_as_often_as_the_data_has_them(big, boundaries):
    p = boundaries.places
    villages = big[big["truth_level"] == "village"]
    strong = p[(p["level"] == "village") & (p["point_strength"] == "strong") & ~p["point_outlier"]]
    # Every true village point is a strongly placed village's point ...
    located = villages[villages["truth_lon"].notna()]
    points = strong.set_index("code")[["lon", "lat"]]
    assert np.allclose(located["truth_lon"].to_numpy(float),
                       points.loc[located["truth_place_code"], "lon"].to_numpy(float))
    # ... and villages are drawn whether placed or not, about as often as the gazetteer places them.
    settled = p[(p["level"] == "village") & p["settlement"]]
    share_in_data = settled["code"].isin(strong["code"]).mean()
    assert abs(villages["truth_lon"].notna().mean() - share_in_data) < 0.1


def test_kind_mix_follows_published_figures(big):
    kinds = big.loc[big["truth_bad_reason"] != "unknown_kind", "kind"].map(parse_kind)
    assert kinds.notna().all()
    published = kinds[kinds.isin(PUBLISHED_KINDS)]
    total = sum(KIND_WEIGHTS[k] for k in PUBLISHED_KINDS)
    shares = published.value_counts(normalize=True)
    for kind in PUBLISHED_KINDS:
        assert abs(shares.get(kind, 0.0) - KIND_WEIGHTS[kind] / total) < 0.02, kind
    assert set(kinds) == set(KIND_WEIGHTS)
    written = big["kind"]
    assert written.str.contains("[يك]").mean() > 0.05            # Arabic letter forms
    assert written.str.fullmatch("[a-z_]+").mean() > 0.03          # English codes


def test_sectors_statuses_and_women_led(big):
    sectors = big["sector"][big["sector"] != ""].map(parse_sector)
    assert sectors.notna().all()
    statuses = big["status"][big["status"] != ""].map(parse_status)
    assert statuses.notna().all()
    share = statuses.value_counts(normalize=True)
    assert 0.06 < share["troubled"] < 0.10 and 0.02 < share["dissolved"] < 0.04
    kinds = big["kind"].map(parse_kind)
    galaxy = {"clothing", "handicrafts", "carpet", "beekeeping", "fish_farming", "poultry"}
    women_sectors = big.loc[(kinds == "women") & (big["sector"] != ""), "sector"].map(parse_sector)
    assert women_sectors.isin(galaxy).mean() > 0.6
    led = big["women_led"].map({"بله": True, "1": True, "yes": True, "خیر": False, "0": False, "no": False})
    assert led.notna().all()
    assert led[kinds == "women"].all()
    assert 0.12 < led[(kinds != "women") & kinds.notna()].mean() < 0.18


def test_members_and_jobs_follow_published_averages(big):
    ok = big[(big["truth_bad_reason"] != "bad_members") & (big["truth_bad_reason"] != "unknown_kind")]
    kinds = ok["kind"].map(parse_kind)
    members = _ints(ok["members"])
    prod = (kinds == "production").to_numpy()
    assert abs(members[prod].mean() / (44771 / 2571) - 1) < 0.2
    jobs = ok["jobs"]
    has_jobs = (jobs != "").to_numpy()
    assert abs(_ints(jobs[prod & has_jobs]).mean() / (63000 / 2571) - 1) < 0.2
    dist = (kinds == "distribution").to_numpy()
    assert abs(members[dist].mean() / (59000 / 930) - 1) < 0.2
    assert members.min() >= 3
    assert members[~kinds.isin(["knowledge_based", "union"]).to_numpy()].min() >= 7
    assert np.median(members[prod]) < members[prod].mean()      # skewed


def test_bad_rows_are_rare_labelled_and_one_of_each(big, boundaries):
    reasons = big["truth_bad_reason"]
    bad = reasons.isin(BAD_ROW_REASONS)
    assert 0.004 < bad.mean() < 0.006
    assert set(reasons[bad]) == set(BAD_ROW_REASONS)
    coords = reasons.isin(COORDINATE_DEFECTS)
    assert 0.008 < coords.mean() < 0.012
    assert set(reasons[coords]) == set(COORDINATE_DEFECTS)
    assert set(reasons) == {"", *BAD_ROW_REASONS, *COORDINATE_DEFECTS}

    loc_cols = ["province", "county", "district", "rural_district", "place", "address", "lon", "lat"]
    assert (big.loc[reasons == "no_location", loc_cols] == "").all().all()
    assert big.loc[reasons == "bad_members", "members"].isin(["-5", "ده"]).all()
    clean = generate_sample(3000, boundaries=boundaries, bad_rows=False)
    assert (clean["truth_bad_reason"] == "").all()
    assert clean["name"].str.contains(SAMPLE_LABEL, regex=False).all()


def test_registration_numbers_are_unique_except_deliberate_duplicates(big):
    regs = big["registration_no"].map(to_ascii_digits)
    assert regs.str.fullmatch("[0-9]+").all()
    assert big["registration_no"].str.contains("[۰-۹]").mean() > 0.2
    dup = (big["truth_bad_reason"] == "duplicate_registration_no").to_numpy()
    assert regs[~dup].is_unique
    assert regs.duplicated(keep="first")[dup].all()


def test_registry_reader_quarantines_exactly_the_bad_rows(big, tmp_path):
    path = write_sample(big, tmp_path / "sample.csv")
    read = read_registry(path)
    assert read.rows == len(big)
    found = {q["source_row"] - 1: q["reasons"] for q in read.quarantined}
    truth = big["truth_bad_reason"]
    expected = {i: [r] for i, r in truth.items() if r in BAD_ROW_REASONS}
    assert found == expected
    assert read.accepted["registered_on"].notna().mean() > 0.98


def test_given_coordinates_lie_in_the_named_province(big, boundaries):
    shapes = _province_shapes(boundaries)
    given = big[big["lon"] != ""]
    assert 0.08 < len(given) / len(big) < 0.12
    lon = given["lon"].map(to_ascii_digits).str.replace("٫", ".").astype(float).to_numpy()
    lat = given["lat"].map(to_ascii_digits).str.replace("٫", ".").astype(float).to_numpy()
    iso = given["truth_province_iso"].to_numpy()
    inside = np.array([shapely.contains_xy(shapes[p], x, y) for p, x, y in zip(iso, lon, lat, strict=False)])
    reason = given["truth_bad_reason"].to_numpy()
    fine = ~np.isin(reason, COORDINATE_DEFECTS)
    assert inside[fine].all()
    assert not inside[~fine].any()
    # Within 300 m of the place's own coordinate.
    dy = (lat - given["truth_lat"].to_numpy()) * 111_320
    dx = (lon - given["truth_lon"].to_numpy()) * 111_320 * np.cos(np.radians(lat))
    assert (np.hypot(dx, dy)[fine] < 300).all()
    assert ((lon == 0) & (lat == 0))[reason == "coord_zero"].all()
    assert (lon < lat)[reason == "coord_swapped"].all()


def test_border_dwellers_sit_in_border_counties(big, boundaries):
    border = set(boundaries.counties.loc[boundaries.counties["border"].astype(bool), "osm_relation_id"])
    kinds = big["kind"].map(parse_kind)
    osm = big.loc[kinds == "border_dwellers", "truth_county_osm"]
    assert len(osm) > 100
    assert osm.isin(border).all()


def test_addresses_are_written_like_clerks_write_them(big):
    addr = big["address"]
    written = addr[addr != ""]
    assert 0.15 < written.str.contains("[يكة]").mean() < 0.3       # Arabic letter forms
    assert written.str.contains("[۰-۹]").any() and written.str.contains("[٠-٩]").any()
    assert written.str.contains("[0-9]").any()
    assert written.str.contains("\u200c").any()
    assert written.str.contains("  ").mean() > 0.02
    latin = written.map(is_latin)
    assert 0.01 < latin.mean() < 0.03
    assert written[latin].str.contains("County|Province|village|city|Village|City").all()
    assert written.str.contains("-").any() and written.str.contains("استان ").any()
    dates = big["registered_on"][big["registered_on"] != ""]
    assert dates.str.contains("[۰-۹]").mean() > 0.3
    assert dates.str.match("20[0-2][0-9]-").mean() > 0.05          # Gregorian
    years = dates[big.loc[dates.index, "truth_bad_reason"] != "bad_date"].map(to_ascii_digits).str[:4].astype(int)
    jalali = years < 1700
    assert years[jalali].between(1370, 1404).all()
    assert years[~jalali].between(1991, 2026).all()


def test_hundred_thousand_rows_are_fast(boundaries, tmp_path):
    start = time.perf_counter()
    df = generate_sample(100_000, boundaries=boundaries)
    took = time.perf_counter() - start
    print(f"generate_sample(100_000): {took:.2f} s")
    assert len(df) == 100_000
    assert df["registration_no"].map(to_ascii_digits).nunique() == 100_000 - (
        df["truth_bad_reason"] == "duplicate_registration_no").sum()
    assert took < 20


def test_provinces_and_counties_follow_the_census_population(big, boundaries):
    # Replaces the old weighting by number of places (Kerman first, Tehran 25th of 31).
    census = boundaries.census()
    shares = big["truth_province_iso"].value_counts(normalize=True)
    population = census.provinces["population"] / census.provinces["population"].sum()
    assert shares.index[0] == "IR-23"                                        # Tehran first
    kinds = big["kind"].map(parse_kind)
    urban_kinds = ~kinds.isin(["rural", "border_dwellers"])
    urban_shares = big.loc[urban_kinds, "truth_province_iso"].value_counts(normalize=True)
    assert np.corrcoef(urban_shares.reindex(population.index).fillna(0), population)[0, 1] > 0.97
    top = big["truth_county_osm"].value_counts().index[0]
    c = boundaries.counties
    assert c.loc[c["osm_relation_id"] == top, "display_name_fa"].iloc[0] == "تهران"
    # Rural cooperatives follow rural population: Tehran's share of them is far below its share of all.
    rural_shares = big.loc[kinds == "rural", "truth_province_iso"].value_counts(normalize=True)
    rural_population = census.provinces["rural"] / census.provinces["rural"].sum()
    assert np.corrcoef(rural_shares.reindex(rural_population.index).fillna(0), rural_population)[0, 1] > 0.85
    assert rural_shares.get("IR-23", 0) < shares["IR-23"] / 2
