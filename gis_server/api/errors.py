"""The one place where errors become HTTP responses.

Domain errors (:mod:`gis_server.errors`) map to a status code by class; the body
is always the OGC exception JSON ``{"code", "description"}``. A lost database
becomes 503 with ``Retry-After`` (the pool pings connections before use, so
the service recovers by itself when the database returns); a unique value
already taken (SQLSTATE 23505) is a 409 and a refusal of the database's
access policy (42501) a 403. Anything else is
a 500 logged once, with its traceback; client errors (4xx) are logged at
DEBUG only -- they are not failures of the server.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_server import errors
from layers import UnknownLayer

log = logging.getLogger("gis_server.api.errors")

#: seconds a client should wait before retrying when the database is away
RETRY_AFTER_S = 5

#: HTTP status of each domain error class; the most specific class wins.
STATUS_BY_ERROR: dict[type[errors.GisServerError], int] = {
    errors.NotFound: 404,
    errors.InvalidParameter: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.Conflict: 409,
    errors.IllegalTransition: 409,
    errors.PayloadTooLarge: 413,
    errors.TooManyRequests: 429,
    errors.IngestError: 400,
    errors.DatabaseUnavailable: 503,
    errors.GisServerError: 500,
}

_HTTP_CODES = {
    400: "InvalidParameterValue",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    503: "ServiceUnavailable",
}


class OgcException(BaseModel):
    """The body of every error answer (OGC API - Common exception JSON)."""

    code: str
    description: str


_ERROR_TEXT = {
    400: "A parameter or body is malformed or out of range.",
    401: "No valid credentials (or credentials refused): sign in, or send a key.",
    403: "Signed in, but your role may not do this.",
    404: "No such resource, or it is outside your scope (the same words).",
    409: "The request conflicts with the current state.",
    413: "The request body, or the number of features in it, is too large.",
    429: "Over the request or sign-in budget; retry after `Retry-After` s.",
    503: "The database is unavailable or the query took too long; retry later.",
}

#: answers any route may give, from the layers every request passes: the
#: limits (413, 429), the caller's credentials (401), parameter checks and
#: the NUL refusal (400), the database (503)
EVERY_ROUTE = (400, 401, 413, 429, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring these error answers (OGC exception JSON)."""
    return {
        status: {"model": OgcException, "description": _ERROR_TEXT[status]}
        for status in (*EVERY_ROUTE, *statuses)
    }


_OGC_EXCEPTION_REF = "#/components/schemas/OgcException"


