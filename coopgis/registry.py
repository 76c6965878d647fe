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

import gc
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coopgis.registry_file import Records, RegistryError, check_file, load_records
from coopgis.text import key, norm, to_ascii_digits
from coopgis.values import NULL_MARKERS, parse_bool, parse_coordinate, parse_count, parse_date, registration_no_key
from coopgis.vocab import parse_kind, parse_sector, parse_status

__all__ = [
    "COLUMNS", "REASONS", "REQUIRED", "HEADER_ALIASES",
    "RegistryError", "RegistryRead",
    "read_registry", "check_file", "map_headers",
]



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
    return not s or (len(s) <= 4 and s.lower() in NULL_MARKERS)


def _text(v: str) -> str | None:
    return None if _null(v) else (norm(v) or None)


def _registration_no(v: str) -> str | None:
    return None if _null(v) else (registration_no_key(v) or None)


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


def _women_led(v: str) -> bool | None:
    """Yes/no, and زن/مرد (woman/man) for who leads the cooperative."""
    return parse_bool(v, yes=("زن",), no=("مرد",))


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


@dataclass
class _Header:
    """The header row of a file: its cells, their canonical columns and where it is."""

    index: int                      # record index of the header
    row: int                        # its line (CSV) or row (XLSX) in the file
    cells: list[str]
    names: list[str]                # unique display names
    canon: list[str | None]         # canonical column of each cell, None for unknown ones

    @property
    def width(self) -> int:
        return len(self.cells)


@dataclass
class _Rows:
    """The data records of a file, padded or cut to the header's width, with what was wrong with their shape."""

    kept: list[list[str]] = field(default_factory=list)
    source_rows: list[int] = field(default_factory=list)
    file_lines: list[int] = field(default_factory=list)
    overflow: dict[int, list[str]] = field(default_factory=dict)   # cells beyond the header
    short: dict[int, int] = field(default_factory=dict)            # CSV records with fewer fields
    anomaly: dict[int, str] = field(default_factory=dict)          # badly written (an unclosed quote)
    blank_rows: int = 0


def _read_registry(path: Path, max_bytes: int | None) -> RegistryRead:
    loaded = load_records(path, max_bytes, lambda h: _canonical(_clean_header(h)) is not None)
    head = _header(path, loaded)
    rows = _data_rows(loaded, head)
    cols = list(zip(*rows.kept, strict=True)) if rows.kept else [() for _ in range(head.width)]
    problems: dict[int, dict[str, str]] = {}
    out = _parse_columns(head, rows, cols, problems)
    extra_pos = [j for j, c in enumerate(head.canon)
                 if c is None and (head.cells[j] or any(v.strip() for v in cols[j]))]
    unknown_columns = [head.names[j] for j in extra_pos]
    out["extra"] = _extra(cols, extra_pos, unknown_columns, len(rows.kept))
    out["source_row"] = rows.source_rows
    quarantined = _quarantined(head, rows, problems, extra_pos, loaded.is_xlsx)
    accepted = _accepted(out, problems, len(rows.kept))
    if len(accepted) + len(quarantined) != len(rows.kept):
        raise AssertionError(f"registry invariant broken: {len(accepted)} + {len(quarantined)} != {len(rows.kept)}")
    return RegistryRead(
        rows=len(rows.kept),
        accepted=accepted,
        quarantined=quarantined,
        encoding=loaded.encoding,
        header_map={head.names[j]: c for j, c in enumerate(head.canon) if c is not None},
        unknown_columns=unknown_columns,
        blank_rows=rows.blank_rows,
        header_row=head.row,
        path=str(path),
        control_characters=loaded.controls,
    )


