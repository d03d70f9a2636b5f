"""API keys with scopes, one key per client system (hotline, each grid app, each Open311 client,
each department's system, operators, SREs).

Keys are looked up by SHA-256 digest, so a production key file holds digests only; the development
file may hold plain keys for convenience and is refused in production. A key never reaches the logs.

Scopes: ``hotline``, ``grid``, ``open311``, ``department:<code>``, ``operator``, ``sre``, ``pii:read``.
Each route's scopes appear in its OpenAPI ``security`` requirement (``ApiKey`` or ``Bearer``, with the
scopes any one of which suffices), so clients, docs and the route-by-route security test read them from
the same place the check does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from runtime.problems import Problem

DEV_KEYS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "api-keys.dev.yaml"


class ClientKey(BaseModel):
    client_id: str
    scopes: list[str]
    key: str | None = Field(None, description="Plain key: development files only.")
    key_sha256: str | None = None

    def digest(self) -> str:
        if self.key_sha256:
            return self.key_sha256.lower()
        if self.key:
            return hashlib.sha256(self.key.encode()).hexdigest()
        raise ValueError(f"client {self.client_id} has neither key nor key_sha256")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client system and what it may do."""

    client_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def departments(self) -> frozenset[str]:
        """Department codes this client acts for (scopes ``department:<code>``)."""
        return frozenset(s.split(":", 1)[1] for s in self.scopes if s.startswith("department:"))


class KeyRing:
    """The set of known keys, indexed by digest."""

    def __init__(self, clients: list[ClientKey]) -> None:
        self._by_digest = {c.digest(): Principal(c.client_id, frozenset(c.scopes)) for c in clients}

    @classmethod
    def from_file(cls, path: Path, *, allow_plain: bool) -> KeyRing:
        data = yaml.safe_load(path.read_text()) or {}
        clients = [ClientKey.model_validate(c) for c in data.get("clients", [])]
        if not allow_plain and any(c.key for c in clients):
            raise ValueError(f"{path} holds plain keys; production key files hold key_sha256 only")
        return cls(clients)

    def authenticate(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        # Looked up by its SHA-256 digest: how long the lookup takes tells nothing about a key (unlike
        # comparing the keys themselves), and it costs one probe, not a comparison per known client.
        return self._by_digest.get(hashlib.sha256(presented.encode()).hexdigest())


@lru_cache(maxsize=8)
def load_keyring(path: str, allow_plain: bool) -> KeyRing:
    return KeyRing.from_file(Path(path), allow_plain=allow_plain)


def keyring_for(request: Request) -> KeyRing:
    settings = request.app.state.runtime.settings
    path = settings.api_keys_file or str(DEV_KEYS_FILE)
    return load_keyring(path, settings.environment != "production")


API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="The client system's API key."
)
BEARER = HTTPBearer(
    scheme_name="Bearer", auto_error=False, description="The same API key as `Authorization: Bearer <key>`."
)


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(API_KEY_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    """The calling client (key from ``X-API-Key`` or ``Authorization: Bearer``), or 401."""
    presented = api_key or (bearer.credentials.strip() if bearer else None)
    principal = keyring_for(request).authenticate(presented)
    if principal is None:
        raise Problem(401, "unauthenticated", "A valid API key is required (X-API-Key header).")
    return principal


def authorise(principal: Principal, scopes: tuple[str, ...]) -> Principal:
    """``principal`` if it holds at least one of ``scopes`` (``department:*`` = any department), else 403."""
    for scope in scopes:
        if scope == "department:*" and principal.departments:
            return principal
        if principal.has(scope):
            return principal
    raise Problem(
        403, "forbidden", f"This key lacks the scope for this action (needs one of {list(scopes)})."
    )


def require(*scopes: str):
    """Dependency: the caller must hold at least one of ``scopes`` (``department:*`` = any department)."""

    # A default rather than an Annotated hint: postponed annotations cannot see this closure's ``scopes``.
    async def check(principal: Principal = Security(authenticate, scopes=list(scopes))) -> Principal:
        return authorise(principal, scopes)

    return check
