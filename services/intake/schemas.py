"""HTTP shapes of intake's native feeds (the sources' own field names, in English)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.events import AppealType, CoordinateSystem, Urgency

APPEAL_TYPE_ALIASES = {
    "咨询": AppealType.CONSULTATION,
    "求助": AppealType.HELP,
    "投诉": AppealType.COMPLAINT,
    "举报": AppealType.REPORT,
    "建议": AppealType.SUGGESTION,
    "表扬": AppealType.PRAISE,
}
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
    called_at: AwareDatetime = Field(description="When the citizen called, with time zone.")
    caller_name: Annotated[str | None, Field(max_length=64)] = None
    caller_phone: Annotated[str | None, Field(pattern=r"^\+?[0-9\- ]{5,20}$")] = None
    appeal_type: AppealType = Field(description="咨询/求助/投诉/举报/建议/表扬, or the English value.")
    category_code: Annotated[str | None, Field(max_length=32)] = None
    content: Annotated[str, Field(min_length=1, max_length=4000, description="诉求内容.")]
    address: Annotated[str | None, Field(max_length=500)] = None
    coordinates: Coordinates | None = None
    urgency: Urgency = Urgency.NORMAL
    reply_required: bool = True

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
    links: dict[str, str]
