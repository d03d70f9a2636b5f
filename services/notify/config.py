from __future__ import annotations

from datetime import time
from pathlib import Path

from pydantic import Field

from runtime.kafka import dlq_topic
from runtime.settings import ServiceSettings

DATA_DIR = Path(__file__).resolve().parent / "data"


class NotifySettings(ServiceSettings):
    """Notify's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "notify"
    http_port: int = Field(8004, description="Notify's HTTP port.")
    database_name: str = Field("gridline_notify", description="Notify's database.")
    consumer_group: str = Field("gridline-notify", description="Kafka consumer group of notify.")

    notify_subscriptions_file: Path = Field(
        DATA_DIR / "subscriptions.yaml", description="Subscription table: who is told what, when (YAML)."
    )
    notify_recipients_file: Path = Field(
        DATA_DIR / "recipients.yaml", description="Recipients, their channels and webhook endpoints (YAML)."
    )
    notify_satisfaction_url: str = Field(
        "https://12345.zhangqiu.example/pj/{case_id}",
        description="Satisfaction survey link sent to citizens with the reply; {case_id} is filled in.",
    )
    notify_delivery_dlq_topic: str = Field(
        dlq_topic("gridline.notify.deliveries"),
        description="Where notifications that failed their last retry are recorded.",
    )

    # Delivery worker
    notify_worker_poll_interval_s: float = Field(0.25, description="How often the worker looks for due rows.")
    notify_max_in_flight: int = Field(32, description="Most deliveries in progress at once per process.")
    notify_send_timeout_s: float = Field(10.0, description="Timeout of one delivery attempt.")
    notify_max_attempts: int = Field(8, description="Attempts before a notification is given up as failed.")
    notify_backoff_base_s: float = Field(5.0, description="Retry delay after the first failure (doubles).")
    notify_backoff_cap_s: float = Field(1800.0, description="Longest retry delay.")
    notify_circuit_threshold: int = Field(
        5, description="Consecutive failures that open an endpoint's circuit."
    )
    notify_circuit_cooldown_s: float = Field(30.0, description="How long an open circuit refuses calls.")
    notify_quiet_hours_start: time = Field(time(22, 0), description="Citizen SMS wait from (local time).")
    notify_quiet_hours_end: time = Field(time(8, 0), description="... until (local time).")
    notify_timezone: str = Field("Asia/Shanghai", description="Time zone of quiet hours and message dates.")

    # SMTP
    notify_smtp_host: str = Field("127.0.0.1", description="SMTP server host.")
    notify_smtp_port: int = Field(25, description="SMTP server port.")
    notify_smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    notify_smtp_username: str | None = Field(None, description="SMTP login (none: no AUTH).")
    notify_smtp_password: str | None = Field(None, description="SMTP password.")
    notify_smtp_connections: int = Field(
        8, ge=1, description="Most SMTP sessions at once; their connections are kept and reused."
    )
    notify_mail_from: str = Field("章丘区12345热线 <noreply@zhangqiu.example>", description="From header.")

    # SMS gateway (HTTP API: docs/notify.md)
    notify_sms_gateway_url: str = Field("http://127.0.0.1:9320", description="SMS gateway base URL.")
    notify_sms_gateway_key: str = Field("development-only-sms-key", description="SMS gateway API key.")
    notify_sms_signature: str = Field("【章丘12345】", description="Signature placed before every SMS text.")
    notify_sms_max_segments: int = Field(2, description="Longest SMS in segments (70/67 characters each).")

    # Citizens' contact numbers: intake's scoped PII endpoint
    notify_intake_url: str = Field("http://127.0.0.1:8001", description="Intake's base URL.")
    notify_intake_api_key: str = Field(
        "dev-notify-pii-key", description="Notify's API key at intake (scope pii:read)."
    )
    notify_intake_contacts_path: str = Field(
        "/v1/intake/contacts/reveal",
        description="Intake's endpoint returning several cases' clear contacts at once (POST).",
    )
    notify_contact_lookup_batch: int = Field(
        100, ge=1, le=100, description="Most cases in one contact lookup (intake takes at most 100)."
    )

    def model_post_init(self, __context: object) -> None:
        super().model_post_init(__context)
        if self.environment == "production":
            for name in ("notify_sms_gateway_key", "notify_intake_api_key"):
                if getattr(self, name).startswith("dev"):
                    raise ValueError(f"GRIDLINE_{name.upper()} must be set in production")
