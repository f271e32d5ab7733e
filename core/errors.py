"""RFC 9457 problem details: every error the API returns is one of these."""
from __future__ import annotations

import logging
from typing import Any

import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("myhibachi.errors")

PROBLEM_BASE = "https://myhibachi.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class ProblemModel(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None
    permission: str | None = None
    flag: str | None = None


class Problem(Exception):
    """Raise anywhere to answer with a problem body. ``kind`` becomes the type URI's last part."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind if self.kind else "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extra)
        return body


def not_found(what: str, detail: str | None = None) -> Problem:
    return Problem(404, f"{what} not found", detail, kind="not-found")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, "Conflict", detail, kind="conflict", **extra)


_LOCATIONS = ("body", "query", "path", "header")


def located(field: str) -> str:
    """``field`` with where it came from (``body.adults``, ``query.cursor``): a bare name is a
    body field, the one place a service names fields without knowing the route."""
    return field if field.split(".", 1)[0] in _LOCATIONS else f"body.{field}"


def invalid(field: str, message: str, status: int = 422) -> Problem:
    """Bad input in one field, named the same way request validation names fields: with its
    location (``body.``, ``query.``, ``path.``, ``header.``), ``body.`` when none is given."""
    field = located(field)
    return Problem(
        status, "Invalid request", f"{field}: {message}", kind="validation",
        errors=[{"field": field, "message": message}],
    )


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    """One validation error as ``{field, message}``; malformed JSON is a ``body`` error with
    the parser's message and position (pydantic's loc names a byte offset as a field)."""
    if error.get("type") == "json_invalid":
        loc = error.get("loc", ())
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"field": "body", "message": f"malformed JSON: {error.get('ctx', {}).get('error', 'invalid')}{at}"}
    return {"field": ".".join(str(p) for p in error.get("loc", ())) or "body", "message": error.get("msg", "invalid")}


_PROBLEM_REF = {"schema": {"$ref": "#/components/schemas/ProblemModel"}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem bodies for the given statuses.

    A reference, not ``model=``: FastAPI builds a validator for every response model of
    every route (five per route here, 60% of the start-up's route building), and these
    are only ever documented; ``openapi.install`` adds the schema to the document once."""
    return {s: {"content": {MEDIA_TYPE: _PROBLEM_REF}} for s in statuses}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(Problem(422, "Invalid request", detail, kind="validation", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}
        title = titles.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(Problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None)))

    # Database errors that are not bugs are answered here, before Starlette's last-resort
    # handler (which would log them as a crash and re-raise them to the server).
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        answer = _database_problem(request, exc)
        if answer is None:
            raise exc
        return answer
    app.add_exception_handler(sa.exc.SQLAlchemyError, _database)
    app.add_exception_handler(psycopg.Error, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        answer = _database_problem(request, exc)
        if answer is not None:
            return answer
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error", "an unexpected error occurred", kind="internal"))


def _database_problem(request: Request, exc: BaseException) -> JSONResponse | None:
    """503 when the database cannot be reached, 422 for text it cannot hold; None otherwise."""
    from myhibachi.core.db import is_unavailable

    if is_unavailable(exc):
        return problem_response(Problem(503, "Service unavailable", "the database is not reachable; retry shortly",
                                        kind="unavailable", headers={"Retry-After": "2"}))
    if _nul_refused(exc):
        return problem_response(invalid(_nul_field(request), "must not contain the NUL character (\\u0000)"))
    unstorable = _unstorable(exc)
    if unstorable:
        return problem_response(invalid("body", unstorable))
    return None


def _unstorable(exc: BaseException) -> str | None:
    """What made input the database cannot hold, where a route's model let it through: a
    lone surrogate (JSON's "\\ud800") or a number beyond its column."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, UnicodeEncodeError) or (isinstance(seen, psycopg.DataError) and "surrogate" in str(seen)):
            return "must not contain lone surrogates (\\ud800-\\udfff)"
        if isinstance(seen, psycopg.errors.NumericValueOutOfRange):
            return "a number is out of range"
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return None


def _nul_refused(exc: BaseException) -> bool:
    """PostgreSQL text cannot hold NUL; psycopg refuses such a value before sending it. Only
    input carries one, so it is the caller's mistake wherever a route forgot to check."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        if isinstance(seen, psycopg.DataError) and "NUL" in str(seen):
            return True
        visited.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return False


def _nul_field(request: Request) -> str:
    for where, params in (("query", request.query_params.multi_items()), ("path", request.path_params.items())):
        for name, value in params:
            if "\x00" in str(value):
                return f"{where}.{name}"
    return "body"
