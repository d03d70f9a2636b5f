"""Who may call what, route by route, on every running service, read from each service's own OpenAPI.

Every documented (method, path) either declares the scopes that admit a caller (``runtime.auth.require``
writes them into the route's OpenAPI ``security``) or is on the reviewed allow-list below. A new route that
declares nothing fails here until someone decides it is public; an entry whose route is gone fails too.
Department keys see and act on their own cases only; reading a citizen's clear contact leaves an audit row.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from devtools.sample import hotline_order
from devtools.system import SERVICES
from tests.e2e.api_surface import WRITE_METHODS, Operation, dev_clients, dev_key, operations

pytestmark = pytest.mark.e2e

# Reviewed: routes that answer without an API key on purpose, and why.
PUBLIC_BY_DESIGN: dict[tuple[str, str, str], str] = {
    **{(service, "GET", "/healthz"): "liveness probe for the orchestrator" for service in SERVICES},
    **{(service, "GET", "/readyz"): "readiness probe for the orchestrator" for service in SERVICES},
    ("intake", "GET", "/open311/v2/discovery.{fmt}"): "Open311 GeoReport v2 discovery is public",
    ("intake", "GET", "/open311/v2/services.{fmt}"): "Open311: the service list is public",
    ("intake", "GET", "/open311/v2/services/{service_code}.{fmt}"): "Open311: service definitions are public",
    ("intake", "GET", "/open311/v2/requests.{fmt}"): "Open311: GET requests is public (masked, throttled)",
    ("intake", "GET", "/open311/v2/requests/{service_request_id}.{fmt}"): "Open311: one request, public",
    ("intake", "GET", "/open311/v2/tokens/{token}.{fmt}"): "Open311: token to request id, public",
    # Keyed by Open311's own `api_key` form field (scope open311), checked in the handler, refused with
    # Open311's error array rather than problem+json: see the test of it below.
    ("intake", "POST", "/open311/v2/requests.{fmt}"): "Open311 POST: api_key in the form",
}
NO_VALID_KEY = {
    "no key": {},
    "unknown key": {"X-API-Key": "not-a-key-anyone-was-given"},
    "unknown bearer token": {"Authorization": "Bearer not-a-key-anyone-was-given"},
    "empty key": {"X-API-Key": ""},
    "basic credentials": {"Authorization": "Basic ZGV2LW9wZXJhdG9yLWtleTo="},
}
PROBLEM_JSON = "application/problem+json"
_orders = itertools.count(1)


@pytest.fixture(scope="module")
def surface(system) -> list[Operation]:
    return operations(system)


class Api:
    """The running system, over one connection pool."""

    def __init__(self, system, http: httpx.Client) -> None:
        self.system, self.http = system, http

    def call(self, op: Operation, headers: dict[str, str], *, body: dict | None = None, **path: str):
        """One request to ``op`` (path parameters from ``path``, else values that name nothing)."""
        url = self.system.url(op.service) + op.url(**path)
        content = {"json": body if body is not None else {}} if op.has_body else {}
        return self.http.request(op.method, url, headers=headers, **content)

    def get(self, service: str, path: str, client_id: str, **params) -> httpx.Response:
        headers = {"X-API-Key": dev_key(client_id)}
        return self.http.get(self.system.url(service) + path, headers=headers, params=params)

    def post(self, service: str, path: str, client_id: str, body: dict) -> httpx.Response:
        headers = {"X-API-Key": dev_key(client_id)}
        return self.http.post(self.system.url(service) + path, headers=headers, json=body)


@pytest.fixture(scope="module")
def api(system) -> Iterator[Api]:
    with httpx.Client(timeout=10) as http:
        yield Api(system, http)


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith(PROBLEM_JSON)
        and response.json()["status"] == status
    )


def _line(op: Operation, who: str, response: httpx.Response) -> str:
    return f"{op.method} {op.service}{op.path} as {who}: {response.status_code} {response.text[:160]}"


def test_every_route_declares_its_scopes_unless_it_is_public_by_design(surface):
    undeclared = {op.ident for op in surface if op.scopes is None}
    assert undeclared - PUBLIC_BY_DESIGN.keys() == set(), "routes without scopes: review them"
    assert PUBLIC_BY_DESIGN.keys() - undeclared == set(), "allow-list entries whose route is gone or secured"
    assert len([op for op in surface if op.scopes]) >= 30  # the enumeration itself worked


def test_every_secured_route_answers_a_missing_or_unknown_key_with_401_problem_json(api, surface):
    wrong = [
        _line(op, who, response)
        for op in surface
        if op.scopes
        for who, headers in NO_VALID_KEY.items()
        if not is_problem(response := api.call(op, headers), 401)
    ]
    assert wrong == []


def test_every_secured_route_refuses_each_key_without_its_scope_with_403_and_admits_the_others(api, surface):
    wrong = []
    for op in (op for op in surface if op.scopes):
        for client in dev_clients():
            response = api.call(op, {"X-API-Key": client.key})
            if client.holds_any(op.scopes):
                refused_for_scope = response.status_code == 403 and "lacks the scope" in response.text
                if response.status_code in (401, 429) or response.status_code >= 500 or refused_for_scope:
                    wrong.append(_line(op, client.client_id, response))
            elif not is_problem(response, 403):
                wrong.append(_line(op, client.client_id, response))
    assert wrong == []


def test_sre_keys_only_read_and_clear_personal_data_has_two_routes_one_case_or_a_batch(surface):
    sre_writes = [
        op.ident for op in surface if op.scopes and op.method in WRITE_METHODS and "sre" in op.scopes
    ]
    assert sre_writes == []
    pii = [op.ident for op in surface if op.scopes and "pii:read" in op.scopes]
    assert sorted(pii) == [
        ("intake", "GET", "/v1/intake/cases/{case_id}/contact"),
        ("intake", "POST", "/v1/intake/contacts/reveal"),  # the same for up to 100 cases (notify's SMS)
    ]


def test_public_routes_answer_without_a_key_and_open311_posts_need_an_open311_api_key(api, surface):
    for op in (op for op in surface if op.ident in PUBLIC_BY_DESIGN and op.method == "GET"):
        response = api.call(op, {})
        assert response.status_code in (200, 404), _line(op, "nobody", response)

    url = f"{api.system.url('intake')}/open311/v2/requests.json"
    form = {"service_code": "streetlight", "description": "路灯不亮", "lat": "36.7119", "long": "117.5348"}
    wrong_keys = ("not-a-key-anyone-was-given", dev_key("hotline-12345"), dev_key("operator-console"))
    for api_key in (None, *wrong_keys):
        refused = api.http.post(url, data=form | ({"api_key": api_key} if api_key else {}))
        assert refused.status_code == 403, refused.text
        assert refused.json()[0]["code"] == 403 and "api_key" in refused.json()[0]["description"]


# --- department isolation ---------------------------------------------------------------------------

# A valid body for every case-scoped route that takes one, so a refusal is about whose case it is.
VALID_BODIES: dict[tuple[str, str, str], dict] = {
    ("intake", "POST", "/v1/cases/{case_id}/withdraw"): {"reason": "已自行解决"},
    ("intake", "POST", "/v1/intake/cases/{case_id}/updates"): {"description_addendum": "补充：灯杆编号 17"},
    ("intake", "POST", "/v1/cases/{case_id}/feedback"): {"satisfaction": "满意"},
    ("routing", "POST", "/v1/cases/{case_id}/accept"): {"note": "签收"},
    ("routing", "POST", "/v1/cases/{case_id}/return"): {"reason": "不属于本单位职责"},
    ("routing", "POST", "/v1/cases/{case_id}/transfer"): {
        "to": {"kind": "department", "code": "CGJ"},
        "reason": "转城管",
    },
    ("routing", "POST", "/v1/cases/{case_id}/co-handle"): {"departments": ["CGJ"]},
    ("routing", "POST", "/v1/cases/{case_id}/reply"): {"reply": "已处理完毕", "resolved": True},
    ("routing", "POST", "/v1/cases/{case_id}/extension"): {"working_days": 3, "reason": "需协调"},
    ("routing", "POST", "/v1/cases/{case_id}/extension-decision"): {"approved": True},
    ("routing", "POST", "/v1/cases/{case_id}/assign"): {"to": {"kind": "department", "code": "CGJ"}},
    ("sla", "POST", "/v1/sla/cases/{case_id}/pause"): {"reason": "等待群众补充材料"},
}
OWNER = "dept-zjj"  # 施工扰民 (08001) goes to 住建局 first
OUTSIDERS = ("dept-cgj", "dept-swj", "grid-app-mingshui")  # CGJ is next in line for 08001: a near miss


def _construction_noise_case(api: Api) -> str:
    n = next(_orders)
    order = hotline_order(n, seed=909) | {
        "category_code": "08001",
        "content": f"明水街道第{n}号工地夜间施工扰民，凌晨还在打桩。",
        "address": f"章丘区明水街道山泉路{n}号工地",
    }
    response = api.post("intake", "/v1/intake/hotline", "hotline-12345", order)
    assert response.status_code == 201, response.text
    return response.json()["case_id"]


def _until(fetch, ready, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = fetch()
        if ready(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_department_key_can_neither_see_nor_touch_another_departments_case_on_any_route(api, surface):
    case_id = _construction_noise_case(api)
    routed = _until(
        lambda: api.get("routing", f"/v1/routing/cases/{case_id}", "operator-console"),
        lambda r: r.status_code == 200 and r.json()["status"] == "assigned",
    )
    assert routed.json()["assignment"]["assignee"]["code"] == "ZJJ", routed.text
    projected = _until(
        lambda: api.get("projection", f"/v1/cases/{case_id}", OWNER),
        lambda r: r.status_code == 200,
    )
    assert projected.status_code == 200, projected.text  # the owner sees it: refusals below are real

    case_routes = [op for op in surface if "{case_id}" in op.path]
    assert {op.ident for op in case_routes if op.has_body} == VALID_BODIES.keys()
    leaked = []
    for op in case_routes:
        for outsider in OUTSIDERS:
            headers = {"X-API-Key": dev_key(outsider)}
            response = api.call(op, headers, body=VALID_BODIES.get(op.ident), case_id=case_id)
            if not (is_problem(response, 404) or is_problem(response, 403)):
                leaked.append(_line(op, outsider, response))
    assert leaked == []

    after = api.get("routing", f"/v1/routing/cases/{case_id}", "operator-console").json()
    assert (after["status"], after["returns"]) == ("assigned", 0)
    assert after["assignment"] == routed.json()["assignment"]  # same assignee, no co-handler added

    for outsider in OUTSIDERS[:2]:
        listed = api.get("projection", "/v1/cases", outsider, limit=500).json()["items"]
        assert case_id not in {c["case_id"] for c in listed}
        work = api.get("routing", "/v1/routing/work", outsider, limit=500).json()["items"]
        assert case_id not in {c["case_id"] for c in work}
        assert api.get("projection", "/v1/worklists/department/ZJJ", outsider).status_code == 403
        volume = api.get("projection", "/v1/stats/volume", outsider, by="department").json()
        assert {row["key"] for row in volume["items"]} <= {outsider.removeprefix("dept-").upper()}
    owners_work = api.get("routing", "/v1/routing/work", OWNER, limit=500).json()["items"]
    assert case_id in {c["case_id"] for c in owners_work}
    accept = VALID_BODIES[("routing", "POST", "/v1/cases/{case_id}/accept")]
    accepted = api.post("routing", f"/v1/cases/{case_id}/accept", OWNER, accept)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text


# --- personal data ----------------------------------------------------------------------------------


async def _contact_reads(system, infrastructure, case_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(infrastructure.database_url(system.database_name("intake")))
    try:
        return await conn.fetch(
            "SELECT id, client_id, purpose, fields FROM pii_access_log WHERE case_id = $1 ORDER BY id",
            case_id,
        )
    finally:
        await conn.close()


def test_reading_a_citizens_clear_contact_is_audited_and_refusals_reveal_and_record_nothing(
    api, infrastructure
):
    def officer_reads() -> list[asyncpg.Record]:  # notify's own reads (purpose notify-sms) aside
        reads = asyncio.run(_contact_reads(api.system, infrastructure, case_id))
        notify = [r for r in reads if r["client_id"] == "notify-service"]
        assert all(r["purpose"] == "notify-sms" and json.loads(r["fields"]) == ["phone"] for r in notify)
        return [r for r in reads if r["client_id"] != "notify-service"]

    order = hotline_order(1, seed=910) | {"caller_id_number": "370114199001011234"}
    case_id = api.post("intake", "/v1/intake/hotline", "hotline-12345", order).json()["case_id"]
    path = f"/v1/intake/cases/{case_id}/contact"

    for client_id in ("operator-console", "sre", "dept-zjj", "hotline-12345"):
        refused = api.get("intake", path, client_id, purpose="回访")
        assert is_problem(refused, 403), refused.text
        assert order["caller_phone"] not in refused.text
    assert is_problem(api.get("intake", path, "operator-pii-officer"), 422)  # no purpose, no access
    absent = api.get(
        "intake", "/v1/intake/cases/ZQ19700101999999/contact", "operator-pii-officer", purpose="回访"
    )
    assert is_problem(absent, 404)
    assert officer_reads() == []

    revealed = api.get("intake", path, "operator-pii-officer", purpose="回访核实诉求")
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["phone"] == "+86" + order["caller_phone"]
    (audited,) = officer_reads()
    assert (audited["id"], audited["client_id"], audited["purpose"]) == (
        revealed.json()["access_id"],
        "operator-pii-officer",
        "回访核实诉求",
    )
    assert {"name", "phone", "id_number"} <= set(json.loads(audited["fields"]))
