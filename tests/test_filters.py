"""Filters, output CRS and bounding boxes (coopgis.filters): parsed from plain values, checked against pandas."""

from __future__ import annotations

import numpy as np
import pytest

from coopgis.errors import InputError
from coopgis.filters import CRS84, count, flag, number, parse_bbox, parse_crs, parse_filter, select


@pytest.mark.parametrize("value, epsg", [(None, None), ("CRS84", None), ("EPSG:4326", 4326), ("۳۸۵۷", 3857),
                                         ("http://www.opengis.net/def/crs/EPSG/0/32639", 32639)])
def test_crs_spellings(value, epsg):
    crs = parse_crs(value)
    assert crs.epsg == epsg and (crs.uri == CRS84) == (epsg is None) and crs.lat_first == (epsg == 4326)


def test_unsupported_crs_is_an_input_error():
    with pytest.raises(InputError, match="not supported"):
        parse_crs("EPSG:2000")


def test_bbox_in_epsg_4326_is_latitude_first():
    assert parse_bbox("35,51,36,52", "EPSG:4326") == (51.0, 35.0, 52.0, 36.0)
    assert parse_bbox("۵۱,۳۵,۵۲,۳۶") == (51.0, 35.0, 52.0, 36.0)
    with pytest.raises(InputError):
        parse_bbox("52,35,51,36")


def test_yes_no_numbers_and_counts_in_persian():
    assert flag("بله", "deprived") is True and flag("خیر", "deprived") is False and flag(None, "x") is None
    assert number("۵۱٫۳۸", "lon") == pytest.approx(51.38)
    assert count("۲۰", "limit", 10, 100) == 20 and count("500", "limit", 10, 100) == 100
    assert count(None, "limit", 10, 100) == 10
    for bad in ("0", "abc", "-3"):
        with pytest.raises(InputError, match="at least 1"):
            count(bad, "limit", 10, 100)
    with pytest.raises(InputError, match="finite"):
        number("nan", "lat")


def test_filter_mask_matches_pandas(dataset):
    coll = dataset.collections["cooperatives"]
    f = coll.frame
    flt = parse_filter(dataset, {"kind": "تولیدی,women", "deprived": "true", "registered_year": "۱۳۹۵..۱۴۰۰"})
    expected = (f["kind"].isin(["production", "women"]) & (f["deprived"].astype("boolean") == True)  # noqa: E712
                & f["registered_year"].astype("float64").between(1395, 1400)).fillna(False).to_numpy()
    assert (flt.mask(coll) == expected).all()
    assert np.array_equal(select(coll, flt, None), np.flatnonzero(expected))


def test_bbox_selection_is_every_point_inside_in_stored_order(dataset):
    """A bbox page lists exactly the cooperatives whose point is inside, edges included, in stored order:
    a city (points found through the longitude order), all of Iran, an empty and an inverted box."""
    coll = dataset.collections["cooperatives"]
    lon, lat = coll.points
    rng = np.random.default_rng(16)
    located = np.flatnonzero(~np.isnan(lon))
    edge = located[0]
    boxes = [(51.0, 35.0, 52.0, 36.0), (44.0, 25.0, 63.4, 39.8), (70.0, 10.0, 71.0, 11.0), (52.0, 35.0, 51.0, 36.0),
             (float(lon[edge]), float(lat[edge]), float(lon[edge]), float(lat[edge]))]      # a box of one point
    for _ in range(60):
        x, y = rng.uniform(44, 63), rng.uniform(25, 39)
        boxes.append((x, y, x + rng.exponential(0.8), y + rng.exponential(0.8)))
    for box in boxes:
        want = np.flatnonzero((lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3]))
        got = select(coll, None, box)
        assert np.array_equal(got, want), box
    assert edge in select(coll, None, boxes[4])
