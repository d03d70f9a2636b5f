"""Case event payloads. Frozen, additive evolution, unknown fields ignored by consumers.

The base classes and shared value objects live here; each service's event types live in the module
named after it (``contracts.events.intake`` and so on).

Each class names its CloudEvents ``type`` (``gridline.case.<name>.v<version>``). A breaking change is a
new class with a higher ``version`` and an upcaster from the old one (see ``UPCASTERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Contract(BaseModel):
    """Base of every payload: immutable, tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class CaseEvent(Contract):
    """A fact about one case. ``case_id`` is also the Kafka key and the CloudEvents subject."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    producer: ClassVar[str]

    case_id: Annotated[str, Field(min_length=1, max_length=64)]
    occurred_at: AwareDatetime
    actor: Annotated[str, Field(description="Who caused the event: a system, operator or department id.")]

    @classmethod
    def type_name(cls) -> str:
        return f"gridline.case.{cls.name}.v{cls.version}"


class CaseSource(StrEnum):
    HOTLINE = "hotline"  # 12345 热线
    GRID = "grid"  # 网格员上报
    OPEN311 = "open311"  # Open311 GeoReport v2 clients


class AppealType(StrEnum):
    """12345 appeal types (诉求类型)."""

    CONSULTATION = "consultation"  # 咨询
    HELP = "help"  # 求助
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"


class CoordinateSystem(StrEnum):
    WGS84 = "WGS84"
    GCJ02 = "GCJ02"  # AMap, Tencent
    BD09 = "BD09"  # Baidu


class Location(Contract):
    """A point. ``lat``/``lon`` are WGS84; ``reported_crs`` records what the source sent."""

    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    reported_crs: CoordinateSystem = CoordinateSystem.WGS84


class CitizenContact(Contract):
    """What events may say about a citizen: masked values and an opaque reference into intake's vault."""

    name_masked: str | None = None
    phone_masked: str | None = None
    citizen_ref: Annotated[
        str | None, Field(description="Opaque id of the contact in intake's PII vault.")
    ] = None
    id_number_masked: Annotated[
        str | None, Field(description="Resident ID number, masked (370114********123X).")
    ] = None


from contracts.events import intake, notify, routing, sla  # noqa: E402  (modules need the base above)
from contracts.events.intake import CaseClosed, CaseReceived  # noqa: E402

# Each service owns (is the single writer of) the event types in its own module.
EVENT_CLASSES: tuple[type[CaseEvent], ...] = intake.EVENTS + routing.EVENTS + sla.EVENTS + notify.EVENTS
EVENT_TYPES: dict[str, type[CaseEvent]] = {cls.type_name(): cls for cls in EVENT_CLASSES}
if len(EVENT_TYPES) != len(EVENT_CLASSES):
    raise RuntimeError("two event classes share a CloudEvents type name")

# type name of an old version -> (new type name, function turning the old payload into the new one)
UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def event_class_for(type_name: str) -> type[CaseEvent] | None:
    """The payload class for a CloudEvents type, after following upcasters; None if unknown."""
    return EVENT_TYPES.get(type_name)


def upcast(type_name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Follow the upcaster chain from an old type version to the newest one."""
    while type_name in UPCASTERS:
        type_name, step = UPCASTERS[type_name]
        data = step(data)
    return type_name, data


__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "UPCASTERS",
    "AppealType",
    "CaseClosed",
    "CaseEvent",
    "CaseReceived",
    "CaseSource",
    "CitizenContact",
    "Contract",
    "CoordinateSystem",
    "Location",
    "Urgency",
    "event_class_for",
    "upcast",
]
