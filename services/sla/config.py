from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings


class SlaSettings(ServiceSettings):
    """Sla's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "sla"
    http_port: int = Field(8003, description="Sla's HTTP port.")
    database_name: str = Field("gridline_sla", description="Sla's database.")
    consumer_group: str = Field("gridline-sla", description="Kafka consumer group of sla.")
