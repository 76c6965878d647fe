"""A deterministic, clearly labelled synthetic cooperatives registry for demos and tests.

:func:`generate_sample` draws ``size`` cooperatives at real places of the shipped
gazetteer (cities and settled villages of all 31 provinces) and writes them the
way registry clerks fill them in (under the registry's canonical English
headers): Persian labels with Arabic ي/ك now and then, Persian/Arabic-Indic/Latin digits, addresses with
and without prefixes, ZWNJ or none, double spaces, one-letter typos, English
transliterations, Jalali and Gregorian dates, some given coordinates (a few of
them deliberately wrong) and a handful of deliberately bad rows. ``truth_*``
columns say where each cooperative really is and which defect a bad row carries,
so the geocoder and the registry reader can be scored against them.
:func:`write_sample` writes it as plain UTF-8 CSV, without the truth by default.

Every name carries :data:`SAMPLE_LABEL` ("نمونه ساختگی", synthetic sample) and the
``synthetic`` column says so; registration and phone numbers are made up (phones
use the unassigned 0900 prefix). Nothing here describes a real cooperative.

Where the numbers come from (DESIGN.md section 1, the Deputy's interview):

* Kind mix: the published counts (production 2571, distribution 930, services
  1023, women 891, housing 239, school 60, national inclusive 47, knowledge-based
  62, county development 14) are used as relative weights. They overlap (they
  sum to 5,837 against 4,354 registered), so shares are relative to that sum.
* Members and jobs per cooperative: each kind's mean is the published total
  divided by the published count, drawn from a skewed negative binomial above a
  legal minimum (7 members; 3 for knowledge-based cooperatives and unions).
* ASSUMPTIONS of this synthetic sample, not published figures: the weights of
  rural (300), border-dwellers' (150), union (40) and public joint-stock (20)
  cooperatives; members/jobs means of housing, rural, border-dwellers', union
  and public joint-stock cooperatives and jobs of school cooperatives; the
  status mix (about 89% active, 8% troubled, 3% dissolved); the sector mix; the
  share of women-led cooperatives outside the women's kind (15%).
* Where cooperatives are: provinces and counties weighted by their census 1395
  population (:func:`county_weights`; a census county split among its counties of
  today by their number of places), rural cooperatives and border-dwellers' cooperatives
  by rural population (the agricultural sectors are not: sectors are drawn per kind
  after the place). Every province gets at least one cooperative; border-dwellers'
  cooperatives only in border counties.
* Where a cooperative truly is: its city's point, or its village's point where the
  village was placed by a strong name match (``village_points.csv``); a village
  with no point, or only a weak or outlying one, has no true point in the sample.

Not here: reading registry files (``registry.py``) and geocoding (``geocode.py``).
The sample only uses the gazetteer; it never looks anything up on the network.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache
from pathlib import Path

import jdatetime
import numpy as np
import pandas as pd
import shapely

from coopgis.boundaries import Boundaries, load_boundaries
from coopgis.text import key
from coopgis.vocab import GALAXY_SECTORS, KINDS, SECTORS, STATUSES, Term

__all__ = ["SAMPLE_LABEL", "COLUMNS", "TRUTH_COLUMNS", "BAD_ROW_REASONS", "COORDINATE_DEFECTS",
           "KIND_WEIGHTS", "generate_sample", "write_sample"]

SAMPLE_LABEL = "نمونه ساختگی"

COLUMNS: tuple[str, ...] = (
    "registration_no", "name", "kind", "sector", "status",
    "province", "county", "district", "rural_district", "place", "address",
    "lon", "lat", "members", "jobs", "women_led", "registered_on", "phone", "synthetic",
)
TRUTH_COLUMNS: tuple[str, ...] = (
    "truth_level", "truth_place_code", "truth_county_osm", "truth_province_iso",
    "truth_lon", "truth_lat", "truth_bad_reason",
)
# Defects of whole rows (about 0.5% of rows), named as registry.REASONS names them.
BAD_ROW_REASONS: tuple[str, ...] = (
    "missing_name", "unknown_kind", "bad_members", "bad_date", "duplicate_registration_no", "no_location",
)
# Defects of given coordinates (about 1% of rows), which the geocoder must report.
COORDINATE_DEFECTS: tuple[str, ...] = ("coord_swapped", "coord_zero", "coord_outside_province")

# Published counts (DESIGN.md section 1) and, for the last four, assumed weights.
# Kinds placed by rural population (border-dwellers' also only in border counties).
RURAL_KINDS = ("rural", "border_dwellers")
KIND_WEIGHTS: dict[str, float] = {
    "production": 2571, "distribution": 930, "services": 1023, "women": 891, "housing": 239,
    "school": 60, "national_inclusive": 47, "knowledge_based": 62, "county_development": 14,
    "rural": 300, "border_dwellers": 150, "union": 40, "public_joint_stock": 20,
}
PUBLISHED_KINDS = ("production", "distribution", "services", "women", "housing", "school",
                   "national_inclusive", "knowledge_based", "county_development")

# Mean members and jobs per cooperative: published totals / counts, else assumptions.
MEAN_MEMBERS: dict[str, float] = {
    "production": 44771 / 2571, "distribution": 59000 / 930, "services": 28000 / 1023,
    "women": 8808 / 891, "school": 3000 / 60, "national_inclusive": 3832 / 47,
    "knowledge_based": 1580 / 62, "county_development": 11934 / 14,
    "housing": 45, "rural": 120, "border_dwellers": 150, "union": 12, "public_joint_stock": 300,
}
MEAN_JOBS: dict[str, float] = {
    "production": 63000 / 2571, "distribution": 32154 / 930, "services": 43000 / 1023,
    "women": 13808 / 891, "national_inclusive": 2065 / 47, "knowledge_based": 1043 / 62,
    "county_development": 505 / 14,
    "school": 2, "housing": 3, "rural": 8, "border_dwellers": 4, "union": 6, "public_joint_stock": 25,
}
MIN_MEMBERS = {"knowledge_based": 3, "union": 3}          # others: 7, the usual legal minimum
MIN_JOBS = {"production": 1, "distribution": 1, "services": 1, "women": 1, "knowledge_based": 1}

# Share of all rows that give coordinates (drawn among the rows at a place with a true point).
GIVEN_COORD_SHARE = 0.10
BAD_ROW_SHARE = 0.005
COORD_DEFECT_SHARE = 0.01
TYPO_SHARE = 0.03
ENGLISH_SHARE = 0.02
ARABIC_SHARE = 0.20
JITTER_M = 250.0

# Preference for a city (rather than a village) per kind; assumed.
_CITY_SHARE = {
    "production": 0.35, "distribution": 0.55, "services": 0.55, "women": 0.35, "housing": 0.9,
    "school": 0.7, "national_inclusive": 0.85, "knowledge_based": 0.95, "county_development": 0.9,
    "rural": 0.05, "border_dwellers": 0.25, "union": 0.9, "public_joint_stock": 0.85,
}
# Sector mix per kind; assumed. Galaxy sectors are strong among production, women and rural.
_SECTOR_MIX: dict[str, dict[str, float]] = {
    "production": {**{s: 0.09 for s in GALAXY_SECTORS}, "agriculture": 0.14, "livestock": 0.1,
                   "industry": 0.12, "mining": 0.04, "other": 0.06},
    "women": {"clothing": 0.2, "handicrafts": 0.22, "carpet": 0.2, "beekeeping": 0.05, "fish_farming": 0.03,
              "poultry": 0.08, "agriculture": 0.08, "livestock": 0.06, "services": 0.08},
    "rural": {**{s: 0.07 for s in GALAXY_SECTORS}, "agriculture": 0.3, "livestock": 0.18,
              "consumer": 0.1},
    "distribution": {"consumer": 0.8, "other": 0.1, "agriculture": 0.1},
    "services": {"services": 0.45, "transport": 0.2, "construction": 0.15, "credit": 0.1, "other": 0.1},
    "housing": {"construction": 1.0},
    "school": {"consumer": 0.6, "services": 0.4},
    "national_inclusive": {"credit": 0.4, "services": 0.2, "consumer": 0.2, "other": 0.2},
    "knowledge_based": {"industry": 0.5, "services": 0.4, "agriculture": 0.1},
    "county_development": {"construction": 0.7, "services": 0.3},
    "border_dwellers": {"consumer": 0.6, "transport": 0.3, "other": 0.1},
    "union": {**{s: 0.1 for s in GALAXY_SECTORS}, "agriculture": 0.2, "consumer": 0.2},
    "public_joint_stock": {"industry": 0.5, "mining": 0.2, "agriculture": 0.2, "other": 0.1},
}
_STATUS_P = {"active": 0.89, "troubled": 0.08, "dissolved": 0.03}

# Gazetteer names clerks would write: letters and spaces only (no brackets, digits, slashes).
_CLEAN_NAME = re.compile("[\u0621-\u063a\u0641-\u064a\u067e\u0686\u0698\u06a9\u06af\u06cc ]+")
# Pumps, farms and works written without a space ("موتورحاجی"), which NOT_SETTLEMENT lets through.
_GLUED_NOT_SETTLEMENT = re.compile(
    "^(موتور|تلمبه|مرغداری|گاوداری|دامداری|دامپروری|کارخانه|شرکت|مزرعه|پمپ|ایستگاه|معدن)")

_ORGS = ("آموزش و پرورش", "فرهنگیان", "کارگران", "بهداشت و درمان", "شهرداری", "کشاورزان", "دامداران",
         "جهاد کشاورزی", "بازنشستگان", "کارکنان دولت")
_SCHOOLS = ("دبیرستان دخترانه", "دبیرستان پسرانه", "هنرستان", "دبستان", "مدرسه", "هنرستان فنی")
_MARTYRS = ("شهید مطهری", "شهید بهشتی", "شهید رجایی", "شهید باهنر", "امام خمینی", "انقلاب", "فردوسی",
            "سعدی", "حافظ", "ابن سینا")
_KB_WORDS = ("فناوران", "نوآوران", "پیشگامان", "اندیشه‌گران", "هوشمند", "پویا")
_STREETS_CITY = ("خیابان {m}", "کوچه شهید {n}", "خیابان {m}، کوچه {n}", "بلوار {m}، پلاک {n}",
                 "میدان {m}", "خیابان {m}، پلاک {n}", "کوچه {n}، پلاک {k}", "جنب بانک ملی",
                 "روبروی شهرداری", "شهرک صنعتی، فاز {n}", "پلاک {n}")
_STREETS_VILLAGE = ("خیابان اصلی", "جنب مسجد جامع", "روبروی دهیاری", "کنار مدرسه", "جنب خانه بهداشت",
                    "بلوار ورودی روستا", "کوچه {n}", "خیابان اصلی، پلاک {n}", "جاده اصلی، کیلومتر {n}",
                    "پلاک {n}")
_UNKNOWN_KINDS = ("نامعلوم", "نامشخص", "متفرقه")
_BAD_DATES = ("{y}/13/40", "{y}/12/35", "{y}/00/10", "{y}/07/31", "{y}-14-02")

# One-letter typos: letters clerks confuse (never pairs the normaliser folds together).
_CONFUSE = {
    "س": "ص", "ص": "س", "ث": "س", "ز": "ذ", "ذ": "ز", "ض": "ز", "ظ": "ز", "ت": "ط", "ط": "ت",
    "ح": "ه", "ه": "ح", "ق": "غ", "غ": "ق", "ع": "ا", "ک": "گ", "گ": "ک", "ب": "پ", "پ": "ب",
    "ج": "چ", "چ": "ج", "ر": "ز", "د": "ذ", "ن": "م", "م": "ن", "ل": "ر", "و": "ر", "ی": "ن", "ش": "س",
    "ف": "ق", "ا": "ع", "خ": "ح", "ژ": "ز",
}

_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_AR_LETTERS = str.maketrans({"ی": "ي", "ک": "ك"})
_FINAL_HEH = re.compile("ه(?=\\s|$|،)")


def generate_sample(size: int, seed: int = 1404, boundaries: Boundaries | None = None, *,
                    bad_rows: bool = True) -> pd.DataFrame:
    """A synthetic registry of ``size`` cooperatives: :data:`COLUMNS` plus :data:`TRUTH_COLUMNS`.

    The same ``size``, ``seed`` and boundaries give the same table (and the same CSV).
    With ``bad_rows=False`` no deliberate defect is written (no bad rows, no wrong coordinates).
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    b = boundaries if boundaries is not None else load_boundaries()
    rng = np.random.default_rng(seed)
    cand = _candidates(b)
    n = int(size)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=str) for c in (*COLUMNS, *TRUTH_COLUMNS)})

    # Kinds, then places (border-dwellers' cooperatives only in border counties).
    kind_codes = np.array(list(KIND_WEIGHTS))
    kw = np.array(list(KIND_WEIGHTS.values()), dtype=float)
    kinds = kind_codes[rng.choice(len(kind_codes), n, p=kw / kw.sum())]
    city_p = pd.Series(_CITY_SHARE).reindex(kinds).to_numpy()
    city_wish = rng.random(n) < city_p
    border = kinds == "border_dwellers"
    rural = np.isin(kinds, RURAL_KINDS) & ~border
    weights = county_weights(b, cand)
    place = np.empty(n, dtype=np.int64)
    everyone = np.ones(len(cand), bool)
    for rows, allowed, column, floor in ((~border & ~rural, everyone, "population", True),
                                         (rural, everyone, "rural", False),
                                         (border, cand["border"].to_numpy(), "rural", False)):
        if rows.any():
            place[rows] = _draw_places(rng, cand, allowed, city_wish[rows], weights[column], floor=floor)
    c = {col: cand[col].to_numpy() for col in cand.columns}
    P = lambda col: c[col][place]  # noqa: E731  (attribute of each row's place)

    # Everything else that is drawn, in a fixed order.
    sector_codes = _draw_sectors(rng, kinds)
    status_codes = np.array(list(_STATUS_P))[rng.choice(3, n, p=list(_STATUS_P.values()))]
    women_led = (kinds == "women") | (rng.random(n) < 0.15)
    members, jobs = _draw_counts(rng, kinds)
    reg_numbers = rng.choice(10 * n + 9000, n, replace=False) + 1000
    years = rng.integers(1370, 1405, n)
    months = np.where(years == 1404, rng.integers(1, 8, n), rng.integers(1, 13, n))
    max_day = np.where(months <= 6, 31, np.where(months <= 11, 30, 29))
    days = (rng.random(n) * max_day).astype(int) + 1
    phones = rng.integers(0, 10**7, n)
    U = rng.random((n, 48))              # per-row choices of spelling and layout
    arabic = rng.random(n) < ARABIC_SHARE

    has_coord = ~np.isnan(P("lon"))
    n_en = int((P("name_en") != "").sum())
    english = (P("name_en") != "") & (rng.random(n) < min(1.0, ENGLISH_SHARE * n / max(n_en, 1)))
    typo_ok = (P("letters") >= 5) & ~english
    typo = typo_ok & (rng.random(n) < min(1.0, TYPO_SHARE * n / max(int(typo_ok.sum()), 1)))
    given = has_coord & (rng.random(n) < min(1.0, GIVEN_COORD_SHARE * n / max(int(has_coord.sum()), 1)))
    lon, lat = _jittered(rng, b, P("lon"), P("lat"), P("province_iso"), given)

    # Deliberate defects.
    reason = np.full(n, "", dtype=object)
    if bad_rows:
        n_bad = min(int(round(n * BAD_ROW_SHARE)), n - 1)
        if n_bad > 0:
            rows = rng.choice(np.arange(1, n), n_bad, replace=False)
            reason[rows] = rng.permutation(np.resize(np.array(BAD_ROW_REASONS, dtype=object), n_bad))
        pool = np.flatnonzero(given & (reason == ""))
        n_coord = min(int(round(n * COORD_DEFECT_SHARE)), len(pool))
        if n_coord > 0:
            rows = np.sort(rng.choice(pool, n_coord, replace=False))
            kinds_of_defect = np.array(COORDINATE_DEFECTS, dtype=object)[rng.integers(0, 3, n_coord)]
            reason[rows] = kinds_of_defect
            lon, lat = _defective_coords(rng, cand, lon, lat, P("province_iso"), rows, kinds_of_defect)
    given &= ~(reason == "no_location")
    dup_source = np.full(n, -1)
    for i in np.flatnonzero(reason == "duplicate_registration_no"):
        dup_source[i] = int(rng.integers(0, i))

    out = _registry_rows(n, P, U=U, arabic=arabic, typo=typo, english=english, given=given, reason=reason,
                         dup_source=dup_source, kinds=kinds, sector_codes=sector_codes, status_codes=status_codes,
                         women_led=women_led, members=members, jobs=jobs, reg_numbers=reg_numbers, phones=phones,
                         years=years, months=months, days=days, lon=lon, lat=lat)
    levels = P("level").tolist()
    df = pd.DataFrame(out, columns=list(COLUMNS))
    df["truth_level"] = levels
    df["truth_place_code"] = P("code")
    df["truth_county_osm"] = pd.array(P("county_osm"), dtype="Int64")
    df["truth_province_iso"] = P("province_iso")
    df["truth_lon"] = P("lon")
    df["truth_lat"] = P("lat")
    df["truth_bad_reason"] = reason.astype(str)
    return df


