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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from coopgis.registry_file import RegistryError, check_file, load_records
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


def _read_registry(path: Path, max_bytes: int | None) -> RegistryRead:
    loaded = load_records(path, max_bytes, lambda h: _canonical(_clean_header(h)) is not None)
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
    out["women_led"], found = _apply(raw, hdr, fn=_women_led, reason="bad_women_led")
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
