"""Read a cooperative registry file (CSV or XLSX) and validate every row.

This is the entry point of the location layer: it turns whatever the registry
office exported (Persian or English headers, UTF-8 / UTF-8 with BOM / UTF-16 /
Windows-1256 CSV, or an Excel workbook) into one table with canonical columns,
and puts every row it cannot trust into a quarantine list with the reasons why.

What it is for:

* finding the columns (:func:`map_headers`: Persian or English names, spacing,
  case, underscores, Arabic letter forms and ZWNJ do not matter; any other header,
  a bracketed qualifier included, is an unknown column kept in the private ``extra``);
* parsing each value (kinds/sectors/statuses through :mod:`coopgis.vocab`,
  text through :func:`coopgis.text.norm`, Jalali and Gregorian dates, counts,
  yes/no flags, coordinates written with Persian digits or decimal commas);
* validating rows and quarantining the bad ones, never silently fixing or
  merging them (see :data:`REASONS`).

What it is NOT for: it does not geocode, does not look places up, does not check
that coordinates fall inside Iran or are swapped (the geocoder does that and
reports it), and does not write anything. It only reads, parses and validates.

The phone column holds personal data: it is cleaned here but must not be
published by the layers built on top.

Empty values: a cell holding only whitespace or a placeholder ("-", "—", "null",
"N/A", "#N/A", "nan" ...) counts as empty in every column.

Row numbers: ``source_row`` is the 1-based number of the data record after the
header row (blank records count in the numbering but are not data rows), so the
record is at ``header_row + source_row`` in the file: the CSV line when no
value spans several lines, the Excel row number for XLSX.
"""

from __future__ import annotations

import bisect
import csv
import gc
import io
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Callable

import jdatetime
import numpy as np
import pandas as pd

from coopgis.text import key, norm, to_ascii_digits
from coopgis.vocab import parse_kind, parse_sector, parse_status

__all__ = [
    "COLUMNS", "REASONS", "REQUIRED", "HEADER_ALIASES",
    "RegistryError", "RegistryRead",
    "read_registry", "check_file", "map_headers",
    "parse_date", "parse_bool", "parse_count", "parse_coordinate",
]


class RegistryError(Exception):
    """The registry file cannot be read at all (missing, empty, not CSV/XLSX,
    undecodable, no header, required columns missing, ambiguous columns)."""


# ---- columns -----------------------------------------------------------------

# Columns of ``RegistryRead.accepted``, in order.
COLUMNS: tuple[str, ...] = (
    "registration_no", "name", "kind", "sector", "status",
    "province", "county", "district", "rural_district", "place", "address",
    "lon", "lat", "members", "jobs", "women_led",
    "registered_on", "registered_on_jalali", "phone", "extra", "source_row",
)
REQUIRED: tuple[str, ...] = ("registration_no", "name", "kind")

# Accepted header names per canonical column. The first name is the Persian label
# used in messages. Matching goes through coopgis.text.key, so Arabic ي/ك, ZWNJ,
# spaces, case, and the punctuation in _HEADER_PUNCT do not matter.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "registration_no": (
        "شماره ثبت", "ش ثبت", "شماره‌ی ثبت", "کد ثبت", "شماره ثبت تعاونی",
        "registration_no", "registration number", "reg_no", "reg number", "registration",
    ),
    "name": (
        "نام تعاونی", "نام", "عنوان", "عنوان تعاونی", "نام شرکت تعاونی", "نام شرکت",
        "name", "cooperative name", "coop name",
    ),
    "kind": ("نوع تعاونی", "نوع", "نوع شرکت", "type", "kind", "cooperative type", "coop type"),
    "sector": (
        "رسته", "زمینه فعالیت", "گرایش", "رسته فعالیت", "موضوع فعالیت", "حوزه فعالیت",
        "sector", "activity",
    ),
    "status": ("وضعیت", "وضعیت تعاونی", "وضعیت فعالیت", "status"),
    "province": ("استان", "province", "ostan"),
    "county": ("شهرستان", "county", "shahrestan"),
    "district": ("بخش", "district", "bakhsh"),
    "rural_district": ("دهستان", "rural district", "rural_district", "dehestan"),
    "place": (
        "شهر یا روستا", "شهر/روستا", "شهر روستا", "روستا", "آبادی", "محل", "شهر",
        "city", "village", "city_or_village", "city or village", "place", "locality",
    ),
    "address": ("نشانی", "آدرس", "نشانی تعاونی", "آدرس تعاونی", "نشانی کامل", "آدرس کامل", "نشانی دفتر",
                "آدرس دفتر", "نشانی دفتر تعاونی", "آدرس دفتر تعاونی", "address", "office address"),
    "lon": ("طول جغرافیایی", "طول", "longitude", "lng", "long", "lon", "x"),
    "lat": ("عرض جغرافیایی", "عرض", "latitude", "lat", "y"),
    "members": ("تعداد اعضا", "اعضا", "تعداد عضو", "تعداد اعضای تعاونی", "تعداد اعضا (نفر)", "اعضا (نفر)",
                "members", "member count", "number of members"),
    "jobs": ("اشتغال", "تعداد شاغلین", "شاغلین", "اشتغال ایجاد شده", "تعداد اشتغال", "اشتغال (نفر)",
             "تعداد شاغلین (نفر)", "اشتغال ایجاد شده (نفر)", "jobs", "employment"),
    "women_led": ("زنان", "مدیریت زنان", "مدیریت بانوان", "زن", "women", "women_led"),
    "registered_on": ("تاریخ ثبت", "تاریخ", "date", "registration date", "registered_on",
                      "registered on"),
    "phone": ("تلفن", "شماره تماس", "تلفن همراه", "موبایل", "شماره تلفن", "تلفن تماس",
              "phone", "mobile", "tel", "telephone"),
}