def _registry_rows(n: int, P: Callable[[str], np.ndarray], *, U: np.ndarray, arabic: np.ndarray,
                   typo: np.ndarray, english: np.ndarray, given: np.ndarray, reason: np.ndarray,
                   dup_source: np.ndarray, kinds: np.ndarray, sector_codes: np.ndarray, status_codes: np.ndarray,
                   women_led: np.ndarray, members: np.ndarray, jobs: np.ndarray, reg_numbers: np.ndarray,
                   phones: np.ndarray, years: np.ndarray, months: np.ndarray, days: np.ndarray, lon: np.ndarray,
                   lat: np.ndarray) -> dict[str, list]:
    """The registry's cells as a clerk would write them, row by row, from what was drawn (no randomness here)."""
    kind_t = {t.code: t for t in KINDS}
    sector_t = {t.code: t for t in SECTORS}
    status_t = {t.code: t for t in STATUSES}
    # Plain Python lists: the per-row loop below is several times faster on them than on arrays.
    levels = P("level").tolist()
    prov_fa, prov_en, names = P("province_fa").tolist(), P("province_en").tolist(), P("name").tolist()
    county_fa, county_en, name_en = P("county_fa").tolist(), P("county_en").tolist(), P("name_en").tolist()
    district_fa, rd_fa = P("district_fa").tolist(), P("rural_district_fa").tolist()
    Ul, arabic, typo, english, given_l = U.tolist(), arabic.tolist(), typo.tolist(), english.tolist(), given.tolist()
    reasons, dup_source, kinds_l = reason.tolist(), dup_source.tolist(), kinds.tolist()
    sectors_l, statuses_l, women_l = sector_codes.tolist(), status_codes.tolist(), women_led.tolist()
    members_l, jobs_l, reg_l, phones_l = members.tolist(), jobs.tolist(), reg_numbers.tolist(), phones.tolist()
    years_l, months_l, days_l, lon_l, lat_l = years.tolist(), months.tolist(), days.tolist(), lon.tolist(), lat.tolist()

    out: dict[str, list] = {col: [""] * n for col in COLUMNS}
    regs = out["registration_no"]
    for i in range(n):
        u = Ul[i]
        ar = arabic[i]
        is_city = levels[i] == "city"
        bad = reasons[i]
        digits = _FA_DIGITS if u[0] < 0.55 else (_AR_DIGITS if u[0] < 0.65 else None)

        # Place name as this clerk spells it (typo, ZWNJ or no space), same in every field.
        pname = _spacing(names[i], u[1])
        if typo[i]:
            pname = _typo(pname, u[2], u[3])
        pform = _place_form(pname, is_city, u[4])

        # Registration number: unique digit strings (Persian digits now and then).
        r = _ascii(regs[dup_source[i]]) if dup_source[i] >= 0 else str(reg_l[i])
        regs[i] = r.translate(_FA_DIGITS) if u[5] < 0.35 else r

        # Name, kind, sector, status.
        kind = kinds_l[i]
        name = _coop_name(kind, _name_sector(sectors_l[i]), names[i], county_fa[i], u[6], u[7])
        out["name"][i] = "" if bad == "missing_name" else (
            f"{_arabic(name, u[8]) if ar else name} ({SAMPLE_LABEL})")
        if bad == "unknown_kind":
            out["kind"][i] = _UNKNOWN_KINDS[int(u[9] * len(_UNKNOWN_KINDS))]
        else:
            out["kind"][i] = _term(kind_t[kind], u[9], ar)
        out["sector"][i] = "" if u[10] < 0.05 else _term(sector_t[sectors_l[i]], u[10], ar)
        out["status"][i] = "" if u[11] < 0.02 else _term(status_t[statuses_l[i]], u[11], ar)

        # Structured location fields, some left blank.
        addr_style = u[12]
        no_address = addr_style < 0.05 and not english[i]
        if bad != "no_location":
            pv = ("استان " + prov_fa[i]) if u[13] < 0.15 else prov_fa[i]
            out["province"][i] = pv
            if u[14] >= 0.10:
                out["county"][i] = ("شهرستان " + county_fa[i]) if u[14] < 0.2 else county_fa[i]
            if u[15] >= 0.5 and district_fa[i]:
                out["district"][i] = ("بخش " + district_fa[i]) if u[15] < 0.65 else district_fa[i]
            if u[16] >= 0.5 and rd_fa[i] and not is_city:
                out["rural_district"][i] = ("دهستان " + rd_fa[i]) if u[16] < 0.65 else rd_fa[i]
            if u[17] >= 0.3 or no_address:
                out["place"][i] = pform if u[17] > 0.75 else pname
            if english[i]:
                out["address"][i] = _english_address(name_en[i], is_city, county_en[i], prov_en[i], u[37], u[38])
            elif not no_address:
                out["address"][i] = _address(prov_fa[i], county_fa[i], district_fa[i], rd_fa[i], pname,
                                              pform, is_city, digits, u[12], u[40:48])
            if ar:
                for col in ("province", "county", "district", "rural_district", "place", "address"):
                    if out[col][i] and not (col == "address" and english[i]):
                        out[col][i] = _arabic(out[col][i], u[36])
            if u[34] < 0.05 and " " in out["address"][i]:
                a = out["address"][i]
                k = int(u[35] * a.count(" "))
                parts = a.split(" ")
                out["address"][i] = " ".join(parts[:k + 1]) + "  " + " ".join(parts[k + 1:])

        # Coordinates as given (mostly ASCII, sometimes Persian digits and ٫).
        if given_l[i]:
            x, y = _coord(lon_l[i]), _coord(lat_l[i])
            if u[33] < 0.1:
                x, y = x.translate(_FA_DIGITS).replace(".", "٫"), y.translate(_FA_DIGITS).replace(".", "٫")
            out["lon"][i], out["lat"][i] = x, y

        # Counts, flags, date, phone.
        if bad == "bad_members":
            out["members"][i] = "-5" if u[24] < 0.5 else "ده"
        else:
            out["members"][i] = _digits(str(members_l[i]), u[25] < 0.3)
        out["jobs"][i] = "" if u[26] < 0.02 else _digits(str(jobs_l[i]), u[25] < 0.3)
        out["women_led"][i] = _yes_no(women_l[i], u[27])
        y, m, d = years_l[i], months_l[i], days_l[i]
        if bad == "bad_date":
            date = _BAD_DATES[int(u[28] * len(_BAD_DATES))].format(y=y)
            out["registered_on"][i] = date.translate(_FA_DIGITS) if u[29] < 0.5 else date
        elif u[30] > 0.01:
            out["registered_on"][i] = _date(y, m, d, u[30])
        p = f"0900{phones_l[i]:07d}"
        out["phone"][i] = _phone(p, u[31])
        out["synthetic"][i] = "true" if u[32] < 0.7 else "بله"

    return out


