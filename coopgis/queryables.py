"""What a collection can be queried and sorted by: each public property's type, titles and allowed values.

OGC API - Features Part 3 publishes these as a JSON Schema (``/collections/{id}/queryables``);
CQL2 filters (``cql2.py``), ``sortby`` and ``properties`` (``query.py``) check names and types
against them, so an unknown property or a text compared with a number is a 400 that says so.
Types are read from the served columns, never from the first page of values (a column whose
first rows are all null is still a boolean).

Not here: parsing or evaluating filters (``cql2.py``), HTTP (``api/features.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coopgis.dataset import Collection
from coopgis.maps import DEPRIVATION_CLASSES
from coopgis.vocab import KINDS, PRECISIONS, SECTORS, STATUSES

GEOMETRY = "geometry"
DATE_COLUMNS = frozenset({"registered_on"})
# Persian and English titles of the served properties (a property missing here is titled by its name).
TITLES: dict[str, tuple[str, str]] = {
    "registration_no": ("شماره ثبت", "Registration number"), "name": ("نام تعاونی", "Name"),
    "kind": ("نوع تعاونی (کد)", "Kind (code)"), "kind_fa": ("نوع تعاونی", "Kind (Persian)"),
    "sector": ("رسته (کد)", "Sector (code)"), "sector_fa": ("رسته", "Sector (Persian)"),
    "status": ("وضعیت (کد)", "Status (code)"), "status_fa": ("وضعیت", "Status (Persian)"),
    "members": ("تعداد اعضا", "Members"), "jobs": ("اشتغال", "Jobs"), "women_led": ("زن‌سرپرست", "Women-led"),
    "registered_on": ("تاریخ ثبت (میلادی)", "Registration date"),
    "registered_on_jalali": ("تاریخ ثبت (خورشیدی)", "Registration date (Jalali, Persian digits)"),
    "registered_year": ("سال ثبت (خورشیدی)", "Registration year (Jalali)"),
    "province": ("استان (کد ISO)", "Province (ISO 3166-2)"), "province_name": ("استان", "Province name"),
    "county": ("شهرستان", "County name"), "county_code": ("کد شهرستان", "Official county code"),
    "district": ("بخش", "District"), "rural_district": ("دهستان", "Rural district"), "place": ("شهر یا روستا", "Place"),
    "precision": ("دقت مکان‌یابی", "Geocoding precision"), "confidence": ("اطمینان مکان‌یابی", "Geocoding confidence"),
    "uncertainty_m": ("عدم قطعیت مکان (متر)", "Location uncertainty (m)"),
    "deprivation_class": ("طبقه محرومیت", "Deprivation class"), "deprived": ("منطقه محروم", "In a deprived area"),
    "border": ("شهرستان مرزی", "Border county"), "border_quota_usd": ("سهمیه ارزی مرزنشینان (دلار)",
                                                                   "Border-dwellers' quota (USD)"),
    "address": ("نشانی", "Address"), "iso_3166_2": ("کد استان (ISO)", "Province (ISO 3166-2)"),
    "name_fa": ("نام", "Persian name"), "name_en": ("نام انگلیسی", "English name"),
    "cooperatives": ("شمار تعاونی‌ها", "Cooperatives"), "in_deprived_areas": ("تعاونی‌ها در مناطق محروم",
                                                                              "Cooperatives in deprived areas"),
    "osm_relation_id": ("شناسه OSM", "OpenStreetMap relation id"), "province_iso": ("استان (کد ISO)", "Province"),
    "official_county_code": ("کد رسمی شهرستان", "Official county code"), "border_km": ("طول مرز (کیلومتر)",
                                                                                       "Border length (km)"),
    "source_url": ("منبع", "Source"), "note": ("یادداشت", "Note"), "province_shdi": ("شاخص SHDI استان",
                                                                                    "Province SHDI"),
    "province_shdi_year": ("سال SHDI", "SHDI year"),
}
ENUMS: dict[str, tuple[str, ...]] = {
    "kind": tuple(t.code for t in KINDS), "kind_fa": tuple(t.fa for t in KINDS),
    "sector": tuple(t.code for t in SECTORS), "sector_fa": tuple(t.fa for t in SECTORS),
    "status": tuple(t.code for t in STATUSES), "status_fa": tuple(t.fa for t in STATUSES),
    "precision": PRECISIONS, "deprivation_class": tuple(DEPRIVATION_CLASSES),
}
GEOMETRY_SCHEMA = {"point": ("geometry-point", "https://geojson.org/schema/Point.json"),
                   "polygon": ("geometry-multipolygon", "https://geojson.org/schema/MultiPolygon.json")}


@dataclass(frozen=True)
class Queryable:
    """One property a filter or sort may name: its type (string, integer, number, boolean, date or
    geometry), titles and, for coded values, the values allowed."""

    name: str
    type: str
    title_fa: str
    title: str
    enum: tuple[str, ...] | None = None

    def schema(self) -> dict:
        """This property as JSON Schema (Part 3 queryables)."""
        out: dict = {"title": self.title, "x-title-fa": self.title_fa, "description": self.title_fa}
        if self.type == "date":
            out.update(type="string", format="date")
        else:
            out["type"] = self.type
        if self.enum:
            out["enum"] = list(self.enum)
        return out


def queryables(coll: Collection) -> dict[str, Queryable]:
    """The queryable properties of a collection, by name: its public properties and ``geometry``."""
    out: dict[str, Queryable] = {}
    for name in coll.properties:
        fa, en = TITLES.get(name, (name, name))
        out[name] = Queryable(name, column_type(coll.frame[name], name), fa, en, ENUMS.get(name))
    out[GEOMETRY] = Queryable(GEOMETRY, "geometry", "هندسه", "Geometry")
    return out


def schema(coll: Collection, geometry_kind: str, schema_id: str, title: str) -> dict:
    """The collection's queryables as a JSON Schema document (draft 2020-12), ``$id`` ``schema_id``."""
    props = {}
    for name, q in queryables(coll).items():
        if q.type == "geometry":
            fmt, ref = GEOMETRY_SCHEMA[geometry_kind]
            props[name] = {"title": q.title, "x-title-fa": q.title_fa, "format": fmt, "$ref": ref,
                           "x-ogc-role": "primary-geometry"}
        else:
            props[name] = q.schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, "type": "object",
            "title": title, "properties": props, "additionalProperties": False}


def column_type(column: pd.Series, name: str) -> str:
    """The JSON type of a served column, from its dtype (object columns: from all their values)."""
    if name in DATE_COLUMNS:
        return "date"
    if isinstance(column.dtype, pd.CategoricalDtype):   # few distinct values (coopgis.dataset): their type
        return column_type(pd.Series(column.cat.categories), name)
    if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_object_dtype(column.dtype):
        return "string"
    kind = column.dtype.kind
    if str(column.dtype) == "boolean" or kind == "b":
        return "boolean"
    if kind in "iu" or str(column.dtype) in ("Int64", "Int32", "UInt32"):
        return "integer"
    if kind == "f":
        return "number"
    if kind == "O":
        values = column.dropna()
        if len(values) and all(isinstance(v, (bool, np.bool_)) for v in values):
            return "boolean"
    return "string"
