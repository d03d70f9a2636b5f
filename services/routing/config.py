from __future__ import annotations

from pathlib import Path

from pydantic import Field

from runtime.kafka import dispatch_topic
from runtime.settings import CASE_EVENTS_TOPIC, ServiceSettings


class RoutingSettings(ServiceSettings):
    """Routing's settings (environment prefix ``GRIDLINE_``)."""

    service_name: str = "routing"
    http_port: int = Field(8002, description="Routing's HTTP port.")
    database_name: str = Field("gridline_routing", description="Routing's database.")
    consumer_group: str = Field("gridline-routing", description="Kafka consumer group of routing.")
    refdata_dir: Path = Field(
        Path(__file__).resolve().parent / "data",
        description="Folder of the reference data files that load-refdata (and an empty database) loads.",
    )
    load_refdata_on_start: bool = Field(
        True, description="Load the reference data files at start-up when no rule set is loaded yet."
    )
    return_window_hours: float = Field(
        24.0, description="How long after assignment an assignee may still return (退单) a case."
    )
    dispatch_partitions: int = Field(3, description="Partitions of each department's dispatch topic.")
    dispatch_topic_suffix: str | None = Field(
        None,
        description=(
            "Suffix of the dispatch topics (gridline.dispatch.<code><suffix>). Unset: whatever suffix the "
            "case events topic carries after 'gridline.case-events', so isolated test runs stay isolated."
        ),
    )

    def dispatch_topic(self, department_code: str) -> str:
        """The work-item topic of one department."""
        suffix = self.dispatch_topic_suffix
        if suffix is None:
            suffix = self.case_events_topic.removeprefix(CASE_EVENTS_TOPIC)
            suffix = "" if suffix == self.case_events_topic else suffix
        return dispatch_topic(department_code) + suffix
