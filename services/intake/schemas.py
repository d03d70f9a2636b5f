"""HTTP shapes of intake's native feeds (the sources' own field names, in English)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, field_validator

from contracts.events import AppealType, CoordinateSystem, Urgency
from services.intake.normalise import fold_width

APPEAL_TYPE_ALIASES = {
    "咨询": AppealType.CONSULTATION,
    "求助": AppealType.HELP,
    "投诉": AppealType.COMPLAINT,
    "举报": AppealType.REPORT,
    "建议": AppealType.SUGGESTION,
    "表扬": AppealType.PRAISE,
}
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(moment: datetime) -> datetime:
    """A source's timestamp must be a real moment of the platform's era: year 1 at +00:45 is not one
    (converting it to UTC overflowed into a 500, found by schemathesis), nor is one the duplicate
    windows' arithmetic (± 7 days) cannot handle."""
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return moment


SourceTime = Annotated[AwareDatetime, AfterValidator(_plausible)]
URGENCY_ALIASES = {
    "一般": Urgency.NORMAL,
    "普通": Urgency.NORMAL,
    "紧急": Urgency.URGENT,
    "加急": Urgency.URGENT,
}


class Coordinates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    crs: CoordinateSystem = Field(CoordinateSystem.WGS84, description="WGS84, GCJ02 (AMap/Tencent) or BD09.")


class HotlineOrderCreate(BaseModel):
    """A 12345 hotline work order (工单)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "order_no": "12345-20261126-0001",
                    "called_at": "2026-11-26T09:30:00+08:00",
                    "caller_name": "张三",
                    "caller_phone": "13805311234",
                    "appeal_type": "投诉",
                    "content": "明水街道百脉泉路路灯不亮已经一周",
                    "address": "章丘区明水街道百脉泉路",
                    "urgency": "一般",
                    "reply_required": True,
                }
            ]
        },
    )

    order_no: Annotated[str, Field(min_length=1, max_length=64, description="Hotline order number (工单号).")]
    called_at: SourceTime = Field(description="When the citizen called, with time zone.")
    caller_name: Annotated[str | None, Field(max_length=64)] = None
    caller_phone: Annotated[str | None, Field(pattern=r"^\+?[0-9\- ]{5,20}$")] = None
    caller_id_number: Annotated[
        str | None, Field(pattern=r"^[0-9]{17}[0-9Xx]$", description="Resident ID number (vault only).")
    ] = None
    appeal_type: AppealType = Field(description="咨询/求助/投诉/举报/建议/表扬, or the English value.")
    category_code: Annotated[str | None, Field(max_length=32)] = None
    content: Annotated[str, Field(min_length=1, max_length=4000, description="诉求内容.")]
    address: Annotated[str | None, Field(max_length=500)] = None
    coordinates: Coordinates | None = None
    urgency: Urgency = Urgency.NORMAL
    reply_required: bool = True

    @field_validator("caller_phone", mode="before")
    @classmethod
    def _phone_in_half_width(cls, value: object) -> object:
        # IME users type full-width digits and spaces (０５３１－８３２１　３０３０).
        return fold_width(value).strip() if isinstance(value, str) else value

    @field_validator("appeal_type", mode="before")
    @classmethod
    def _appeal_type_in_chinese(cls, value: object) -> object:
        return APPEAL_TYPE_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("urgency", mode="before")
    @classmethod
    def _urgency_in_chinese(cls, value: object) -> object:
        return URGENCY_ALIASES.get(value, value) if isinstance(value, str) else value


class CaseAccepted(BaseModel):
    """Intake's answer: the case number and where to read it."""

    case_id: str
    status: str
    duplicate_submission: bool = Field(
        False, description="True when this was a retry of an earlier submission."
    )
    duplicate_of: str | None = Field(None, description="Primary case this appeal repeats (重复件).")
    links: dict[str, str]


PhotoUrl = Annotated[HttpUrl, Field(max_length=1000)]