# Reasons a row is quarantined, in the order they are listed for a row.
REASONS: dict[str, str] = {
    "malformed_row": "the CSV record does not fit the header: more fields than the header (an unquoted "
                     "delimiter inside a value?), or a short record with a value running over several lines "
                     "(an unclosed quote?)",
    "missing_registration_no": "the registration number is empty",
    "duplicate_registration_no": "the registration number already appeared on an earlier row (detail names it)",
    "missing_name": "the cooperative name is empty",
    "missing_kind": "the cooperative kind is empty",
    "unknown_kind": "the cooperative kind is not in the vocabulary (coopgis.vocab.KINDS)",
    "unknown_sector": "the sector is not in the vocabulary (coopgis.vocab.SECTORS)",
    "unknown_status": "the status is not in the vocabulary (coopgis.vocab.STATUSES)",
    "no_location": "no province, county, place, address nor coordinates",
    "bad_coordinate": "a coordinate is not a number, or only one of longitude/latitude is given",
    "bad_members": "members is not a non-negative whole number",
    "bad_jobs": "jobs is not a non-negative whole number",
    "bad_women_led": "women_led is not a yes/no value",
    "bad_date": "the registration date is impossible, ambiguous or in an unknown format",
}
_REASON_ORDER = {r: i for i, r in enumerate(REASONS)}

# Punctuation ignored in headers on top of coopgis.text.key.
_HEADER_PUNCT = re.compile(r"[\s_\-.:*#/\\|]+")


def _header_key(header: str) -> str:
    return _HEADER_PUNCT.sub("", key(header, prefixes=False))


_HEADER_INDEX: dict[str, str] = {}
for _canon, _aliases in HEADER_ALIASES.items():
    for _alias in (_canon, *_aliases):
        _HEADER_INDEX.setdefault(_header_key(_alias), _canon)


def _canonical(header: str) -> str | None:
    """Canonical column of one header, or None.

    Only a header that is exactly one of the known names (after normalisation) maps to a
    column. Anything more is kept in the private ``extra`` column: «آدرس (منزل مدیرعامل)»
    is the chief executive's home, not the cooperative's address, and must not be published.
    """
    if not header:
        return None
    return _HEADER_INDEX.get(_header_key(header))


