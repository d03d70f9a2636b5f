"""A database or broker outage is a 503 problem+json with Retry-After; a bug stays a 500."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from runtime.problems import PROBLEM_JSON, install_problem_handlers


class _PgError(Exception):
    """What asyncpg raises, as SQLAlchemy's DBAPIError carries it in ``orig``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def app_raising(error: BaseException) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "outage",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        OperationalError("SELECT 1", {}, _PgError("08006")),
        InternalError("INSERT", {}, Exception("cannot switch to state 12"), connection_invalidated=True),
        TimeoutError(),
        PoolTimeout("QueuePool limit of size 10 overflow 0 reached, connection timed out, timeout 30.00"),
        # raw asyncpg (intake's hot path) when the server shuts down under a statement: not a subclass of
        # any asyncpg error class handled before (a 500 in a CI fault run)
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.exceptions.InternalClientError(
            'cannot switch to state 12; protocol is in the "failed" state'
        ),
    ],
    ids=[
        "refused",
        "shutting-down",
        "connection-lost",
        "dropped-mid-statement",
        "timeout",
        "pool-timeout",
        "raw-state-switch",
        "raw-failed-protocol",
    ],
)
def test_an_unreachable_database_is_answered_503_problem_json_with_retry_after(outage):
    response = app_raising(outage).get("/boom")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["retry-after"].isdigit()
    assert response.json()["type"].endswith("/service-unavailable")


@pytest.mark.parametrize(
    "bug",
    [
        IntegrityError("INSERT", {}, _PgError("23505")),
        asyncpg.UniqueViolationError("duplicate"),
        asyncpg.exceptions.InternalClientError("unexpected codec state"),
        KeyError("x"),
    ],
    ids=["integrity", "raw-unique-violation", "raw-client-bug", "key-error"],
)
def test_a_failure_that_is_not_an_outage_stays_a_500(bug):
    assert app_raising(bug).get("/boom").status_code == 500
