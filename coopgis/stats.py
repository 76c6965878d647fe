"""The management dashboard's figures: counts, members, jobs and shares per group.

Pure functions over the cooperatives table; the API, the dashboard and the CSV
download all use :func:`group_stats`, so their numbers agree.
"""

from __future__ import annotations

import pandas as pd

from coopgis.vocab import KINDS, SECTORS, label

GROUPS = ("province", "county", "kind", "sector")
FIELDS = ("cooperatives", "members", "jobs", "women_led", "troubled", "in_deprived_areas", "deprived_share",
          "deprivation_unknown", "border_dwellers", "quota_600_usd", "quota_300_usd", "quota_unknown")


def group_stats(coops: pd.DataFrame, by: str, names: dict[str, str] | None = None) -> list[dict]:
    """One row per group (sorted by cooperatives, descending) and a last row ``total``."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {GROUPS}")
    key = "county_osm" if by == "county" else by
    frame = coops.assign(
        _one=1,
        _members=pd.to_numeric(coops["members"], errors="coerce").fillna(0).astype("int64"),
        _jobs=pd.to_numeric(coops["jobs"], errors="coerce").fillna(0).astype("int64"),
        _women=coops["women_led"].astype("boolean").fillna(False).astype(int),
        _troubled=(coops["status"] == "troubled").astype(int),
        _deprived=coops["deprived"].astype("boolean").fillna(False).astype(int),
        _unknown=coops["deprived"].isna().astype(int),
        _border=(coops["kind"] == "border_dwellers").astype(int),
        _q600=(coops["border_quota_usd"] == 600).fillna(False).astype(int),
        _q300=(coops["border_quota_usd"] == 300).fillna(False).astype(int),
    )
    frame["_qunknown"] = frame["_border"] - frame["_q600"] - frame["_q300"]
    sums = ["_one", "_members", "_jobs", "_women", "_troubled", "_deprived", "_unknown", "_border",
            "_q600", "_q300", "_qunknown"]
    grouped = frame.groupby(frame[key].astype(object).where(frame[key].notna(), "unknown"))[sums].sum()
    grouped = grouped.sort_values("_one", ascending=False)
    rows = [_row(str(k), _name(by, k, coops, names), v) for k, v in grouped.iterrows()]
    rows.append(_row("total", "کل کشور", frame[sums].sum()))
    return rows


def _row(k: str, name: str | None, v: pd.Series) -> dict:
    n = int(v["_one"])
    return {
        "key": k, "name": name, "cooperatives": n, "members": int(v["_members"]), "jobs": int(v["_jobs"]),
        "women_led": int(v["_women"]), "troubled": int(v["_troubled"]),
        "in_deprived_areas": int(v["_deprived"]),
        "deprived_share": round(int(v["_deprived"]) / n, 4) if n else 0.0,
        "deprivation_unknown": int(v["_unknown"]),
        "border_dwellers": int(v["_border"]), "quota_600_usd": int(v["_q600"]), "quota_300_usd": int(v["_q300"]),
        "quota_unknown": int(v["_qunknown"]),
    }


def _name(by: str, k, coops: pd.DataFrame, names: dict[str, str] | None) -> str | None:
    if k == "unknown":
        return "نامشخص"
    if names and str(k) in names:
        return names[str(k)]
    if by == "kind":
        return label(KINDS, k)
    if by == "sector":
        return label(SECTORS, k)
    if by == "province":
        hit = coops.loc[coops["province"] == k, "province_name"]
        return hit.iloc[0] if len(hit) else None
    if by == "county":
        hit = coops.loc[coops["county_osm"] == k, "county"]
        return hit.iloc[0] if len(hit) else None
    return None


__all__ = ["GROUPS", "FIELDS", "group_stats"]
