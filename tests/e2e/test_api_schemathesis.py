"""Schemathesis against every service's own OpenAPI on the running system: no 5xx, no response that
contradicts its documented schema or media type.

Each request carries a key that holds the route's scopes (read from the route's OpenAPI ``security``), so
generated data reaches the handlers rather than stopping at 401/403. Case ids are drawn from generated
strings and from a few real cases, so actions also run against real state (accept, reply, return, pause
...), not only against 404. Status codes the document does not list (401/403/404/409/413/429 refusals)
are not failures here; what must hold is that nothing crashes and every documented answer matches.

Operations that change district-wide configuration are kept off the shared system's live data: holiday
tables are published for years no test case reaches, and the responsibility matrix is restored after.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from devtools.sample import hotline_order
from devtools.system import SERVICES
from services.routing.refdata_files import read_bundle
from tests.e2e.api_surface import dev_clients, dev_key, operations

pytestmark = pytest.mark.e2e
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# Examples per operation: small in CI (all five services within about a minute on 2 cores); raise it
# (GRIDLINE_TEST_FUZZ_EXAMPLES=200) for a deeper search.
EXAMPLES_PER_OPERATION = int(os.environ.get("GRIDLINE_TEST_FUZZ_EXAMPLES", "15"))
# Keys fuzzing may use; per operation, those holding its scopes. dept-zjj owns the real cases below.
FUZZING_CLIENTS = (
    "operator-console",
    "dept-zjj",
    "dept-cgj",
    "hotline-12345",
    "grid-app-mingshui",
    "open311-demo-client",
    "operator-pii-officer",
    "sre",
)
FAR_YEARS = st.integers(2090, 2100)  # holiday tables no test case's deadline reaches
_orders = itertools.count(1)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def real_cases(system, http) -> list[str]:
    """Two cases routed to 住建局 (ZJJ), with deadlines, for fuzzed actions to act on."""
    hotline = {"X-API-Key": dev_key("hotline-12345")}
    operator = {"X-API-Key": dev_key("operator-console")}
    ids = []
    for n in (next(_orders), next(_orders)):
        order = hotline_order(n, seed=912) | {"category_code": "08001", "content": f"第{n}号工地夜间施工扰民"}
        response = http.post(f"{system.url('intake')}/v1/intake/hotline", json=order, headers=hotline)
        assert response.status_code == 201, response.text
        ids.append(response.json()["case_id"])
    deadline = time.monotonic() + 30
    for case_id in ids:
        while time.monotonic() < deadline:
            routed = http.get(f"{system.url('routing')}/v1/routing/cases/{case_id}", headers=operator)
            timed = http.get(f"{system.url('sla')}/v1/sla/cases/{case_id}/deadlines", headers=operator)
            if routed.status_code == timed.status_code == 200 and routed.json()["status"] == "assigned":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"{case_id} was not routed and timed within 30 s")
    return ids


@pytest.fixture(scope="module")
def responsibility_matrix_restored(system, http) -> Iterator[None]:
    """Whatever rule set fuzzing activates, the district's own matrix is active again afterwards."""
    url = f"{system.url('routing')}/v1/routing/rule-sets"
    operator = {"X-API-Key": dev_key("operator-console")}

    def active() -> int:
        versions = http.get(url, headers=operator).raise_for_status().json()["versions"]
        return next(v["version"] for v in versions if v["active"])

    before = active()
    yield
    bundle = read_bundle()
    restored = http.post(url, json={"label": bundle.label, "rules": bundle.rules}, headers=operator)
    assert restored.status_code in (200, 201), restored.text
    assert active() == before


def _holders(scopes: frozenset[str] | None) -> list[str]:
    clients = [c for c in dev_clients() if c.client_id in FUZZING_CLIENTS]
    return [c.key for c in clients if scopes is None or c.holds_any(scopes)]


def _fuzz(operation, scopes: frozenset[str] | None, real_case_ids: list[str]) -> None:
    keys = _holders(scopes)
    assert keys, f"no development key may call {operation.label}"
    if not (operation.path_parameters or operation.query or operation.headers or operation.body):
        for key in keys:  # nothing to generate: one call per key is the whole input space
            operation.Case().call_and_validate(headers={"X-API-Key": key}, checks=CHECKS)
        return

    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(case, data):
        parameters = case.path_parameters or {}
        if "case_id" in parameters:
            parameters["case_id"] = data.draw(st.sampled_from([parameters["case_id"], *real_case_ids]))
        if "year" in parameters and case.method.upper() != "GET":
            parameters["year"] = data.draw(FAR_YEARS)
        case.call_and_validate(headers={"X-API-Key": data.draw(st.sampled_from(keys))}, checks=CHECKS)

    exercise()


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_generated_request_makes_a_service_fail_or_contradict_its_openapi(
    system, service, real_cases, responsibility_matrix_restored
):
    # Driven by hand: schemathesis's pytest plugin (from_fixture) does not run under pytest 9 yet.
    scopes = {(op.method, op.path): op.scopes for op in operations(system) if op.service == service}
    schema = schemathesis.openapi.from_url(f"{system.url(service)}/openapi.json")
    fuzzed = [result.ok() for result in schema.get_all_operations()]
    assert len(fuzzed) == len(scopes) >= 3
    failures = []
    for operation in fuzzed:
        try:
            _fuzz(operation, scopes[(operation.method.upper(), operation.path)], real_cases)
        except (Exception, BaseExceptionGroup) as exc:  # every operation is fuzzed; each failure is named
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)


# What fuzzing once found (a NUL character reaching PostgreSQL, a 500 on a dozen routes), checked on every
# route every time: PostgreSQL cannot store U+0000, so it is refused with 422 before any handler runs.
NUL = "a\x00b"


def test_a_nul_character_in_any_parameter_or_body_is_refused_with_422_on_every_route(system, http):
    wrong, probes = [], 0
    for op in operations(system):
        headers = {"X-API-Key": _holders(op.scopes)[0]}
        names = {p["in"]: p["name"] for p in op.spec.get("parameters", ()) if _is_text(p)}
        attempts = []
        if "path" in names:
            attempts.append(("path", op.url(**{names["path"]: "a%00b"}), {}, None))
        if "query" in names:
            attempts.append(("query", op.url(), {names["query"]: NUL}, None))
        if op.has_body:
            attempts.append(("body", op.url(), {}, {"text": NUL}))
        for where, path, params, body in attempts:
            probes += 1
            url = system.url(op.service) + path
            response = http.request(op.method, url, params=params, json=body, headers=headers)
            problem = response.headers.get("content-type", "").startswith("application/problem+json")
            if not (response.status_code == 422 and problem and f'"location":"{where}"' in response.text):
                wrong.append(f"{op.method} {op.service}{op.path} ({where}): {response.status_code}")
    assert probes >= 40 and wrong == []


def _is_text(parameter: dict) -> bool:
    schema = parameter.get("schema", {})
    types = {schema.get("type"), *(s.get("type") for s in schema.get("anyOf", ()))}
    return (
        "string" in types and not schema.get("enum") and "format" not in schema and parameter["name"] != "fmt"
    )
