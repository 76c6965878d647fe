"""Point-in-polygon joins and the border-dwellers' quota rule, on known places."""

import numpy as np
import pandas as pd

from coopgis.boundaries import load_boundaries
from coopgis.joins import CLASS_WORDS, border_quota, join_boundaries


def test_known_cities_join_to_their_province_and_county(boundaries):
    # Shiraz, Zahedan, Maku (West Azarbaijan, on the Turkish border), Tehran; a point in Paris; no point.
    lon = np.array([52.53, 60.86, 44.51, 51.39, 2.35, np.nan])
    lat = np.array([29.61, 29.50, 39.29, 35.69, 48.85, np.nan])
    out = join_boundaries(lon, lat, boundaries)
    assert list(out["province"][:4]) == ["IR-07", "IR-11", "IR-04", "IR-23"]
    assert list(out["county"][:4]) == ["شیراز", "زاهدان", "ماکو", "تهران"]
    assert list(out["border"][:4]) == [False, True, True, False]
    assert out["province"][4] is None and out["province"][5] is None
    assert pd.isna(out["border"][4])


def test_deprivation_classes_come_with_the_county(boundaries):
    # Bostanabad is on the 2019 least-developed list; Khatam on the 2009 list; Arak has no data.
    c = boundaries.counties.set_index("display_name_fa")
    pts = c.loc[["بستان آباد", "خاتم", "اراک"]].geometry.representative_point()
    out = join_boundaries(pts.x.to_numpy(), pts.y.to_numpy(), boundaries)
    assert list(out["deprivation_class"]) == ["less_developed_2019", "deprived_2009", "no_data"]
    assert list(out["deprived"].astype(object).where(out["deprived"].notna(), None)) == [True, True, None]


def test_every_county_point_joins_back_to_its_county(boundaries):
    c = boundaries.counties
    out = join_boundaries(c["point_lon"].to_numpy(), c["point_lat"].to_numpy(), boundaries)
    assert (out["county_osm"].to_numpy() == c["osm_relation_id"].to_numpy()).mean() > 0.97


def test_border_quota_rule():
    kind = pd.Series(["border_dwellers", "border_dwellers", "border_dwellers", "production"])
    deprived = pd.Series([True, False, None, True], dtype="boolean")
    q = border_quota(kind, deprived)
    assert q[0] == 600 and q[1] == 300 and pd.isna(q[2]) and pd.isna(q[3])


def _quota_at(boundaries, name: str):
    """The class, its words and a border-dwellers' cooperative's quota at a county's representative point."""
    c = boundaries.counties.set_index("display_name_fa")
    p = c.loc[[name]].geometry.representative_point()
    out = join_boundaries(p.x.to_numpy(), p.y.to_numpy(), boundaries)
    quota = border_quota(pd.Series(["border_dwellers"]), out["deprived"])[0]
    cls = out["deprivation_class"][0]
    return cls, CLASS_WORDS.get(cls), None if pd.isna(quota) else int(quota)


def test_quota_is_600_on_the_list_and_unknown_where_the_list_is_silent_or_missing(boundaries):
    # Nehbandan (South Khorasan, on the Afghan border) is its province's county on the 2019 list.
    assert _quota_at(boundaries, "نهبندان") == ("less_developed_2019", "on the 2019 list", 600)
    # Darmian, a border county of the same province, is not on that list: the list names one county per province,
    # so its silence says nothing. Unknown, not the ordinary 300.
    assert _quota_at(boundaries, "درمیان") == ("not_listed", "not on the 2019 list", None)
    # Astara (Gilan, on the Azerbaijani border): a province whose 2019 entry is missing.
    assert _quota_at(boundaries, "آستارا") == ("no_data", "no list", None)
    assert "not deprived" not in {CLASS_WORDS[c] for c in ("not_listed", "no_data")}


def test_a_ministry_list_through_the_setting_makes_the_quota_known(tmp_path, boundaries):
    # The ministry's table: Darmian named not deprived, Astara deprived (COOPGIS_DEPRIVATION).
    c = boundaries.counties.set_index("display_name_fa")
    table = tmp_path / "ministry.csv"
    pd.DataFrame({"osm_relation_id": [c.loc["درمیان", "osm_relation_id"], c.loc["آستارا", "osm_relation_id"]],
                  "deprivation_class": ["not_deprived", "ministry_deprived_1403"], "deprived": ["false", "true"],
                  "source_url": ["https://example.ir/list", "https://example.ir/list"]}).to_csv(table, index=False)
    ministry = load_boundaries(boundaries.source_dir, deprivation=table, cache_dir=tmp_path / "cache")
    assert _quota_at(ministry, "درمیان")[2] == 300
    assert _quota_at(ministry, "آستارا")[2] == 600
    assert _quota_at(ministry, "نهبندان")[0] == "no_data"        # a replacement table replaces the whole layer
    assert _quota_at(ministry, "نهبندان")[2] is None
    # A table that says deprived=false about an area without the not_deprived class is still silent.
    silent = tmp_path / "silent.csv"
    pd.DataFrame({"osm_relation_id": [c.loc["درمیان", "osm_relation_id"]], "deprivation_class": ["not_listed"],
                  "deprived": ["false"]}).to_csv(silent, index=False)
    assert _quota_at(load_boundaries(boundaries.source_dir, deprivation=silent, cache_dir=tmp_path / "c2"),
                     "درمیان")[2] is None
