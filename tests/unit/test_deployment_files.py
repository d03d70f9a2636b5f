"""docker-compose.yml and the gateway config describe the same system as the local run."""

from __future__ import annotations

import importlib.util

import yaml

from devtools import gateway
from devtools.system import REPO, SERVICES


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_parses_and_names_every_service_with_kafka_postgres_and_a_gateway():
    services = compose()["services"]
    assert set(SERVICES) | {"kafka", "postgres", "gateway"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].startswith("postgres:")


def test_each_compose_service_runs_an_existing_module_on_its_own_port_from_one_image():
    services = compose()["services"]
    images = {services[name]["image"] for name in SERVICES}
    assert len(images) == 1
    for name, port in SERVICES.items():
        spec = services[name]
        assert spec["command"] == ["python", "-m", f"services.{name}"]
        assert importlib.util.find_spec(f"services.{name}.__main__") is not None
        assert spec["environment"]["GRIDLINE_HTTP_PORT"] == str(port)
        assert spec["environment"]["GRIDLINE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_compose_creates_one_database_per_service():
    sql = (REPO / "deploy" / "postgres" / "init-databases.sql").read_text()
    for name in SERVICES:
        assert f"CREATE DATABASE gridline_{name};" in sql


def test_the_compose_gateway_config_is_rendered_from_the_current_template():
    assert gateway.COMPOSE_CONF.read_text() == gateway.render_compose(), "run `python -m devtools.gateway`"
    for name, port in SERVICES.items():
        assert f"server {name}:{port};" in gateway.COMPOSE_CONF.read_text()


def test_the_kubernetes_manifests_are_current_and_probe_health_and_readiness():
    from devtools import k8s

    for path, text in k8s.render().items():
        assert path.read_text() == text, "run `python -m devtools.k8s`"
    for name, port in SERVICES.items():
        deployment, service = yaml.safe_load_all((k8s.BASE / f"{name}.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert service["spec"]["ports"][0]["port"] == port


def test_the_gateway_balances_between_the_replicas_it_is_given():
    addresses: dict = {name: f"127.0.0.1:{port}" for name, port in SERVICES.items()}
    addresses["intake"] = ["127.0.0.1:8001", "127.0.0.1:8011"]
    conf = gateway.render(addresses, "127.0.0.1:8080", "/tmp/run")
    assert "upstream intake { server 127.0.0.1:8001; server 127.0.0.1:8011; keepalive 16; }" in conf
    assert "upstream routing { server 127.0.0.1:8002; keepalive 16; }" in conf
