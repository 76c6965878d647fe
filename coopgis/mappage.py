"""What a map page is rendered from (:class:`Page`, :func:`page_facts`) and where: in a child process.

folium and branca, which turn a preset into the page (``mapview``), cost each worker 13 MB once imported;
a page is rendered once per preset and dataset, so the server renders it in a short child process
(:func:`render_page`, about 1.5 s) and never imports them itself. The map colours live here too: KML
downloads colour placemarks with them.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from coopgis.dataset import Dataset
from coopgis.figures import class_breaks
from coopgis.maps import MEASURES, Preset

log = logging.getLogger("coopgis")
RENDER_TIMEOUT_SECONDS = 120

KIND_COLORS = {
    "production": "#1b9e77", "distribution": "#d95f02", "services": "#7570b3", "housing": "#e7298a",
    "women": "#c51b7d", "school": "#66a61e", "national_inclusive": "#e6ab02", "knowledge_based": "#1f78b4",
    "county_development": "#a6761d", "public_joint_stock": "#666666", "rural": "#33a02c",
    "border_dwellers": "#6a3d9a", "union": "#b15928",
}

CLASS_COLORS = {"less_developed_2019": "#b2182b", "deprived_2009": "#ef8a62", "not_listed": "#f4f1e8",
                "no_data": "#9e9e9e", "not_deprived": "#d1e5f0"}

INDICATOR_COLUMNS = {"unemployment": "unemployment_rate_pct", "illiteracy": "illiteracy_pct_15plus"}


@dataclass
class Page:
    """Where a rendered page takes its assets and data from."""

    base: str                        # the app's root path; tiles, API links and /vendor hang off it
    web_dir: Path
    facts: dict                      # from :func:`page_facts`
    inline: bool = False             # standalone file: every script, style and font inside the page
    basemap_url: str | None = None
    data: dict | None = None         # standalone file: embedded GeoJSON by source
    note: str = ""                   # standalone file: what the embedded selection is
    extra: dict = field(default_factory=dict)


def page_facts(dataset: Dataset, cluster_max_zoom: int) -> dict:
    """What a map page needs to know about the data: class breaks, province extents, sources, sample flag."""
    provinces = dataset.collections["provinces"].frame
    counties = dataset.collections["counties"].frame
    deprivation = dataset.collections["deprivation"].frame
    sources = {}
    for cls in ("less_developed_2019", "deprived_2009"):
        urls = deprivation.loc[deprivation["deprivation_class"] == cls, "source_url"].dropna()
        if len(urls):
            sources[cls] = str(urls.iloc[0])
    bounds = provinces.geometry.bounds.round(3)
    return {
        "breaks": {name: {m: class_breaks(frame[m].to_numpy()) for m in MEASURES if m in frame}
                   for name, frame in (("provinces", provinces), ("counties", counties))},
        "indicatorBreaks": {name: {k: class_breaks(frame[c].to_numpy()) for k, c in INDICATOR_COLUMNS.items()
                                   if c in frame}
                            for name, frame in (("provinces", provinces), ("counties", counties))},
        "provinceNames": dict(zip(provinces["iso_3166_2"], provinces["name_fa"], strict=True)),
        "classesPresent": sorted(set(deprivation["deprivation_class"].dropna())),
        "provinces": {iso: [float(v) for v in b]
                      for iso, b in zip(provinces["iso_3166_2"], bounds.to_numpy(), strict=False)},
        "sources": sources,
        "synthetic": dataset.synthetic,
        "clusterMaxZoom": cluster_max_zoom,
        "total": int(len(dataset.cooperatives)),
    }


def render_page(preset: Preset, page: Page) -> str:
    """The HTML page of a preset, rendered by ``python -m coopgis.mapview`` in a child process (in this
    process when the child fails: the page is served either way, and the failure logged)."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run([sys.executable, "-m", "coopgis.mapview"], input=pickle.dumps((preset, page)),
                              capture_output=True, env=env, timeout=RENDER_TIMEOUT_SECONDS, check=False)
        if done.returncode == 0:
            return done.stdout.decode("utf-8")
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
    except (OSError, subprocess.SubprocessError) as exc:
        reason = [f"{type(exc).__name__}: {exc}"]
    log.warning("rendering map %s in a child process failed (%s): rendered here", preset.name, reason[0])
    from coopgis.mapview import render_preset

    return render_preset(preset, page)