def _header(path: Path, loaded: Records) -> _Header:
    """The first non-blank record as the header; RegistryError for clashing or missing required columns."""
    records, is_xlsx = loaded.records, loaded.is_xlsx
    h_idx = next((i for i, r in enumerate(records) if "".join(r).strip()), None)
    if h_idx is None:
        where = "the first sheet is empty" if is_xlsx else "the file contains only blank lines"
        raise RegistryError(f"{path}: has no header row ({where})")
    header = [_clean_header(c) for c in records[h_idx]]
    header_row = loaded.lines[h_idx]
    if is_xlsx:  # values beyond the header in a sheet are unnamed columns, not misaligned rows
        width = max([len(header), *(len(r) for r in records[h_idx + 1:])])
        header += [""] * (width - len(header))
    canon = [_canonical(h) for h in header]
    by_canon: dict[str, list[str]] = {}
    for h, c in zip(header, canon, strict=True):
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
    return _Header(h_idx, header_row, header, _column_names(header), canon)


def _data_rows(loaded: Records, head: _Header) -> _Rows:
    """Data records after the header: blank ones skipped (counted); CSV records with too many or too few
    fields, and the ones the reader found badly written, flagged; short XLSX rows padded."""
    out = _Rows()
    width, is_xlsx = head.width, loaded.is_xlsx
    blanks_pending = 0
    padding = [""] * width
    for n, rec in enumerate(loaded.records[head.index + 1:], start=1):
        problem = loaded.anomalies.get(head.index + n)
        at = len(out.kept)
        if len(rec) < width:
            if not is_xlsx:
                out.short[at] = len(rec)
            rec = rec + padding[len(rec):]
        elif len(rec) > width:
            if "".join(rec[width:]).strip():
                out.overflow[at] = rec[width:]
            rec = rec[:width]
        if not "".join(rec).strip() and at not in out.overflow and problem is None:
            out.short.pop(at, None)
            blanks_pending += 1
            continue
        out.blank_rows += blanks_pending
        blanks_pending = 0
        if problem is not None:
            out.anomaly[at] = problem
        out.kept.append(rec)
        out.source_rows.append(n)
        out.file_lines.append(loaded.lines[head.index + n])
    return out


def _parse_columns(head: _Header, rows: _Rows, cols: list, problems: dict[int, dict[str, str]]) -> dict[str, list]:
    """Every known column parsed, value by value; what is wrong goes into ``problems`` (row -> reason -> text)."""
    width, kept = head.width, rows.kept
    position = {c: j for j, c in enumerate(head.canon) if c is not None}
    empty_col = ("",) * len(kept)

    def flag(found) -> None:
        for i, reason, msg in found:
            problems.setdefault(i, {})[reason] = msg

    def column(c: str) -> tuple[tuple, str]:
        j = position.get(c)
        return (cols[j], head.cells[j]) if j is not None else (empty_col, c)

    flag((i, "malformed_row", f"{width + len(cells)} fields but the header has {width}: unexpected {cells!r}")
         for i, cells in rows.overflow.items())
    flag((i, "malformed_row", f"only {count} of {width} fields" + (
          " and a value runs over several lines: probably an unclosed quote that swallowed the lines after it"
          if any("\n" in c or "\r" in c for c in kept[i]) else ""))
         for i, count in rows.short.items())
    flag((i, "malformed_row", msg) for i, msg in rows.anomaly.items())

    out: dict[str, list] = {}
    raw, hdr = column("registration_no")
    out["registration_no"], _ = _apply(raw, hdr, fn=_registration_no)
    flag(_registration_problems(out["registration_no"], hdr, rows.source_rows))
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
    out["lon"], out["lat"], bad_coord = _coordinates(column("lon"), column("lat"))
    flag((i, "bad_coordinate", "; ".join(msgs)) for i, msgs in bad_coord.items())
    for c, fn, reason in (("members", parse_count, "bad_members"), ("jobs", parse_count, "bad_jobs"),
                          ("women_led", _women_led, "bad_women_led")):
        raw, hdr = column(c)
        out[c], found = _apply(raw, hdr, fn=fn, reason=reason)
        flag(found)
    raw, hdr = column("registered_on")
    dates, found = _apply(raw, hdr, fn=parse_date, reason="bad_date")
    flag(found)
    out["registered_on"] = [d[0] if d else None for d in dates]
    out["registered_on_jalali"] = [d[1] if d else None for d in dates]
    out["phone"], _ = _apply(*column("phone"), fn=_phone)
    flag((i, "no_location", "no province, county, place, address nor coordinates")
         for i, (prov, cty, plc, adr, x) in enumerate(
             zip(out["province"], out["county"], out["place"], out["address"], out["lon"], strict=True))
         if prov is None and cty is None and plc is None and adr is None and x is None and i not in bad_coord)
    return out


