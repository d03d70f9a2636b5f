"""HTTP shapes of routing's actions (``/v1/cases/{id}/...``) and queries (``/v1/routing/...``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssigneeRef(_Body):
    kind: Literal["department", "grid"] = "department"
    code: Annotated[str, Field(min_length=1, max_length=32, description="Department or grid code.")]


class AcceptCase(_Body):
    note: Annotated[str | None, Field(max_length=500)] = None


class ReturnCase(_Body):
    reason: Annotated[
        str, Field(min_length=1, max_length=1000, description="Why the case is not yours (退单理由).")
    ]


class TransferCase(_Body):
    to: AssigneeRef
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class AssignCase(_Body):
    to: AssigneeRef
    reason: Annotated[str, Field(max_length=1000)] = "人工派单"


class CoHandleCase(_Body):
    departments: Annotated[
        list[str], Field(min_length=1, max_length=10, description="Co-handling departments.")
    ]


class ReplyToCase(_Body):
    reply: Annotated[
        str, Field(min_length=1, max_length=4000, description="The answer to the citizen (答复).")
    ]
    resolved: bool = True


class RequestExtension(_Body):
    working_days: Annotated[int, Field(ge=1, le=10)]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class DecideExtension(_Body):
    approved: bool
    working_days: Annotated[int | None, Field(ge=1, le=10)] = None
    note: Annotated[str | None, Field(max_length=1000)] = None


class DecisionRequest(_Body):
    """A dry-run routing decision (nothing is recorded)."""

    category_code: str | None = None
    category: str | None = Field(None, description="Intake's unified category, if any.")
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    crs: Literal["WGS84", "GCJ02", "BD09"] = "WGS84"
    address: str | None = None
    description: str = ""
    exclude: list[str] = Field(default_factory=list, description="Assignee keys such as department:CGJ.")


class CasePublic(BaseModel):
    """Routing's view of a case."""

    case_id: str
    status: str
    assignment: dict[str, Any] | None
    returns: int
    excluded: list[str]
    pending_extension: dict[str, Any] | None
    events: list[str] = Field(default_factory=list, description="Event types this action recorded.")


class RuleIn(_Body):
    """One row of the responsibility matrix (职责清单), as in responsibility_matrix.yaml."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    category: Annotated[str, Field(min_length=1, max_length=32, description="Gridline category code.")]
    level: Literal["grid", "community", "town", "district"]
    area: Annotated[
        str | None, Field(max_length=12, description="Limit the rule to one area (NBS code).")
    ] = None
    assignees: Annotated[
        list[str], Field(min_length=1, description="Department codes and/or `grid`, in order of preference.")
    ]


class RuleSetCreate(_Body):
    """A responsibility matrix to activate; the other reference tables stay as in the active version."""

    label: Annotated[str, Field(min_length=1, max_length=200, description="A name for people and the audit.")]
    rules: Annotated[list[RuleIn], Field(min_length=1, max_length=5000)]


class RuleSetLoaded(BaseModel):
    """The version now active, whether this request created it, and what changed."""

    version: int
    created: bool
    label: str
    changes: dict[str, Any]
