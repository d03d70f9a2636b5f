"""Which failures mean "the database or broker is down, retry later" (503 over HTTP, rewind in consumers)."""

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from runtime.consumer import is_infrastructure_error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        # the server shutting down under a raw asyncpg statement (found by the 100,000-case fault run)
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.exceptions.InternalClientError(
            'cannot switch to state 12; protocol is in the "failed" state'
        ),
        asyncpg.exceptions.InternalClientError("not connected"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_outages_are_infrastructure(error):
    assert is_infrastructure_error(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("the server expects 3 arguments for this query, 2 were passed"),
        asyncpg.exceptions.InternalClientError("unexpected codec state"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.exceptions.UndefinedColumnError('column "nope" does not exist'),
        ValueError("a bug"),
    ],
)
def test_bugs_and_bad_data_are_not(error):
    assert not is_infrastructure_error(error)
    assert not is_infrastructure_error(DBAPIError("SELECT 1", None, error))
