"""Persian words for the HTML views: a label for every served field, and each value as a person reads it.

Codes become their Persian labels (kinds, sectors, statuses, precisions, deprivation classes,
census links), numbers get Persian digits and separators, yes/no becomes «بله»/«خیر», ISO
dates become Jalali dates. The JSON, CSV and tiles keep their machine values; only pages read
these. Not here: HTML (``templates/``), the vocabularies themselves (``vocab.py``).
"""

from __future__ import annotations

import math
from datetime import date

import jdatetime
import pandas as pd

from coopgis.census import LINK_FA
from coopgis.joins import CLASS_WORDS_FA
from coopgis.text import to_persian_digits
from coopgis.vocab import KINDS, PRECISION_FA, SECTORS, STATUSES, label

FIELD_FA = {
    # cooperatives
    "registration_no": "شماره ثبت", "name": "نام", "kind": "نوع", "kind_fa": "نوع", "sector": "رشته فعالیت",
    "sector_fa": "رشته فعالیت", "status": "وضعیت", "status_fa": "وضعیت", "members": "شمار اعضا",
    "jobs": "اشتغال", "women_led": "زن‌سرپرست", "registered_on": "تاریخ ثبت",
    "registered_on_jalali": "تاریخ ثبت (خورشیدی)", "registered_year": "سال ثبت", "province": "استان",
    "province_name": "نام استان", "county": "شهرستان", "county_code": "کد رسمی شهرستان", "district": "بخش",
    "rural_district": "دهستان", "place": "شهر یا روستا", "precision": "دقت مکان", "confidence": "اطمینان",
    "uncertainty_m": "فاصله احتمالی از نقطه", "deprivation_class": "فهرست محرومیت", "deprived": "در فهرست محرومیت",
    "border": "شهرستان مرزی", "border_quota_usd": "سهمیه ارزی مرزنشینان (دلار)", "address": "نشانی",
    "geocode_issues": "هشدارهای مکان‌یابی", "place_level": "سطح مکان", "place_code": "کد مکان",
    "county_osm": "شناسه OSM شهرستان", "synthetic": "ساختگی", "source_row": "ردیف پرونده",
    "given_province": "استان (در پرونده)", "given_county": "شهرستان (در پرونده)", "given_district": "بخش (در پرونده)",
    "given_rural_district": "دهستان (در پرونده)", "given_place": "مکان (در پرونده)",
    "given_lon": "طول جغرافیایی (در پرونده)", "given_lat": "عرض جغرافیایی (در پرونده)",
    # provinces, counties, deprivation
    "iso_3166_2": "کد استان (ISO 3166-2)", "name_fa": "نام", "name_en": "نام انگلیسی",
    "osm_relation_id": "شناسه OSM", "province_iso": "استان", "official_county_code": "کد رسمی شهرستان",
    "border_km": "طول مرز (کیلومتر)", "cooperatives": "تعاونی‌ها", "in_deprived_areas": "در مناطق فهرست‌شده محروم",
    "cooperatives_per_10k": "تعاونی در هر ۱۰٬۰۰۰ نفر", "members_per_10k": "عضو در هر ۱۰٬۰۰۰ نفر",
    "jobs_per_10k": "شغل در هر ۱۰٬۰۰۰ نفر", "population_1395": "جمعیت (سرشماری ۱۳۹۵)",
    "unit_population_1395": "جمعیت واحد سرشماری ۱۳۹۵", "census_unit": "کد واحد سرشماری ۱۳۹۵",
    "census_unit_name": "واحد سرشماری ۱۳۹۵", "unit_link": "پیوند با سرشماری",
    "unemployment_rate_pct": "نرخ بیکاری ٪ (سرشماری ۱۳۹۵)", "illiteracy_pct_15plus": "بی‌سوادی ۱۵+ ٪ (سرشماری ۱۳۹۵)",
    "class_words": "فهرست محرومیت (انگلیسی)", "border_quota": "سهمیه ارزی مرزنشینان", "source_url": "منبع",
    "note": "یادداشت", "province_shdi": "شاخص توسعه انسانی استان (SHDI)", "province_shdi_year": "سال SHDI",
}
# Columns of the items table per collection (the item page shows every field).
ITEM_COLUMNS = {
    "cooperatives": ("name", "kind", "sector", "status", "province", "county", "place", "precision", "members",
                     "jobs", "registered_on"),
    "provinces": ("name_fa", "cooperatives", "members", "jobs", "population_1395", "cooperatives_per_10k",
                  "unemployment_rate_pct"),
    "counties": ("name_fa", "province_iso", "cooperatives", "members", "jobs", "census_unit_name",
                 "cooperatives_per_10k", "unemployment_rate_pct", "border"),
    "deprivation": ("name_fa", "province_iso", "deprivation_class", "border_quota", "border"),
}
_VOCAB = {"kind": KINDS, "sector": SECTORS, "status": STATUSES}
_BOOLS = {"women_led", "deprived", "border", "synthetic"}
_CODES = {"registered_year", "province_shdi_year", "osm_relation_id", "registration_no"}
# Shown once on an item page: the Persian twin of a coded field, and the name of the province.
ITEM_HIDDEN = {"kind_fa", "sector_fa", "status_fa", "province_name", "registered_on_jalali"}
_YES_NO_WORDS = {"true": True, "false": False, "بله": True, "خیر": False}


