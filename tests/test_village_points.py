"""Village points: the matching rules on small hand-built cases, and the shipped points' invariants."""

from __future__ import annotations

import pandas as pd
import pytest

from coopgis.village_points import latin_skeleton, match_villages, persian_skeleton, village_keys

# Two rural districts of one county, 50 km apart, each with three villages whose names are unique.
ANCHORS = [
    ("r1", "بیدک", 50.00, 35.00), ("r1", "کهریز", 50.02, 35.01), ("r1", "گوران", 49.99, 35.02),
    ("r2", "سرخه", 50.55, 35.00), ("r2", "دولاب", 50.56, 35.02), ("r2", "ماهان", 50.54, 34.99),
]


def villages(*extra: tuple[str, str, str, bool]) -> pd.DataFrame:
    """(name, county, rural district, settlement) rows after the anchors."""
    rows = [(n, "c1", rd, True) for rd, n, _, _ in ANCHORS] + list(extra)
    return pd.DataFrame({"village_id": [str(i) for i in range(len(rows))],
                         "village_code": [f"code{i}" for i in range(len(rows))],
                         "name": [r[0] for r in rows], "county_id": [r[1] for r in rows],
                         "rural_district_id": [r[2] for r in rows], "settlement": [r[3] for r in rows]})


def places(*extra: dict) -> pd.DataFrame:
    rows = [{"source_id": f"a{i}", "name_fa": n, "lon": x, "lat": y} for i, (_, n, x, y) in enumerate(ANCHORS)]
    rows += [{"source_id": f"p{i}", **e} for i, e in enumerate(extra)]
    frame = pd.DataFrame(rows)
    defaults = {"name_fa": "", "name": "", "feature_code": "PPL", "county_id": "c1"}
    for col, value in defaults.items():
        frame[col] = frame[col].fillna(value) if col in frame else value
    frame["variants"] = [v if isinstance(v, list) else [] for v in frame.get("variants", [None] * len(frame))]
    frame["near_county_ids"] = [v if isinstance(v, list) else []
                                for v in frame.get("near_county_ids", [None] * len(frame))]
    return frame


def placed(result: pd.DataFrame, village_code: str) -> dict | None:
    hit = result[result["village_code"] == village_code]
    return None if hit.empty else hit.iloc[0].to_dict()


def test_the_anchors_are_placed_by_their_unique_names():
    out = match_villages(villages(), places())
    assert len(out) == 6 and set(out["method"]) == {"name"} and set(out["strength"]) == {"strong"}


def test_a_packed_official_name_gives_a_key_for_each_part():
    assert village_keys("حسین آباد(ده شیخا)")[1] == {"حسیناباد", "دهشیخا"}
    assert village_keys("علی آباد2")[1] == {"علیاباد"}
    out = match_villages(villages(("قلعه نو / کلاته", "c1", "r1", True)),
                         places({"name_fa": "کلاته", "lon": 50.01, "lat": 35.02}))
    got = placed(out, "code6")
    assert got and (got["method"], got["strength"], got["source_id"]) == ("name_part", "strong", "p0")


def test_a_name_repeated_in_two_rural_districts_is_settled_by_the_nearer_one():
    out = match_villages(villages(("حسن آباد", "c1", "r1", True), ("حسن آباد", "c1", "r2", True)),
                         places({"name_fa": "حسن آباد", "lon": 50.01, "lat": 35.005}))
    got = placed(out, "code6")
    assert got and (got["method"], got["strength"]) == ("rural_district", "strong")
    assert placed(out, "code7") is None


def test_a_repeated_name_without_a_clear_margin_stays_unplaced():
    out = match_villages(villages(("حسن آباد", "c1", "r1", True), ("حسن آباد", "c1", "r2", True)),
                         places({"name_fa": "حسن آباد", "lon": 50.27, "lat": 35.0}))
    assert placed(out, "code6") is None and placed(out, "code7") is None


def test_two_namesakes_of_one_rural_district_are_never_told_apart():
    out = match_villages(villages(("حسن آباد", "c1", "r1", True), ("حسن آباد", "c1", "r1", True)),
                         places({"name_fa": "حسن آباد", "lon": 50.0, "lat": 35.0}))
    assert placed(out, "code6") is None and placed(out, "code7") is None


def test_abandoned_and_destroyed_places_place_no_village():
    out = match_villages(villages(("متروک", "c1", "r1", True), ("ویران", "c1", "r1", True)),
                         places({"name_fa": "متروک", "lon": 50.0, "lat": 35.0, "feature_code": "PPLQ"},
                                {"name_fa": "ویران", "lon": 50.0, "lat": 35.0, "feature_code": "PPLW"}))
    assert placed(out, "code6") is None and placed(out, "code7") is None


def test_non_settlement_entries_are_not_placed():
    out = match_villages(villages(("چاه حسن", "c1", "r1", False)),
                         places({"name_fa": "چاه حسن", "lon": 50.0, "lat": 35.0}))
    assert placed(out, "code6") is None


def test_a_place_just_across_the_county_line_is_a_weak_match():
    out = match_villages(villages(("مرزآباد", "c2", "r9", True)),
                         places({"name_fa": "مرزآباد", "lon": 50.3, "lat": 35.3, "county_id": "c1",
                                 "near_county_ids": ["c2"]}))
    got = placed(out, "code6")
    assert got and (got["method"], got["strength"]) == ("outside_county", "weak")


def test_a_place_in_another_county_far_from_the_line_places_nothing():
    out = match_villages(villages(("مرزآباد", "c2", "r9", True)),
                         places({"name_fa": "مرزآباد", "lon": 50.3, "lat": 35.3, "county_id": "c1"}))
    assert out[out["village_code"] == "code6"].empty


