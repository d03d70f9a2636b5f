"""Each feed's submission, normalised into one ``Appeal``. Pure: no database, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events import CaseSource, CoordinateSystem, Location
from services.intake import categories, geo
from services.intake.domain import Appeal, Contact, InvalidField
from services.intake.normalise import (
    PhoneNumberInvalid,
    mask_numbers_in_text,
    normalise_optional,
    normalise_text,
    to_e164,
    to_utc,
)
from services.intake.schemas import GridReportCreate, HotlineOrderCreate


@dataclass(frozen=True)
class Normalisation:
    """The settings normalisation depends on."""

    default_area_code: str = "531"
    max_attachments: int = 9


def locate(lat: float, lon: float, crs: CoordinateSystem) -> tuple[Location, bool]:
    """A reported point as WGS84, and whether it lies outside the district (→ triage, not dropped)."""
    w_lat, w_lon = geo.to_wgs84(lat, lon, crs)
    if not (-90 <= w_lat <= 90 and -180 <= w_lon <= 180):  # e.g. a BD-09 point at a pole: no place on earth
        raise InvalidField("coordinates", f"({lat}, {lon}) in {crs} is not a point on earth in WGS84")
    return Location(lat=w_lat, lon=w_lon, reported_crs=crs), not geo.zhangqiu().contains_wgs84(w_lat, w_lon)


def phone(field: str, raw: str | None, rules: Normalisation) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return to_e164(raw, rules.default_area_code)
    except PhoneNumberInvalid as exc:
        raise InvalidField(field, str(exc)) from None


def text(field: str, raw: str) -> tuple[str, str]:
    """(masked, clear) normalised text; blank after normalisation is refused."""
    clear = normalise_text(raw)
    if not clear:
        raise InvalidField(field, "blank after whitespace folding")
    return mask_numbers_in_text(clear), clear


def attachments(field: str, urls: list, rules: Normalisation) -> tuple[str, ...]:
    if len(urls) > rules.max_attachments:
        raise InvalidField(field, f"at most {rules.max_attachments} attachment URLs")
    return tuple(str(url) for url in urls)


def from_hotline(order: HotlineOrderCreate, rules: Normalisation) -> Appeal:
    """A 12345 work order."""
    description, clear = text("content", order.content)
    location, outside = None, False
    if order.coordinates is not None:
        location, outside = locate(order.coordinates.lat, order.coordinates.lon, order.coordinates.crs)
    address = normalise_optional(order.address)
    return Appeal(
        source=CaseSource.HOTLINE,
        external_id=normalise_text(order.order_no),
        received_at=to_utc(order.called_at),
        description=description,
        description_clear=clear,
        category=categories.classify("hotline", order.category_code),
        category_code=order.category_code,
        appeal_type=order.appeal_type,
        address=address and mask_numbers_in_text(address),
        location=location,
        outside_jurisdiction=outside,
        place=categories.locate_address(address),
        urgency=order.urgency,
        reply_required=order.reply_required,
        contact=Contact(
            name=normalise_optional(order.caller_name),
            phone=phone("caller_phone", order.caller_phone, rules),
            id_number=order.caller_id_number.upper() if order.caller_id_number else None,
        ),
        actor="hotline",
    )


def from_grid(report: GridReportCreate, rules: Normalisation) -> Appeal:
    """A grid member's report; the member is staff, so no citizen contact is involved."""
    description, clear = text("description", report.description)
    location, outside = locate(report.coordinates.lat, report.coordinates.lon, report.coordinates.crs)
    address = normalise_optional(report.address)
    place = categories.locate_address(address)
    return Appeal(
        source=CaseSource.GRID,
        external_id=normalise_text(report.report_id),
        received_at=to_utc(report.found_at),
        description=description,
        description_clear=clear,
        category=categories.classify("grid", report.event_class_code),
        category_code=report.event_class_code,
        address=address and mask_numbers_in_text(address),
        location=location,
        outside_jurisdiction=outside,
        place=place,
        grid_code=normalise_text(report.grid_code),
        reporter_id=normalise_text(report.member_id),
        urgency=report.urgency,
        reply_required=False,
        attachments=attachments("photos", report.photos, rules),
        resolved_on_spot=report.resolved_on_spot,
        actor=f"grid:{normalise_text(report.member_id)}",
    )
