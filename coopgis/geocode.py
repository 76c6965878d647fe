"""Geocode Persian (and transliterated Latin) addresses down the official hierarchy.

The geocoder reads a free-text address and/or structured fields (province,
county, district, rural district, city or village), finds the official places
they name, and returns a point with an honest precision: the precision says
where the returned point truly is. A village without a known coordinate is put
at a point of its rural district, district or county and gets that precision.
Every result also says how far the cooperative may truly be from the point
(``uncertainty_m``): 0 for a given coordinate and for a village placed by a
strong name match, and for a stand-in point a radius that covers the area it
stands for (see :meth:`Geocoder._point_of`).

Given coordinates are checked (zero, outside Iran, swapped, outside the stated
province) and reported; they are used as ``exact`` only when they pass.

Not here: reading registry files (``registry.py``) and point-in-polygon joins
of whole datasets (``joins.py``).
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import shapely
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from coopgis.boundaries import Boundaries
from coopgis.distance import haversine_km
from coopgis.joins import GEOMETRY_LOCK
from coopgis.text import TextColumn, fold, is_latin, key, latin_key, norm, shared_texts

# Words that open an administrative name, and the level they announce.
MARKERS = {
    "استان": "province", "شهرستان": "county", "بخش": "district", "دهستان": "rural_district",
    "روستای": "village", "روستا": "village", "قریه": "village", "آبادی": "village", "ابادی": "village",
    "دهکده": "village", "شهر": "city",
}
# Words that open a street-level part of an address; the rest of that part names no place.
STREET_WORDS = {
    "خیابان", "خ", "کوچه", "ک", "بلوار", "میدان", "جاده", "کیلومتر", "پلاک", "طبقه", "واحد", "کوی",
    "بن", "بنبست", "نبش", "روبروی", "جنب", "پشت", "انتهای", "ابتدای", "کدپستی", "کد", "صندوق",
    "ساختمان", "پاساژ", "چهارراه", "فلکه", "تقاطع", "بزرگراه", "اتوبان", "ضلع", "تلفن", "سه راه",
    "سه‌راه", "بعد", "قبل", "نرسیده", "جنوب", "شمال", "شرق", "غرب", "کنار", "داخل", "محله", "مجتمع",
    "street", "st", "alley", "no", "blvd", "road",
}
LATIN_MARKERS = {"province": "province", "ostan": "province", "county": "county", "shahrestan": "county",
                 "district": "district", "bakhsh": "district", "dehestan": "rural_district",
                 "village": "village", "roosta": "village", "rusta": "village", "city": "city", "shahr": "city"}
FINE_LEVELS = ("village", "city", "place", "rural_district", "district")
# A rural district or district stands in for its villages only with this many placed villages.
MIN_PLACED_FOR_STAND_IN = 3
# Confidence of a village point from a weak name match, or an outlier of its rural district.
WEAK_POINT_FACTOR = 0.7
OUTLIER_POINT_FACTOR = 0.8
# A city's extent is not in the data: its radius is that of a disc holding its (GeoNames) population at
# an ASSUMED urban density, at least CITY_MIN_RADIUS_M; CITY_DEFAULT_RADIUS_M when no population is known.
CITY_DENSITY_PER_KM2 = 10_000
CITY_MIN_RADIUS_M = 1_000
CITY_DEFAULT_RADIUS_M = 2_000
MAX_NGRAM = 4
FUZZY_CUTOFF = 86.0
MAX_ADDRESS_LENGTH = 1000

# Common shortenings of province names, as clerks write them.
PROVINCE_ALIASES = {
    "IR-03": ["آذربایجان شرقی", "آذربایجانشرقی", "East Azarbaijan", "Azarbayjan-e Sharqi"],
    "IR-04": ["آذربایجان غربی", "West Azarbaijan", "Azarbayjan-e Gharbi"],
    "IR-08": ["کرمان"], "IR-09": ["خراسان رضوی", "رضوی", "Khorasan Razavi", "Khorasan-e Razavi"],
    "IR-11": ["سیستان و بلوچستان", "سیستان", "بلوچستان", "Sistan va Baluchestan", "Sistan Baluchestan"],
    "IR-14": ["چهارمحال و بختیاری", "چهارمحال", "Chaharmahal Bakhtiari", "Chahar Mahal and Bakhtiari"],
    "IR-17": ["کهگیلویه و بویراحمد", "کهگیلویه", "Kohgiluyeh and Boyer-Ahmad", "Kohgiluyeh"],
    "IR-28": ["خراسان شمالی", "North Khorasan", "Khorasan Shomali"],
    "IR-29": ["خراسان جنوبی", "South Khorasan", "Khorasan Jonubi"],
    "IR-10": ["Esfahan"], "IR-12": ["Kordestan"], "IR-02": ["Mazandaran"], "IR-01": ["Guilan"],
}


@dataclass
class GeocodeResult:
    """Where an address is, how precisely, and which official places it names."""

    lon: float | None
    lat: float | None
    precision: str
    confidence: float
    uncertainty_m: float | None = None   # how far the cooperative may be from the point (0: it is there)
    province: str | None = None          # ISO 3166-2, e.g. IR-07
    province_name: str | None = None
    county: str | None = None            # Persian display name
    county_code: str | None = None       # official code (None for counties newer than the official list)
    county_osm: int | None = None
    district: str | None = None
    district_code: str | None = None
    rural_district: str | None = None
    rural_district_code: str | None = None
    place: str | None = None             # the city, village or populated place matched
    place_level: str | None = None
    place_code: str | None = None
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Span:
    start: int
    end: int
    text: str
    hint: str | None           # level announced by a preceding marker word
    segment: int
    latin: bool = False        # written in Latin script (a transliteration)


@dataclass
class _Match:
    level: str
    rows: list[int]
    span: _Span | None
    score: float               # 1.0 for an exact name, the fuzzy ratio / 100 otherwise
    forced: bool = False       # came from a structured field of that level


class Geocoder:
    """Resolve addresses against the gazetteer of a :class:`Boundaries`."""

    def __init__(self, boundaries: Boundaries):
        self.b = boundaries
        p = boundaries.places
        self.places = p
        # Plain Python sequences: indexing a pandas frame per row costs microseconds we call millions of times.
        # Equal texts are one object (7 levels and 31 provinces over 100,000 rows; a name is mostly also its
        # display name and key), and numbers are packed doubles: a fifth of the memory of a list of each.
        pool: dict[str, str] = {}
        self._level = np.array(_shared(p["level"], pool), dtype=object)
        self._province = np.array(_shared(p["province_iso"], pool), dtype=object)
        self._county = p["county_osm"].astype("float64").to_numpy()
        self._district = np.array(_shared(p["district_id"], pool), dtype=object)
        self._rd = np.array(_shared(p["rural_district_id"], pool), dtype=object)
        self._settlement = p["settlement"].to_numpy()
        self._own_coord = p["lon"].notna().to_numpy().copy()  # villages can learn a coordinate
        # Names, codes and ids are read one at a time, for an answer (0.5 µs from the gazetteer's own Arrow
        # text, not a copy of 100,000 Python strings per column).
        self._text = {c: TextColumn(p[c]) for c in ("name", "display_name", "key", "name_en", "code", "official_id")}
        self._col: dict[str, array] = {c: array("d", p[c].to_numpy(float))
                                       for c in ("lon", "lat", "point_lon", "point_lat", "area_radius_m")}
        weak = (p["point_strength"] == "weak").fillna(False).to_numpy(bool)
        outlier = p["point_outlier"].to_numpy(bool)
        self._point_factor = np.where(weak, WEAK_POINT_FACTOR, np.where(outlier, OUTLIER_POINT_FACTOR, 1.0))
        self._index: dict[str, RowsByKey] = {lvl: RowsByKey() for lvl in p["level"].unique()}
        prov_rows = {iso: i for i, (lvl, iso) in enumerate(zip(p["level"], p["province_iso"], strict=False))
                     if lvl == "province"}
        self._province_row = prov_rows
        for i, (lvl, name) in enumerate(zip(p["level"], p["name"], strict=False)):
            for k in {key(name), key(name, prefixes=False)}:
                if k:
                    self._index[lvl].add(pool.setdefault(k, k), i)
        for iso, names in PROVINCE_ALIASES.items():
            for name in names:
                if not is_latin(name):
                    self._index["province"].add(key(name), prov_rows[iso])
        # Provinces' display names from OSM (the official list writes "چهارمحال وبختیاری").
        self._province_display = dict(zip(boundaries.provinces["iso_3166_2"], boundaries.provinces["name_fa"],
                                          strict=False))
        self._latin = RowsByKey()
        for i, (lvl, en) in enumerate(zip(p["level"], p["name_en"], strict=False)):
            if isinstance(en, str) and en and lvl in ("province", "county", "city", "village", "place"):
                self._latin.add(latin_key(en), i)
        for iso, names in PROVINCE_ALIASES.items():
            for name in names:
                if is_latin(name):
                    self._latin.add(latin_key(name), prov_rows[iso])
        self._stand_ins()
        self._points = self._point_keys()
        self._county_point = {int(r.county_osm): (r.point_lon, r.point_lat)
                              for r in p[p["level"] == "county"].itertuples() if not pd.isna(r.county_osm)}
        self._fine_by_county: dict[tuple[float, str], tuple[list[str | None], list[int]]] = {}
        self._county_rows: dict[float, int] | None = None   # county OSM id -> its row, made on first use

    # ---- public -----------------------------------------------------------------------
    def geocode(self, address: str | None = None, *, province: str | None = None, county: str | None = None,
                district: str | None = None, rural_district: str | None = None, place: str | None = None,
                lon: float | None = None, lat: float | None = None) -> GeocodeResult:
        """Geocode one record from its address and/or structured fields and optional coordinates."""
        result = self._resolve(address, province, county, district, rural_district, place)
        if lon is not None or lat is not None:
            self._apply_coordinates(result, lon, lat)
        return result

    def geocode_many(self, records: pd.DataFrame, progress=None) -> pd.DataFrame:
        """Geocode a table with any of the columns address, province, county, district,
        rural_district, place, lon, lat; one result row per input row, same index.

        Identical location descriptions are resolved once; coordinates are checked
        for all rows at once.
        """
        cols = ["address", "province", "county", "district", "rural_district", "place"]
        frame = pd.DataFrame({c: records.get(c, None) for c in cols}, index=records.index)
        cache: dict[tuple, GeocodeResult] = {}
        out = []
        for n, row in enumerate(frame.itertuples(index=False, name=None)):
            address = _clean(row[0])
            parts = _location_parts(address[:MAX_ADDRESS_LENGTH]) if address else ()
            k = (parts, *(_clean(v) for v in row[1:]))
            res = cache.get(k)
            if res is None:
                res = self._resolve_parts(*k)
                cache[k] = res
            out.append(res)
            if progress is not None and n % 1000 == 999:
                progress(1000)
        if progress is not None:
            progress(len(out) % 1000)
        results = pd.DataFrame([r.__dict__ for r in out], index=records.index)
        results["issues"] = [list(i) for i in results["issues"]]  # rows sharing a cached result get their own
        if "lon" in records and "lat" in records:
            self._apply_coordinates_many(results, records["lon"], records["lat"])
        return results

    def learn_village(self, code: str, lon: float, lat: float) -> bool:
        """Give the official village ``code`` a verified coordinate (from an accepted location report).

        Only for a village that has no coordinate yet and only when the point lies in
        the village's own county; returns whether the gazetteer changed.
        """
        if not hasattr(self, "_village_by_code"):
            rows = np.flatnonzero(self._level == "village")
            self._village_by_code = dict(zip(self._text["code"].take(rows), rows.tolist(), strict=True))
        row = self._village_by_code.get(code)
        if row is None or self._own_coord[row]:
            return False
        county = join_county(self.b, lon, lat)
        if county is None or county != self._county[row]:
            return False
        self._col["lon"][row] = self._col["point_lon"][row] = float(lon)
        self._col["lat"][row] = self._col["point_lat"][row] = float(lat)
        self._own_coord[row] = True
        self._point_factor[row] = 1.0
        self._points[0][row], self._points[1][row] = round(float(lon), 5), round(float(lat), 5)
        self.__dict__.pop("_located", None)
        return True

    def check_coordinates(self, lon: float | None, lat: float | None,
                          province: str | None = None) -> list[str]:
        """Issues with a given coordinate pair; an empty list means it can be used as exact."""
        issues = self._coordinate_issues(np.array([_num(lon)]), np.array([_num(lat)]),
                                         np.array([province], dtype=object))
        return [i for i in issues[0].split(";") if i]

    # ---- resolution -------------------------------------------------------------------
    def _resolve(self, address, province, county, district, rural_district, place) -> GeocodeResult:
        address = _clean(address)
        if address and len(address) > MAX_ADDRESS_LENGTH:
            address = address[:MAX_ADDRESS_LENGTH]
        return self._resolve_parts(_location_parts(address) if address else (), province, county, district,
                                   rural_district, place)

    def _resolve_parts(self, parts, province, county, district, rural_district, place) -> GeocodeResult:
        structured = {"province": _clean(province), "county": _clean(county), "district": _clean(district),
                      "rural_district": _clean(rural_district), "place": _clean(place)}
        issues: list[str] = []
        matches: list[_Match] = []
        for level, value in structured.items():
            if value:
                matches.extend(self._field_matches(level, value))
        spans = _spans(parts)
        for s in spans:
            if s.latin:
                rows = self._latin.get(latin_key(s.text))
                if rows:
                    for lvl in {self._level[r] for r in rows}:
                        matches.append(_Match(lvl, [r for r in rows if self._level[r] == lvl], s, 1.0))
                continue
            k = _span_key(s.text)
            for lvl, index in self._index.items():
                rows = index.get(k)
                if rows:
                    matches.append(_Match(lvl, rows, s, 1.0))
        # A name announced as one level ("روستای کناره") is not read as another (the دهستان کناره).
        matches = [m for m in matches if m.forced or _hint_ok(m)]
        chain = self._choose(matches, spans, issues, structured)
        return self._result(chain, issues)

    def _field_matches(self, level: str, value: str) -> list[_Match]:
        levels = ("city", "village", "place") if level == "place" else (level,)
        k = key(value)
        found = [_Match(lvl, self._index[lvl][k], None, 1.0, forced=True) for lvl in levels if k in self._index[lvl]]
        if not found and is_latin(value):
            rows = self._latin.get(latin_key(value)) or []
            found = [_Match(self._level[r], [r], None, 1.0, forced=True) for r in rows if self._level[r] in levels]
        if not found:
            # The field may carry its own marker or extra words: read it as a short address.
            for s in _spans(_location_parts(value)):
                sk = _span_key(s.text)
                for lvl in levels:
                    if sk in self._index[lvl]:
                        found.append(_Match(lvl, self._index[lvl][sk], None, 0.95, forced=True))
        if not found and level in ("province", "county"):
            found = self._fuzzy(level, value, None)
            for m in found:
                m.forced = True
        if not found and level == "place":
            found = [_Match("unresolved_place", [], _Span(0, 0, value, "village", -1), 0.0, forced=True)]
        return found

    def _choose(self, matches: list[_Match], spans: list[_Span], issues: list[str], structured: dict) -> dict:
        used: set[tuple[int, int, int]] = set()
        chain: dict[str, tuple[int, float]] = {}

        def span_id(m: _Match):
            return None if m.span is None else (m.span.segment, m.span.start, m.span.end)

        def overlaps(m: _Match) -> bool:
            if m.span is None:
                return False
            return any(seg == m.span.segment and not (m.span.end <= s or m.span.start >= e)
                       for seg, s, e in used)

        def rank(m: _Match, lvl: str | None):
            hinted = m.forced or (m.span is not None and m.span.hint == lvl)
            length = 0 if m.span is None else m.span.end - m.span.start
            return (hinted, m.score, length)

        # Province.
        cands = [m for m in matches if m.level == "province"]
        if cands:
            best = max(cands, key=lambda m: rank(m, "province"))
            chain["province"] = (best.rows[0], best.score)
            if (sid := span_id(best)) is not None:
                used.add(sid)
        prov = self._province[chain["province"][0]] if "province" in chain else None

        # County: a name of the stated province; an unhinted name also used for the province is skipped.
        cands = [m for m in matches if m.level == "county" and not overlaps(m)]
        if prov is not None:
            cands = [_restrict(m, self._province, prov) for m in cands]
        cands = [m for m in cands if m.rows]
        if not cands and structured.get("county"):
            cands = self._fuzzy("county", structured["county"], prov)
        if cands:
            best = max(cands, key=lambda m: rank(m, "county"))
            rows = sorted(set(best.rows), key=lambda r: (self._county[r]))
            counties = {self._county[r] for r in rows}
            if len(counties) == 1:
                chain["county"] = (rows[0], best.score)
                if (sid := span_id(best)) is not None:
                    used.add(sid)
            else:
                issues.append("ambiguous_county")
        county = self._county[chain["county"][0]] if "county" in chain else None
        if prov is None and county is not None:
            prov = self._province[chain["county"][0]]
        # Every mention of the chosen province or county names that area, not its namesake
        # seat town, unless the address says "شهر" before it.
        area_keys = {self._text["key"][chain[lvl][0]] for lvl in ("province", "county") if lvl in chain}
        area_keys |= {latin_key(self._text["name_en"][chain[lvl][0]]) for lvl in ("province", "county")
                      if lvl in chain and self._text["name_en"][chain[lvl][0]]}
        for s in spans:
            if s.hint != "city" and (latin_key(s.text) if s.latin else _span_key(s.text)) in area_keys:
                used.add((s.segment, s.start, s.end))

        # Finer places within the county (or the province), finest first.
        fine: list[_Match] = []
        for m in matches:
            if m.level in FINE_LEVELS and not overlaps(m):
                if county is not None:
                    m = _restrict(m, self._county, county)
                elif prov is not None:
                    m = _restrict(m, self._province, prov)
                if m.rows:
                    fine.append(m)
        # District and rural district first: they narrow the village.
        for lvl in ("district", "rural_district"):
            cands = [m for m in fine if m.level == lvl]
            if cands:
                best = max(cands, key=lambda m: rank(m, lvl))
                if len({self._district[r] if lvl == "district" else self._rd[r] for r in best.rows}) == 1:
                    chain[lvl] = (best.rows[0], best.score)
                    if (sid := span_id(best)) is not None:
                        used.add(sid)
        fine = [m for m in fine if m.level in ("district", "rural_district") or not overlaps(m)]
        settle = [m for m in fine if m.level in ("village", "city", "place")]
        if not settle:
            settle = self._fuzzy_places(spans, county, used)
        if settle:
            best = max(settle, key=lambda m: (rank(m, m.span.hint if m.span else m.level)[0],
                                              _hint_ok(m), m.score,
                                              0 if m.span is None else m.span.end - m.span.start))
            rows = list(best.rows)
            if "rural_district" in chain:
                rows = [r for r in rows if self._rd[r] == self._rd[chain["rural_district"][0]]] or rows
            if "district" in chain:
                rows = [r for r in rows if self._district[r] == self._district[chain["district"][0]]] or rows
            # Same name at several levels (a city and its namesake village): the hint decides, then cities.
            if len(rows) > 1:
                hinted = [r for r in rows if best.span is not None and best.span.hint == self._level[r]]
                rows = hinted or rows
                rows = [r for r in rows if self._settlement[r]] or rows
                if len({self._level[r] for r in rows}) > 1 and len({self._county[r] for r in rows}) == 1:
                    rows = sorted(rows, key=lambda r: ("city", "village", "place").index(self._level[r]))
                    rows = [r for r in rows if self._level[r] == self._level[rows[0]]]
                if len(rows) > 1:
                    px, py = self._points
                    same_point = len({(px[r], py[r]) for r in rows}) == 1
                    if not same_point:
                        issues.append("ambiguous_place")
                        # All candidates share a county: the county is still known.
                        if county is None and len({self._county[r] for r in rows}) == 1:
                            chain["county"] = (rows[0], best.score * 0.8)
                        rows = []
            if rows:
                chain["place"] = (rows[0], best.score / (1 if len(rows) == 1 else 2))
        elif any(m.level == "unresolved_place" for m in matches) or any(
                s.hint in ("village", "city") for s in spans if not any(
                    seg == s.segment and a <= s.start < b for seg, a, b in used)):
            issues.append("place_not_found")

        self._fill_parents(chain, issues)
        return chain

    def _fill_parents(self, chain: dict[str, tuple[int, float]], issues: list[str]) -> None:
        """Add the county and province of the finest place found when the address did not name them."""
        finest = chain.get("place") or chain.get("rural_district") or chain.get("district")
        if finest is not None:
            r = finest[0]
            if "county" not in chain and not pd.isna(self._county[r]):
                crow = self._county_row(self._county[r])
                if crow is not None:
                    chain["county"] = (crow, finest[1] * 0.9)
                    issues.append("county_inferred")
            if "province" not in chain:
                chain["province"] = (self._province_row[self._province[r]], finest[1])
        if "province" not in chain and "county" in chain:
            chain["province"] = (self._province_row[self._province[chain["county"][0]]], chain["county"][1])

    def _fuzzy(self, level: str, value: str, prov: str | None) -> list[_Match]:
        index = self._index[level]
        if prov is not None:
            keys = [k for k, rows in index.items() if any(self._province[r] == prov for r in rows)]
        else:
            keys = list(index)
        k = key(value)
        if len(k) < 3:
            return []
        hit = process.extractOne(k, keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
        if hit is None:
            return []
        rows = [r for r in index[hit[0]] if prov is None or self._province[r] == prov]
        return [_Match(level, rows, None, hit[1] / 100.0)]

    def _fuzzy_places(self, spans, county, used) -> list[_Match]:
        """Typos: compare unmatched words of the address with the places of the county."""
        if county is None or not spans:
            return []
        cache_key = (county, "fa")
        if cache_key not in self._fine_by_county:
            rows = [int(i) for i in np.flatnonzero(self._county == county)
                    if self._level[i] in ("village", "city", "place")]
            self._fine_by_county[cache_key] = (self._text["key"].take(rows), rows)
        keys, rows = self._fine_by_county[cache_key]
        found = []
        for s in spans:
            if s.latin or any(seg == s.segment and not (s.end <= a or s.start >= b) for seg, a, b in used):
                continue
            k = _span_key(s.text)
            if len(k) < 4 or k.isdigit():
                continue
            # One typo in a short name, two in a long one.
            limit = 1 if len(k) < 9 else 2
            hits = process.extract(k, keys, scorer=Levenshtein.distance, score_cutoff=limit, limit=5)
            if hits:
                top = min(h[1] for h in hits)
                best_rows = [rows[h[2]] for h in hits if h[1] == top]
                score = (1 - top / max(len(k), 1)) * 0.9
                found.append(_Match(self._level[best_rows[0]], best_rows, s, score))
        return found

    def _county_row(self, county_osm: float) -> int | None:
        rows = self._index_county_rows().get(county_osm)
        return rows

    def _index_county_rows(self) -> dict[float, int]:
        if self._county_rows is None:
            rows: dict[float, int] = {}
            for i in np.flatnonzero(self._level == "county"):
                rows.setdefault(self._county[i], int(i))
            self._county_rows = rows
        return self._county_rows

    def _result(self, chain: dict, issues: list[str]) -> GeocodeResult:
        res = GeocodeResult(lon=None, lat=None, precision="none", confidence=0.0, issues=issues)
        if "province" in chain:
            r = chain["province"][0]
            res.province = self._province[r]
            res.province_name = self._province_display.get(res.province)
        if "county" in chain:
            r = chain["county"][0]
            res.county = self._text["display_name"][r]
            res.county_code = self._text["code"][r]
            res.county_osm = int(self._county[r])
        for lvl, attr in (("district", "district"), ("rural_district", "rural_district")):
            if lvl in chain:
                r = chain[lvl][0]
                setattr(res, attr, self._text["name"][r])
                setattr(res, attr + "_code", self._text["code"][r])
        if "place" in chain:
            r = chain["place"][0]
            res.place, res.place_level, res.place_code = self._text["name"][r], self._level[r], self._text["code"][r]
            if res.district is None and self._district[r] is not None:
                res.district, res.district_code = self._name_of("district", self._district[r])
            if res.rural_district is None and self._rd[r] is not None:
                res.rural_district, res.rural_district_code = self._name_of("rural_district", self._rd[r])
        finest = next((lvl for lvl in ("place", "rural_district", "district", "county", "province") if lvl in chain),
                      None)
        if finest is None:
            return res
        row, score = chain[finest]
        lon, lat, precision, uncertainty = self._point_of(row, finest)
        res.lon, res.lat, res.precision, res.uncertainty_m = lon, lat, precision, uncertainty
        factor = self._point_factor[row] if precision == "village" else 1.0
        res.confidence = round(float(score) * factor * (0.95 if "county_inferred" in issues else 1.0), 3)
        return res

    def _name_of(self, level: str, official_id: str) -> tuple[str | None, str | None]:
        table = self._ids(level)
        r = table.get(official_id)
        if r is None:
            return None, None
        return self._text["name"][r], self._text["code"][r]

    def _ids(self, level: str) -> dict[str, int]:
        attr = "_ids_" + level
        if not hasattr(self, attr):
            rows = np.flatnonzero(self._level == level)
            setattr(self, attr, dict(zip(self._text["official_id"].take(rows), rows.tolist(), strict=True)))
        return getattr(self, attr)

    def _point_of(self, row: int, level_in_chain: str) -> tuple[float | None, float | None, str, float | None]:
        """The point, its true precision and its uncertainty (metres) for a matched place.

        A village or city with its own point is there (a village from a weak match or an
        outlier of its rural district may instead be anywhere in its area: the distance to the
        area's stand-in plus the area's radius). A stand-in point covers its area: a rural
        district's or district's median point with the distance to its farthest placed place;
        a county's or province's point with the distance to its farthest boundary vertex.
        """
        lvl = self._level[row]
        if level_in_chain == "place" and self._own_coord[row]:
            lon, lat = float(self._col["lon"][row]), float(self._col["lat"][row])
            if lvl == "city":
                return lon, lat, "city", self._city_radius(row)
            if self._point_factor[row] < 1.0:
                area = self._area_of(row, lvl)
                if area is not None:
                    a_lon, a_lat, _, radius = area
                    return lon, lat, "village", round(haversine_km(lon, lat, a_lon, a_lat) * 1000 + radius)
            return lon, lat, "village", 0.0
        if level_in_chain == "province":
            return (float(self._col["point_lon"][row]), float(self._col["point_lat"][row]), "province",
                    self._col["area_radius_m"][row])
        area = self._area_of(row, lvl)
        if area is None:
            return None, None, "none", None
        return area

    def _area_of(self, row: int, lvl: str) -> tuple[float, float, str, float] | None:
        """The stand-in of the smallest area around a place: rural district, district, then county."""
        if lvl in ("village", "rural_district") and self._rd[row] is not None:
            pt = self._rd_points.get(self._rd[row])
            if pt:
                return pt[0], pt[1], "rural_district", pt[2]
        if lvl in ("village", "city", "rural_district", "district") and self._district[row] is not None:
            pt = self._district_points.get(self._district[row])
            if pt:
                return pt[0], pt[1], "district", pt[2]
        crow = self._county_row(self._county[row]) if not pd.isna(self._county[row]) else None
        if crow is None:
            return None
        lon, lat = self._col["point_lon"][crow], self._col["point_lat"][crow]
        if pd.isna(lon):
            return None
        return float(lon), float(lat), "county", self._col["area_radius_m"][crow]

    def _city_radius(self, row: int) -> float:
        pop = self.places["population"].iat[row] if "population" in self.places else None
        if pop is None or pd.isna(pop) or pop <= 0:
            return float(CITY_DEFAULT_RADIUS_M)
        r = math.sqrt(float(pop) / (math.pi * CITY_DENSITY_PER_KM2)) * 1000
        return float(round(max(CITY_MIN_RADIUS_M, r), -2))

    def _stand_ins(self) -> None:
        """Median point and radius of each rural district's and district's placed villages (and cities)."""
        lon, lat = np.asarray(self._col["lon"], float), np.asarray(self._col["lat"], float)
        sure = self._own_coord & (self._point_factor == 1.0)
        villages = np.flatnonzero(sure & (self._level == "village"))
        with_cities = np.flatnonzero(sure & np.isin(self._level, ("village", "city")))
        self._rd_points = _medians(self._rd[villages], lon[villages], lat[villages])
        self._district_points = _medians(self._district[with_cities], lon[with_cities], lat[with_cities])

    def _point_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Per place, the rounded point it resolves to, as two arrays (namesakes at one point are one place).

        Vectorised over the gazetteer: a place's own point, else its rural district's or district's
        stand-in, else its county's point (the same order as :meth:`_area_of`).
        """
        p = self.places
        lon = p["point_lon"].to_numpy(float).copy()
        lat = p["point_lat"].to_numpy(float).copy()
        fine = np.isin(self._level, ("village", "city", "place")) & ~self._own_coord
        for column, table, levels in (("district_id", self._district_points, ("village", "city")),
                                      ("rural_district_id", self._rd_points, ("village",))):
            ids = p[column].to_numpy(dtype=object)
            rows = np.flatnonzero(fine & np.isin(self._level, levels))
            for r in rows:       # later tables (finer areas) overwrite earlier ones
                pt = table.get(ids[r])
                if pt is not None:
                    lon[r], lat[r] = pt[0], pt[1]
        own = np.flatnonzero(self._own_coord)
        lon[own] = np.asarray(self._col["lon"], float)[own]
        lat[own] = np.asarray(self._col["lat"], float)[own]
        return np.round(lon, 5), np.round(lat, 5)

    # ---- coordinates -------------------------------------------------------------------
    def _coordinate_issues(self, lon: np.ndarray, lat: np.ndarray, prov: np.ndarray) -> list[str]:
        lon = lon.astype(float)
        lat = lat.astype(float)
        out = [""] * len(lon)
        given = ~(np.isnan(lon) | np.isnan(lat))
        if not given.any():
            return out
        zero = given & ((lon == 0) | (lat == 0))
        ok_range = given & ~zero & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
        inside = np.zeros(len(lon), bool)
        swapped = np.zeros(len(lon), bool)
        in_prov = np.ones(len(lon), bool)
        with GEOMETRY_LOCK:   # the country and province polygons are shared by the worker's threads
            inside[ok_range] = shapely.contains_xy(self.b.country, lon[ok_range], lat[ok_range])
            swap_ok = given & ~zero & ~inside & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
            swapped[swap_ok] = shapely.contains_xy(self.b.country, lat[swap_ok], lon[swap_ok])
            check = inside & np.array([isinstance(p, str) and p != "" for p in prov])
            if check.any():
                geoms = dict(zip(self.b.provinces["iso_3166_2"], self.b.provinces.geometry, strict=False))
                for i in np.flatnonzero(check):
                    g = geoms.get(prov[i])
                    if g is not None:
                        in_prov[i] = shapely.contains_xy(g, lon[i], lat[i])
        for i in np.flatnonzero(given):
            if zero[i]:
                out[i] = "coord_zero"
            elif inside[i] and not in_prov[i]:
                out[i] = "coord_outside_province"
            elif not inside[i]:
                out[i] = "coord_swapped" if swapped[i] else "coord_outside_iran"
        return out

    def _apply_coordinates(self, res: GeocodeResult, lon, lat) -> None:
        frame = pd.DataFrame([asdict(res)])
        self._apply_coordinates_many(frame, pd.Series([lon]), pd.Series([lat]))
        row = frame.iloc[0]
        res.lon = None if pd.isna(row["lon"]) else float(row["lon"])
        res.lat = None if pd.isna(row["lat"]) else float(row["lat"])
        res.precision, res.confidence, res.issues = row["precision"], float(row["confidence"]), list(row["issues"])
        res.uncertainty_m = None if pd.isna(row["uncertainty_m"]) else float(row["uncertainty_m"])

    def _apply_coordinates_many(self, results: pd.DataFrame, lon: pd.Series, lat: pd.Series) -> None:
        lon_a = pd.to_numeric(pd.Series(lon.to_numpy()), errors="coerce").to_numpy(float)
        lat_a = pd.to_numeric(pd.Series(lat.to_numpy()), errors="coerce").to_numpy(float)
        one_only = np.isnan(lon_a) != np.isnan(lat_a)
        issues = self._coordinate_issues(lon_a, lat_a, results["province"].to_numpy(dtype=object))
        usable = ~np.isnan(lon_a) & ~np.isnan(lat_a) & np.array([i == "" for i in issues])
        # Rows whose address named no province take the province of the (valid) point.
        new_issues = []
        for i, (old, new) in enumerate(zip(results["issues"], issues, strict=False)):
            extra = [new] if new else []
            if one_only[i]:
                extra.append("coord_incomplete")
            new_issues.append(list(old) + extra)
        results["issues"] = new_issues
        idx = np.flatnonzero(usable)
        if len(idx):
            results.iloc[idx, results.columns.get_loc("lon")] = lon_a[idx]
            results.iloc[idx, results.columns.get_loc("lat")] = lat_a[idx]
            results.iloc[idx, results.columns.get_loc("precision")] = "exact"
            results.iloc[idx, results.columns.get_loc("confidence")] = 1.0
            results.iloc[idx, results.columns.get_loc("uncertainty_m")] = 0.0

    # ---- reverse ------------------------------------------------------------------------
    def reverse(self, lon: float, lat: float) -> dict:
        """Province, county, deprivation class, border flag and nearest known place of a point."""
        issues = self.check_coordinates(lon, lat)
        out: dict = {"lon": lon, "lat": lat, "inside_iran": not issues, "issues": issues,
                     "province": None, "province_name": None, "county": None, "county_code": None,
                     "county_osm": None, "deprivation_class": None, "deprived": None, "border": None,
                     "nearest_place": None}
        if issues:
            return out
        pt = shapely.Point(lon, lat)
        c = self.b.counties
        hits = self.b.county_tree().query(pt, predicate="intersects")
        if len(hits):
            row = c.iloc[int(hits[0])]
            out.update(province=row["province_iso"], county=row["display_name_fa"],
                       county_code=row["official_county_code"] or None, county_osm=int(row["osm_relation_id"]),
                       deprivation_class=row["deprivation_class"],
                       deprived=None if pd.isna(row["deprived"]) else bool(row["deprived"]),
                       border=bool(row["border"]))
        else:
            phits = self.b.province_tree().query(pt, predicate="intersects")
            if len(phits):
                out["province"] = self.b.provinces.iloc[int(phits[0])]["iso_3166_2"]
        if out["province"]:
            out["province_name"] = self._province_display.get(out["province"])
        out["nearest_place"] = self.nearest_place(lon, lat)
        return out

    def nearest_place(self, lon: float, lat: float) -> dict | None:
        """The nearest city, placed village or populated place, with its distance in km."""
        located = self.__dict__.get("_located")
        if located is None:
            rows = np.flatnonzero(self._own_coord & np.isin(self._level, ("city", "village", "place")))
            lons = np.array([self._col["lon"][r] for r in rows])
            lats = np.array([self._col["lat"][r] for r in rows])
            located = self._located = (rows, lons, lats)
        rows, lons, lats = located
        if not len(rows):
            return None
        d = haversine_km(lon, lat, lons, lats)
        k = int(np.argmin(d))
        r = int(rows[k])
        en = self._text["name_en"][r]
        return {"name": self._text["name"][r], "name_en": en if isinstance(en, str) and en else None,
                "level": self._level[r], "code": self._text["code"][r], "lon": float(lons[k]), "lat": float(lats[k]),
                "uncertainty_m": self._point_of(r, "place")[3], "distance_km": round(float(d[k]), 2)}


