from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from runtime.settings import ServiceSettings
from services.sla.domain.policy import DEFAULT_POLICY_FILE


class SlaSettings(ServiceSettings):
    """Sla's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "sla"
    http_port: int = Field(8003, description="Sla's HTTP port.")
    database_name: str = Field("gridline_sla", description="Sla's database.")
    consumer_group: str = Field("gridline-sla", description="Kafka consumer group of sla.")
    sla_policy_file: str = Field(str(DEFAULT_POLICY_FILE), description="YAML policy table (时限规则表).")
    sla_office_hours: str = Field(
        "08:30-12:00,13:30-17:30", description="Office windows in Asia/Shanghai, comma-separated."
    )
    sla_timer_batch_size: int = Field(
        1000, description="Most due timers one firing loop claims per transaction."
    )
    sla_timer_concurrency: int = Field(
        3,
        description="Firing loops per runner, each with its own transaction (while one waits for the"
        " database another prepares its batch).",
    )
    sla_timer_idle_poll_s: float = Field(
        0.5, description="Longest real sleep of the timer runner (bounds firing lag for new timers)."
    )
    sla_timer_prepare_ahead_s: float = Field(
        2.0,
        description="How far ahead (clock seconds) the runner builds the events of timers about to fall due,"
        " so that at their due time it only writes them; 0 turns this off.",
    )
    sla_timer_prepare_max: int = Field(
        20_000,
        description="Most prepared events held in memory (~1.5 kB each); others are built when due.",
    )
    sla_calendar_refresh_s: float = Field(5.0, description="How often the operator holiday table is re-read.")
    sla_clock_speed: float = Field(
        1.0, description="Virtual seconds per real second (tests and demos only; 1 in production)."
    )
    sla_clock_origin: AwareDatetime | None = Field(
        None, description="Virtual time at the real instant sla_clock_anchor (unset: the real time)."
    )
    sla_clock_anchor: float | None = Field(
        None, description="Real unix time at which the virtual clock read sla_clock_origin (unset: start)."
    )

    def model_post_init(self, __context: object) -> None:
        super().model_post_init(__context)
        if self.environment == "production" and (self.sla_clock_speed != 1 or self.sla_clock_origin):
            raise ValueError("a fast or shifted clock is not allowed in production")

    @property
    def clock_origin(self) -> datetime | None:
        return self.sla_clock_origin
