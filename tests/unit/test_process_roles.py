"""What each process role runs (runtime.settings.process_role, runtime.service.create_app)."""

from __future__ import annotations

from runtime.service import ServiceRuntime
from services.intake.bootstrap import build_app
from services.intake.config import IntakeSettings


def _settings(**values) -> IntakeSettings:
    return IntakeSettings(environment="test", **values)


def test_a_worker_lingers_between_polls_and_wakes_unless_told_otherwise():
    assert (_settings().consumer_linger_s, _settings().outbox_linger_s) == (0.0, 0.0)
    worker = _settings(process_role="worker")
    assert (worker.consumer_linger_s, worker.outbox_linger_s) == (0.2, 0.02)
    eager = _settings(process_role="worker", consumer_linger_s=0, outbox_linger_s=0.002)
    assert (eager.consumer_linger_s, eager.outbox_linger_s) == (0.0, 0.002)


def _paths(role: str) -> set[str]:
    settings = _settings(process_role=role)
    app = build_app(settings, ServiceRuntime.build(settings))
    return set(app.openapi()["paths"])


def test_an_http_process_serves_the_api_and_a_worker_only_its_health():
    assert "/v1/intake/hotline" in _paths("http") and "/open311/v2/requests.{fmt}" in _paths("http")
    assert _paths("http") == _paths("all")
    assert _paths("worker") == {"/healthz", "/readyz"}
