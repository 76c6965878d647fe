"""Schemathesis against the app's own OpenAPI document: no server errors, answers as documented.

All of schemathesis' checks run except ``positive_data_acceptance``: a value can be
of the documented type and still name no kind, province or format ("kind=xyz"),
and the app rightly answers those with a 400 problem. A bounded number of examples
per operation keeps it within CI's minutes; raise COOPGIS_FUZZ_EXAMPLES for more.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

EXAMPLES = int(os.environ.get("COOPGIS_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def api_schema(client):
    return schemathesis.openapi.from_asgi("/api", client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case):
    from schemathesis.checks import positive_data_acceptance

    case.call_and_validate(excluded_checks=[positive_data_acceptance])
