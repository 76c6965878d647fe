"""Values typed by people, parsed: counts, decimal numbers, coordinates, yes/no words and dates.

Persian and Arabic digits, the Persian decimal separator and thousands separators are
accepted wherever a number is read, and yes/no in Persian or English, so a registry
cell, a command-line option and a query parameter mean the same thing. Each parser
raises ValueError with a message naming the value; callers add where it came from.

Not here: which column or parameter a value belongs to (``registry.py``, ``filters.py``).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from functools import lru_cache

import jdatetime
import pandas as pd

from coopgis.text import key, norm, to_ascii_digits

# Cell contents that mean "no value" in every column.
NULL_MARKERS = frozenset({"", "-", "--", "---", "—", "–", "_", "null", "none", "nan", "n/a", "#n/a", "na"})


def is_blank(value: object) -> bool:
    """True for None, NaN/NaT and the null markers in NULL_MARKERS."""
    if value is None:
        return True
    if isinstance(value, str):
        s = value.strip()
        return not s or s.lower() in NULL_MARKERS
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


_INT = re.compile(r"[0-9]+")
_INT_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+")
_INT_POINT_ZERO = re.compile(r"([0-9]+)\.0*")
_DECIMAL = re.compile(r"-?[0-9]*[.,]?[0-9]+(?:[eE][+-]?[0-9]+)?")
_INT64_MAX = 2**63 - 1


def plain(value: object) -> str:
    """norm() for numbers and codes. ASCII text needs only its whitespace collapsed
    (norm changes nothing else in ASCII), which skips norm's cost on the common case."""
    s = str(value)
    return " ".join(s.split()) if s.isascii() else norm(s)


def registration_no_key(value: object) -> str:
    """A registration number as stored and looked up: normalised, ASCII digits, no spaces."""
    return plain(value).replace(" ", "")


def parse_count(value: object) -> int | None:
    """A non-negative whole number ("۱۲", "1,200", "12.0"), None when empty.

    Raises ValueError for negative, fractional, too large or non-numeric values.
    """
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a yes/no value, not a count")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        value = int(value)
    if isinstance(value, int):
        n = value
    else:
        s = plain(value).replace(" ", "").replace("−", "-")
        if _INT.fullmatch(s):
            n = int(s)
        elif _INT_THOUSANDS.fullmatch(s):
            n = int(s.replace(",", ""))
        elif m := _INT_POINT_ZERO.fullmatch(s):
            n = int(m.group(1))
        elif s.startswith("-") and _DECIMAL.fullmatch(s):
            raise ValueError(f"{value!r} is negative")
        elif _DECIMAL.fullmatch(s):
            raise ValueError(f"{value!r} is not a whole number")
        else:
            raise ValueError(f"{value!r} is not a number")
    if n < 0:
        raise ValueError(f"{value!r} is negative")
    if n > _INT64_MAX:
        raise ValueError(f"{value!r} is too large")
    return n


_COORD = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_coordinate(value: object) -> float | None:
    """A decimal-degree number, None when empty.

    Persian/Arabic digits, the Persian decimal separator ٫ and a decimal comma
    ("51,389") are accepted, and a trailing degree sign. No range check: that is
    the geocoder's job. Raises ValueError when the value is not a number.
    """
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a coordinate")
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:
            raise ValueError(f"{value!r} is not a finite number") from None
    else:
        s = plain(value).replace(" ", "").replace("−", "-").rstrip("°")
        if not _COORD.fullmatch(s):
            raise ValueError(f"{value!r} is not a decimal number")
        x = float(s.replace(",", "."))
    if not math.isfinite(x):
        raise ValueError(f"{value!r} is not a finite number")
    return x


# Yes and no, in Persian and English: the one list for registry cells, options and query parameters.
YES_WORDS = ("بله", "آری", "آره", "بلی", "دارد", "هست", "yes", "true", "y", "1", "1.0", "✓", "✔", "☑")
NO_WORDS = ("خیر", "نه", "ندارد", "نیست", "no", "false", "n", "0", "0.0", "✗", "✘")
_BOOLS = {key(w, prefixes=False): True for w in YES_WORDS} | {key(w, prefixes=False): False for w in NO_WORDS}


def parse_bool(value: object, *, yes: tuple[str, ...] = (), no: tuple[str, ...] = ()) -> bool | None:
    """Yes/no in Persian or English (بله/خیر, دارد/ندارد, yes/no, 1/0, ✓ ...), None when empty.

    ``yes`` and ``no`` add words a column gives a meaning of its own (زن/مرد for women-led).
    Raises ValueError for anything else.
    """
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    k = key(value, prefixes=False)
    if k in _BOOLS:
        return _BOOLS[k]
    if yes or no:
        extra = {key(w, prefixes=False): True for w in yes} | {key(w, prefixes=False): False for w in no}
        if k in extra:
            return extra[k]
    raise ValueError(f"{value!r} is not a yes/no value")