def write_sample(df: pd.DataFrame, path: str | Path, *, with_truth: bool = False) -> Path:
    """Write a sample as plain UTF-8 CSV with the canonical English headers; truth only on request."""
    path = Path(path)
    cols = [c for c in df.columns if with_truth or not c.startswith("truth_")]
    df[cols].to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


# ---- places -----------------------------------------------------------------------

def _candidates(b: Boundaries) -> pd.DataFrame:
    """Cities and settled villages with clean names, their parents' names and English names."""
    p = b.places
    by_level = {lv: p[p["level"] == lv] for lv in ("county", "district", "rural_district")}
    counties = by_level["county"].dropna(subset=["official_id"]).drop_duplicates("official_id")
    county_fa = dict(zip(counties["official_id"], counties["display_name"], strict=False))
    district_fa = dict(zip(by_level["district"]["official_id"], by_level["district"]["name"], strict=False))
    rd_fa = dict(zip(by_level["rural_district"]["official_id"], by_level["rural_district"]["name"], strict=False))
    county_en = dict(zip(b.counties["osm_relation_id"], b.counties["name_en"], strict=False))
    prov_fa = dict(zip(b.provinces["iso_3166_2"], b.provinces["name_fa"], strict=False))
    prov_en = dict(zip(b.provinces["iso_3166_2"], b.provinces["name_en"], strict=False))
    border = set(b.counties.loc[b.counties["border"].fillna(False).astype(bool), "osm_relation_id"])

    keep = ((p["level"] == "city") | ((p["level"] == "village") & p["settlement"])) \
        & p["name"].str.fullmatch(_CLEAN_NAME).fillna(False) & ~p["name"].str.match(_GLUED_NOT_SETTLEMENT) \
        & p["county_osm"].notna()
    c = p.loc[keep].sort_values(["province_iso", "level", "code"], kind="stable").reset_index(drop=True)
    osm = c["county_osm"].astype("int64")
    # A village's true point is its point from a strong, not outlying name match; no other.
    true_point = ((c["level"] == "city") | ((c["point_strength"] == "strong") & ~c["point_outlier"])).to_numpy()

    def text(series: pd.Series) -> np.ndarray:
        return series.fillna("").astype(str).to_numpy(dtype=object)

    return pd.DataFrame({
        "level": c["level"].to_numpy(dtype=object),
        "code": text(c["code"]),
        "name": c["name"].to_numpy(dtype=object),
        "letters": c["name"].str.replace(" ", "").str.len().to_numpy(),
        "name_en": text(c["name_en"]),
        "province_iso": c["province_iso"].to_numpy(dtype=object),
        "province_fa": text(c["province_iso"].map(prov_fa)),
        "province_en": text(c["province_iso"].map(prov_en)),
        "county_osm": osm.to_numpy(),
        "county_fa": text(c["county_id"].map(county_fa)),
        "county_en": text(osm.map(county_en)),
        "district_fa": text(c["district_id"].map(district_fa)),
        "rural_district_fa": text(c["rural_district_id"].map(rd_fa)),
        "lon": c["lon"].where(true_point).to_numpy(dtype=float),
        "lat": c["lat"].where(true_point).to_numpy(dtype=float),
        "border": osm.isin(border).to_numpy(),
    })


