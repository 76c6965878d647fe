"""The geocoder as registry clerks and field officers use it: messy Persian, honest precision."""

import pytest
from hypothesis import given, settings, strategies as st

from coopgis.geocode import PRECISIONS


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


def test_village_without_coordinate_is_placed_no_finer_than_honest(geocoder, boundaries):
    r = geocoder.geocode("کامیاران - حاجی شوره")
    assert r.place == "حاجی شوره"
    assert r.precision in ("rural_district", "district", "county")
    # The point lies in the village's own county.
    info = geocoder.reverse(r.lon, r.lat)
    assert info["county"] == "کامیاران"


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