def test_a_place_with_only_a_romanised_name_is_a_weak_transliteration_match():
    assert persian_skeleton("گلستانک") == latin_skeleton("Golestanak") == "glstnk"
    out = match_villages(villages(("گلستانک", "c1", "r1", True)),
                         places({"name": "Golestanak", "lon": 50.0, "lat": 35.03}))
    got = placed(out, "code6")
    assert got and (got["method"], got["strength"]) == ("transliteration", "weak")


def test_one_letter_off_is_a_weak_fuzzy_match():
    out = match_villages(villages(("قزلجه کند", "c1", "r1", True)),
                         places({"name_fa": "قزلجه گند", "lon": 50.0, "lat": 35.03}))
    got = placed(out, "code6")
    assert got and (got["method"], got["strength"]) == ("fuzzy", "weak")


def test_each_place_gives_one_village_and_each_village_one_place():
    # The place's primary name is one village's, its variant the other's: the primary wins, once.
    out = match_villages(villages(("نوده", "c1", "r1", True), ("چشمه سار", "c1", "r1", True)),
                         places({"name_fa": "نوده", "variants": ["چشمه سار"], "lon": 50.0, "lat": 35.0}))
    assert placed(out, "code6")["method"] == "name" and placed(out, "code7") is None
    assert not out["source_id"].duplicated().any() and not out["village_code"].duplicated().any()


def test_two_records_of_one_place_close_together_are_one_place():
    out = match_villages(villages(("آتان", "c1", "r1", True)),
                         places({"name_fa": "آتان", "lon": 50.000, "lat": 35.000},
                                {"name_fa": "اِتان", "lon": 50.010, "lat": 35.005}))
    got = placed(out, "code6")
    assert got and got["method"] == "name" and 0 < got["spread_km"] <= 2


def test_a_name_an_official_city_of_the_county_carries_is_not_given_to_a_village():
    out = match_villages(villages(("خور", "c1", "r1", True)), places({"name_fa": "خور", "lon": 50.0, "lat": 35.0}),
                         cities=pd.DataFrame({"name": ["خور"], "county_id": ["c1"]}))
    assert placed(out, "code6") is None


def test_a_village_far_from_its_rural_district_is_flagged_an_outlier():
    out = match_villages(villages(("دورافتاده", "c1", "r1", True)),
                         places({"name_fa": "دورافتاده", "lon": 51.0, "lat": 35.8}))
    got = placed(out, "code6")
    assert got["outlier"] and got["km_to_rural_district"] > 80


# ---- the shipped points (boundaries/village_points.csv) ------------------------------------------

@pytest.fixture(scope="module")
def shipped(boundaries):
    return pd.read_csv(boundaries.source_dir / "village_points.csv", dtype={"village_code": str, "village_id": str})


def test_shipped_points_keep_the_rules(shipped, boundaries):
    import json

    summary = json.loads((boundaries.source_dir / "build_summary.json").read_text())["village_points"]
    assert summary["strong"] == int((shipped["strength"] == "strong").sum()) >= 38_500
    assert summary["strong_inside_own_county"] >= 0.94
    assert not shipped["village_code"].duplicated().any() and not shipped["source_id"].duplicated().any()
    assert set(shipped["strength"]) == {"strong", "weak"}
    assert set(shipped.loc[shipped["strength"] == "weak", "method"]) <= {"fuzzy", "transliteration", "outside_county"}
    wof = pd.read_csv(boundaries.source_dir / "gazetteer/wof_iran_places.csv", dtype=str, keep_default_na=False,
                      usecols=["source_id", "feature_code"])
    dead = set(wof.loc[wof["feature_code"].isin(["PPLQ", "PPLW"]), "source_id"])
    assert not shipped["source_id"].isin(dead).any()


def test_shipped_strong_points_lie_in_their_villages_county(shipped, boundaries):
    import numpy as np

    from coopgis.joins import locate_points

    sample = shipped[shipped["strength"] == "strong"].sample(2000, random_state=1)
    c = boundaries.counties
    where = locate_points(c.geometry.values, sample["lon"].to_numpy(float), sample["lat"].to_numpy(float))
    got = c["official_county_id"].fillna("").astype(str).to_numpy()[np.maximum(where, 0)]
    # Counties newer than the official list: their villages are their parent's.
    parents = __import__("json").loads((boundaries.source_dir / "build_summary.json").read_text())[
        "village_points"]["new_county_parents"]
    osm = c["osm_relation_id"].astype(str).to_numpy()[np.maximum(where, 0)]
    got = np.where(got == "", [parents.get(o, "") for o in osm], got)
    assert np.mean(got == sample["county_id"].astype(str).to_numpy()) >= 0.94


def test_shipped_points_are_what_the_build_makes_from_the_shipped_raw_files(shipped, boundaries):
    """`coopgis build-boundaries` would write the same village_points.csv (the raw copies are in boundaries/)."""
    from coopgis.build_boundaries import village_points

    coords = pd.read_csv(boundaries.source_dir / "place_coordinates.csv", dtype=str)
    rebuilt, _ = village_points(boundaries.source_dir, boundaries.counties,
                                used_geonames=set(coords.loc[coords["source"] == "geonames", "source_id"]))
    assert len(rebuilt) == len(shipped)
    assert (rebuilt["village_code"].astype(str).to_numpy() == shipped["village_code"].to_numpy()).all()
    assert (rebuilt["source_id"].to_numpy() == shipped["source_id"].to_numpy()).all()
    assert (rebuilt["method"].to_numpy() == shipped["method"].to_numpy()).all()
