"""The management dashboard's figures: counts, members, jobs, shares and per-capita figures per group.

:class:`StatsIndex` is made once per dataset: an integer code per cooperative for every grouping
(province, county, kind, sector, status, Jalali registration year) and the 0/1 columns that are
summed. :func:`group_stats` is then one ``np.bincount`` per figure over the selected rows, so
the dashboard answers in milliseconds at 100,000 cooperatives. The API (``/stats``), its CSV and
the dashboard all use it, so their numbers agree.

Per-capita figures (per 10,000 inhabitants, census 1395) and census indicators come from
:mod:`coopgis.figures` for province and county rows: an area's figure under the thematic
filters (kind, sector, status ...), divided like by like (a county by its census unit).

Not here: which rows a filter selects (``filters.py``), the census tables (``census.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coopgis.figures import PER_CAPITA, Figures
from coopgis.text import to_persian_digits
from coopgis.vocab import KINDS, SECTORS, STATUSES, label

GROUPS = ("province", "county", "kind", "sector", "status", "year")
COUNT_FIELDS = ("cooperatives", "members", "jobs", "women_led", "troubled", "in_deprived_areas", "deprived_share",
                "deprivation_unknown", "border_dwellers", "quota_600_usd", "quota_300_usd", "quota_unknown")
CENSUS_FIELDS = ("census_unit", "census_unit_name", "unit_link", "population_1395", *PER_CAPITA,
                 "unemployment_rate_pct", "illiteracy_pct_15plus")
FIELDS = COUNT_FIELDS + CENSUS_FIELDS
_SUMMED = ("members", "jobs", "women_led", "troubled", "in_deprived_areas", "deprivation_unknown",
           "border_dwellers", "quota_600_usd", "quota_300_usd")


@dataclass
class Grouping:
    """One way of grouping the cooperatives: a code per row (-1: unknown) and the key and name of each code."""

    codes: np.ndarray
    keys: list[str]
    names: list[str | None]


class StatsIndex:
    """Per-row codes and summable columns of a dataset's cooperatives, made once."""

    def __init__(self, cooperatives: pd.DataFrame, figures, boundaries):
        c = cooperatives
        n = len(c)
        self.n = n
        self.figures = figures
        census = boundaries.census()
        b_prov = boundaries.provinces
        b_county = boundaries.counties
        self.groupings: dict[str, Grouping] = {
            "province": Grouping(figures.province_row, b_prov["iso_3166_2"].astype(str).tolist(),
                                 b_prov["name_fa"].tolist()),
            "county": Grouping(figures.county_row, b_county["osm_relation_id"].astype(str).tolist(),
                               b_county["display_name_fa"].tolist()),
        }
        for by, terms in (("kind", KINDS), ("sector", SECTORS), ("status", STATUSES)):
            codes, uniques = pd.factorize(c[by].astype(object).where(c[by].notna(), None), use_na_sentinel=True)
            keys = [str(u) for u in uniques]
            self.groupings[by] = Grouping(codes.astype(np.int16), keys, [label(terms, k) for k in keys])
        years = pd.array(c["registered_year"], dtype="Int64") if "registered_year" in c else pd.array([None] * n,
                                                                                                    dtype="Int64")
        codes, uniques = pd.factorize(pd.Series(years), use_na_sentinel=True, sort=True)
        keys = [str(int(u)) for u in uniques]
        self.groupings["year"] = Grouping(codes.astype(np.int16), keys, [to_persian_digits(k) for k in keys])

        quota = pd.to_numeric(c["border_quota_usd"], errors="coerce").to_numpy(float) if n else np.zeros(0)
        deprived = pd.array(c["deprived"], dtype="boolean")
        border = (c["kind"] == "border_dwellers").to_numpy(bool)
        # Flags as booleans (a byte a row, counted by np.bincount as 0 and 1) rather than doubles
        self.columns = {
            "members": figures.members, "jobs": figures.jobs,
            "women_led": pd.array(c["women_led"], dtype="boolean").fillna(False).to_numpy(bool),
            "troubled": (c["status"] == "troubled").to_numpy(bool),
            "in_deprived_areas": deprived.fillna(False).to_numpy(bool),
            "deprivation_unknown": np.asarray(pd.isna(deprived), bool),
            "border_dwellers": border,
            "quota_600_usd": quota == 600, "quota_300_usd": quota == 300,
        }
        self.county_census = census.counties.reindex(b_county["osm_relation_id"]) if census is not None else None
        self.province_census = census.provinces.reindex(b_prov["iso_3166_2"]) if census is not None else None
        self.national_population = census.national_population if census is not None else None


