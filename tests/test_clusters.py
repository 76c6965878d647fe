"""A cluster's contents: ``/clusters/{z}/{x}/{y}`` lists exactly the cooperatives the cluster counted."""

from __future__ import annotations

import morecantile
import numpy as np
import pytest

TMS = morecantile.tms.get("WebMercatorQuad")


def _clusters(client, z: int, query: str = "") -> list[dict]:
    """Every cluster of zoom z over Iran, from the served GeoJSON tiles."""
    out = []
    for t in TMS.tiles(44.0, 25.0, 63.4, 39.8, [z]):
        fc = client.get(f"/tiles/cooperatives/{z}/{t.x}/{t.y}.geojson{query}").json()
        out += [f["properties"] for f in fc["features"] if f["properties"]["cluster"]]
    return out


@pytest.mark.parametrize("z,query", [(4, ""), (6, ""), (8, ""), (5, "?kind=production"),
                                     (7, "?status=troubled"), (9, "?sector=beekeeping,carpet")])
def test_numbers_matched_equal_every_clusters_count(client, z, query):
    clusters = _clusters(client, z, query)
    assert clusters, "no cluster at this zoom"
    for c in clusters:
        sep = "&" if query else "?"
        body = client.get(f"/clusters/{c['cell']}{query}{sep}limit=1").json()
        assert body["numberMatched"] == c["count"], c["cell"]
        assert body["numberReturned"] == 1


def test_a_clusters_pages_hold_its_members_once_each_and_nothing_else(client, dataset):
    clusters = sorted(_clusters(client, 5), key=lambda c: -c["count"])
    biggest = clusters[0]
    cz, cx, cy = (int(v) for v in biggest["cell"].split("/"))
    seen, url = [], f"/clusters/{biggest['cell']}?limit=7"
    while url:
        body = client.get(url).json()
        seen += body["features"]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = nxt[0].split("testserver", 1)[-1] if nxt else None
    ids = [f["id"] for f in seen]
    assert len(ids) == len(set(ids)) == biggest["count"]
    # Independent oracle: morecantile puts each member's point in the cluster's cell.
    for f in seen:
        lon, lat = f["geometry"]["coordinates"]
        t = TMS.tile(lon, lat, cz)
        assert (t.x, t.y) == (cx, cy)
    coll = dataset.collections["cooperatives"]
    lon, lat = coll.points
    ok = np.isfinite(lon) & np.isfinite(lat)
    inside = [i for i in np.flatnonzero(ok) if tuple(TMS.tile(lon[i], lat[i], cz))[:2] == (cx, cy)]
    assert len(inside) == biggest["count"]
    props = seen[0]["properties"]
    assert {"name", "kind_fa", "place", "precision", "uncertainty_m"} <= set(props)
    assert "phone" not in props


def test_cluster_cells_outside_the_grid_or_zoom_are_refused(client):
    assert client.get("/clusters/5/40/3").status_code == 404
    assert client.get("/clusters/2/1/1").status_code == 400            # shallower than any cluster cell
    r = client.get("/clusters/5/20/12?limit=100000")
    assert r.status_code == 200 and r.json()["numberReturned"] <= 100
