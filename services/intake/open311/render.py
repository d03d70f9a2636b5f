"""Open311 documents in JSON and XML, and Open311's error array."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from fastapi.responses import Response

CHINA_TZ = ZoneInfo("Asia/Shanghai")
MEDIA = {"json": "application/json", "xml": "text/xml"}


class Open311Error(Exception):
    """An Open311 refusal: HTTP status plus the error array's description."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after  # seconds, sent as Retry-After (429)


def w3c(moment: datetime | None) -> str | None:
    """W3C datetime with the local offset, e.g. 2026-11-26T09:30:00+08:00."""
    if moment is None:
        return None
    return moment.astimezone(CHINA_TZ).replace(microsecond=0).isoformat()


def _xml_value(parent: ET.Element, tag: str, value: Any, item_tag: str) -> None:
    node = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(node, key, inner, item_tag)
    elif isinstance(value, list):
        for inner in value:
            _xml_value(node, item_tag, inner, item_tag)
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    elif value is not None:
        node.text = str(value)


# Open311's XML names each list and each item: <services><service>, <service_requests><request>, ...
LIST_TAGS = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}
ITEM_TAGS = {
    "attributes": "attribute",
    "values": "value",
    "keywords": "keyword",
    "endpoints": "endpoint",
    "formats": "format",
}


def _xml_item(parent: ET.Element, tag: str, item: dict) -> None:
    node = ET.SubElement(parent, tag)
    for key, value in item.items():
        if isinstance(value, list):
            holder = ET.SubElement(node, key)
            for inner in value:
                if isinstance(inner, dict):
                    _xml_item(holder, ITEM_TAGS.get(key, "item"), inner)
                else:
                    _xml_value(holder, ITEM_TAGS.get(key, "item"), inner, "item")
        else:
            _xml_value(node, key, value, "item")


def render_list(kind: str, items: list[dict], fmt: str, status: int = 200) -> Response:
    """A top-level array (services, service requests, errors) in the asked format."""
    if fmt == "json":
        return _json(items, status)
    root_tag, item_tag = LIST_TAGS[kind]
    root = ET.Element(root_tag)
    for item in items:
        _xml_item(root, item_tag, item)
    return _xml(root, status)


def render_object(root_tag: str, item: dict, fmt: str) -> Response:
    """A top-level object (service_definition, discovery)."""
    if fmt == "json":
        return _json(item, 200)
    holder = ET.Element("holder")
    _xml_item(holder, root_tag, item)
    return _xml(holder[0], 200)


def render_error(error: Open311Error, fmt: str) -> Response:
    response = render_list(
        "errors", [{"code": error.status, "description": error.description}], fmt, error.status
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _json(body: Any, status: int) -> Response:
    import orjson

    return Response(orjson.dumps(body), status_code=status, media_type="application/json; charset=utf-8")


def _xml(root: ET.Element, status: int) -> Response:
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode").encode()
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")
