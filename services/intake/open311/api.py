"""Open311 GeoReport v2 routes. Every refusal is Open311's error array with 400, 403 or 404.

Reads (GET requests) come from intake's own appeals table, which intake's consumer keeps in step with
the case log (status, status_notes, agency_responsible): no call to another service on the read path.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from runtime.auth import keyring_for
from runtime.problems import Problem
from services.intake import domain
from services.intake.deps import PROBLEMS, intake_of, limiter_of
from services.intake.handlers import Intake, record_appeal
from services.intake.open311 import catalogue
from services.intake.open311.intake import appeal_from_form
from services.intake.open311.render import Open311Error, render_error, render_list, render_object, w3c
from services.intake.tables import appeals

_OPEN311_ERRORS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    },
}
_DOCUMENT = {"application/json": {"schema": {}}, "text/xml": {"schema": {"type": "string"}}}
_ERROR = {"application/json": {"schema": _OPEN311_ERRORS}, "text/xml": {"schema": {"type": "string"}}}
OPEN311_RESPONSES: dict[int | str, dict] = {
    200: {"description": "The document, in the format of the path suffix", "content": _DOCUMENT},
    **{
        status: {"description": f"Open311 error array ({status})", "content": _ERROR}
        for status in (400, 403, 404, 413, 429)
    },
    422: PROBLEMS[422],  # only a query longer than its documented maxLength reaches FastAPI's validation
}
router = APIRouter(prefix="/open311/v2", tags=["open311"], responses=OPEN311_RESPONSES)
SPEC = "http://wiki.open311.org/GeoReport_v2"
FORMAT_DOC = "Response format: json or xml."
Fmt = Annotated[str, "json or xml"]


def _fmt(fmt: str) -> str:
    if fmt not in {"json", "xml"}:
        raise Open311Error(400, f"format '{fmt}' is not supported (use .json or .xml)")
    return fmt


def _guarded(fmt: str, action) -> Response:
    """Run a route body; an Open311Error (or a Problem from the shared layer) becomes the error array."""
    try:
        return action(_fmt(fmt))
    except Open311Error as error:
        return render_error(error, fmt if fmt in {"json", "xml"} else "json")


def _jurisdiction(request: Request, jurisdiction_id: str | None) -> None:
    if jurisdiction_id and jurisdiction_id != intake_of(request).settings.open311_jurisdiction_id:
        raise Open311Error(404, f"jurisdiction_id '{jurisdiction_id}' is not served here")


def _throttle(request: Request, client: str) -> None:
    wait = limiter_of(request).check(client)
    if wait:
        raise Open311Error(429, f"too many requests; retry after {wait} s", retry_after=wait)


@router.get("/discovery.{fmt}", summary="Discovery")
async def discovery(fmt: str, request: Request) -> Response:
    """Open311 discovery: where the GeoReport v2 endpoint is and which formats it speaks."""
    settings = intake_of(request).settings
    document = {
        "changeset": "2026-11-26T00:00:00+08:00",
        "contact": "章丘区12345政务服务便民热线 (Zhangqiu 12345 hotline)",
        "key_service": "API keys are issued per client system by the district's 12345 centre.",
        "endpoints": [
            {
                "specification": SPEC,
                "url": settings.public_base_url.rstrip("/") + "/open311/v2",
                "changeset": "2026-11-26T00:00:00+08:00",
                "type": "production" if settings.environment == "production" else "test",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return _guarded(fmt, lambda f: render_object("discovery", document, f))


def _service_item(service: catalogue.Service) -> dict:
    return {
        "service_code": service.service_code,
        "service_name": service.service_name,
        "description": service.description,
        "metadata": service.metadata,
        "type": "realtime",
        "keywords": ", ".join(service.keywords),
        "group": service.group,
    }


@router.get("/services.{fmt}", summary="Service list")
async def list_services(
    fmt: str, request: Request, jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    """The services a request can be filed under."""

    def body(f: str) -> Response:
        _jurisdiction(request, jurisdiction_id)
        return render_list("services", [_service_item(s) for s in catalogue.services().values()], f)

    return _guarded(fmt, body)


@router.get("/services/{service_code}.{fmt}", summary="Service definition")
async def service_definition(
    service_code: str,
    fmt: str,
    request: Request,
    jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The attributes (extra questions) of one service."""

    def body(f: str) -> Response:
        _jurisdiction(request, jurisdiction_id)
        service = catalogue.services().get(service_code)
        if service is None:
            raise Open311Error(404, f"service_code '{service_code}' not found")
        attributes = [
            {
                "variable": a.variable,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": a.datatype_description,
                "order": a.order,
                "description": a.description,
                **({"values": [{"key": k, "name": n} for k, n in a.values]} if a.values else {}),
            }
            for a in service.attributes
        ]
        return render_object(
            "service_definition", {"service_code": service_code, "attributes": attributes}, f
        )

    return _guarded(fmt, body)


FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["api_key", "service_code"],
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "api_key",
                            "jurisdiction_id",
                            "service_code",
                            "lat",
                            "long",
                            "address_string",
                            "address_id",
                            "email",
                            "device_id",
                            "account_id",
                            "first_name",
                            "last_name",
                            "phone",
                            "description",
                            "media_url",
                        )
                    },
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }
}


@router.post(
    "/requests.{fmt}",
    summary="POST Service Request",
    openapi_extra=FORM_SCHEMA,
    status_code=201,
    responses={201: {"description": "Created (200: a retry)", "content": _DOCUMENT}},
)
async def post_request(fmt: str, request: Request) -> Response:
    """File a service request (form-encoded; attribute[code] answers; api_key with the open311 scope)."""
    if fmt not in {"json", "xml"}:
        return render_error(Open311Error(400, f"format '{fmt}' is not supported"), "json")
    try:
        form = await request.form(max_files=0, max_fields=200)
    except Exception:  # a body that is not a form at all
        return render_error(Open311Error(400, "the body must be application/x-www-form-urlencoded"), fmt)
    fields: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            return render_error(Open311Error(400, f"{key}: file uploads are not accepted"), fmt)
        fields.setdefault(key, []).append(value)
    intake: Intake = intake_of(request)
    try:
        principal = keyring_for(request).authenticate(
            (fields.get("api_key") or [None])[0] or request.headers.get("x-api-key")
        )
        if principal is None or not principal.has("open311"):
            raise Open311Error(403, "api_key is missing, unknown, or lacks the open311 scope")
        _throttle(request, principal.client_id)
        _jurisdiction(request, (fields.get("jurisdiction_id") or [None])[0])
        key = request.headers.get("idempotency-key")
        external_id = f"idem:{principal.client_id}:{key}" if key else f"o311:{uuid.uuid4()}"
        appeal, submission = appeal_from_form(fields, external_id, principal.client_id, intake.rules)
        recorded = await record_appeal(intake, appeal, submission)
    except Open311Error as error:
        return render_error(error, fmt)
    except domain.InvalidField as exc:
        return render_error(Open311Error(400, f"{exc.field}: {exc.reason}"), fmt)
    except Problem as problem:
        return render_error(
            Open311Error(400 if problem.status == 422 else problem.status, problem.detail), fmt
        )
    if recorded.created:
        request.app.state.runtime.wake_relay()
    service = catalogue.services()[appeal.service_code or ""]
    notice = f"已受理（{service.service_name}），案件编号 {recorded.case_id}"
    item = {
        "service_request_id": recorded.case_id,
        "token": recorded.token,
        "service_notice": notice,
        "account_id": None,
    }
    return render_list("requests", [item], fmt, 201 if recorded.created else 200)


def _request_item(row) -> dict:
    event = row.event
    location = event.get("location") or {}
    service = catalogue.services().get(row.service_code or "")
    attachments = event.get("attachments") or []
    return {
        "service_request_id": row.case_id,
        "status": "closed" if row.status in {"closed", "withdrawn"} else "open",
        "status_notes": row.status_notes,
        "service_name": service.service_name if service else event.get("category_name"),
        "service_code": row.service_code or event.get("category"),
        "description": event.get("description"),
        "agency_responsible": row.agency_responsible,
        "service_notice": None,
        "requested_datetime": w3c(row.received_at),
        "updated_datetime": w3c(row.updated_at),
        "expected_datetime": None,
        "address": event.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": location.get("lat"),
        "long": location.get("lon"),
        "media_url": attachments[0] if attachments else None,
    }