def county_weights(b: Boundaries, cand: pd.DataFrame) -> pd.DataFrame:
    """Census 1395 population and rural population of each county of today that has candidate places.

    A census county is split among its counties of today by their number of candidate places; a
    county with no census unit gets its province's population per place times its places.
    """
    places = cand.groupby("county_osm").size()
    census = b.census()
    if census is None:   # a boundaries folder without the census: weigh by places
        return pd.DataFrame({"population": places.astype(float), "rural": places.astype(float)})
    table = census.counties.reindex(places.index)
    unit = table["census_unit"].fillna("")
    share = places / places.groupby(unit.where(unit != "", places.index.astype(str))).transform("sum")
    out = pd.DataFrame({"population": table["population"] * share, "rural": table["rural"] * share})
    missing = out["population"].isna()
    if missing.any():
        prov = cand.drop_duplicates("county_osm").set_index("county_osm")["province_iso"].reindex(places.index)
        per_place = (out["population"].groupby(prov).sum() / places[~missing].groupby(prov[~missing]).sum())
        per_place_rural = (out["rural"].groupby(prov).sum() / places[~missing].groupby(prov[~missing]).sum())
        out.loc[missing, "population"] = (prov[missing].map(per_place) * places[missing]).to_numpy()
        out.loc[missing, "rural"] = (prov[missing].map(per_place_rural) * places[missing]).to_numpy()
    return out.fillna(0.0)