def map_headers(headers: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map header names to canonical columns.

    Returns ``(original -> canonical, unknown headers)``. Empty headers are
    ignored. This does not check for two headers meaning the same column (and
    identical headers collapse in the dict); :func:`read_registry` does and
    raises :class:`RegistryError`.
    """
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for h in headers:
        h = _clean_header(h)
        if not h:
            continue
        canon = _canonical(h)
        if canon is None:
            unknown.append(h)
        else:
            mapping[h] = canon
    return mapping, unknown


def _clean_header(h: object) -> str:
    return "" if h is None else str(h).replace("\ufeff", "").strip()


# ---- value parsers -----------------------------------------------------------

# Cell contents that mean "no value" in every column.
_NULLS = frozenset({"", "-", "--", "---", "—", "–", "_", "null", "none", "nan", "n/a", "#n/a", "na"})


def _blank(value: object) -> bool:
    """True for None, NaN/NaT and the null markers in _NULLS."""
    if value is None:
        return True
    if isinstance(value, str):
        s = value.strip()
        return not s or s.lower() in _NULLS
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


def _plain(value: object) -> str:
    """norm() for numbers and codes. ASCII text needs only its whitespace collapsed
    (norm changes nothing else in ASCII), which skips norm's cost on the common case."""
    s = str(value)
    return " ".join(s.split()) if s.isascii() else norm(s)


def parse_count(value: object) -> int | None:
    """A non-negative whole number ("۱۲", "1,200", "12.0"), None when empty.

    Raises ValueError for negative, fractional, too large or non-numeric values.
    """
    if _blank(value):
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
        s = _plain(value).replace(" ", "").replace("−", "-")
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
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a coordinate")
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:
            raise ValueError(f"{value!r} is not a finite number") from None
    else:
        s = _plain(value).replace(" ", "").replace("−", "-").rstrip("°")
        if not _COORD.fullmatch(s):
            raise ValueError(f"{value!r} is not a decimal number")
        x = float(s.replace(",", "."))
    if not math.isfinite(x):
        raise ValueError(f"{value!r} is not a finite number")
    return x


_TRUE = ("بله", "آری", "بلی", "دارد", "هست", "زن", "yes", "true", "y", "1", "1.0", "✓", "✔", "☑")
_FALSE = ("خیر", "نه", "ندارد", "نیست", "مرد", "no", "false", "n", "0", "0.0", "✗", "✘")
_BOOLS = {key(w, prefixes=False): True for w in _TRUE} | {key(w, prefixes=False): False for w in _FALSE}


def parse_bool(value: object) -> bool | None:
    """Yes/no in Persian or English (بله/خیر, دارد/ندارد, yes/no, 1/0, ✓ ...), None when empty.

    Raises ValueError for anything else.
    """
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    k = key(value, prefixes=False)
    if k in _BOOLS:
        return _BOOLS[k]
    raise ValueError(f"{value!r} is not a yes/no value")


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
    if _blank(value):
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
    s = _TIME_SUFFIX.sub("", _plain(value))
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


# ---- result ------------------------------------------------------------------

@dataclass
class RegistryRead:
    """What :func:`read_registry` found. ``len(accepted) + len(quarantined) == rows``."""

    rows: int                      # non-blank data rows (header and blank rows excluded)
    accepted: pd.DataFrame         # one row per valid record, columns COLUMNS
    quarantined: list[dict]        # {"source_row", "line" (CSV) or "row" (XLSX), "reasons", "detail", "values"}
    encoding: str                  # 'utf-8', 'utf-8-sig', 'utf-16', 'utf-32', 'cp1256' or 'xlsx'
    header_map: dict[str, str]     # original header -> canonical column
    unknown_columns: list[str]     # headers kept in the `extra` column
    blank_rows: int                # fully blank rows between the header and the last data row
    header_row: int = 1            # 1-based line (CSV) / sheet row (XLSX) of the header
    path: str = ""
    control_characters: dict[int, int] = field(default_factory=dict)  # line/row -> characters removed

    def by_reason(self) -> dict[str, int]:
        """Number of quarantined rows per reason, most frequent first (a row may count twice)."""
        counts: dict[str, int] = {}
        for q in self.quarantined:
            for r in q["reasons"]:
                counts[r] = counts.get(r, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], _REASON_ORDER.get(kv[0], 99))))


# ---- reading files -----------------------------------------------------------

