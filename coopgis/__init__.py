"""coopgis: a geospatial service for Iran's cooperative sector.

The location layer (registry -> geocoder -> joins -> store) and the service built on it.
"""

__version__ = "0.1.0"
