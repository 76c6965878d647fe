"""Controlled vocabularies: cooperative kinds, sectors and statuses, and the geocoding precisions.

Each value has a stable English code (used in the store, the API and filters),
a Persian label (shown to people) and an English label. Input is matched through
:func:`coopgis.text.key`, so Arabic letter forms, ZWNJ and spacing do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from coopgis.text import key, latin_key


@dataclass(frozen=True)
class Term:
    code: str
    fa: str
    en: str
    aliases: tuple[str, ...] = ()


# Kinds named by the Deputy for Cooperative Affairs (DESIGN.md section 1).
KINDS: tuple[Term, ...] = (
    Term("production", "تولیدی", "Production", ("تولید",)),
    Term("distribution", "توزیعی", "Distribution", ("توزیع", "مصرف", "مصرف کارکنان")),
    Term("services", "خدماتی", "Services", ("خدمات",)),
    Term("housing", "مسکن", "Housing", ("مسکن مهر", "مسکونی")),
    Term("women", "زنان", "Women's", ("بانوان", "تعاونی زنان", "women")),
    Term("school", "آموزشگاهی", "School", ("دانش آموزی", "مدارس")),
    Term("national_inclusive", "فراگیر ملی", "National inclusive", ("فراگیر", "national inclusive")),
    Term("knowledge_based", "دانش‌بنیان", "Knowledge-based", ("دانش بنیان", "knowledge based")),
    Term("county_development", "توسعه و عمران شهرستانی", "County development and construction",
         ("توسعه و عمران", "عمران شهرستان", "county development")),
    Term("public_joint_stock", "سهامی عام", "Public joint-stock", ("سهامی عام تعاونی", "public joint stock")),
    Term("rural", "روستایی", "Rural", ("روستائی", "تعاونی روستایی")),
    Term("border_dwellers", "مرزنشینان", "Border-dwellers'", ("مرزنشین", "مرز نشینان", "border dwellers")),
    Term("union", "اتحادیه", "Union", ("اتحادیه تعاونی", "unions")),
)

# Sectors: the six Cooperative Galaxy (کهکشان تعاون) priority sectors first, then the usual others.
GALAXY_SECTORS = ("clothing", "handicrafts", "carpet", "beekeeping", "fish_farming", "poultry")
SECTORS: tuple[Term, ...] = (
    Term("clothing", "پوشاک", "Clothing", ("پوشاک و نساجی", "تولید پوشاک")),
    Term("handicrafts", "صنایع‌دستی", "Handicrafts", ("صنایع دستی",)),
    Term("carpet", "فرش دستباف", "Hand-woven carpet", ("فرش", "قالی بافی", "فرش دست باف", "hand woven carpet")),
    Term("beekeeping", "زنبورداری", "Beekeeping", ("زنبور عسل", "پرورش زنبور عسل")),
    Term("fish_farming", "پرورش ماهی", "Fish farming", ("آبزی پروری", "شیلات", "fish farming")),
    Term("poultry", "پرورش طیور", "Poultry", ("مرغداری", "طیور")),
    Term("agriculture", "کشاورزی", "Agriculture", ("زراعت", "باغداری")),
    Term("livestock", "دامداری", "Livestock", ("دامپروری", "پرورش دام")),
    Term("industry", "صنعتی", "Industry", ("صنعت", "صنایع")),
    Term("mining", "معدنی", "Mining", ("معدن",)),
    Term("construction", "عمرانی", "Construction", ("عمران", "ساختمانی")),
    Term("transport", "حمل و نقل", "Transport", ("حمل ونقل", "ترابری")),
    Term("consumer", "مصرف", "Consumer goods", ("کالای مصرفی",)),
    Term("credit", "اعتبار", "Credit", ("اعتباری", "قرض الحسنه")),
    Term("services", "خدمات", "Services", ("خدماتی",)),
    Term("other", "سایر", "Other", ("غیره", "دیگر")),
)

STATUSES: tuple[Term, ...] = (
    Term("active", "فعال", "Active", ("دایر",)),
    Term("troubled", "مشکل‌دار", "Troubled", ("مشکل دار", "راکد", "غیرفعال", "نیمه فعال")),
    Term("dissolved", "منحل", "Dissolved", ("منحل شده", "تصفیه", "در حال تصفیه")),
)

# How a cooperative's point was found, finest first (README "Geocoding precision"). ``verified`` is a
# field officer's accepted correction (corrections.py); the geocoder gives every other level.
PRECISION_FA = {
    "exact": "دقیق (مختصات ثبت‌شده)", "verified": "تأییدشده در بازدید", "village": "روستا", "city": "شهر",
    "rural_district": "دهستان (نقطه نماینده)", "district": "بخش (نقطه نماینده)",
    "county": "شهرستان (نقطه نماینده)", "province": "استان (نقطه نماینده)", "none": "نامعلوم",
}
PRECISIONS = tuple(PRECISION_FA)
# Precisions whose point stands in for an area (its median or seat town), not for the cooperative's place.
STAND_IN_PRECISIONS = ("rural_district", "district", "county", "province")


def _index(terms: tuple[Term, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in terms:
        for word in (t.fa, *t.aliases):
            out.setdefault(key(word, prefixes=False), t.code)
            out.setdefault(key("تعاونی " + word, prefixes=False), t.code)
        for word in (t.code, t.en, *[a for a in t.aliases if a.isascii()]):
            out.setdefault("latin:" + latin_key(word), t.code)
    return out


_KIND_INDEX = _index(KINDS)
_SECTOR_INDEX = _index(SECTORS)
_STATUS_INDEX = _index(STATUSES)


def _lookup(index: dict[str, str], value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isascii():
        return index.get("latin:" + latin_key(text))
    return index.get(key(text, prefixes=False))


def parse_kind(value: object) -> str | None:
    """Kind code for a Persian or English kind name, or None when unknown."""
    return _lookup(_KIND_INDEX, value)


def parse_sector(value: object) -> str | None:
    """Sector code for a Persian or English sector name, or None when unknown."""
    return _lookup(_SECTOR_INDEX, value)


def parse_status(value: object) -> str | None:
    """Status code for a Persian or English status, or None when unknown."""
    return _lookup(_STATUS_INDEX, value)


def label(terms: tuple[Term, ...], code: str, lang: str = "fa") -> str:
    """Display label of a code in Persian (default) or English."""
    for t in terms:
        if t.code == code:
            return t.fa if lang == "fa" else t.en
    return code


def parse_precision(value: object) -> str | None:
    """The precision code of a value (exact, verified, village, ...), None for anything else."""
    return value if isinstance(value, str) and value in PRECISION_FA else None
