from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings


class ProjectionSettings(ServiceSettings):
    """Projection's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "projection"
    http_port: int = Field(8005, description="Projection's HTTP port.")
    database_name: str = Field("gridline_projection", description="Projection's database (read models only).")
    consumer_group: str = Field("gridline-projection", description="Kafka consumer group of the projector.")