def _draw_places(rng: np.random.Generator, cand: pd.DataFrame, allowed: np.ndarray, city_wish: np.ndarray,
                 weights: pd.Series, *, floor: bool) -> np.ndarray:
    """Indices into ``cand``: a county by ``weights`` (census population), then a place in it.

    Each row wishes for a city (or a village); when its county has none such, it takes the other.
    With ``floor``, every province gets at least one row (when there are enough rows).
    Whether the place has a true point follows the data (which villages are placed).
    """
    m = len(city_wish)
    idx = np.flatnonzero(allowed)
    osm = cand["county_osm"].to_numpy()[idx]
    counties = np.unique(osm)
    w = weights.reindex(counties).fillna(0.0).to_numpy(float)
    if w.sum() <= 0:
        w = np.ones(len(counties))
    county = rng.choice(len(counties), m, p=w / w.sum())
    if floor and m >= 31:  # every province gets at least one cooperative
        prov_of = cand.drop_duplicates("county_osm").set_index("county_osm")["province_iso"].reindex(counties)
        provinces = np.array(sorted(prov_of.unique()))
        if m >= len(provinces):
            rows = rng.choice(m, len(provinces), replace=False)
            for r, p in zip(rows.tolist(), provinces.tolist(), strict=True):
                mine = np.flatnonzero(prov_of.to_numpy() == p)
                pw = w[mine]
                county[r] = mine[rng.choice(len(mine), p=pw / pw.sum())] if pw.sum() > 0 else mine[0]

    city = (cand["level"].to_numpy() == "city")[idx]
    ci = np.searchsorted(counties, osm)
    pools = {}
    for c, is_city in {(int(a), bool(b)) for a, b in zip(ci.tolist(), city.tolist(), strict=True)}:
        pools[(c, is_city)] = idx[(ci == c) & (city == is_city)]
    group = 2 * county + (~city_wish).astype(np.int64)
    out = np.empty(m, dtype=np.int64)
    empty = np.zeros(0, np.int64)
    for g in np.unique(group):
        c, village = divmod(int(g), 2)
        wish = not village
        pool = pools.get((c, wish), empty)
        if not len(pool):
            pool = pools[(c, not wish)]
        rows = np.flatnonzero(group == g)
        out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return out


