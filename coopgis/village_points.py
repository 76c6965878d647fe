"""Place official villages at populated places of the open places data, by name, inside their county.

:func:`match_villages` takes the official villages (no coordinates) and the
populated places (coordinates, Persian and romanised names), each place already
told which official county it lies in, and gives a village a point only when the
rules below say so without guessing. Names are compared through the project's
one normaliser (:func:`coopgis.text.key`).

Strong rules (taken in this order; a rule never takes a village or place an earlier one took)
    ``name``: the village's name and a place's Persian name are the only ones with that
    key in the county; ``name_variant``: the same through one of the place's variant
    names (a place's primary name outranks another place's variant); ``name_part``:
    through one part of a packed official name (``الف/ب``, ``الف(ب)``, a trailing
    number: each part gives a key).
    ``rural_district``: a name repeated in the county, settled by the rural district:
    the place is nearest to the median point of one candidate's rural district (its
    already placed villages) with a clear margin over every other candidate, and that
    village is the place's nearest candidate with a clear margin too. Every candidate's
    rural district must have placed villages, and two candidates of one rural district
    are never told apart: the name stays unplaced.
Weak rules (kept, flagged ``weak``, used with lower confidence)
    ``fuzzy``: one letter off, or the same sounds written with other letters (ت/ط,
    س/ص/ث, ز/ذ/ض/ظ, ه/ح, ق/غ), for names of five letters or more, unique both ways in
    the county; ``transliteration``: a place with no Persian name whose romanised
    consonants equal those of exactly one village of the county and no other place's;
    ``outside_county``: a place within about 3 km outside the county line whose name is
    unique to one village of the neighbouring county and unknown in its own county.

Never: abandoned or destroyed places (PPLQ, PPLW), non-settlement entries of the
village list (wells, farms, pumps, companies), a name an official city of the county
also carries, a village or a place used twice. Places of one county that share a name
within :data:`DUPLICATE_KM` are one place recorded twice (GeoNames often holds a village
from two sources a little apart); ``spread_km`` says how far apart they were.

After matching, each placed village gets ``km_to_rural_district``: the distance to
the median point of the other strongly placed villages of its rural district (empty
with fewer than two of them), and ``outlier`` when that distance is large for the
district (see :func:`_flag_outliers`).

Not here: reading the raw files and the county of each place (``build_boundaries.py``),
using the points (``boundaries.py``, ``geocode.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from coopgis.distance import haversine_km as _km
from coopgis.text import key

STRONG_METHODS = ("name", "name_variant", "name_part", "rural_district")
WEAK_METHODS = ("fuzzy", "transliteration", "outside_county")
DEAD_FEATURE_CODES = ("PPLQ", "PPLW")      # abandoned, destroyed

# A repeated name is settled only when the chosen rural district is clearly nearer than the
# next candidate: MARGIN_RATIO times as near and MARGIN_KM nearer, within SETTLE_MAX_KM.
MARGIN_RATIO = 1.5
MARGIN_KM = 1.0
SETTLE_MAX_KM = 25.0
MIN_PLACED_TO_SETTLE = 2    # placed villages a rural district needs to settle a name
DUPLICATE_KM = 2.0          # places of one county sharing a name this close are one place
FUZZY_MIN_LENGTH = 5
SKELETON_MIN_LENGTH = 3
# Outliers: further than OUTLIER_MIN_KM from the rural district's median point and more
# than OUTLIER_FACTOR times the district's typical distance.
OUTLIER_MIN_KM = 15.0
OUTLIER_FACTOR = 4.0

_PACK_SPLIT = re.compile(r"[/()\[\]،,]+")
_TRAILING_NUMBER = re.compile(r"\s*[0-9۰-۹٠-٩]+\s*$")
# Letters Persian pronounces alike; a name written with one or the other is one name spelt two ways.
_SAME_SOUND = str.maketrans({"ط": "ت", "ص": "س", "ث": "س", "ذ": "ز", "ض": "ز", "ظ": "ز", "ح": "ه", "غ": "ق"})

COLUMNS = ("village_code", "village_id", "name", "county_id", "rural_district_id", "lon", "lat",
           "source_id", "geonameid", "place_name", "method", "strength", "spread_km", "km_to_rural_district", "outlier")


def name_key(name: str) -> str:
    """The matching key of a village or place name (the project's normaliser, prefixes kept)."""
    return key(name, prefixes=False)


def village_keys(name: str) -> tuple[str, set[str]]:
    """The key of the whole official name and the keys of its parts when it is packed.

    "حسین آباد(ده شیخا)" gives the parts حسین آباد and ده شیخا; "علی آباد2" gives علی آباد.
    """
    whole = name_key(name)
    parts = set()
    for piece in _PACK_SPLIT.split(name):
        k = name_key(_TRAILING_NUMBER.sub("", piece))
        if k and not k.isdigit():
            parts.add(k)
    parts.discard(whole)
    return whole, parts


def place_keys(name_fa: str, variants: Iterable[str]) -> tuple[str, set[str]]:
    """The key of a place's primary Persian name and those of its variant names."""
    primary = name_key(name_fa) if name_fa else ""
    others = {name_key(v) for v in variants if v} - {"", primary}
    return primary, others


# ---- skeletons of romanised and Persian names (the transliteration rule) ----------------------

_FA_CONSONANTS = {
    "ب": "b", "پ": "p", "ت": "t", "ط": "t", "ث": "s", "س": "s", "ص": "s", "ج": "j", "چ": "c", "خ": "x",
    "د": "d", "ذ": "z", "ز": "z", "ض": "z", "ظ": "z", "ر": "r", "ژ": "Z", "ش": "S", "غ": "q", "ق": "q",
    "ف": "f", "ک": "k", "گ": "g", "ل": "l", "م": "m", "ن": "n",
}
_LATIN_DIGRAPHS = (("kh", "x"), ("sh", "S"), ("ch", "c"), ("zh", "Z"), ("gh", "q"))
_LATIN_CONSONANTS = set("bptsjcxdzrZSqfkglmn")


def persian_skeleton(name: str) -> str:
    """The consonants of a Persian name as Latin classes (ا و ی ه ح ع and hamza dropped)."""
    return "".join(_FA_CONSONANTS.get(ch, "") for ch in name_key(name))


def latin_skeleton(name: str) -> str:
    """The consonants of a romanised name in the same classes (kh sh ch zh gh as one; h v w y dropped)."""
    s = name.lower()
    for a, b in _LATIN_DIGRAPHS:
        s = s.replace(a, b)
    return "".join(ch for ch in s if ch in _LATIN_CONSONANTS)


# ---- the matcher --------------------------------------------------------------------------------

def match_villages(villages: pd.DataFrame, places: pd.DataFrame,
                   cities: pd.DataFrame | None = None) -> pd.DataFrame:
    """Village points: one row per placed village (:data:`COLUMNS`).

    ``villages``: ``village_id, village_code, name, county_id, rural_district_id, settlement``.
    ``places``: ``source_id, name_fa, variants`` (list of str), ``name`` (romanised), ``lon, lat,
    feature_code, county_id`` (the official county whose villages it may match: the one it lies
    in, or the one a newer county was carved from; "" for none) and optionally
    ``near_county_ids`` (other official counties within about 3 km).
    ``cities``: ``name, county_id`` of the official cities; a name one of them carries is
    never given to a village of that county (the place is more likely the city).
    """
    m = _Matcher(villages, places, cities)
    m.unique_names()
    for _ in range(2):       # settled names add placed villages, which can settle more
        m.settle_by_rural_district()
    m.fuzzy()
    m.transliterated()
    m.outside_county()
    return m.result()


class _Matcher:
    def __init__(self, villages: pd.DataFrame, places: pd.DataFrame, cities: pd.DataFrame | None):
        self.v = villages.loc[villages["settlement"].astype(bool).to_numpy()].reset_index(drop=True)
        self.p = places.loc[~places["feature_code"].isin(DEAD_FEATURE_CODES).to_numpy()].reset_index(drop=True)
        self.v_county = self.v["county_id"].astype(str).tolist()
        self.v_rd = self.v["rural_district_id"].astype(str).tolist()
        self.p_county = self.p["county_id"].fillna("").astype(str).tolist()
        self.p_lon = self.p["lon"].astype(float).to_numpy()
        self.p_lat = self.p["lat"].astype(float).to_numpy()
        vk = [village_keys(n) for n in self.v["name"]]
        self.v_whole = [w for w, _ in vk]
        self.v_parts = [p for _, p in vk]
        pk = [place_keys(a, b) for a, b in zip(self.p["name_fa"].fillna(""), self.p["variants"], strict=False)]
        self.p_primary = [a for a, _ in pk]
        self.p_variants = [b for _, b in pk]
        self.city_keys = set() if cities is None else set(zip(cities["county_id"].astype(str),
                                                              cities["name"].map(name_key), strict=False))
        # (county, key) -> the villages and places with that key, and how they carry it.
        self.v_bucket: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        for i, (c, whole, parts) in enumerate(zip(self.v_county, self.v_whole, self.v_parts, strict=False)):
            if whole:
                self.v_bucket[(c, whole)][i] = "whole"
            for k in sorted(parts):  # sorted: the build must not depend on the hash seed
                self.v_bucket[(c, k)].setdefault(i, "part")
        self.p_bucket: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        for j, (c, primary, variants) in enumerate(zip(self.p_county, self.p_primary, self.p_variants, strict=False)):
            if c and primary:
                self.p_bucket[(c, primary)][j] = "primary"
            for k in sorted(variants) if c else ():
                self.p_bucket[(c, k)].setdefault(j, "variant")
        self.group = self._duplicate_groups()
        self.members: dict[int, list[int]] = defaultdict(list)
        for j, g in enumerate(self.group):
            self.members[int(g)].append(j)
        for bucket, ps in self.p_bucket.items():
            if len(ps) > 1:  # one entry per place recorded several times, primary if any record is
                merged: dict[int, str] = {}
                for j, how in sorted(ps.items()):
                    g = int(self.group[j])
                    if merged.get(g) != "primary":
                        merged[g] = how
                self.p_bucket[bucket] = merged
        self.place_of: dict[int, int] = {}       # village -> the place its name matched
        self.village_of: dict[int, int] = {}     # place -> village (every place of the group)
        self.method: dict[int, str] = {}         # village -> rule

    def _duplicate_groups(self) -> np.ndarray:
        """Each place mapped to the first place of its group: records of one place sharing a name within
        DUPLICATE_KM of each other (union-find, merged only while the group stays that small)."""
        parent = np.arange(len(self.p))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = int(parent[a])
            return int(a)

        members: dict[int, list[int]] = {j: [j] for j in range(len(self.p))}
        for ps in self.p_bucket.values():
            js = sorted(ps)
            for x, a in enumerate(js):
                for b in js[x + 1:]:
                    ra, rb = find(a), find(b)
                    # Complete linkage: every two records of a group lie within DUPLICATE_KM.
                    if ra != rb and all(_km(self.p_lon[u], self.p_lat[u], self.p_lon[w], self.p_lat[w]) <= DUPLICATE_KM
                                        for u in members[ra] for w in members[rb]):
                        keep, gone = min(ra, rb), max(ra, rb)
                        parent[gone] = keep
                        members[keep] += members.pop(gone)
        return np.array([find(j) for j in range(len(self.p))], dtype=np.int64)

    def _places(self, bucket: tuple[str, str]) -> dict[int, str]:
        """The places of a key in a county; when exactly one has it as its primary name, that one."""
        ps = self.p_bucket.get(bucket, {})
        if len(ps) > 1:
            primary = {j: h for j, h in ps.items() if h == "primary"}
            if len(primary) == 1:
                return primary
        return ps

    # ---- strong rules ---------------------------------------------------------------------------
    def unique_names(self) -> None:
        """Keys held by exactly one village and one place of a county; whole names before parts."""
        by_rank: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        for bucket, vs in self.v_bucket.items():
            ps = self._places(bucket)
            if len(vs) != 1 or len(ps) != 1 or bucket in self.city_keys:
                continue
            (i, vhow), = vs.items()
            (j, phow), = ps.items()
            if vhow == "part":
                by_rank[2].append((i, j, "name_part"))
            elif phow == "variant":
                by_rank[1].append((i, j, "name_variant"))
            else:
                by_rank[0].append((i, j, "name"))
        for rank in sorted(by_rank):
            self._accept(by_rank[rank])

    def settle_by_rural_district(self) -> None:
        """Repeated names: the rural districts' placed villages decide, with a margin both ways."""
        centre = self._rd_centres()
        picks: list[tuple[int, int, str]] = []
        for bucket, vs in self.v_bucket.items():
            ps = self._places(bucket)
            if not ps or (len(vs) == 1 and len(ps) == 1) or bucket in self.city_keys:
                continue
            free_p = [j for j in ps if j not in self.village_of]
            if all(i in self.place_of for i in vs) or not free_p:
                continue
            rd_of = {i: self.v_rd[i] for i in vs}
            if any(rd not in centre for rd in rd_of.values()):
                continue        # a candidate whose rural district is not located could be anywhere
            rds = list(rd_of.values())
            shared = {rd for rd in rds if rds.count(rd) > 1}
            d = {(i, j): _km(self.p_lon[j], self.p_lat[j], *centre[rd_of[i]]) for i in vs for j in ps}
            for j in free_p:
                i, clear = _nearest(list(vs), lambda i, j=j: d[(i, j)], group=rd_of.get)  # noqa: B023  (called here, before d changes)
                if not clear or i in self.place_of or rd_of[i] in shared or d[(i, j)] > SETTLE_MAX_KM:
                    continue
                back, clear = _nearest(list(ps), lambda jj, i=i: d[(i, jj)], group=lambda jj: jj)  # noqa: B023  (called here, before d changes)
                if clear and back == j:
                    picks.append((i, j, "rural_district"))
        self._accept(picks)

    # ---- weak rules -----------------------------------------------------------------------------
    def fuzzy(self) -> None:
        """One letter off or spelt with same-sounding letters; unique both ways among the county's names."""
        free_v: dict[str, list[int]] = defaultdict(list)
        all_v: dict[str, list[int]] = defaultdict(list)
        for i, (c, whole) in enumerate(zip(self.v_county, self.v_whole, strict=False)):
            if whole:
                all_v[c].append(i)
                if i not in self.place_of:
                    free_v[c].append(i)
        free_p: dict[str, list[int]] = defaultdict(list)
        for j, (c, primary) in enumerate(zip(self.p_county, self.p_primary, strict=False)):
            if c and primary and j not in self.village_of and self.group[j] == j:
                free_p[c].append(j)
        picks = []
        for c, vil in free_v.items():
            pls = free_p.get(c)
            if not pls:
                continue
            vk, pk = [self.v_whole[i] for i in vil], [self.p_primary[j] for j in pls]
            near = _close(self._fuzzy_keys(vk), self._fuzzy_keys(pk)) & ~np.equal.outer(
                np.array(vk, dtype=object), np.array(pk, dtype=object))
            back = _close(self._fuzzy_keys([self.p_primary[j] for j in pls]),
                          self._fuzzy_keys([self.v_whole[i] for i in all_v[c]]))
            for a, i in enumerate(vil):
                if len(self.v_whole[i]) < FUZZY_MIN_LENGTH or (c, self.v_whole[i]) in self.city_keys:
                    continue
                hits = np.flatnonzero(near[a])  # a place with the very same key was ambiguous: not fuzzy
                if len(hits) == 1 and back[hits[0]].sum() == 1:
                    picks.append((i, pls[int(hits[0])], "fuzzy"))
        self._accept(picks)

    @staticmethod
    def _fuzzy_keys(keys: list[str]) -> tuple[list[str], list[str]]:
        return keys, [k.translate(_SAME_SOUND) for k in keys]

    def transliterated(self) -> None:
        """Places with no Persian name: romanised consonants equal to one village's, unique both ways."""
        skel_v: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (c, name) in enumerate(zip(self.v_county, self.v["name"], strict=False)):
            s = persian_skeleton(_TRAILING_NUMBER.sub("", name))
            if len(s) >= SKELETON_MIN_LENGTH:
                skel_v[(c, s)].append(i)
        skel_p: dict[tuple[str, str], list[int]] = defaultdict(list)
        for j, (c, primary, variants, latin) in enumerate(zip(self.p_county, self.p_primary, self.p_variants,
                                                              self.p["name"].fillna(""), strict=False)):
            if c and not primary and not variants and latin:
                s = latin_skeleton(latin)
                if len(s) >= SKELETON_MIN_LENGTH:
                    skel_p[(c, s)].append(j)
        picks = [(skel_v[b][0], js[0], "transliteration") for b, js in skel_p.items()
                 if len(js) == 1 and len(skel_v.get(b, ())) == 1]
        self._accept(picks)

    def outside_county(self) -> None:
        """A place just across the county line, named as one village of the neighbouring county only."""
        if "near_county_ids" not in self.p.columns:
            return
        picks = []
        for j, near in enumerate(self.p["near_county_ids"]):
            if j in self.village_of or not isinstance(near, (list, tuple)) or not near:
                continue
            keys = ({self.p_primary[j]} | self.p_variants[j]) - {""}
            own = self.p_county[j]
            if own and any((own, k) in self.v_bucket for k in keys):
                continue      # its own county knows the name: it is not the neighbour's village
            found = set()
            for c in near:
                for k in keys:
                    vs = self.v_bucket.get((c, k))
                    if vs:
                        found.add(next(iter(vs)) if len(vs) == 1 and (c, k) not in self.city_keys else -1)
            if len(found) == 1 and -1 not in found:
                picks.append((found.pop(), j, "outside_county"))
        self._accept(picks)

    # ---- bookkeeping ----------------------------------------------------------------------------
    def _accept(self, picks: list[tuple[int, int, str]]) -> None:
        """Accept the pairs whose village and place are free and named by no other pair of the round."""
        by_v: dict[int, set[int]] = defaultdict(set)
        by_p: dict[int, set[int]] = defaultdict(set)
        for i, j, _ in picks:
            by_v[i].add(j)
            by_p[j].add(i)
        for i, j, method in picks:
            if len(by_v[i]) != 1 or len(by_p[j]) != 1 or i in self.place_of or j in self.village_of:
                continue
            self.place_of[i] = j
            for member in self.members[int(self.group[j])]:
                self.village_of[member] = i
            self.method[i] = method

    def _rd_centres(self) -> dict[str, tuple[float, float]]:
        """Median point of each rural district's strongly placed villages (with enough of them)."""
        pts: dict[str, list[int]] = defaultdict(list)
        for i, j in self.place_of.items():
            if self.method[i] in STRONG_METHODS:
                pts[self.v_rd[i]].append(j)
        return {rd: (float(np.median(self.p_lon[js])), float(np.median(self.p_lat[js])))
                for rd, js in pts.items() if len(js) >= MIN_PLACED_TO_SETTLE}

    def result(self) -> pd.DataFrame:
        rows = sorted(self.place_of.items())
        vi = np.array([i for i, _ in rows], dtype=np.int64)
        pj = np.array([j for _, j in rows], dtype=np.int64)
        take = lambda col: self.v[col].to_numpy(dtype=object)[vi]  # noqa: E731
        out = pd.DataFrame({
            "village_code": take("village_code"), "village_id": take("village_id"), "name": take("name"),
            "county_id": take("county_id"), "rural_district_id": take("rural_district_id"),
            "lon": self.p_lon[pj].round(6), "lat": self.p_lat[pj].round(6),
            "source_id": self.p["source_id"].to_numpy(dtype=object)[pj],
            "geonameid": (self.p["geonameid"].to_numpy(dtype=object)[pj] if "geonameid" in self.p.columns
                          else np.full(len(pj), "", dtype=object)),
            "place_name": [self._label(j) for j in pj],
            "method": [self.method[i] for i, _ in rows],
            "spread_km": [self._spread(j) for j in pj],
        })
        out["strength"] = np.where(out["method"].isin(STRONG_METHODS), "strong", "weak")
        _flag_outliers(out)
        return out[list(COLUMNS)]

    def _label(self, j: int) -> str:
        name = self.p["name_fa"].iat[j]
        return name if isinstance(name, str) and name else str(self.p["name"].iat[j])

    def _spread(self, j: int) -> float:
        js = self.members[int(self.group[j])]
        if len(js) < 2:
            return 0.0
        return round(max(float(_km(self.p_lon[a], self.p_lat[a], self.p_lon[b], self.p_lat[b]))
                         for a in js for b in js), 2)


def _flag_outliers(points: pd.DataFrame) -> None:
    """``km_to_rural_district`` (leave-one-out median of the district's strong points) and ``outlier``."""
    km = np.full(len(points), np.nan)
    strong = (points["strength"] == "strong").to_numpy()
    lon = points["lon"].to_numpy(float)
    lat = points["lat"].to_numpy(float)
    for idx in points.groupby("rural_district_id").indices.values():
        ref = idx[strong[idx]]
        for i in idx:
            others = ref[ref != i]
            if len(others) >= 2:
                km[i] = _km(lon[i], lat[i], float(np.median(lon[others])), float(np.median(lat[others])))
    points["km_to_rural_district"] = np.round(km, 2)
    typical = points.groupby("rural_district_id")["km_to_rural_district"].transform("median").to_numpy()
    with np.errstate(invalid="ignore"):
        points["outlier"] = (km > OUTLIER_MIN_KM) & (km > OUTLIER_FACTOR * typical)


def _nearest(items: list, dist: Callable, group: Callable) -> tuple:
    """The nearest item, and whether it wins with a clear margin over the nearest item of another group."""
    ranked = sorted(items, key=dist)
    best = ranked[0]
    rivals = [x for x in ranked[1:] if group(x) != group(best)]
    if not rivals:
        return best, True
    d1, d2 = dist(best), dist(rivals[0])
    return best, d2 >= MARGIN_RATIO * d1 and d2 - d1 >= MARGIN_KM


def _close(a: tuple[list[str], list[str]], b: tuple[list[str], list[str]]) -> np.ndarray:
    """Boolean matrix: key a[i] equals b[j], is one edit from it, or equals it once same-sounding
    letters are folded."""
    edits = cdist(a[0], b[0], scorer=Levenshtein.distance, score_cutoff=1, workers=1)
    sound = np.equal.outer(np.array(a[1], dtype=object), np.array(b[1], dtype=object))
    return (edits <= 1) | sound


__all__: Sequence[str] = ("match_villages", "village_keys", "place_keys", "persian_skeleton", "latin_skeleton",
                          "name_key", "COLUMNS", "STRONG_METHODS", "WEAK_METHODS")
