"""Recipients and their channels: one route per channel a recipient is reached on.

Recipient ids never contain contact data: ``department:CGJ``, ``grid:370114001001001``,
``supervisor:district-office``, ``citizen:<citizen_ref>``. Staff addresses live in the directory;
citizens' phone numbers stay in intake's vault and are looked up only at send time.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SMS = "sms"


class Route(BaseModel):
    """How one recipient is reached on one channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Channel
    endpoint: str | None = Field(None, description="Webhook endpoint name (webhook routes).")
    address: str | None = Field(None, description="Staff e-mail address or phone; may contain {code}.")

    @model_validator(mode="after")
    def _complete(self) -> Route:
        if self.channel is Channel.WEBHOOK and not self.endpoint:
            raise ValueError("a webhook route names its endpoint")
        if self.channel is Channel.EMAIL and not self.address:
            raise ValueError("an email route has an address")
        return self

    def for_code(self, code: str) -> Route:
        if self.address and "{code}" in self.address:
            return self.model_copy(update={"address": self.address.format(code=code.lower())})
        return self


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret: str | None = Field(None, description="Development only; production uses secret_env.")
    secret_env: str | None = None

    def resolved_secret(self) -> str:
        if self.secret_env and os.environ.get(self.secret_env):
            return os.environ[self.secret_env]
        if self.secret:
            return self.secret
        raise LookupError(f"webhook secret not configured (set {self.secret_env})")


class RecipientEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    routes: list[Route]


class Recipient(BaseModel):
    """A resolved recipient: id, display name, kind and routes."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    name: str
    routes: list[Route]


class Directory(BaseModel):
    """Who can be reached how. Unlisted departments and grids fall back to ``defaults`` by kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook_endpoints: dict[str, WebhookEndpoint] = Field(default_factory=dict)
    recipients: dict[str, RecipientEntry] = Field(default_factory=dict)
    defaults: dict[str, list[Route]] = Field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: Path, *, allow_plain_secrets: bool = True) -> Directory:
        directory = cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        if not allow_plain_secrets and any(e.secret for e in directory.webhook_endpoints.values()):
            raise ValueError(f"{path} holds plain webhook secrets; production uses secret_env")
        return directory

    def recipient(self, recipient_id: str, name: str | None = None) -> Recipient | None:
        """The recipient with its routes, or None when neither listed nor covered by a default."""
        kind, _, code = recipient_id.partition(":")
        entry = self.recipients.get(recipient_id)
        if entry is not None:
            return Recipient(id=recipient_id, kind=kind, name=entry.name, routes=entry.routes)
        routes = self.defaults.get(kind)
        if not routes:
            return None
        return Recipient(
            id=recipient_id, kind=kind, name=name or code, routes=[r.for_code(code) for r in routes]
        )

    def route(self, recipient_id: str, channel: str) -> Route | None:
        found = self.recipient(recipient_id)
        return next((r for r in found.routes if r.channel == channel), None) if found else None


def endpoint_key(route: Route) -> str:
    """The name of the endpoint a route delivers through: the circuit breaker's unit."""
    if route.channel is Channel.WEBHOOK:
        return f"webhook:{route.endpoint}"
    return "smtp" if route.channel is Channel.EMAIL else "sms-gateway"
