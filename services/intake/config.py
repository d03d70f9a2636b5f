from __future__ import annotations

from pydantic import Field

from runtime.settings import ServiceSettings
from services.intake.vault import DEVELOPMENT_KEY


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
    pii_vault_keys: str = Field(
        DEVELOPMENT_KEY,
        description=(
            "AES-256 keys of the PII vault, base64url, '<id>:<key>' comma-separated, current key first "
            "(a bare key is id 1). The development key is refused in production."
        ),
    )
    recording_connections: int = Field(
        2,
        ge=1,
        description="Batches of new appeals written at once, each on a database connection of its own "
        "(asyncpg's pool, apart from the db_pool_size connections of everything else; it holds one "
        "more for contact reveals).",
    )
    recording_max_batch: int = Field(
        64,
        ge=1,
        description="Most appeals recorded in one transaction (those that arrived while the previous "
        "batch was written; at low load a batch is one appeal and waits for nothing).",
    )
    case_id_prefix: str = Field("ZQ", description="Prefix of case numbers (ZQ = 章丘).")
    default_area_code: str = Field("531", description="Area code assumed for 7–8 digit local numbers (济南).")
    duplicate_same_caller_days: float = Field(
        7, description="Same caller + same category within this many days is a duplicate (重复件)."
    )
    duplicate_radius_m: float = Field(250, description="Same category within this distance (metres) ...")
    duplicate_nearby_hours: float = Field(48, description="... and within this many hours is a duplicate.")
    max_body_bytes: int = Field(64 * 1024, description="Largest request body accepted (413 beyond).")
    max_attachments: int = Field(9, description="Most attachment (photo) URLs per appeal.")
    rate_limit_per_s: float = Field(100.0, description="Sustained requests per second per client key.")
    rate_limit_burst: int = Field(400, description="Requests a client key may send at once before limiting.")
    idempotency_keep_hours: float = Field(
        168,
        gt=0,
        description="Hours an Idempotency-Key's first answer is kept (then housekeeping deletes it; a later "
        "retry is still recognised by its external reference, as Open311 POSTs with a key carry one).",
    )
    open311_jurisdiction_id: str = Field("zhangqiu.jinan.gov.cn", description="Open311 jurisdiction_id.")
    open311_default_days: int = Field(90, description="Default window of GET requests (Open311: 90 days).")
    open311_max_requests: int = Field(1000, description="Most requests one GET returns (Open311: 1000).")
    public_base_url: str = Field(
        "http://127.0.0.1:8080", description="Base URL clients see (gateway), used in Open311 discovery."
    )

    def model_post_init(self, __context: object) -> None:
        super().model_post_init(__context)
        if self.environment == "production" and self.citizen_ref_secret.startswith("development"):
            raise ValueError("GRIDLINE_CITIZEN_REF_SECRET must be set in production")
        if self.environment == "production" and DEVELOPMENT_KEY in self.pii_vault_keys:
            raise ValueError("GRIDLINE_PII_VAULT_KEYS must be set in production")
