"""The versioned SLA policy table: which time limit applies to which case, per stage.

Policies are tried in order and the first whose ``match`` fits the case wins (like a firewall rule
list), so specific rules go first and a catch-all last. The table is data (services/sla/data/), loaded
and validated at start; its ``version`` travels in every DeadlineSet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events.sla import ClockKind, DeadlineStage

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "data" / "policies.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limit(_Frozen):
    """A time limit in one clock: hours for natural and working_hours, days for working_days."""

    clock: ClockKind
    amount: Annotated[float, Field(ge=0)]


class StageLimit(Limit):
    yellow: bool = True
    red: bool = True
    escalate: bool = Field(True, description="A red card on this stage starts the escalation ladder.")


class Match(_Frozen):
    """Conditions on the case; an absent condition matches anything."""

    appeal_types: tuple[str, ...] = ()
    urgency: tuple[str, ...] = ()
    category_prefixes: tuple[str, ...] = ()

    def fits(self, appeal_type: str | None, urgency: str | None, category_code: str | None) -> bool:
        if self.appeal_types and appeal_type not in self.appeal_types:
            return False
        if self.urgency and (urgency or "normal") not in self.urgency:
            return False
        return not self.category_prefixes or any(
            (category_code or "").startswith(prefix) for prefix in self.category_prefixes
        )


class Policy(_Frozen):
    id: str
    description: str = ""
    match: Match = Match()
    stages: dict[DeadlineStage, StageLimit]

    @model_validator(mode="after")
    def _reply_and_case_present(self) -> Policy:
        missing = {DeadlineStage.REPLY, DeadlineStage.CASE} - set(self.stages)
        if missing:
            raise ValueError(f"policy {self.id} lacks stages {sorted(missing)}")
        return self


class EscalationLevel(_Frozen):
    level: Annotated[int, Field(ge=1, le=3)]
    name: str
    after: Limit = Field(description="Delay after the first red card of the case.")


class Extension(_Frozen):
    max_count: int = 1
    max_working_days: int = 10


class PolicyTable(_Frozen):
    """The whole table: policies, card and extension rules, and the escalation ladder."""

    version: int
    yellow_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.75
    yellow_working_days_before: Annotated[float, Field(ge=0)] = 1
    extension: Extension = Extension()
    escalation: tuple[EscalationLevel, ...]
    policies: tuple[Policy, ...]

    @model_validator(mode="after")
    def _has_catch_all(self) -> PolicyTable:
        if not self.policies or self.policies[-1].match != Match():
            raise ValueError("the last policy must be a catch-all (empty match)")
        return self

    def select(self, appeal_type: str | None, urgency: str | None, category_code: str | None) -> Policy:
        """The first policy that fits the case (the last one always does)."""
        for policy in self.policies:
            if policy.match.fits(appeal_type, urgency, category_code):
                return policy
        return self.policies[-1]


def load_policy_table(path: Path | str = DEFAULT_POLICY_FILE) -> PolicyTable:
    """Read and validate a policy table from YAML (invalid tables fail at start, not mid-case)."""
    return PolicyTable.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