def _registration_problems(numbers: list, header: str, source_rows: list[int]):
    """Missing and repeated registration numbers (a repeat names the row it first appeared at)."""
    first_seen: dict[str, int] = {}
    for i, reg in enumerate(numbers):
        if reg is None:
            yield i, "missing_registration_no", f"{header!r} is empty"
        elif reg in first_seen:
            yield i, "duplicate_registration_no", f"registration number {reg!r} already appears at source_row " \
                                                  f"{first_seen[reg]}"
        else:
            first_seen[reg] = source_rows[i]


def _coordinates(lon_column: tuple[tuple, str], lat_column: tuple[tuple, str]):
    """Longitudes, latitudes (None where a pair is not usable) and the messages of the bad pairs by row."""
    lon, lon_bad = _apply(*lon_column, fn=parse_coordinate, reason="bad_coordinate")
    lat, lat_bad = _apply(*lat_column, fn=parse_coordinate, reason="bad_coordinate")
    bad: dict[int, list[str]] = {}
    for i, _, msg in (*lon_bad, *lat_bad):
        bad.setdefault(i, []).append(msg)
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        if (x is None) != (y is None) and i not in bad:
            given, absent = ("longitude", "latitude") if y is None else ("latitude", "longitude")
            bad[i] = [f"{given} is given but {absent} is empty"]
    for i in bad:
        lon[i] = lat[i] = None
    return lon, lat, bad


def _extra(cols: list, extra_pos: list[int], names: list[str], rows: int) -> list[str | None]:
    """Unknown columns as one JSON object of their non-empty values per row (private: never published)."""
    extra: list[str | None] = [None] * rows
    if extra_pos:
        for i, vals in enumerate(zip(*(cols[j] for j in extra_pos), strict=True)):
            obj = {k: v.strip() for k, v in zip(names, vals, strict=True) if v and not v.isspace()}
            if obj:
                extra[i] = _JSON.encode(obj)
    return extra


def _quarantined(head: _Header, rows: _Rows, problems: dict[int, dict[str, str]], extra_pos: list[int],
                 is_xlsx: bool) -> list[dict]:
    """The quarantine entries: where each bad row is, its reasons in a fixed order and its values."""
    value_pos = sorted([j for j, c in enumerate(head.canon) if c is not None] + extra_pos)
    out = []
    for i in sorted(problems):
        found = problems[i]
        values = {head.names[j]: rows.kept[i][j] for j in value_pos}
        for k, v in enumerate(rows.overflow.get(i, ())):
            values[f"column_{head.width + k + 1}"] = v
        reasons = sorted(found, key=_REASON_ORDER.__getitem__)
        out.append({
            "source_row": rows.source_rows[i],
            ("row" if is_xlsx else "line"): rows.file_lines[i],
            "reasons": reasons,
            "detail": {r: found[r] for r in reasons},
            "values": values,
        })
    return out


def _accepted(out: dict[str, list], problems: dict[int, dict[str, str]], rows: int) -> pd.DataFrame:
    """The rows without problems as a table with the canonical columns and types."""
    good = [i for i in range(rows) if i not in problems] if problems else None

    def pick(lst: list) -> list:
        return lst if good is None else [lst[i] for i in good]

    def strings(c: str) -> pd.Series:
        return pd.Series(pick(out[c]), dtype=object)

    def floats(c: str) -> pd.Series:
        return pd.Series(np.array([np.nan if v is None else v for v in pick(out[c])], dtype="float64"))

    return pd.DataFrame({
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