# ---- helpers ------------------------------------------------------------------------------

class RowsByKey:
    """Texts (name keys) -> the gazetteer rows they name, in row order, each row once.

    Most keys name one row: it is held as the int itself, not a list of one (a list per key cost 10 MB of
    the geocoder's 40 at 100,000 places); the few keys of several rows point into ``_multi``."""

    def __init__(self) -> None:
        self._one: dict[str, int] = {}    # key -> its row (>= 0), or -1 - the index of its rows in _multi
        self._multi: list[list[int]] = []

    def add(self, k: str, row: int) -> None:
        v = self._one.get(k)
        if v is None:
            self._one[k] = row
        elif v >= 0:
            if v != row:
                self._multi.append(sorted((v, row)))
                self._one[k] = -len(self._multi)
        else:
            rows = self._multi[-1 - v]
            if row > rows[-1]:          # the usual case: rows are added in order
                rows.append(row)
            elif row not in rows:
                rows.append(row)
                rows.sort()

    def get(self, k: str) -> list[int] | None:
        v = self._one.get(k)
        if v is None:
            return None
        return [v] if v >= 0 else list(self._multi[-1 - v])

    def __contains__(self, k: str) -> bool:
        return k in self._one

    def __getitem__(self, k: str) -> list[int]:
        rows = self.get(k)
        if rows is None:
            raise KeyError(k)
        return rows

    def __iter__(self):
        return iter(self._one)

    def items(self):
        return ((k, self[k]) for k in self._one)


