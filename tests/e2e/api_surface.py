"""Every service's HTTP surface as its own OpenAPI document states it, and the development keys to call it.

Each secured route names its scopes in its OpenAPI ``security`` requirement (``runtime.auth.require`` puts
them there), so the security and fuzz tests learn what a route needs from the running service itself
rather than from a copy of the rules kept beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx
import yaml

from devtools.system import SERVICES, LocalSystem
from runtime.auth import DEV_KEYS_FILE

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Path parameters that name nothing that exists, so a probe never touches a real case.
ABSENT_CASE_ID = "ZQ19700101999999"


@dataclass(frozen=True)
class DevClient:
    """One client system of the development key file."""

    client_id: str
    key: str
    scopes: frozenset[str]

    def holds_any(self, required: frozenset[str]) -> bool:
        """Whether this key passes a check needing one of ``required`` (``department:*`` = any department)."""
        departments = any(s.startswith("department:") for s in self.scopes)
        return any(s in self.scopes or (s == "department:*" and departments) for s in required)


@cache
def dev_clients() -> tuple[DevClient, ...]:
    clients = yaml.safe_load(DEV_KEYS_FILE.read_text())["clients"]
    return tuple(DevClient(c["client_id"], c["key"], frozenset(c["scopes"])) for c in clients)


def dev_key(client_id: str) -> str:
    return next(c.key for c in dev_clients() if c.client_id == client_id)


@dataclass(frozen=True)
class Operation:
    """One (method, path) of one service, with its OpenAPI operation object."""

    service: str
    method: str
    path: str
    spec: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ident(self) -> tuple[str, str, str]:
        return self.service, self.method, self.path

    @property
    def scopes(self) -> frozenset[str] | None:
        """The scopes any one of which admits a caller; None when the route declares no security."""
        requirements = self.spec.get("security")
        if not requirements:
            return None
        return frozenset(
            scope for requirement in requirements for names in requirement.values() for scope in names
        )

    @property
    def has_body(self) -> bool:
        return "requestBody" in self.spec

    def url(self, **values: str) -> str:
        """The path with every parameter filled: ``values`` first, else a value that names nothing."""
        path = self.path
        for parameter in self.spec.get("parameters", ()):
            if parameter["in"] == "path":
                name = parameter["name"]
                path = path.replace("{" + name + "}", values.get(name) or _absent(name, parameter))
        return path


def _absent(name: str, parameter: dict[str, Any]) -> str:
    schema = parameter.get("schema", {})
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return str(schema.get("maximum", 2099))
    return {"case_id": ABSENT_CASE_ID, "fmt": "json"}.get(name, "nothing-here")


def operations(system: LocalSystem) -> list[Operation]:
    """Every documented operation of every running service."""
    found = []
    for service in SERVICES:
        document = httpx.get(f"{system.url(service)}/openapi.json", timeout=10).raise_for_status().json()
        for path, methods in document["paths"].items():
            for method, spec in methods.items():
                found.append(Operation(service, method.upper(), path, spec))
    return found
