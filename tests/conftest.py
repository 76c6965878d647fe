"""Shared fixtures: the shipped boundaries and one geocoder for the whole session."""

from __future__ import annotations

import pytest

from coopgis.boundaries import load_boundaries
from coopgis.geocode import Geocoder


@pytest.fixture(scope="session")
def boundaries():
    return load_boundaries()


@pytest.fixture(scope="session")
def geocoder(boundaries):
    return Geocoder(boundaries)