def ogc_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the errors really are: FastAPI documents a 422
    for every operation with parameters, but a request that does not validate
    is a 400 here (:func:`_validation_error`), declared by
    :func:`error_responses`; and every error answer is OGC exception JSON."""
    body = {"application/json": {"schema": {"$ref": _OGC_EXCEPTION_REF}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status, response in responses.items():
                if status.isdigit() and int(status) in _ERROR_TEXT:
                    # JSON whatever the route's own media type (an HTML page's
                    # errors are OGC JSON too)
                    response["content"] = body
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def status_for(error: errors.GisServerError) -> int:
    """The HTTP status of a domain error (nearest mapped base class)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def ogc_exception(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    """An OGC API exception response."""
    return Response(
        orjson.dumps({"code": code, "description": description}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _unavailable(description: str) -> Response:
    return ogc_exception(
        503,
        errors.DatabaseUnavailable.code,
        description,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _is_timeout(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "pgcode", None) == "57014"  # query_canceled


def _pgcode(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "pgcode", None)


async def _domain_error(request: Request, exc: errors.GisServerError) -> Response:
    status = status_for(exc)
    if status >= 500 and status != 503:
        log.error(
            "domain error %s", exc.code, exc_info=exc, extra=_request_fields(request)
        )
    else:
        log.debug("client error %s: %s", exc.code, exc.description)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if isinstance(exc, errors.TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, errors.Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer, ApiKey realm="gis-server"'}
    return ogc_exception(status, exc.code, exc.description, headers)


async def _unknown_layer(request: Request, exc: UnknownLayer) -> Response:
    # the same words as a layer outside the caller's scope (auth.policy): a
    # 404 must not tell which layers exist
    return ogc_exception(
        404, errors.LayerNotFound.code, f"no collection {exc.layer_id!r}"
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query",))
        parts.append(f"{where}: {err.get('msg')}")
    return ogc_exception(400, "InvalidParameterValue", "; ".join(parts))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = _HTTP_CODES.get(exc.status_code, "HTTPError")
    return ogc_exception(
        exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _database_error(request: Request, exc: sa_exc.DBAPIError) -> Response:
    if _pgcode(exc) == "23505":
        # unique_violation: the request names something that exists already
        # (routes that expect it say which value); a conflict, not a failure
        log.info("unique value taken", extra=_request_fields(request))
        return ogc_exception(
            409,
            errors.Conflict.code,
            "The request conflicts with an existing record: a value that must be "
            "unique is already taken.",
        )
    if _pgcode(exc) == "42501":
        # insufficient_privilege: the database's row-level security or grants
        # refused what the policy module let through -- the caller is refused,
        # and it is worth a look (a route missing a check), hence a warning
        log.warning(
            "refused by the database's access policy", extra=_request_fields(request)
        )
        return ogc_exception(
            403, errors.Forbidden.code, "This is outside what your role may change."
        )
    if _is_timeout(exc):
        log.warning("query timed out", extra=_request_fields(request))
        return _unavailable(
            "The query took longer than the server allows; narrow it (bbox, "
            "filter, limit) or retry later."
        )
    if isinstance(exc, sa_exc.OperationalError) or exc.connection_invalidated:
        log.warning(
            "database unavailable: %s",
            type(getattr(exc, "orig", exc)).__name__,
            extra=_request_fields(request),
        )
        return _unavailable("The database is unavailable; retry shortly.")
    log.error("database error", exc_info=exc, extra=_request_fields(request))
    return ogc_exception(500, "ServerError", "Internal server error.")


#: what psycopg2 raises (a plain ValueError) for a text value holding U+0000
_NUL_MESSAGE = "cannot contain NUL (0x00) characters"


async def _value_error(request: Request, exc: ValueError) -> Response:
    if _NUL_MESSAGE in str(exc):
        # a NUL in a body value (query strings are refused before: deps.refuse_nul)
        log.info("NUL character in a request value", extra=_request_fields(request))
        return ogc_exception(
            400,
            "InvalidParameterValue",
            "A text value in the request holds a NUL character (U+0000), which "
            "cannot be stored or compared.",
        )
    log.error("unhandled error", exc_info=exc, extra=_request_fields(request))
    return ogc_exception(500, "ServerError", "Internal server error.")


async def _data_error(request: Request, exc: sa_exc.DataError) -> Response:
    # Values are coerced before they reach SQL; what still fails here (an
    # out-of-range number, an impossible cast) came from the request.
    log.info("request value rejected by the database", extra=_request_fields(request))
    return ogc_exception(
        400,
        "InvalidParameterValue",
        "A value in the request is out of range for the property it is compared with.",
    )


async def _pool_timeout(request: Request, exc: sa_exc.TimeoutError) -> Response:
    log.warning("connection pool exhausted", extra=_request_fields(request))
    return _unavailable("The server is busy; retry shortly.")


def _request_fields(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.url.path,
        "layer": request.path_params.get("collection_id"),
    }


class CatchAllMiddleware:
    """Turn an unexpected exception into a logged 500 in OGC JSON (once).

    Starlette's own catch-all re-raises after answering, so the server would
    log the same error twice; this middleware answers and stops there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.error(
                "unhandled error",
                exc_info=exc,
                extra={"method": scope.get("method"), "path": scope.get("path")},
            )
            if started:  # a streamed body broke half-way: nothing left to say
                return
            response = ogc_exception(500, "ServerError", "Internal server error.")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""
    app.add_exception_handler(errors.GisServerError, _domain_error)
    app.add_exception_handler(UnknownLayer, _unknown_layer)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.DataError, _data_error)
    app.add_exception_handler(sa_exc.TimeoutError, _pool_timeout)
    app.add_exception_handler(ValueError, _value_error)
    app.add_middleware(CatchAllMiddleware)
