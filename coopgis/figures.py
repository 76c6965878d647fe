"""Per-area figures: cooperatives, members and jobs per province and county, and per 10,000 inhabitants.

:class:`AreaFigures` knows, once per dataset, which province row and which county row each
cooperative counts in, and what a per-capita figure divides by (census 1395):

- a province: its cooperatives over its census population;
- a county: the cooperatives of **all** counties of its census unit (the 1395 county it lies
  in, see :mod:`coopgis.census`) over the unit's population, so like is divided by like; a
  county with no census unit gets no per-capita figure (None), never a 1395 population over a
  smaller polygon of today.

:meth:`AreaFigures.of` takes a boolean mask of the cooperatives (a filter) and answers with one
``np.bincount`` per figure, so a filtered choropleth costs about a millisecond at 100,000
cooperatives. The boundary collections, the polygon tiles and ``/stats`` all read these numbers.

Not here: what a filter selects (``filters.py``), drawing (``tiles.py``, ``mapview.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coopgis.boundaries import Boundaries
from coopgis.census import PER

COUNTS = ("cooperatives", "members", "jobs")
PER_CAPITA = tuple(f"{c}_per_10k" for c in COUNTS)
FIGURES = (*COUNTS, "in_deprived_areas", *PER_CAPITA)


@dataclass(frozen=True)
class Figures:
    """Figures of one selection: arrays aligned with the province rows and the county rows of the boundaries."""

    provinces: dict[str, np.ndarray]
    counties: dict[str, np.ndarray]
    _merged: dict = field(default_factory=dict, repr=False, compare=False)

    def merged(self, level: str, props: list[dict]) -> list[dict]:
        """``props`` (one dict per row of a level) with these figures in place of theirs, made once per level."""
        if level not in self._merged:
            arrays = self.provinces if level == "provinces" else self.counties
            names = [f for f in FIGURES if props and f in props[0]]
            columns = []
            for f in names:     # whole columns at once: the same values as :meth:`value`
                if f in PER_CAPITA:
                    columns.append([None if v != v else v for v in np.round(arrays[f], 3).tolist()])
                else:
                    columns.append(arrays[f].astype(np.int64).tolist())
            self._merged[level] = [{**p, **dict(zip(names, values, strict=True))}
                                   for p, values in zip(props, zip(*columns, strict=True), strict=True)]
        return self._merged[level]

    def value(self, level: str, name: str, row: int):
        """One figure as a plain value (int, float rounded to 3 places, or None)."""
        v = (self.provinces if level == "provinces" else self.counties)[name][row]
        if name in PER_CAPITA:
            return None if not np.isfinite(v) else round(float(v), 3)
        return int(v)


class AreaFigures:
    """Where each cooperative of a dataset counts, and the census figures per-capita divides by."""

    def __init__(self, cooperatives: pd.DataFrame, boundaries: Boundaries):
        provinces = pd.Index(boundaries.provinces["iso_3166_2"].astype(str))
        counties = pd.Index(boundaries.counties["osm_relation_id"].astype("int64"))
        self.n_provinces, self.n_counties = len(provinces), len(counties)
        self.province_row = provinces.get_indexer(cooperatives["province"].astype(object).where(
            cooperatives["province"].notna(), None))
        osm = pd.array(cooperatives["county_osm"], dtype="Int64")
        self.county_row = counties.get_indexer(pd.Series(osm).astype("float64").fillna(-1).astype("int64"))
        self.members = pd.to_numeric(cooperatives["members"], errors="coerce").fillna(0).to_numpy(np.float64)
        self.jobs = pd.to_numeric(cooperatives["jobs"], errors="coerce").fillna(0).to_numpy(np.float64)
        self.deprived = pd.array(cooperatives["deprived"], dtype="boolean").fillna(False).to_numpy(bool)

        census = boundaries.census()
        self.province_population = np.full(self.n_provinces, np.nan)
        self.unit_of_county = np.full(self.n_counties, -1, np.int64)
        self.unit_population = np.zeros(0)
        if census is not None:
            self.province_population = census.provinces["population"].reindex(provinces).to_numpy(float)
            table = census.counties.reindex(counties)
            units = table["census_unit"].fillna("")
            codes, uniques = pd.factorize(units.where(units != "", None), use_na_sentinel=True)
            self.unit_of_county = codes.astype(np.int64)
            pops = table["population"].to_numpy(float)
            self.unit_population = np.full(len(uniques), np.nan)
            has = codes >= 0
            self.unit_population[codes[has]] = pops[has]
        self._cache: dict | None = None

    def of(self, mask: np.ndarray | None = None) -> Figures:
        """The figures of the cooperatives in ``mask`` (all of them when None)."""
        if mask is None and self._cache is not None:
            return self._cache["all"]
        sel = np.ones(len(self.county_row), bool) if mask is None else np.asarray(mask, bool)
        out = Figures(self._sums(self.province_row, self.n_provinces, sel),
                      self._sums(self.county_row, self.n_counties, sel))
        with np.errstate(invalid="ignore", divide="ignore"):
            for c in COUNTS:
                pop = self.province_population
                out.provinces[f"{c}_per_10k"] = np.where(pop > 0, out.provinces[c] * PER / pop, np.nan)
            unit = self.unit_of_county
            has = unit >= 0
            n_units = len(self.unit_population)
            for c in COUNTS:
                per_unit = np.bincount(unit[has], weights=out.counties[c][has], minlength=n_units)
                value = np.full(self.n_counties, np.nan)
                value[has] = per_unit[unit[has]] * PER / self.unit_population[unit[has]]
                out.counties[f"{c}_per_10k"] = value
        if mask is None:
            self._cache = {"all": out}
        return out

    def _sums(self, row: np.ndarray, n: int, sel: np.ndarray) -> dict[str, np.ndarray]:
        ok = sel & (row >= 0)
        r = row[ok]
        return {"cooperatives": np.bincount(r, minlength=n).astype(np.int64),
                "members": np.bincount(r, weights=self.members[ok], minlength=n).astype(np.int64),
                "jobs": np.bincount(r, weights=self.jobs[ok], minlength=n).astype(np.int64),
                "in_deprived_areas": np.bincount(r[self.deprived[ok]], minlength=n).astype(np.int64)}

    def unit_counties(self) -> dict[int, np.ndarray]:
        """County rows of each census unit (for the hand computation in tests and the item pages)."""
        out: dict[int, list[int]] = {}
        for row, unit in enumerate(self.unit_of_county.tolist()):
            if unit >= 0:
                out.setdefault(unit, []).append(row)
        return {u: np.array(rows) for u, rows in out.items()}


def class_breaks(values: np.ndarray, classes: int = 5) -> list[float]:
    """Upper bounds of the lower ``classes - 1`` classes: quantiles of the positive values, increasing.

    Bounds are rounded to two significant digits; whole numbers (at least 1) when the values are counts.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return []
    whole = bool(np.all(v == np.round(v)))
    out: list[float] = []
    for q in np.quantile(v, np.linspace(0, 1, classes + 1)[1:-1]):
        b = _nice(float(q), whole)
        if not out or b > out[-1]:
            out.append(b)
    return out


def _nice(x: float, whole: bool) -> float:
    """x rounded to two significant digits (a whole number of at least 1 for counts)."""
    if whole and x <= 1:
        return 1
    if x <= 0:
        return 0.0
    r = round(x, 1 - int(np.floor(np.log10(x))))
    return int(r) if whole else float(r)
