"""Point-in-polygon joins and the border-dwellers' quota rule, on known places."""

import numpy as np
import pandas as pd

from coopgis.joins import border_quota, join_boundaries


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
