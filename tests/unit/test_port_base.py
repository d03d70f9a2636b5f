"""A test run's ports stay out of the range the kernel gives outgoing connections."""

from __future__ import annotations

import pytest

from tests.conftest import check_port_base, ephemeral_port_range

LINUX_DEFAULT = range(32768, 61000)


@pytest.mark.parametrize("base", [29000, 31000, 31768, 61000])
def test_a_base_whose_ports_are_all_outside_the_range_is_accepted(base):
    check_port_base(base, LINUX_DEFAULT)


@pytest.mark.parametrize("base", [31769, 33000, 60999])
def test_a_base_whose_ports_reach_into_the_range_is_refused_with_a_base_to_use(base):
    with pytest.raises(pytest.UsageError, match="below 31768"):
        check_port_base(base, LINUX_DEFAULT)


def test_the_range_is_read_from_the_kernel_or_left_unchecked(tmp_path):
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("32768\t60999\n")
    assert ephemeral_port_range(setting) == LINUX_DEFAULT
    assert ephemeral_port_range(tmp_path / "absent") is None
    check_port_base(33000, None)


def test_make_run_and_the_benchmarks_listen_below_the_range():
    """`make run` and every benchmark start servers on fixed ports; one in the range can be taken by an
    outgoing connection of the processes starting beside it (make run's PostgreSQL on 55432 once was)."""
    from bench import e2e, idle, intake, routing
    from devtools import run

    fixed = {
        "make run": [run.KAFKA_PORT, run.KAFKA_CONTROLLER_PORT, run.POSTGRES_PORT, run.GATEWAY_PORT],
        "bench e2e": [e2e.KAFKA_PORT, e2e.CONTROLLER_PORT, e2e.POSTGRES_PORT, e2e.RAW_HTTP_PORT],
        "bench e2e services": [e2e.SERVICE_PORT_OFFSET + port for port in e2e.SERVICES.values()],
        "bench idle": [idle.PORTS.kafka, idle.PORTS.kafka_controller, idle.PORTS.postgres],
        "bench intake": [intake.PORTS.kafka, intake.PORTS.kafka_controller, intake.PORTS.postgres],
        "bench routing": [routing.KAFKA_PORT, routing.KAFKA_CONTROLLER_PORT, routing.POSTGRES_PORT],
    }
    inside = {name: [p for p in ports if p in LINUX_DEFAULT] for name, ports in fixed.items()}
    assert not any(inside.values()), inside