def parse_decimal(value: str | float) -> float:
    """A finite decimal number typed by a person ("۵۱٫۳۸", " 35.7"); ValueError saying what is wrong."""
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        try:
            v = float(to_ascii_digits(norm(value)).replace("٫", ".").replace(" ", ""))
        except ValueError:
            raise ValueError("is not a number") from None
    if not math.isfinite(v):
        raise ValueError("is not a finite number")
    return v


def parse_whole(value: str) -> int:
    """A whole number of at least 1 typed by a person ("۲۰", "20 "); ValueError otherwise."""
    v = to_ascii_digits(norm(value)).replace(" ", "")
    if not v.isdigit() or int(v) < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(v)


_DATE_YMD = re.compile(r"([0-9]{4})[/\-.]([0-9]{1,2})[/\-.]([0-9]{1,2})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DATE_DMY = re.compile(r"[0-9]{1,2}[/\-.][0-9]{1,2}[/\-.][0-9]{4}")
_TIME_SUFFIX = re.compile(r"[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?$")
# Plausible registration years (Iran's first cooperative was registered in 1314/1935).
_JALALI_YEARS = (1300, 1499)
_GREGORIAN_YEARS = (1921, 2120)


def _from_gregorian(g: date) -> tuple[str, str]:
    if not _GREGORIAN_YEARS[0] <= g.year <= _GREGORIAN_YEARS[1]:
        raise ValueError(f"year {g.year} is out of range {_GREGORIAN_YEARS[0]}-{_GREGORIAN_YEARS[1]}")
    return _gregorian_ymd(g.year, g.month, g.day)


# Explicit locale: jdatetime otherwise asks the OS locale on every date it builds.
@lru_cache(maxsize=65536)
def _gregorian_ymd(y: int, m: int, d: int) -> tuple[str, str]:
    j = jdatetime.date.fromgregorian(year=y, month=m, day=d, locale=jdatetime.FA_LOCALE)
    return date(y, m, d).isoformat(), f"{j.year:04d}/{j.month:02d}/{j.day:02d}"


@lru_cache(maxsize=65536)
def _jalali_ymd(y: int, m: int, d: int) -> tuple[str, str]:
    j = jdatetime.date(y, m, d, locale=jdatetime.FA_LOCALE)  # ValueError when impossible
    return j.togregorian().isoformat(), f"{y:04d}/{m:02d}/{d:02d}"


def parse_date(value: object) -> tuple[str | None, str | None]:
    """A registration date as ``(ISO Gregorian 'YYYY-MM-DD', Jalali 'YYYY/MM/DD')``.

    Year-first dates only: Jalali when the year is below 1700 (۱۴۰۲/۰۵/۱۲,
    1402-5-12, 14020512), Gregorian otherwise (2023-08-03, 2023/08/03, 20230803).
    Excel date cells (datetime/date) and jdatetime dates are accepted; a time of
    day is ignored. ``(None, None)`` when empty. Raises ValueError for impossible
    dates (1402/13/40), day-first or month-first dates (03/08/2023 is ambiguous),
    implausible years and anything else.
    """
    if is_blank(value):
        return None, None
    if isinstance(value, jdatetime.datetime):
        value = value.date()
    if isinstance(value, jdatetime.date):
        return _from_gregorian(value.togregorian())
    if isinstance(value, datetime):
        return _from_gregorian(value.date())
    if isinstance(value, date):
        return _from_gregorian(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = _TIME_SUFFIX.sub("", plain(value))
    m = _DATE_YMD.fullmatch(s) or _DATE_COMPACT.fullmatch(s)
    if m is None:
        if _DATE_DMY.fullmatch(s):
            raise ValueError(f"{value!r} is ambiguous (day and month order unknown): write the year first")
        raise ValueError(f"{value!r} is not a date (expected YYYY/MM/DD, Jalali or Gregorian)")
    y, mo, d = (int(g) for g in m.groups())
    if y < 1700:
        if not _JALALI_YEARS[0] <= y <= _JALALI_YEARS[1]:
            raise ValueError(f"{value!r}: Jalali year {y} is out of range {_JALALI_YEARS[0]}-{_JALALI_YEARS[1]}")
        try:
            return _jalali_ymd(y, mo, d)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a valid Jalali date: {e}") from None
    try:
        g = date(y, mo, d)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a valid Gregorian date: {e}") from None
    return _from_gregorian(g)
