"""docker-compose.yml and the gateway config describe the same system as the local run."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from devtools import gateway, infra
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


def test_compose_runs_postgresql_with_the_server_profile_the_local_clusters_use():
    profile = infra.server_profile()
    assert {"max_wal_size", "checkpoint_timeout", "wal_compression"} <= set(profile)
    command = compose()["services"]["postgres"]["command"]
    assert command[0] == "postgres" and command[1::2] == ["-c"] * len(profile)
    assert dict(flag.split("=", 1) for flag in command[2::2]) == profile


def test_local_clusters_that_keep_their_data_run_the_profile_and_the_tests_throwaway_ones_do_not():
    profile = infra.server_profile()
    durable = infra.cluster_settings(fast_unsafe=False)
    assert profile.items() <= durable.items() and "fsync" not in durable
    throwaway = infra.cluster_settings(fast_unsafe=True)
    assert throwaway["fsync"] == "off" and not set(profile) & set(throwaway)
    measured = infra.cluster_settings(fast_unsafe=False, extra={"max_wal_size": "2GB"})
    assert measured["max_wal_size"] == "2GB"  # a benchmark's --postgres-setting comes last


def test_a_server_profile_file_is_read_as_name_value_lines_and_a_bad_line_is_refused(tmp_path):
    conf = tmp_path / "gridline.conf"
    conf.write_text("# comment\n\nmax_wal_size = 8GB  # trailing\nwal_compression=lz4\n")
    assert infra.server_profile(conf) == {"max_wal_size": "8GB", "wal_compression": "lz4"}
    conf.write_text("shared_buffers\n")
    with pytest.raises(ValueError, match="gridline.conf:1"):
        infra.server_profile(conf)


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