def _jittered(rng: np.random.Generator, b: Boundaries, lon: np.ndarray, lat: np.ndarray,
              iso: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The place's point moved by less than JITTER_M metres, kept inside its province."""
    n = len(lon)
    dist = rng.random(n) * JITTER_M
    angle = rng.random(n) * 2 * np.pi
    with np.errstate(invalid="ignore"):
        jlat = lat + dist * np.cos(angle) / 111_320.0
        jlon = lon + dist * np.sin(angle) / (111_320.0 * np.cos(np.radians(lat)))
    geoms = dict(zip(b.provinces["iso_3166_2"], b.provinces.geometry.values, strict=False))
    for p in sorted(set(iso[given])):
        rows = np.flatnonzero(given & (iso == p))
        out = ~shapely.contains_xy(geoms[p], jlon[rows], jlat[rows])
        jlon[rows[out]], jlat[rows[out]] = lon[rows[out]], lat[rows[out]]
    jlon[~given] = np.nan
    jlat[~given] = np.nan
    return jlon, jlat


def _defective_coords(rng: np.random.Generator, cand: pd.DataFrame, lon: np.ndarray, lat: np.ndarray,
                      iso: np.ndarray, rows: np.ndarray, defects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = lon.copy(), lat.copy()
    located = cand[~np.isnan(cand["lon"].to_numpy())]
    l_iso = located["province_iso"].to_numpy()
    picks = rng.integers(0, 1 << 30, len(rows))
    for i, d, pick in zip(rows, defects, picks, strict=False):
        if d == "coord_swapped":
            lon[i], lat[i] = lat[i], lon[i]
        elif d == "coord_zero":
            lon[i], lat[i] = 0.0, 0.0
        else:
            other = np.flatnonzero(l_iso != iso[i])
            j = other[pick % len(other)]
            lon[i], lat[i] = located["lon"].iat[j], located["lat"].iat[j]
    return lon, lat


# ---- values -------------------------------------------------------------------------

def _draw_sectors(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    out = np.empty(len(kinds), dtype=object)
    for kind in KIND_WEIGHTS:
        rows = np.flatnonzero(kinds == kind)
        mix = _SECTOR_MIX[kind]
        w = np.array(list(mix.values()), dtype=float)
        out[rows] = np.array(list(mix), dtype=object)[rng.choice(len(w), len(rows), p=w / w.sum())]
    return out


def _draw_counts(rng: np.random.Generator, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members and jobs: minimum + negative binomial (shape 1.2) with each kind's mean."""
    members = np.zeros(len(kinds), dtype=np.int64)
    jobs = np.zeros(len(kinds), dtype=np.int64)
    for kind in KIND_WEIGHTS:
        rows = np.flatnonzero(kinds == kind)
        for target, mean, low in ((members, MEAN_MEMBERS[kind], MIN_MEMBERS.get(kind, 7)),
                                  (jobs, MEAN_JOBS[kind], MIN_JOBS.get(kind, 0))):
            extra = max(mean - low, 0.1)
            shape = 1.2
            target[rows] = low + rng.negative_binomial(shape, shape / (shape + extra), len(rows))
    return members, jobs


def _term(t: Term, u: float, arabic: bool) -> str:
    """A vocabulary value as clerks write it: mostly the Persian label, else an alias or the English code."""
    fa_aliases = _fa_aliases(t)
    if u < 0.08:
        return t.code
    s = fa_aliases[int((u - 0.08) / 0.07 * len(fa_aliases)) % len(fa_aliases)] if u < 0.15 and fa_aliases else t.fa
    if u > 0.95:
        s = s.replace("\u200c", " ")
    return s.translate(_AR_LETTERS) if arabic else s


def _name_sector(code: str) -> str:
    return "" if code == "other" else next(t.fa for t in SECTORS if t.code == code)


@cache
def _fa_aliases(t: Term) -> tuple[str, ...]:
    return tuple(a for a in t.aliases if not a.isascii())


def _coop_name(kind: str, sector: str, place: str, county: str, u: float, v: float) -> str:
    """A cooperative's name as registered, without the sample label; ``sector`` may be ''."""
    org = _ORGS[int(v * len(_ORGS))]
    words: tuple[str, ...]
    if kind == "production":
        words = ("تولیدی", sector, place)
    elif kind == "distribution":
        words = ("مصرف کارکنان", org, place) if u < 0.7 else ("توزیعی", sector, place)
    elif kind == "services":
        words = ("خدماتی", "" if sector == "خدمات" else sector, place)
    elif kind == "women":
        words = ("تولیدی زنان" if v < 0.5 else "زنان", sector, place)
    elif kind == "housing":
        words = ("مسکن", org, place)
    elif kind == "school":
        words = ("آموزشگاهی", _SCHOOLS[int(v * len(_SCHOOLS))], _MARTYRS[int(u * 10) % len(_MARTYRS)], place)
    elif kind == "national_inclusive":
        words = ("فراگیر ملی", sector, place)
    elif kind == "knowledge_based":
        words = ("دانش‌بنیان", _KB_WORDS[int(v * len(_KB_WORDS))], place)
    elif kind == "county_development":
        words = ("توسعه و عمران شهرستان", county or place)
    elif kind == "public_joint_stock":
        words = ("سهامی عام", sector, place)
    elif kind == "rural":
        words = ("روستایی", place)
    elif kind == "border_dwellers":
        words = ("مرزنشینان", place)
    else:  # union
        words = ("اتحادیه تعاونی‌های", sector or "تولیدی", "شهرستان", county or place)
    if kind != "union":
        words = ("شرکت تعاونی" if u < 0.4 else "تعاونی", *words)
    if v > 0.92:
        words = (*words, f"شماره {int((v - 0.92) * 100) + 2}")
    return " ".join(w for w in words if w)


def _spacing(name: str, u: float) -> str:
    """Multi-word names with ZWNJ (10%) or without the space (5%), as typed."""
    if " " not in name or u >= 0.15:
        return name
    return name.replace(" ", "\u200c") if u < 0.10 else name.replace(" ", "")


def _typo(name: str, u: float, v: float) -> str:
    """One letter substituted, dropped or swapped with its neighbour; the key always changes."""
    pos = [j for j, ch in enumerate(name) if ch not in " \u200c"]
    j = pos[1 + int(v * (len(pos) - 1)) % (len(pos) - 1)]
    if u < 0.2:
        out = name[:j] + name[j + 1:]
    elif u < 0.4 and j + 1 < len(name) and name[j + 1] not in " \u200c" and name[j] != name[j + 1]:
        out = name[:j] + name[j + 1] + name[j] + name[j + 2:]
    else:
        out = name[:j] + _CONFUSE.get(name[j], "ر" if name[j] != "ر" else "ز") + name[j + 1:]
    if key(out) == key(name):
        out = name[:j] + ("ز" if name[j] != "ز" else "ر") + name[j + 1:]
    return out


def _place_form(name: str, is_city: bool, u: float) -> str:
    if is_city:
        return "شهر " + name if u < 0.5 else name
    if u < 0.5:
        return "روستای " + name
    if u < 0.6:
        return "روستا " + name
    if u < 0.65:
        return "قریه " + name
    return name


def _address(prov: str, county: str, district: str, rd: str, pname: str, pform: str, is_city: bool,
             digits, style: float, u: np.ndarray) -> str:
    """One of seven address layouts; ``style`` >= 0.05 (below, the address is left blank)."""
    streets = _STREETS_CITY if is_city else _STREETS_VILLAGE
    street = streets[int(u[0] * len(streets))].format(
        m=_MARTYRS[int(u[1] * len(_MARTYRS))], n=1 + int(u[2] * 40), k=1 + int(u[3] * 120))
    if u[4] < 0.2:
        street = ""
    if digits is not None:
        street = street.translate(digits)
    sep = "، " if u[5] < 0.7 else (", " if u[5] < 0.85 else "،")
    s = (style - 0.05) / 0.95
    if s < 0.25:
        parts = ["استان " + prov, "شهرستان " + county if county else "", pform, street]
        return sep.join(p for p in parts if p)
    if s < 0.40:
        parts = [prov, county, pname] + ([street] if street and u[6] < 0.3 else [])
        return "-".join(p for p in parts if p)
    if s < 0.60:
        return " ".join(p for p in (county, pform, street) if p)
    if s < 0.75:
        return sep.join(p for p in (pform, street) if p)
    if s < 0.87:
        parts = ["شهرستان " + county if county else "", "بخش " + district if district else "",
                 "" if is_city or not rd else "دهستان " + rd,
                 ("شهر " if is_city else "روستای ") + pname, street]
        return sep.join(p for p in parts if p)
    return " ".join(p for p in (prov, pform, street) if p)


def _english_address(name_en: str, is_city: bool, county_en: str, prov_en: str, u: float, v: float) -> str:
    if v < 0.7:
        name_en = "".join(ch for ch in unicodedata.normalize("NFKD", name_en) if not unicodedata.combining(ch))
        name_en = name_en.replace("ʼ", "").replace("'", "")
    what = "city" if is_city else "village"
    county = f"{county_en} County" if county_en else ""
    if u < 0.5:
        parts = [f"{name_en} {what}", county, prov_en]
    elif u < 0.8:
        parts = [name_en, county_en, f"{prov_en} Province"]
    else:
        parts = [f"{what.title()} of {name_en}", prov_en]
    return ", ".join(p for p in parts if p)


def _arabic(text: str, u: float) -> str:
    """Arabic ي/ك (and ة for a final ه in a third of cases), as typed on an Arabic keyboard layout."""
    s = text.translate(_AR_LETTERS)
    return _FINAL_HEH.sub("ة", s) if u < 0.3 else s


def _coord(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _digits(s: str, persian: bool) -> str:
    return s.translate(_FA_DIGITS) if persian else s


def _ascii(s: str) -> str:
    return s.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))


def _yes_no(value: bool, u: float) -> str:
    if u < 0.8:
        return "بله" if value else "خیر"
    if u < 0.9:
        return "1" if value else "0"
    return "yes" if value else "no"


def _date(y: int, m: int, d: int, u: float) -> str:
    if u > 0.9:
        g = jdatetime.date(y, m, d, locale=jdatetime.FA_LOCALE).togregorian()
        return g.isoformat()
    if u < 0.46:
        return f"{y:04d}/{m:02d}/{d:02d}".translate(_FA_DIGITS)
    if u < 0.66:
        return f"{y:04d}/{m:02d}/{d:02d}"
    if u < 0.81:
        return f"{y:04d}-{m:02d}-{d:02d}"
    if u < 0.86:
        return f"{y}/{m}/{d}"
    return f"{y}/{m}/{d}".translate(_FA_DIGITS)


def _phone(p: str, u: float) -> str:
    if u < 0.1:
        return ""
    if u < 0.3:
        return p.translate(_FA_DIGITS)
    if u < 0.35:
        return f"{p[:4]} {p[4:7]} {p[7:]}"
    if u < 0.4:
        return f"{p[:4]}-{p[4:]}"
    return p
