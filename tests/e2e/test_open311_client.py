"""An Open311 GeoReport v2 client, following the spec against the running system (JSON and XML)."""

from __future__ import annotations

import time
from xml.etree import ElementTree as ET

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_a_client_lists_services_posts_a_request_and_reads_it_back_in_json_and_xml(system):
    base = f"{system.url('intake')}/open311/v2"
    with httpx.Client(base_url=base, timeout=10) as open311:
        services = open311.get("/services.json").json()
        service = next(s for s in services if s["metadata"])
        definition = open311.get(f"/services/{service['service_code']}.xml")
        root = ET.fromstring(definition.content)
        answers = {
            f"attribute[{a.findtext('code')}]": a.findtext("values/value/key") or "1"
            for a in root.iter("attribute")
            if a.findtext("required") == "true"
        }
        posted = open311.post(
            "/requests.xml",
            data={"api_key": "dev-open311-key", "service_code": service["service_code"], "lat": "36.7119",
                  "long": "117.5348", "description": "绣水大街路灯不亮", **answers},
        )  # fmt: skip
        assert posted.status_code == 201, posted.text
        request_id = ET.fromstring(posted.content).findtext("request/service_request_id")

        (as_json,) = open311.get(f"/requests/{request_id}.json").json()
        assert as_json["service_code"] == service["service_code"] and as_json["status"] == "open"
        as_xml = ET.fromstring(open311.get(f"/requests/{request_id}.xml").content)
        assert as_xml.findtext("request/status") == "open"
        listed = open311.get("/requests.json", params={"service_request_id": f"{request_id},ZQ0"}).json()
        assert [r["service_request_id"] for r in listed] == [request_id]


def test_open311_status_notes_follow_the_case_log(system):
    base = f"{system.url('intake')}/open311/v2"
    with httpx.Client(base_url=base, timeout=10) as open311:
        posted = open311.post(
            "/requests.json",
            data={"api_key": "dev-open311-key", "service_code": "06010",
                  "address_string": "章丘区明水街道汇泉路8号", "description": "垃圾堆放"},
        )  # fmt: skip
        request_id = posted.json()[0]["service_request_id"]
        deadline = time.monotonic() + 30
        notes = None
        while time.monotonic() < deadline:  # routing decides, intake's consumer records it
            (current,) = open311.get(f"/requests/{request_id}.json").json()
            notes = current["status_notes"]
            if notes != "已受理":
                break
            time.sleep(0.2)
        assert notes != "已受理", "the case log never reached intake's Open311 view"