def group_stats(index: StatsIndex, by: str, mask: np.ndarray | None = None, area: Figures | None = None,
                whole_country: bool = True) -> list[dict]:
    """One row per group (sorted by cooperatives, descending), then the ``unknown`` group, then ``total``.

    ``mask`` selects the cooperatives (all when None). ``area`` holds the per-capita figures of
    provinces and counties (under the thematic filters); ``whole_country`` says the selection is
    not cut to a place, so the total row may be divided by the national population.
    """
    if by not in GROUPS:
        raise ValueError(f"by must be one of {GROUPS}")
    g = index.groupings[by]
    sel = np.ones(index.n, bool) if mask is None else np.asarray(mask, bool)
    codes = g.codes[sel]
    known = codes >= 0
    m = len(g.keys) + 1                      # the last slot: unknown
    slot = np.where(known, codes, m - 1)
    sums = {"cooperatives": np.bincount(slot, minlength=m)}
    for name in _SUMMED:
        sums[name] = np.bincount(slot, weights=index.columns[name][sel], minlength=m)
    present = np.flatnonzero(sums["cooperatives"][:-1])
    present = present[np.argsort(-sums["cooperatives"][present], kind="stable")]
    rows = [_row(g.keys[i], g.names[i], sums, i) for i in present.tolist()]
    if sums["cooperatives"][-1]:
        rows.append(_row("unknown", "نامشخص", sums, m - 1))
    if area is None:
        area = index.figures.of()
    for r, i in zip(rows, [*present.tolist(), -1], strict=False):
        r.update(_census_fields(index, by, i if r["key"] != "unknown" else -1, area))
    total = {k: v.sum() for k, v in sums.items()}
    rows.append(_row("total", "کل کشور" if whole_country else "جمع", {k: np.array([v]) for k, v in total.items()}, 0))
    rows[-1].update(_census_fields(index, "total", -1, area))
    if whole_country and index.national_population:
        for c in ("cooperatives", "members", "jobs"):
            rows[-1][f"{c}_per_10k"] = round(rows[-1][c] * 10_000 / index.national_population, 3)
        rows[-1]["population_1395"] = index.national_population
    return rows


def _row(k: str, name: str | None, sums: dict[str, np.ndarray], i: int) -> dict:
    n = int(sums["cooperatives"][i])
    v = {name_: int(round(float(a[i]))) for name_, a in sums.items()}
    q600, q300 = v["quota_600_usd"], v["quota_300_usd"]
    return {
        "key": k, "name": name, "cooperatives": n, "members": v["members"], "jobs": v["jobs"],
        "women_led": v["women_led"], "troubled": v["troubled"], "in_deprived_areas": v["in_deprived_areas"],
        "deprived_share": round(v["in_deprived_areas"] / n, 4) if n else 0.0,
        "deprivation_unknown": v["deprivation_unknown"],
        "border_dwellers": v["border_dwellers"], "quota_600_usd": q600, "quota_300_usd": q300,
        "quota_unknown": v["border_dwellers"] - q600 - q300,
    }


def _census_fields(index: StatsIndex, by: str, i: int, area: Figures) -> dict:
    """Census columns of a row: filled for provinces and counties, empty otherwise."""
    out: dict = dict.fromkeys(CENSUS_FIELDS)
    if i < 0 or by not in ("province", "county"):
        return out
    level = "provinces" if by == "province" else "counties"
    for c in PER_CAPITA:
        out[c] = area.value(level, c, i)
    table = index.province_census if by == "province" else index.county_census
    if table is None:
        return out
    r = table.iloc[i]
    pop = r["population"]
    out["population_1395"] = None if pd.isna(pop) else int(pop)
    for c in ("unemployment_rate_pct", "illiteracy_pct_15plus"):
        out[c] = None if pd.isna(r[c]) else float(r[c])
    if by == "county":
        for c in ("census_unit", "census_unit_name", "unit_link"):
            out[c] = r[c] if isinstance(r[c], str) and r[c] else None
    return out


__all__ = ["GROUPS", "FIELDS", "COUNT_FIELDS", "CENSUS_FIELDS", "StatsIndex", "group_stats"]