def field_label(name: str) -> str:
    """The Persian label of a field (its own name when none is known)."""
    return FIELD_FA.get(name, name)


def missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def fa_number(value, decimals: int = 3) -> str:
    """A number in Persian digits: ۱۲٬۳۴۵ or ۰٫۰۴۲ (trailing zeros dropped)."""
    if isinstance(value, bool):
        return "بله" if value else "خیر"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return to_persian_digits(f"{int(value):,}").replace(",", "٬")
    text = f"{float(value):,.{decimals}f}".rstrip("0").rstrip(".")
    return to_persian_digits(text).replace(",", "٬").replace(".", "٫")


def jalali(value) -> str:
    """An ISO date (or date) as a Jalali date in Persian digits, e.g. ۱۴۰۲/۰۲/۳۱."""
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return to_persian_digits(jdatetime.date.fromgregorian(date=d).strftime("%Y/%m/%d"))


def fa_value(name: str, value, provinces: dict[str, str] | None = None) -> str:
    """A field's value as a person reads it in Persian ("—" when missing)."""
    if missing(value):
        return "—"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if name in _VOCAB:
        return label(_VOCAB[name], str(value))
    if name == "precision":
        return PRECISION_FA.get(str(value), str(value))
    if name == "deprivation_class":
        return CLASS_WORDS_FA.get(str(value), str(value))
    if name == "unit_link":
        return LINK_FA.get(str(value), str(value))
    if name in ("province", "province_iso") and provinces:
        return provinces.get(str(value), str(value))
    if name == "registered_on":
        return jalali(value)
    if name == "uncertainty_m":
        m = float(value)
        if m <= 0:
            return "صفر (همین نقطه)"
        return f"حدود {fa_number(round(m))} متر" if m < 1000 else f"حدود {fa_number(round(m / 1000, 1), 1)} کیلومتر"
    if name == "border_quota":
        return {"600": "۶۰۰ دلار", "300": "۳۰۰ دلار"}.get(str(value), "نامعلوم")
    if name == "border_quota_usd":
        return f"{fa_number(int(value))} دلار"
    if name in _BOOLS:
        flag = value if isinstance(value, bool) else _YES_NO_WORDS.get(str(value).strip().lower())
        return "—" if flag is None else ("بله" if flag else "خیر")
    if isinstance(value, (int, float)) and name not in _CODES:
        return fa_number(value)
    if name in ("registration_no", "county_code", "official_county_code", "census_unit", "place_code",
                "registered_year", "province_shdi_year", "osm_relation_id"):
        return to_persian_digits(str(value))
    return str(value)
