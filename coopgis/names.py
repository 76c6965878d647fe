"""Province and county names of the boundaries, resolved to their identifiers.

A :class:`NameIndex` turns a province named by ISO code, number, Persian or English
name into its ISO 3166-2 code, and a county named by official code, OSM relation id
or name into its OSM relation ids, with one dictionary access each. It is built once
per dataset (``Dataset.names``).

Not here: parsing request parameters (``filters.py``); geocoding addresses (``geocode.py``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from coopgis.text import key, latin_key, norm, to_ascii_digits

if TYPE_CHECKING:
    from coopgis.boundaries import Boundaries
    from coopgis.geocode import Geocoder

GUESS_TABLE_SIZE = 4096   # misspelt province names remembered per dataset


class NameIndex:
    """Province and county names of one set of boundaries as dictionaries.

    A look-up is one dictionary access, not a scan of the 478 counties; values that need
    the geocoder (a misspelt province) are remembered, in a bounded table.
    """

    def __init__(self, boundaries: Boundaries, geocoder: Geocoder):
        self.geocoder = geocoder
        provinces = boundaries.provinces
        self.iso = set(provinces["iso_3166_2"])
        self.province_keys: dict[str, str] = {}
        self.province_latin: dict[str, str] = {}
        for iso, fa, en in zip(provinces["iso_3166_2"], provinces["name_fa"], provinces["name_en"], strict=True):
            self.province_keys.setdefault(key(fa), iso)
            self.province_latin.setdefault(latin_key(en), iso)
        c = boundaries.counties
        self.county_codes: dict[str, list[str]] = {}
        self.county_keys: dict[str, list[str]] = {}
        self.county_latin: dict[str, list[str]] = {}
        for osm, code, fa, en in zip(c["osm_relation_id"], c["official_county_code"], c["display_name_fa"],
                                     c["name_en"], strict=True):
            ids = str(osm)
            self.county_codes.setdefault(ids, []).append(ids)
            if isinstance(code, str) and code and code != ids:
                self.county_codes.setdefault(code, []).append(ids)
            self.county_keys.setdefault(key(fa), []).append(ids)
            self.county_latin.setdefault(latin_key(en), []).append(ids)
        self._guessed: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def province(self, value: str) -> str | None:
        """The ISO 3166-2 code of a province named by code, number, Persian or English name."""
        v = to_ascii_digits(norm(value)).upper()
        if v in self.iso:
            return v
        if v.isdigit() and len(v) <= 3 and f"IR-{int(v):02d}" in self.iso:
            return f"IR-{int(v):02d}"
        found = self.province_keys.get(key(value)) or self.province_latin.get(latin_key(value))
        if found:
            return found
        with self._lock:
            if v in self._guessed:
                return self._guessed[v]
        r = self.geocoder.geocode(province=value)
        found = r.province if r.precision == "province" else None
        with self._lock:
            if len(self._guessed) >= GUESS_TABLE_SIZE:
                self._guessed.clear()
            self._guessed[v] = found
        return found

    def county(self, value: str) -> list[str] | None:
        """County identifiers (OSM relation ids) matching a code, an OSM id or a name."""
        v = to_ascii_digits(norm(value))
        if v.isdigit():
            return self.county_codes.get(v)
        return self.county_keys.get(key(value)) or self.county_latin.get(latin_key(value))