_SIGNATURES = (
    (b"\xd0\xcf\x11\xe0", "a legacy Excel 97-2003 (.xls) or other OLE document; save it as .xlsx or CSV"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_MARKUP = re.compile(r"\s*<(?:!doctype|html|\?xml|table|head|body)", re.IGNORECASE)
_DELIMITERS = (",", ";", "\t", "|")


def check_file(path: str | Path, max_bytes: int | None = None) -> None:
    """RegistryError unless ``path`` is a file of at most ``max_bytes`` (checked without reading it)."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: file not found")
    if path.is_dir():
        raise RegistryError(f"{path}: is a directory, not a registry file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise RegistryError(f"{path}: cannot be read ({e.strerror or e})") from None
    if max_bytes is not None and size > max_bytes:
        raise RegistryError(f"{path}: is {_size(size)}; registry files are read up to {_size(max_bytes)} "
                            "(COOPGIS_INGEST_MAX_BYTES). Split it, or raise the limit if the machine has "
                            "the memory")


def _read_bytes(path: Path, max_bytes: int | None) -> bytes:
    check_file(path, max_bytes)  # refused before a byte is read
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RegistryError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not data:
        raise RegistryError(f"{path}: file is empty (0 bytes)")
    return data


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: from its BOM, else UTF-8, else Windows-1256 (checked)."""
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                     (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig")):
        if data.startswith(bom):
            try:
                return data.decode(enc).lstrip("\ufeff"), enc
            except UnicodeDecodeError as e:
                raise RegistryError(f"{path}: starts with a {enc.upper()} byte order mark but is not {enc.upper()} "
                                    f"text (first bad byte at {e.start})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Not UTF-8 as a whole: decide per line. UTF-8 lines beside others is a file of mixed encodings,
    # which no single decoding reads right; Windows-1256 for the whole file would turn the UTF-8
    # lines into mojibake.
    lines = data.split(b"\n")
    utf8, other = [], []
    for n, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            other.append(n)
            continue
        if not line.isascii():
            utf8.append(n)
    if utf8:
        raise RegistryError(f"{path}: mixes text encodings: {_lines(utf8)} UTF-8, {_lines(other)} not (Windows-1256 "
                            "or damaged). Save the whole file in one encoding (UTF-8) and ingest it again")
    text = data.decode("cp1256", errors="replace")
    letters = [c for c in text if not c.isascii() and c.isalpha()]
    persian = sum("\u0600" <= c <= "\u06ff" for c in letters)
    if "\ufffd" in text or (letters and persian < 0.8 * len(letters)):
        raise RegistryError(f"{path}: is neither UTF-8 nor Windows-1256 Persian text (tried both); save it as "
                            "UTF-8 and ingest it again")
    return text, "cp1256"


def _lines(numbers: list[int], shown: int = 5) -> str:
    """'line 7' / 'lines 2, 3, 4, 5, 6 and 95 more'."""
    if len(numbers) == 1:
        return f"line {numbers[0]} is"
    head = ", ".join(str(n) for n in numbers[:shown])
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return f"lines {head}{more} are"


def _check_text(path: Path, text: str) -> None:
    sample = text[:65536]
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 100):
        raise RegistryError(f"{path}: is not a CSV or XLSX file (binary content)")
    if _MARKUP.match(sample):
        raise RegistryError(f"{path}: is an HTML/XML document, not a CSV or XLSX file; "
                            "open it in Excel and save it as .xlsx or CSV")


def _strip_controls(text: str) -> tuple[str, dict[int, int]]:
    """The text without control characters (NUL ...; tab and line breaks stay), and {line: removed}."""
    found = [m.start() for m in _CONTROL.finditer(text)]
    if not found:
        return text, {}
    breaks = [m.start() for m in _LINE_BREAK.finditer(text)]
    removed: dict[int, int] = {}
    for pos in found:
        line = bisect.bisect_left(breaks, pos) + 1
        removed[line] = removed.get(line, 0) + 1
    return _CONTROL.sub("", text), removed


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that makes the header line yield the most known columns."""
    first = next((ln for ln in lines if ln.strip()), "")
    best, best_score = ",", (-1, -1)
    for d in _DELIMITERS:
        try:
            fields = next(csv.reader([first], delimiter=d), [])
        except csv.Error:
            continue
        score = (sum(_canonical(_clean_header(f)) is not None for f in fields), len(fields))
        if score > best_score:
            best, best_score = d, score
    return best


@dataclass
class _Records:
    """What a file holds before validation: its records and where each one starts."""

    records: list[list[str]]
    lines: list[int]                 # per record: its first line (CSV) or row (XLSX) in the file
    encoding: str
    is_xlsx: bool
    anomalies: dict[int, str]        # record index -> what is wrong with how it was written
    controls: dict[int, int]         # line -> control characters removed


def _csv_records(path: Path, data: bytes) -> _Records:
    """The records of a CSV file; a quote that swallows whole lines is reported, not merged."""
    text, encoding = _decode(path, data)
    _check_text(path, text)
    text, controls = _strip_controls(text)
    lines = io.StringIO(text, newline="").readlines()   # on \r\n, \n or \r only, line ends kept
    first = 0
    m = re.match(r"sep=(.)\s*$", lines[0]) if lines else None  # Excel's delimiter hint line
    if m:
        delimiter, first = m.group(1), 1
    else:
        delimiter = _sniff_delimiter(lines[:50])
    records, starts, anomalies = _parse_lines(lines, first, delimiter)
    return _Records(records, starts, encoding, False, anomalies, controls)


class _LineSource:
    """The lines of a file for csv.reader, with the position of the next one (rewindable)."""

    def __init__(self, lines: list[str], pos: int):
        self.lines, self.pos = lines, pos

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _parse_lines(lines: list[str], first: int, delimiter: str) -> tuple[list[list[str]], list[int], dict[int, str]]:
    """Records, the 1-based line each starts on, and anomalies by record index.

    A record running over several lines is a value with line breaks, unless one of the
    lines it swallowed looks like a record of its own (as many delimiters as the header):
    then a quote was left open. That line is taken as a record on its own (flagged), and
    reading starts again on the next line, so the lines after it are read as the records
    they are.
    """
    src = _LineSource(lines, first)
    reader = csv.reader(src, delimiter=delimiter, strict=False)
    records: list[list[str]] = []
    starts: list[int] = []
    anomalies: dict[int, str] = {}
    width = None
    while True:
        start = src.pos
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a value over the CSV field limit
            anomalies[len(records)] = f"line {start + 1} cannot be read as CSV ({e})"
            records.append(next(csv.reader([lines[start][:2000]], delimiter=delimiter, strict=False), []))
            starts.append(start + 1)
            src.pos = start + 1
            reader = csv.reader(src, delimiter=delimiter, strict=False)
            continue
        if width is None and "".join(rec).strip():
            width = len(rec)
        end = src.pos
        if end - start > 1 and width and _swallowed(lines[start + 1:end], delimiter, width):
            swallowed = f"line {end}" if end == start + 2 else f"lines {start + 2}-{end}"
            anomalies[len(records)] = (f"unclosed quote on line {start + 1}: it would have swallowed {swallowed} into "
                                       "one value; they are read on their own")
            records.append(next(csv.reader([lines[start]], delimiter=delimiter, strict=False), []))
            starts.append(start + 1)
            src.pos = start + 1
            reader = csv.reader(src, delimiter=delimiter, strict=False)
            continue
        records.append(rec)
        starts.append(start + 1)
    return records, starts, anomalies


def _swallowed(continuation: list[str], delimiter: str, width: int) -> bool:
    """True when a line inside one value has as many delimiters as a whole record."""
    need = max(2, width - 1)
    return any(line.count(delimiter) >= need for line in continuation)


def _cell_str(v: Any) -> str:
    """An Excel cell value as the text a person would have typed."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == time(0) else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _xlsx_records(path: Path, data: bytes, max_bytes: int | None) -> _Records:
    import openpyxl

    _check_unpacked_size(path, data, max_bytes)
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl fails in many ways on non-workbooks; all mean "cannot read"
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    controls: dict[int, int] = {}
    try:
        if not wb.worksheets:
            raise RegistryError(f"{path}: workbook has no worksheet")
        ws = wb.worksheets[0]
        if hasattr(ws, "reset_dimensions"):
            ws.reset_dimensions()  # do not trust the stored sheet size
        records = []
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = list(row)
            while cells and (cells[-1] is None or cells[-1] == ""):
                cells.pop()
            values = [_cell_str(v) for v in cells]
            removed = sum(len(_CONTROL.findall(v)) for v in values)
            if removed:
                controls[n] = removed
                values = [_CONTROL.sub("", v) for v in values]
            records.append(values)
    except RegistryError:
        raise
    except Exception as e:
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    finally:
        wb.close()
    return _Records(records, list(range(1, len(records) + 1)), "xlsx", True, {}, controls)


def _check_unpacked_size(path: Path, data: bytes, max_bytes: int | None) -> None:
    """Refuse a workbook whose parts unpack to more than the limit (a small file can hold gigabytes)."""
    import zipfile

    try:
        total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise RegistryError(f"{path}: is not a readable XLSX workbook ({type(e).__name__}: {e})") from None
    if max_bytes is not None and total > max_bytes:
        raise RegistryError(f"{path}: unpacks to {_size(total)}; registry files are read up to {_size(max_bytes)} "
                            "(COOPGIS_INGEST_MAX_BYTES)")


def _load(path: Path, max_bytes: int | None) -> _Records:
    data = _read_bytes(path, max_bytes)
    suffix = path.suffix.lower()
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_records(path, data, max_bytes)
    if suffix in (".xlsx", ".xlsm"):
        raise RegistryError(f"{path}: has a {suffix} name but is not an XLSX workbook (no ZIP signature)")
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            raise RegistryError(f"{path}: is {what}, not a CSV or XLSX file")
    return _csv_records(path, data)


# ---- validation helpers ------------------------------------------------------

class _Invalid(ValueError):
    """A value problem carrying its quarantine reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _apply(values, header: str = "", *, fn: Callable[[str], Any], reason: str = ""):
    """fn over a column, called once per distinct value.

    Returns (results, [(row index, reason, message)]); a ValueError from fn makes
    the result None and flags the row (with the _Invalid reason when it has one).
    """
    cache: dict[str, Any] = {}
    bad: dict[str, tuple[str, str]] = {}
    for v in set(values):
        try:
            cache[v] = fn(v)
        except _Invalid as e:
            cache[v] = None
            bad[v] = (e.reason, str(e))
        except ValueError as e:
            cache[v] = None
            bad[v] = (reason, f"{header!r}: {e}")
    out = list(map(cache.__getitem__, values))
    problems = [(i, *bad[v]) for i, v in enumerate(values) if v in bad] if bad else []
    return out, problems


def _null(v: str) -> bool:
    s = v.strip()
    return not s or (len(s) <= 4 and s.lower() in _NULLS)


def _text(v: str) -> str | None:
    return None if _null(v) else (norm(v) or None)


def _registration_no(v: str) -> str | None:
    return None if _null(v) else (_plain(v).replace(" ", "") or None)


_PHONE_SPLIT = re.compile(r"[,;،؛|\n]+|\s+و\s+")
_NOT_DIGIT = re.compile(r"[^0-9]")


def _phone(v: str) -> str | None:
    """Digits (ASCII) and a leading +; several numbers in one cell are joined with ';'."""
    if _null(v):
        return None
    numbers = []
    for part in _PHONE_SPLIT.split(v if v.isascii() else to_ascii_digits(v)):
        digits = _NOT_DIGIT.sub("", part)
        if digits:
            numbers.append(("+" if part.strip().startswith("+") else "") + digits)
    return ";".join(numbers) or None


def _vocab(parse: Callable[[object], str | None], header: str, unknown: str, missing: str | None):
    def fn(v: str) -> str | None:
        if _null(v):
            if missing:
                raise _Invalid(missing, f"{header!r} is empty")
            return None
        code = parse(v)
        if code is None:
            raise _Invalid(unknown, f"{header!r}: {v.strip()!r} is not a known value")
        return code
    return fn


def _column_names(header: list[str]) -> list[str]:
    """Unique display names: empty headers become column_N, repeats get ' (2)'."""
    names: list[str] = []
    seen: set[str] = set()
    for j, h in enumerate(header):
        name = h or f"column_{j + 1}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base} ({k})", k + 1
        seen.add(name)
        names.append(name)
    return names


_JSON = json.JSONEncoder(ensure_ascii=False)


# ---- main entry point --------------------------------------------------------

def read_registry(path: str | Path, max_bytes: int | None = None) -> RegistryRead:
    """Read a registry CSV/XLSX file, parse and validate every row.

    Raises :class:`RegistryError` when the file cannot be read at all; otherwise
    every non-blank data row ends up either in ``accepted`` or in ``quarantined``
    (``len(accepted) + len(quarantined) == rows``). A file larger than
    ``max_bytes`` (an XLSX also unpacked) is refused before it is read. The cyclic
    garbage collector is paused while the file is read (restored afterwards).
    """
    # The validation builds millions of short-lived containers; the cyclic garbage
    # collector would rescan them over and over (about 20% of the time) for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read_registry(Path(path), max_bytes)
    finally:
        if gc_was_enabled:
            gc.enable()


def _read_registry(path: Path, max_bytes: int | None) -> RegistryRead:
    loaded = _load(path, max_bytes)
    records, is_xlsx = loaded.records, loaded.is_xlsx

    # Header: first non-blank record. Blank records after the last data row are ignored.
    h_idx = next((i for i, r in enumerate(records) if "".join(r).strip()), None)
    if h_idx is None:
        where = "the first sheet is empty" if is_xlsx else "the file contains only blank lines"
        raise RegistryError(f"{path}: has no header row ({where})")
    header = [_clean_header(c) for c in records[h_idx]]
    body = records[h_idx + 1:]
    header_row = loaded.lines[h_idx]

    width = len(header)
    if is_xlsx:  # values beyond the header in a sheet are unnamed columns, not misaligned rows
        width = max([width, *(len(r) for r in body)])
        header += [""] * (width - len(header))
    names = _column_names(header)
    canon = [_canonical(h) for h in header]

    by_canon: dict[str, list[str]] = {}
    for h, c in zip(header, canon):
        if c is not None:
            by_canon.setdefault(c, []).append(h)
    clashes = {c: hs for c, hs in by_canon.items() if len(hs) > 1}
    if clashes:
        parts = "; ".join(f"{' and '.join(repr(h) for h in hs)} both mean {c!r}" for c, hs in clashes.items())
        raise RegistryError(f"{path}: ambiguous columns: {parts}. Rename or remove one of each.")
    missing = [c for c in REQUIRED if c not in by_canon]
    if missing:
        wanted = ", ".join(f"{c} ({HEADER_ALIASES[c][0]})" for c in missing)
        found = ", ".join(repr(h) for h in header if h) or "none"
        raise RegistryError(f"{path}: missing required column(s): {wanted}. "
                            f"Headers found (row {header_row}): {found}")

    # Data rows: skip blank ones (counted); flag CSV records with too many or too few fields, and
    # the ones the reader found badly written (an unclosed quote); pad short XLSX rows.
    kept: list[list[str]] = []
    source_rows: list[int] = []
    file_lines: list[int] = []
    overflow: dict[int, list[str]] = {}
    short: dict[int, int] = {}     # CSV records with fewer fields than the header
    anomaly: dict[int, str] = {}
    blanks_pending = blank_rows = 0
    padding = [""] * width
    for n, rec in enumerate(body, start=1):
        problem = loaded.anomalies.get(h_idx + n)
        if len(rec) != width:
            if len(rec) < width:
                if not is_xlsx:
                    short[len(kept)] = len(rec)
                rec = rec + padding[len(rec):]
            elif "".join(rec[width:]).strip():
                overflow[len(kept)] = rec[width:]
                rec = rec[:width]
            else:
                rec = rec[:width]
        if not "".join(rec).strip() and len(kept) not in overflow and problem is None:
            short.pop(len(kept), None)
            blanks_pending += 1
            continue
        blank_rows += blanks_pending
        blanks_pending = 0
        if problem is not None:
            anomaly[len(kept)] = problem
        kept.append(rec)
        source_rows.append(n)
        file_lines.append(loaded.lines[h_idx + n])
    rows = len(kept)
    cols = list(zip(*kept)) if rows else [() for _ in range(width)]
    position = {c: j for j, c in enumerate(canon) if c is not None}

    problems: dict[int, dict[str, str]] = {}

    def flag(found) -> None:
        for i, reason, msg in found:
            problems.setdefault(i, {})[reason] = msg

    empty_col = ("",) * rows

    def column(c: str) -> tuple[tuple, str]:
        j = position.get(c)
        return (cols[j], header[j]) if j is not None else (empty_col, c)

    flag((i, "malformed_row", f"{width + len(cells)} fields but the header has {width}: unexpected {cells!r}")
         for i, cells in overflow.items())
    flag((i, "malformed_row", f"only {count} of {width} fields" + (
          " and a value runs over several lines: probably an unclosed quote that swallowed the lines after it"
          if any("\n" in c or "\r" in c for c in kept[i]) else ""))
         for i, count in short.items())
    flag((i, "malformed_row", msg) for i, msg in anomaly.items())

    out: dict[str, list] = {}
    raw, hdr = column("registration_no")
    out["registration_no"], _ = _apply(raw, hdr, fn=_registration_no)
    first_seen: dict[str, int] = {}
    for i, reg in enumerate(out["registration_no"]):
        if reg is None:
            flag([(i, "missing_registration_no", f"{hdr!r} is empty")])
        elif reg in first_seen:
            flag([(i, "duplicate_registration_no",
                   f"registration number {reg!r} already appears at source_row {first_seen[reg]}")])
        else:
            first_seen[reg] = source_rows[i]

    raw, hdr = column("name")
    out["name"], _ = _apply(raw, hdr, fn=_text)
    flag((i, "missing_name", f"{hdr!r} is empty") for i, v in enumerate(out["name"]) if v is None)

    for c, parse, unknown, missing_reason in (
        ("kind", parse_kind, "unknown_kind", "missing_kind"),
        ("sector", parse_sector, "unknown_sector", None),
        ("status", parse_status, "unknown_status", None),
    ):
        raw, hdr = column(c)
        out[c], found = _apply(raw, hdr, fn=_vocab(parse, hdr, unknown, missing_reason))
        flag(found)

    for c in ("province", "county", "district", "rural_district", "place", "address"):
        out[c], _ = _apply(*column(c), fn=_text)

    lon, lon_bad = _apply(*column("lon"), fn=parse_coordinate, reason="bad_coordinate")
    lat, lat_bad = _apply(*column("lat"), fn=parse_coordinate, reason="bad_coordinate")
    bad_coord: dict[int, list[str]] = {}
    for i, _, msg in (*lon_bad, *lat_bad):
        bad_coord.setdefault(i, []).append(msg)
    for i, (x, y) in enumerate(zip(lon, lat)):
        if (x is None) != (y is None) and i not in bad_coord:
            given, absent = ("longitude", "latitude") if y is None else ("latitude", "longitude")
            bad_coord[i] = [f"{given} is given but {absent} is empty"]
    flag((i, "bad_coordinate", "; ".join(msgs)) for i, msgs in bad_coord.items())
    for i in bad_coord:
        lon[i] = lat[i] = None
    out["lon"], out["lat"] = lon, lat

    for c, reason in (("members", "bad_members"), ("jobs", "bad_jobs")):
        raw, hdr = column(c)
        out[c], found = _apply(raw, hdr, fn=parse_count, reason=reason)
        flag(found)

    raw, hdr = column("women_led")
    out["women_led"], found = _apply(raw, hdr, fn=parse_bool, reason="bad_women_led")
    flag(found)

    raw, hdr = column("registered_on")
    dates, found = _apply(raw, hdr, fn=parse_date, reason="bad_date")
    flag(found)
    out["registered_on"] = [d[0] if d else None for d in dates]
    out["registered_on_jalali"] = [d[1] if d else None for d in dates]

    out["phone"], _ = _apply(*column("phone"), fn=_phone)

    flag((i, "no_location", "no province, county, place, address nor coordinates")
         for i, (prov, cty, plc, adr, x) in enumerate(
             zip(out["province"], out["county"], out["place"], out["address"], lon))
         if prov is None and cty is None and plc is None and adr is None and x is None and i not in bad_coord)

    # Unknown columns go to `extra`, as a JSON object of their non-empty values.
    extra_pos = [j for j, c in enumerate(canon)
                 if c is None and (header[j] or any(v.strip() for v in cols[j]))]
    unknown_columns = [names[j] for j in extra_pos]
    extra: list[str | None] = [None] * rows
    if extra_pos:
        for i, vals in enumerate(zip(*(cols[j] for j in extra_pos))):
            obj = {k: v.strip() for k, v in zip(unknown_columns, vals) if v and not v.isspace()}
            if obj:
                extra[i] = _JSON.encode(obj)
    out["extra"] = extra
    out["source_row"] = source_rows

    # Split accepted / quarantined.
    value_pos = sorted([j for j, c in enumerate(canon) if c is not None] + extra_pos)
    quarantined = []
    for i in sorted(problems):
        found = problems[i]
        values = {names[j]: kept[i][j] for j in value_pos}
        for k, v in enumerate(overflow.get(i, ())):
            values[f"column_{width + k + 1}"] = v
        reasons = sorted(found, key=_REASON_ORDER.__getitem__)
        quarantined.append({
            "source_row": source_rows[i],
            ("row" if is_xlsx else "line"): file_lines[i],
            "reasons": reasons,
            "detail": {r: found[r] for r in reasons},
            "values": values,
        })

    if problems:
        good = [i for i in range(rows) if i not in problems]

        def pick(lst: list) -> list:
            return [lst[i] for i in good]
    else:
        pick = list

    def strings(c: str) -> pd.Series:
        return pd.Series(pick(out[c]), dtype=object)

    def floats(c: str) -> pd.Series:
        return pd.Series(np.array([np.nan if v is None else v for v in pick(out[c])], dtype="float64"))

    accepted = pd.DataFrame({
        **{c: strings(c) for c in ("registration_no", "name", "kind", "sector", "status", "province",
                                   "county", "district", "rural_district", "place", "address")},
        "lon": floats("lon"),
        "lat": floats("lat"),
        "members": pd.Series(pd.array(pick(out["members"]), dtype="Int64")),
        "jobs": pd.Series(pd.array(pick(out["jobs"]), dtype="Int64")),
        "women_led": pd.Series(pd.array(pick(out["women_led"]), dtype="boolean")),
        **{c: strings(c) for c in ("registered_on", "registered_on_jalali", "phone", "extra")},
        "source_row": pd.Series(np.array(pick(out["source_row"]), dtype="int64")),
    }, columns=list(COLUMNS))

    if len(accepted) + len(quarantined) != rows:
        raise AssertionError(f"registry invariant broken: {len(accepted)} + {len(quarantined)} != {rows}")

    return RegistryRead(
        rows=rows,
        accepted=accepted,
        quarantined=quarantined,
        encoding=loaded.encoding,
        header_map={names[j]: c for j, c in enumerate(canon) if c is not None},
        unknown_columns=unknown_columns,
        blank_rows=blank_rows,
        header_row=header_row,
        path=str(path),
        control_characters=loaded.controls,
    )