class GridReportCreate(BaseModel):
    """A grid member's event report (网格事件上报), possibly already resolved on the spot (即知即改)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "report_id": "MS-0101-20261126-0007",
                    "grid_code": "370114001001-01",
                    "member_id": "WGY-0101-03",
                    "event_class_code": "event:06018",
                    "coordinates": {"lat": 36.7119, "lon": 117.5348, "crs": "GCJ02"},
                    "address": "章丘区明水街道明一社区百脉泉路12号",
                    "photos": ["https://files.example.cn/grid/ms0101/0007-1.jpg"],
                    "description": "路边堆放绿化修剪枝条，已联系物业清运",
                    "found_at": "2026-11-26T08:10:00+08:00",
                    "resolved_on_spot": True,
                }
            ]
        },
    )

    report_id: Annotated[str, Field(min_length=1, max_length=64, description="The grid app's report id.")]
    grid_code: Annotated[str, Field(min_length=1, max_length=32, description="网格编码.")]
    member_id: Annotated[str, Field(min_length=1, max_length=32, description="网格员编号.")]
    event_class_code: Annotated[
        str | None,
        Field(
            max_length=64,
            description="Grid event class (矛盾纠纷/7) or 数字城管 code (event:06018, component:01001).",
        ),
    ] = None
    coordinates: Coordinates
    address: Annotated[str | None, Field(max_length=500)] = None
    photos: Annotated[list[PhotoUrl], Field(max_length=50, description="Photo URLs (照片).")] = []
    description: Annotated[str, Field(min_length=1, max_length=4000)]
    found_at: SourceTime = Field(description="When the member found it, with time zone.")
    resolved_on_spot: bool = Field(False, description="即知即改: fixed at once, closed without dispatch.")
    urgency: Urgency = Urgency.NORMAL

    @field_validator("urgency", mode="before")
    @classmethod
    def _urgency_in_chinese(cls, value: object) -> object:
        return URGENCY_ALIASES.get(value, value) if isinstance(value, str) else value


class WithdrawRequest(BaseModel):
    """撤诉."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str | None, Field(max_length=500)] = None


class AppealUpdate(BaseModel):
    """补充诉求: more text or photos for an open appeal."""

    model_config = ConfigDict(extra="forbid")
    description_addendum: Annotated[str | None, Field(min_length=1, max_length=4000)] = None
    attachments: Annotated[list[PhotoUrl], Field(max_length=50)] = []


class FeedbackCreate(BaseModel):
    """回访评价 after a reply."""

    model_config = ConfigDict(extra="forbid")
    satisfaction: Literal["满意", "基本满意", "不满意", "satisfied", "basically_satisfied", "dissatisfied"]
    resolved: bool | None = None
    comment: Annotated[str | None, Field(max_length=1000)] = None


class AppealChanged(BaseModel):
    """Outcome of a citizen-side action."""

    case_id: str
    status: str
    events: list[str] = Field(description="CloudEvents types this request recorded (empty on a replay).")


ContactField = Literal["name", "phone", "id_number", "description"]


class ContactRevealed(BaseModel):
    """Clear personal data of one case, for an authorised operator (each read is audited)."""

    case_id: str
    citizen_ref: str | None = Field(
        None, description="The citizen's pseudonymous reference, as the case's events carry it."
    )
    name: str | None
    phone: str | None
    id_number: str | None
    description: str | None = Field(None, description="Original text, when numbers in it were masked.")
    access_id: int


class ContactsRevealRequest(BaseModel):
    """Several cases' personal data at once, for a service holding pii:read that sends to many citizens
    (notify's SMS): one request and one statement instead of one of each per case."""

    model_config = ConfigDict(extra="forbid")

    case_ids: list[str] = Field(min_length=1, max_length=100, description="Case numbers, at most 100.")
    purpose: str = Field(min_length=2, max_length=200, description="Why (recorded in the audit).")
    fields: list[ContactField] | None = Field(
        None, min_length=1, description="Only these (all when absent): ask for what the task needs."
    )


class ContactsRevealed(BaseModel):
    """Each case found with its fields (one audit row each); the cases holding no personal data, or
    unknown, are listed apart."""

    contacts: list[ContactRevealed]
    not_found: list[str]