def _parse_when(name: str, value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C datetime (2026-11-26T09:30:00+08:00)") from None
    if moment.tzinfo is None:
        raise Open311Error(400, f"{name} must carry a time zone")
    return moment


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


COLUMNS = (
    appeals.c.case_id,
    appeals.c.status,
    appeals.c.status_notes,
    appeals.c.service_code,
    appeals.c.agency_responsible,
    appeals.c.received_at,
    appeals.c.updated_at,
    appeals.c.event,
)
STATUS_FILTER = {"open": ["open", "replied"], "closed": ["closed", "withdrawn"]}


@router.get("/requests.{fmt}", summary="GET Service Requests")
async def get_requests(
    fmt: str,
    request: Request,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=500)] = None,
    start_date: Annotated[str | None, Query(max_length=64)] = None,
    end_date: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=64)] = None,
    jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Requests by id list, or filtered (default: the last 90 days, at most 1000, newest first)."""
    if fmt not in {"json", "xml"}:
        return render_error(Open311Error(400, f"format '{fmt}' is not supported"), "json")
    intake = intake_of(request)
    settings = intake.settings
    try:
        _jurisdiction(request, jurisdiction_id)
        _throttle(request, f"anon:{request.client.host if request.client else '-'}")
        query = sa.select(*COLUMNS).order_by(appeals.c.received_at.desc(), appeals.c.case_id.desc())
        ids = _split(service_request_id)
        if ids:  # the spec: other parameters are ignored when ids are given
            query = query.where(appeals.c.case_id.in_(ids[: settings.open311_max_requests]))
        else:
            start, end = _parse_when("start_date", start_date), _parse_when("end_date", end_date)
            window = timedelta(days=settings.open311_default_days)
            if start is None and end is None:
                end = datetime.now(UTC)
            if start is None:
                start = end - window
            if end is None:
                end = start + window
            if end < start:
                raise Open311Error(400, "end_date is before start_date")
            query = query.where(appeals.c.received_at.between(start, end))
            codes = _split(service_code)
            if codes:
                query = query.where(appeals.c.service_code.in_(codes))
            states = _split(status)
            if any(s not in STATUS_FILTER for s in states):
                raise Open311Error(400, "status must be open, closed or both (comma-separated)")
            if states:
                query = query.where(appeals.c.status.in_([v for s in states for v in STATUS_FILTER[s]]))
        query = query.limit(settings.open311_max_requests)
        async with intake.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    except Open311Error as error:
        return render_error(error, fmt)
    return render_list("requests", [_request_item(r) for r in rows], fmt)


@router.get("/requests/{service_request_id}.{fmt}", summary="GET Service Request")
async def get_request(
    service_request_id: str,
    fmt: str,
    request: Request,
    jurisdiction_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """One service request, as a one-element list (as the spec has it)."""
    if fmt not in {"json", "xml"}:
        return render_error(Open311Error(400, f"format '{fmt}' is not supported"), "json")
    try:
        _jurisdiction(request, jurisdiction_id)
        async with intake_of(request).engine.connect() as conn:
            row = (
                await conn.execute(sa.select(*COLUMNS).where(appeals.c.case_id == service_request_id))
            ).first()
        if row is None:
            raise Open311Error(404, f"service_request_id '{service_request_id}' not found")
    except Open311Error as error:
        return render_error(error, fmt)
    return render_list("requests", [_request_item(row)], fmt)


@router.get("/tokens/{token}.{fmt}", summary="GET service_request_id from a token")
async def get_token(token: str, fmt: str, request: Request) -> Response:
    """The service_request_id a token stands for."""
    if fmt not in {"json", "xml"}:
        return render_error(Open311Error(400, f"format '{fmt}' is not supported"), "json")
    async with intake_of(request).engine.connect() as conn:
        row = (await conn.execute(sa.select(appeals.c.case_id).where(appeals.c.token == token))).first()
    if row is None:
        return render_error(Open311Error(404, f"token '{token}' not found"), fmt)
    return render_list("requests", [{"service_request_id": row.case_id, "token": token}], fmt)


@router.api_route("/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
async def not_found(rest: str) -> Response:
    """Anything else under /open311/v2/ is an Open311 404."""
    fmt = "xml" if rest.endswith(".xml") else "json"
    return render_error(Open311Error(404, f"'/open311/v2/{rest}' is not an Open311 resource"), fmt)