def _shared(values: pd.Series, pool: dict[str, str]) -> list:
    """``values`` as a list, a missing value as None and equal texts one object (:func:`shared_texts`)."""
    if isinstance(values.dtype, pd.CategoricalDtype):   # the gazetteer's few-valued columns: a text per category
        texts = [*shared_texts(values.cat.categories.tolist(), pool), None]    # code -1 (missing): None
        return [texts[c] for c in values.cat.codes.tolist()]
    return shared_texts(values.astype(object).where(values.notna(), None).tolist(), pool)


def _medians(ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Per area id: (median lon, median lat, metres to the farthest point) where it has enough points."""
    out = {}
    order = np.argsort(ids.astype(str), kind="stable")
    ids, lon, lat = ids[order], lon[order], lat[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    for a, b in zip(starts, np.r_[starts[1:], len(ids)], strict=False):
        if ids[a] is None or b - a < MIN_PLACED_FOR_STAND_IN:
            continue
        mx, my = float(np.median(lon[a:b])), float(np.median(lat[a:b]))
        radius = float(np.max(haversine_km(mx, my, lon[a:b], lat[a:b]))) * 1000
        out[ids[a]] = (round(mx, 6), round(my, 6), float(round(radius, -2)))
    return out


_SEGMENT_SPLIT = re.compile(r"[,،;؛/\\|\-–—()\[\]\n:]+")


def _location_parts(address: str) -> tuple[tuple[bool, tuple[str, ...]], ...]:
    """The parts of an address that can name places: (is Latin, words) per part.

    Street parts are cut off at their first street word and numbers become "#",
    so "…، کوچه ۱۲، پلاک ۳" and "…، پلاک ۷" give the same parts (and one cache entry).
    """
    parts = []
    for segment in _SEGMENT_SPLIT.split(norm(address)):
        words = [w for w in re.split(r"[\s.\"']+", segment) if w]
        if not words:
            continue
        if is_latin(segment):
            parts.append((True, tuple(words)))
            continue
        for i, w in enumerate(words):
            if w.lower() in STREET_WORDS:
                words = words[:i]
                break
        words = ["#" if w.isdigit() else w for w in words]
        if any(w != "#" for w in words):
            parts.append((False, tuple(words)))
    return tuple(parts)


def _spans(parts: tuple[tuple[bool, tuple[str, ...]], ...]) -> list[_Span]:
    """Candidate place names: n-grams of each part, with the level a preceding marker word announces."""
    out: list[_Span] = []
    for seg_no, (latin, words) in enumerate(parts):
        if latin:
            # "Mazhin village", "Rey County": the level word follows the name and holds for the part.
            levels = [LATIN_MARKERS[w.lower()] for w in words if w.lower() in LATIN_MARKERS]
            words = tuple(w for w in words if w.lower() not in LATIN_MARKERS)
            for i in range(len(words)):
                for n in range(1, min(MAX_NGRAM, len(words) - i) + 1):
                    out.append(_Span(i, i + n, " ".join(words[i:i + n]), levels[0] if levels else None, seg_no,
                                     latin=True))
            continue
        hints = [None] + [MARKERS.get(w) for w in words[:-1]]
        for i in range(len(words)):
            if words[i] == "#":
                continue
            # A marker word alone ("شهرستان") is never a place name; with what follows it may be ("شهر کرد").
            start_n = 2 if words[i] in MARKERS else 1
            for n in range(start_n, MAX_NGRAM + 1):
                if i + n > len(words) or words[i + n - 1] == "#":
                    break
                out.append(_Span(i, i + n, " ".join(words[i:i + n]), hints[i], seg_no))
    return out


def _span_key(text: str) -> str:
    return fold(text)  # span texts are built from normalised words


def _restrict(m: _Match, column: np.ndarray, value) -> _Match:
    """The match with only the rows whose ``column`` equals ``value``."""
    rows = np.asarray(m.rows)
    kept = rows[column[rows] == value].tolist() if len(rows) else []
    return _Match(m.level, kept, m.span, m.score, m.forced)


def _hint_ok(m: _Match) -> bool:
    return m.span is None or m.span.hint is None or m.span.hint == m.level or (
        m.span.hint == "village" and m.level == "place")


def _clean(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    s = norm(value)
    return s or None


def _num(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


def join_county(boundaries: Boundaries, lon: float, lat: float) -> float | None:
    """The OSM relation id of the county holding a point, as the gazetteer stores it."""
    hits = boundaries.county_tree().query(shapely.Point(lon, lat), predicate="intersects")
    if not len(hits):
        return None
    return float(boundaries.counties["osm_relation_id"].iat[int(hits[0])])
