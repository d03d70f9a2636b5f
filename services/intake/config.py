from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "intake"
    http_port: int = Field(8001, description="Intake's HTTP port.")
    database_name: str = Field("gridline_intake", description="Intake's database.")
    consumer_group: str = Field("gridline-intake", description="Kafka consumer group of intake.")
    citizen_ref_secret: str = Field(
        "development-only-not-secret",
        description="Key of the keyed hash that makes citizen references; must be set in production.",
    )
    case_id_prefix: str = Field("ZQ", description="Prefix of case numbers (ZQ = 章丘).")

    def model_post_init(self, __context: object) -> None:
        super().model_post_init(__context)
        if self.environment == "production" and self.citizen_ref_secret.startswith("development"):
            raise ValueError("GRIDLINE_CITIZEN_REF_SECRET must be set in production")
