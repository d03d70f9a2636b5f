"""Open311 GeoReport v2 in process, on a real migrated PostgreSQL: a client following the spec."""

# ruff: noqa: F811  (pytest fixtures imported from test_intake_api are parameters here, by design)

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from contracts.events.intake import CaseClosed
from contracts.events.routing import Assignee, AssigneeKind, CaseAssigned, RoutingBasis
from tests.integration.test_intake_api import intake, intake_db  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.integration
KEY = "dev-open311-key"
LIGHT = {"api_key": KEY, "service_code": "01037", "lat": "36.711888", "long": "117.5347582",
         "description": "路灯不亮，联系电话 13805311234", "attribute[lamp_state]": "dark",
         "first_name": "三", "last_name": "张", "phone": "13805311234"}  # fmt: skip


async def test_services_are_listed_in_json_and_xml_with_definitions_for_those_with_metadata(intake):
    listed = (await intake.client.get("/open311/v2/services.json")).json()
    codes = {s["service_code"]: s for s in listed}
    assert codes["01037"]["service_name"] == "路灯不亮或损坏" and codes["01037"]["metadata"] is True
    fields = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    assert set(codes["01037"]) >= fields  # fmt: skip
    xml = ET.fromstring((await intake.client.get("/open311/v2/services.xml")).content)
    assert xml.tag == "services" and len(xml.findall("service")) == len(listed)
    assert xml.find("service/metadata").text in {"true", "false"}

    definition = (await intake.client.get("/open311/v2/services/01037.json")).json()
    lamp = definition["attributes"][0]
    assert lamp["code"] == "lamp_state" and lamp["datatype"] == "singlevaluelist" and lamp["required"] is True
    assert {"key": "dark", "name": "不亮"} in lamp["values"]
    xml_def = ET.fromstring((await intake.client.get("/open311/v2/services/01037.xml")).content)
    assert xml_def.tag == "service_definition"
    assert xml_def.find("attributes/attribute/values/value/key").text == "dark"


async def test_a_posted_request_can_be_read_back_by_id_token_and_list_in_both_formats(intake):
    posted = await intake.client.post("/open311/v2/requests.json", data=LIGHT)
    assert posted.status_code == 201, posted.text
    (answer,) = posted.json()
    request_id, token = answer["service_request_id"], answer["token"]

    (one,) = (await intake.client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert one["status"] == "open" and one["service_code"] == "01037"
    assert one["lat"] == pytest.approx(36.711888) and one["long"] == pytest.approx(117.5347582)
    assert "13805311234" not in one["description"] and "路灯状况：不亮" in one["description"]
    assert one["requested_datetime"].endswith("+08:00")
    datetime.fromisoformat(one["requested_datetime"])

    xml = ET.fromstring((await intake.client.get(f"/open311/v2/requests/{request_id}.xml")).content)
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == request_id
    (by_token,) = (await intake.client.get(f"/open311/v2/tokens/{token}.json")).json()
    assert by_token == {"service_request_id": request_id, "token": token}

    listed = (await intake.client.get("/open311/v2/requests.json", params={"service_code": "01037"})).json()
    assert request_id in [r["service_request_id"] for r in listed]
    closed_only = (await intake.client.get("/open311/v2/requests.json", params={"status": "closed"})).json()
    assert request_id not in [r["service_request_id"] for r in closed_only]


async def test_status_and_agency_follow_the_case_log(intake):
    request_id = (await intake.client.post("/open311/v2/requests.json", data=LIGHT)).json()[0][
        "service_request_id"
    ]
    now = datetime.now(UTC)
    department = Assignee(kind=AssigneeKind.DEPARTMENT, code="CGJ", name="章丘区综合行政执法局")
    await intake.apply(CaseAssigned(case_id=request_id, occurred_at=now, actor="routing", assignment_id="a1",
                                    assignee=department, basis=RoutingBasis()))  # fmt: skip
    (assigned,) = (await intake.client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert assigned["agency_responsible"] == "章丘区综合行政执法局" and assigned["status"] == "open"
    await intake.apply(
        CaseClosed(case_id=request_id, occurred_at=now, actor="intake", reason="citizen_satisfied")
    )
    (closed,) = (await intake.client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert closed["status"] == "closed" and closed["status_notes"] == "市民满意，已办结"


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({k: v for k, v in LIGHT.items() if k != "api_key"}, 403, "api_key"),
        (LIGHT | {"api_key": "wrong"}, 403, "api_key"),
        ({k: v for k, v in LIGHT.items() if k != "service_code"}, 400, "service_code"),
        (LIGHT | {"service_code": "99999"}, 400, "service_code"),
        ({k: v for k, v in LIGHT.items() if k not in {"lat", "long"}}, 400, "location"),
        (LIGHT | {"lat": "north"}, 400, "lat"),
        ({k: v for k, v in LIGHT.items() if k != "attribute[lamp_state]"}, 400, "attribute[lamp_state]"),
        (LIGHT | {"attribute[lamp_state]": "purple"}, 400, "attribute[lamp_state]"),
        (LIGHT | {"jurisdiction_id": "beijing"}, 404, "jurisdiction_id"),
    ],
)
async def test_refusals_are_open311_error_arrays(intake, form, status, says):
    response = await intake.client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == status
    (error,) = response.json()
    assert error["code"] == status and says in error["description"]


async def test_unknown_ids_tokens_services_and_formats_are_open311_errors_in_the_asked_format(intake):
    missing = await intake.client.get("/open311/v2/requests/ZQ19700101000000.xml")
    assert missing.status_code == 404
    assert ET.fromstring(missing.content).find("error/code").text == "404"
    assert (await intake.client.get("/open311/v2/tokens/nope.json")).status_code == 404
    assert (await intake.client.get("/open311/v2/services/00000.json")).status_code == 404
    assert (await intake.client.get("/open311/v2/services.csv")).status_code == 400
    bad_date = await intake.client.get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert bad_date.status_code == 400 and "start_date" in bad_date.json()[0]["description"]


async def test_discovery_names_the_endpoint_and_formats(intake):
    document = (await intake.client.get("/open311/v2/discovery.json")).json()
    (endpoint,) = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and "text/xml" in endpoint["formats"]
    xml = ET.fromstring((await intake.client.get("/open311/v2/discovery.xml")).content)
    assert xml.tag == "discovery" and xml.find("endpoints/endpoint/formats/format") is not None
