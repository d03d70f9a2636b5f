from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    """Routing's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "routing"
    http_port: int = Field(8002, description="Routing's HTTP port.")
    database_name: str = Field("gridline_routing", description="Routing's database.")
    consumer_group: str = Field("gridline-routing", description="Kafka consumer group of routing.")
