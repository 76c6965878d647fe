"""Batch geocoding of a CSV file with an ``address`` column (``coopgis geocode --batch``).

Every input row gives one output row, in order, with all its columns kept. The
added columns are ``lon, lat, precision, confidence, uncertainty_m, province`` (ISO 3166-2),
``county`` (Persian display name) and ``geocode_issues``. An input column that
already has one of these names is kept as ``<name>_input``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coopgis.files import write_private
from coopgis.geocode import Geocoder

ADDED = ("lon", "lat", "precision", "confidence", "uncertainty_m", "province", "county", "geocode_issues")


class BatchError(Exception):
    """The input cannot be read or has no ``address`` column."""


def geocode_csv(src: str | Path, dst: str | Path, geocoder: Geocoder) -> int:
    """Geocode ``src`` into ``dst`` (UTF-8 with BOM, so Excel shows Persian); return the row count."""
    table = read_table(src)
    if "address" not in table.columns:
        raise BatchError(f"{src} has no `address` column (columns: {', '.join(map(str, table.columns))})")
    results = geocoder.geocode_many(pd.DataFrame({"address": table["address"]}))
    out = table.rename(columns={c: f"{c}_input" for c in ADDED if c in table.columns})
    out["lon"] = results["lon"].round(6)
    out["lat"] = results["lat"].round(6)
    out["precision"] = results["precision"]
    out["confidence"] = results["confidence"]
    out["uncertainty_m"] = results["uncertainty_m"]
    out["province"] = results["province"]
    out["county"] = results["county"]
    out["geocode_issues"] = [";".join(i) for i in results["issues"]]
    # The other columns pass through and may be personal (names, phones): the file is the user's only.
    write_private(dst, out.to_csv(index=False).encode("utf-8-sig"))
    return len(out)


def read_table(src: str | Path) -> pd.DataFrame:
    """Read a CSV as text: UTF-8 (with or without BOM) or Windows-1256."""
    path = Path(src)
    if not path.is_file():
        raise BatchError(f"{src}: no such file")
    if path.stat().st_size == 0:
        raise BatchError(f"{src} is empty")
    for encoding in ("utf-8-sig", "cp1256"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise BatchError(f"{src} is not a readable CSV: {exc}") from exc
    raise BatchError(f"{src} is neither UTF-8 nor Windows-1256 text")
