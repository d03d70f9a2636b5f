"""Render the nginx gateway config from deploy/nginx/gridline.conf.template.

``python -m devtools.gateway`` rewrites deploy/nginx/compose.conf (docker-compose's copy); the local run
renders its own into .local/run/. A unit test checks compose.conf is current.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

from devtools.system import REPO, SERVICES

TEMPLATE = REPO / "deploy" / "nginx" / "gridline.conf.template"
COMPOSE_CONF = REPO / "deploy" / "nginx" / "compose.conf"


def render(addresses: dict[str, str | Sequence[str]], listen: str, run_dir: str) -> str:
    """The gateway config for services at ``addresses`` (name -> host:port, or a list of them: replicas
    the gateway balances between)."""
    values = {f"{name.upper()}_ADDR": _servers(addresses[name]) for name in SERVICES}
    values.update(GATEWAY_LISTEN=listen, RUN_DIR=run_dir)
    rendered = string.Template(TEMPLATE.read_text()).safe_substitute(values)  # nginx's $variables stay
    if "${" in rendered:
        raise ValueError(f"unfilled placeholder in {TEMPLATE.name}: {rendered[rendered.index('${') :][:40]}")
    return rendered


def _servers(address: str | Sequence[str]) -> str:
    """The template's ``server ${X_ADDR};`` line filled with one or several servers."""
    return address if isinstance(address, str) else "; server ".join(address)


def render_local(run_dir: Path, gateway_port: int) -> str:
    return render(
        {n: f"127.0.0.1:{p}" for n, p in SERVICES.items()}, f"127.0.0.1:{gateway_port}", str(run_dir)
    )


def render_compose() -> str:
    return render({n: f"{n}:{p}" for n, p in SERVICES.items()}, "8080", "/tmp")


if __name__ == "__main__":
    COMPOSE_CONF.write_text(render_compose())
    print(f"wrote {COMPOSE_CONF.relative_to(REPO)}")
