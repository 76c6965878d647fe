"""Values typed by people (coopgis.values): counts, decimals, coordinates, yes/no and dates, in Persian or English."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopgis.text import norm
from coopgis.values import (
    parse_bool,
    parse_coordinate,
    parse_count,
    parse_date,
    parse_decimal,
    parse_whole,
    registration_no_key,
)

# ---- parsers ------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("۱۴۰۲/۰۵/۱۲", ("2023-08-03", "1402/05/12")),
    ("1402-5-12", ("2023-08-03", "1402/05/12")),
    ("14020512", ("2023-08-03", "1402/05/12")),
    ("2023-08-03", ("2023-08-03", "1402/05/12")),
    ("2023/08/03", ("2023-08-03", "1402/05/12")),
    (datetime(2023, 8, 3, 0, 0), ("2023-08-03", "1402/05/12")),
    ("1403/12/30", ("2025-03-20", "1403/12/30")),  # Esfand 30 in a leap year
    ("", (None, None)),
    (None, (None, None)),
])
def test_parse_date(value, expected):
    assert parse_date(value) == expected


@pytest.mark.parametrize("value", ["1402/13/40", "1402/12/30", "03/08/2023", "2023-02-29", "tomorrow", "1200/01/01"])
def test_parse_date_rejects(value):
    with pytest.raises(ValueError):
        parse_date(value)


@pytest.mark.parametrize("value, expected", [("۱۲", 12), ("1,200", 1200), ("12.0", 12), ("0", 0), ("", None), (7, 7)])
def test_parse_count(value, expected):
    assert parse_count(value) == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "دوازده", True])
def test_parse_count_rejects(value):
    with pytest.raises(ValueError):
        parse_count(value)


@pytest.mark.parametrize("value, expected", [("۵۱٫۴۲", 51.42), ("51,42", 51.42), ("-3.5", -3.5), ("", None)])
def test_parse_coordinate(value, expected):
    assert parse_coordinate(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("بله", True), ("خیر", False), ("آری", True), ("نه", False), ("دارد", True), ("ندارد", False),
    ("هست", True), ("نیست", False), ("Yes", True), ("NO", False), ("true", True), ("False", False),
    ("1", True), ("0", False), ("y", True), ("n", False), ("✓", True), ("", None),
])
def test_parse_bool(value, expected):
    assert parse_bool(value) is expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_count_only_raises_value_error(text):
    try:
        n = parse_count(text)
    except ValueError:
        return
    assert n is None or (isinstance(n, int) and n >= 0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"\A[0-9۰-۹]{4}[/\-.][0-9۰-۹]{1,2}[/\-.][0-9۰-۹]{1,2}\Z"),
                 st.from_regex(r"\A[0-9]{8}\Z")))
def test_parse_date_only_raises_value_error(text):
    try:
        iso, jalali = parse_date(text)
    except ValueError:
        return
    assert (iso is None) == (jalali is None)
    if iso is not None:
        assert pd.Timestamp(iso).strftime("%Y-%m-%d") == iso


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_coordinate_and_bool_only_raise_value_error(text):
    for parse in (parse_coordinate, parse_bool):
        with contextlib.suppress(ValueError):
            parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_matches_norm(text):
    # registry skips norm() for ASCII numbers/codes; that is only valid while norm
    # changes nothing in ASCII text but whitespace.
    from coopgis.values import plain as _plain
    assert _plain(text) == norm(text)


def test_decimals_and_whole_numbers_as_typed_on_a_persian_keyboard():
    assert parse_decimal("۵۱٫۳۸") == pytest.approx(51.38) and parse_decimal(" 35.7 ") == pytest.approx(35.7)
    assert parse_whole("۲۰") == 20 and parse_whole(" 7 ") == 7
    for bad, parse in (("nan", parse_decimal), ("abc", parse_decimal), ("0", parse_whole), ("1.5", parse_whole)):
        with pytest.raises(ValueError):
            parse(bad)


def test_yes_no_words_a_column_adds_are_its_own():
    assert parse_bool("زن", yes=("زن",), no=("مرد",)) is True and parse_bool("مرد", yes=("زن",), no=("مرد",)) is False
    with pytest.raises(ValueError):
        parse_bool("زن")                       # not a yes/no word by itself
    assert parse_bool("آره") is True and parse_bool("بلی") is True


def test_registration_numbers_are_looked_up_as_stored():
    assert registration_no_key(" ۱۲۳ ۴۵/۶ ") == "12345/6"
