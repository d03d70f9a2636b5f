"""Schemathesis against intake's own OpenAPI, on the running service: no 5xx, no schema-violating response.

Status codes outside the document (401/403/409/413/429 refusals) are not failures here; what must hold is
that nothing crashes and every documented response matches its schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.e2e.conftest import DEV_KEYS

pytestmark = pytest.mark.e2e
SCOPE_OF = {"/v1/intake/grid": "grid", "/v1/intake/cases/{case_id}/contact": "operator"}


def _fuzz(operation, key: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def exercise(case):
        case.call_and_validate(
            headers={"X-API-Key": key},
            checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        )

    exercise()


def test_intake_answers_every_generated_request_without_a_5xx_or_a_schema_violation(system):
    # Driven by hand: schemathesis's pytest plugin (from_fixture) does not run under pytest 9 yet.
    schema = schemathesis.openapi.from_url(f"{system.url('intake')}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        _fuzz(operation, DEV_KEYS[SCOPE_OF.get(operation.path, "hotline")])
