"""Dependencies shared by intake's routers (Annotated aliases, one place)."""

from typing import Annotated

from fastapi import Depends, Header, Request, Security

from runtime.auth import Principal, authenticate, authorise
from runtime.openapi import problem_response_doc
from runtime.problems import problem_response
from services.intake.handlers import IdempotencyKey, Intake
from services.intake.limits import RateLimiter


class RateLimited(Exception):
    """The client key has used up its request budget; answered with 429 and Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


def rate_limited_response(request: Request, exc: RateLimited):
    response = problem_response(
        429,
        "rate-limited",
        "Too many requests from this client key; slow down.",
        str(request.url.path),
        retry_after=exc.retry_after,
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def intake_of(request: Request) -> Intake:
    return request.app.state.intake


def limiter_of(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


# Dependencies are coroutines: FastAPI runs a plain ``def`` dependency in the thread pool, one hop per call.
async def get_intake(request: Request) -> Intake:
    return intake_of(request)


IntakeDep = Annotated[Intake, Depends(get_intake)]


def client(*scopes: str):
    """Authenticate, check the scope, then spend one token of the client's rate budget.

    One dependency over ``authenticate`` (whose key headers document the security scheme): each
    dependency FastAPI solves costs a request ~15 µs, and this one guards intake's busiest routes."""

    # A default rather than an Annotated hint: postponed annotations cannot see this closure's ``scopes``.
    async def dependency(
        request: Request, principal: Principal = Security(authenticate, scopes=list(scopes))
    ) -> Principal:
        authorise(principal, scopes)
        wait = limiter_of(request).check(principal.client_id)
        if wait:
            raise RateLimited(wait)
        return principal

    return dependency


def idempotency_key(
    principal_id: str,
    key: str | None,
) -> IdempotencyKey | None:
    return IdempotencyKey(principal_id, key) if key else None


IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe key (IETF draft): the same key and body return the same case.",
    ),
]


_REASONS = {
    401: "No valid API key",
    403: "The key lacks the scope",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    422: "Invalid field (the errors list names each one)",
    429: "Rate limit reached (Retry-After)",
}
PROBLEMS: dict[int | str, dict] = {
    status: problem_response_doc(reason) for status, reason in _REASONS.items()
}
