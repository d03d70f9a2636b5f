from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """Notify's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "notify"
    http_port: int = Field(8004, description="Notify's HTTP port.")
    database_name: str = Field("gridline_notify", description="Notify's database.")
    consumer_group: str = Field("gridline-notify", description="Kafka consumer group of notify.")
