"""The geocoder as registry clerks and field officers use it: messy Persian, honest precision."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopgis.vocab import PRECISIONS


def test_village_with_a_known_coordinate(geocoder):
    r = geocoder.geocode("استان آذربایجان غربی، شهرستان ارومیه، روستای بزوه")
    assert (r.precision, r.place, r.province, r.county) == ("village", "بزوه", "IR-04", "ارومیه")
    assert r.place_code and r.confidence >= 0.9
    assert r.lon == pytest.approx(45.0, abs=1.0) and r.lat == pytest.approx(37.5, abs=1.0)


def test_arabic_letter_forms_and_missing_prefixes(geocoder):
    a = geocoder.geocode("آذربايجان غربي - اروميه - بزوه")
    b = geocoder.geocode("استان آذربایجان غربی، شهرستان ارومیه، روستای بزوه")
    assert (a.place_code, a.precision) == (b.place_code, b.precision)


def test_persian_and_arabic_digits_are_not_places(geocoder):
    r = geocoder.geocode("همدان، اسدآباد، روستای بادخوره، کوچه ۱۲، پلاک ٣")
    assert r.place == "بادخوره" and r.precision == "village"


def test_typo_in_village_name_still_found_with_lower_confidence(geocoder):
    exact = geocoder.geocode("همدان، اسدآباد، روستای بادخوره")
    typo = geocoder.geocode("همدان، اسدآباد، روستای بادخوزه")
    assert typo.place_code == exact.place_code
    assert typo.confidence < exact.confidence


def test_english_transliteration(geocoder):
    r = geocoder.geocode("Shiraz, Fars")
    assert (r.province, r.county) == ("IR-07", "شیراز")
    r = geocoder.geocode("Zahedan")
    assert r.province == "IR-11"


def test_county_only_address_never_claims_village_precision(geocoder):
    r = geocoder.geocode("استان مرکزی، شهرستان آشتیان")
    assert r.precision == "county" and r.county == "آشتیان" and r.place is None


def _unplaced_village(boundaries, county, rd_placed_at_least=0, rd_placed_below=10**9):
    """A settlement village of ``county`` with no point and a name unique in its county."""
    p = boundaries.places
    v = p[(p["level"] == "village") & p["settlement"]]
    in_county = v[v["county_osm"] == p.loc[(p["level"] == "county") & (p["display_name"] == county),
                                           "county_osm"].iloc[0]]
    placed = in_county[in_county["lon"].notna() & (in_county["point_strength"] == "strong")
                       & ~in_county["point_outlier"]].groupby("rural_district_id").size()
    unique = ~in_county["key"].duplicated(keep=False)
    for r in in_county[unique & in_county["lon"].isna()].itertuples():
        n = int(placed.get(r.rural_district_id, 0))
        if rd_placed_at_least <= n < rd_placed_below and " " not in r.name and len(r.name) >= 4:
            return r
    raise AssertionError(f"no such village in {county}")


def test_village_without_coordinate_is_placed_no_finer_than_honest(geocoder, boundaries):
    v = _unplaced_village(boundaries, "دزفول", rd_placed_below=3)
    r = geocoder.geocode(f"دزفول - روستای {v.name}")
    assert r.place_code == v.code
    assert r.precision in ("district", "county")
    assert r.uncertainty_m > 1000
    # The point lies in the village's own county.
    info = geocoder.reverse(r.lon, r.lat)
    assert info["county"] == "دزفول"


def test_unplaced_village_stands_at_its_rural_districts_median_with_an_honest_radius(geocoder, boundaries):
    import numpy as np

    from coopgis.distance import haversine_km

    v = _unplaced_village(boundaries, "کامیاران", rd_placed_at_least=3)
    r = geocoder.geocode(f"کامیاران - روستای {v.name}")
    assert (r.place_code, r.precision) == (v.code, "rural_district")
    p = boundaries.places
    placed = p[(p["rural_district_id"] == v.rural_district_id) & p["lon"].notna()
               & (p["point_strength"] == "strong") & ~p["point_outlier"]]
    assert (r.lon, r.lat) == pytest.approx((placed["lon"].median(), placed["lat"].median()), abs=1e-5)
    farthest = np.max(haversine_km(r.lon, r.lat, placed["lon"].to_numpy(), placed["lat"].to_numpy())) * 1000
    assert r.uncertainty_m == pytest.approx(farthest, abs=100)


def test_uncertainty_is_zero_where_the_point_is_the_place_and_grows_with_the_area(geocoder):
    village = geocoder.geocode("همدان، اسدآباد، روستای بادخوره")
    exact = geocoder.geocode("شیراز", lon=52.53, lat=29.61)
    county = geocoder.geocode("استان مرکزی، شهرستان آشتیان")
    province = geocoder.geocode("استان همدان")
    assert (village.precision, village.uncertainty_m) == ("village", 0)
    assert (exact.precision, exact.uncertainty_m) == ("exact", 0)
    assert county.precision == "county" and county.uncertainty_m > 5_000
    assert province.precision == "province" and province.uncertainty_m > county.uncertainty_m


def test_a_weak_village_point_says_it_may_be_elsewhere(geocoder, boundaries):
    p = boundaries.places
    weak = p[(p["level"] == "village") & (p["point_strength"] == "weak") & p["settlement"]]
    weak = weak[~weak["key"].isin(p.loc[p["level"].isin(["village", "city"]) & p["key"].duplicated(keep=False),
                                        "key"])]
    v = weak.iloc[0]
    r = geocoder.geocode(place=v["name"], county=p.loc[(p["level"] == "county")
                                                       & (p["county_osm"] == v["county_osm"]), "name"].iloc[0])
    assert (r.place_code, r.precision) == (v["code"], "village")
    assert r.uncertainty_m > 0 and r.confidence < 0.9


def test_structured_fields(geocoder):
    r = geocoder.geocode(province="فارس", county="مرودشت", place="کناره")
    assert (r.place, r.place_level, r.county, r.province) == ("کناره", "village", "مرودشت", "IR-07")


def test_street_names_are_not_read_as_places(geocoder):
    r = geocoder.geocode("فارس، شیراز، خیابان زند، کوچه ۱۲")
    assert r.precision == "county" and r.county == "شیراز" and r.place is None


def test_unknown_village_is_reported(geocoder):
    r = geocoder.geocode("کرمانشاه، روستای ناموجودآباد")
    assert "place_not_found" in r.issues and r.precision in ("province", "county")


def test_nothing_found(geocoder):
    r = geocoder.geocode("این یک نشانی نیست")
    assert r.precision == "none" and r.lon is None and r.confidence == 0


def test_coordinates_checked_and_reported(geocoder):
    ok = geocoder.geocode("شیراز", lon=52.53, lat=29.61)
    assert ok.precision == "exact" and ok.issues == []
    swapped = geocoder.geocode("شیراز", lon=29.61, lat=52.53)
    assert "coord_swapped" in swapped.issues and swapped.precision != "exact"
    zero = geocoder.geocode("شیراز", lon=0, lat=0)
    assert "coord_zero" in zero.issues and zero.precision == "county"
    outside = geocoder.geocode("زاهدان", lon=52.53, lat=29.61)
    assert "coord_outside_province" in outside.issues and outside.province == "IR-11"
    abroad = geocoder.geocode("شیراز", lon=2.35, lat=48.85)
    assert "coord_outside_iran" in abroad.issues


def test_batch_equals_single(geocoder):
    import pandas as pd

    addresses = ["فارس، شیراز", "Zahedan", "همدان، اسدآباد، روستای بادخوره", "", None, "فارس، شیراز"]
    frame = pd.DataFrame({"address": addresses, "lon": [None, None, None, 52.53, None, None],
                          "lat": [None, None, None, 29.61, None, None]})
    out = geocoder.geocode_many(frame)
    assert len(out) == len(addresses)
    assert list(out["precision"]) == ["county", "county", "village", "exact", "none", "county"]
    single = geocoder.geocode("همدان، اسدآباد، روستای بادخوره")
    assert out.iloc[2]["place_code"] == single.place_code


def test_reverse_geocoder_knows_province_county_border_deprivation(geocoder):
    r = geocoder.reverse(60.86, 29.50)          # Zahedan
    assert (r["province"], r["county"], r["border"]) == ("IR-11", "زاهدان", True)
    assert r["nearest_place"]["distance_km"] < 10
    r = geocoder.reverse(52.53, 29.61)          # Shiraz
    assert (r["province"], r["county"], r["border"]) == ("IR-07", "شیراز", False)
    assert r["deprivation_class"] == "not_listed"
    out = geocoder.reverse(2.35, 48.85)
    assert out["inside_iran"] is False and out["province"] is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_no_crash_on_any_unicode(geocoder, s):
    r = geocoder.geocode(s)
    assert r.precision in PRECISIONS
    assert 0.0 <= r.confidence <= 1.0


def test_a_village_that_gains_a_point_moves_its_cooperatives_to_village_precision(boundaries):
    import copy

    from coopgis.geocode import Geocoder

    v = _unplaced_village(boundaries, "دزفول", rd_placed_below=3)
    address = f"خوزستان، دزفول، روستای {v.name}"
    before = Geocoder(boundaries).geocode(address)
    assert before.place_code == v.code and before.precision in ("district", "county")

    gained = copy.copy(boundaries)
    gained.places = boundaries.places.copy()
    row = gained.places.index[(gained.places["level"] == "village") & (gained.places["code"] == v.code)][0]
    lon, lat = before.lon + 0.01, before.lat + 0.01
    gained.places.loc[row, ["lon", "lat", "point_lon", "point_lat"]] = [lon, lat, lon, lat]
    gained.places.loc[row, ["coord_source", "point_strength"]] = ["wof", "strong"]
    after = Geocoder(gained).geocode(address)
    assert (after.place_code, after.precision, after.uncertainty_m) == (v.code, "village", 0)
    assert (after.lon, after.lat) == (lon, lat)
