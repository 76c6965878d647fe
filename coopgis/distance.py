"""Distances on the Earth: the one home of the Earth's radius and the great-circle formula.

Not here: the Web Mercator sphere of the tile grid (``tiles.py`` uses the WGS 84
semi-major axis, as the tile scheme defines it).
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088            # mean radius (IUGG)


def haversine_km(lon1, lat1, lon2, lat2):
    """Great-circle distance in kilometres; scalars give a float, arrays an array."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.subtract(lon2, lon1)) / 2) ** 2)
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d
