"""Every failure becomes an OpenAI-style JSON error: `{"error": {"message", "type", "code"}}`.

Bad input is the client's to fix, so it gets a 4xx whose message names the problem (the engine's
`CodelmError` messages already do); a full queue gets 503 so clients back off and retry; only a
failure of our own gets a 500, and it is logged with its traceback. The server never goes down
because of a request.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from codelm.engine.scheduler import QueueFullError
from codelm.errors import CodelmError, UnsupportedFeatureError
from codelm.serve.protocol import ErrorInfo, ErrorResponse

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_busy",
    504: "upstream_error",
}


class APIError(Exception):
    """An error response: HTTP status, message, and the OpenAI-style type and code."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        info = ErrorInfo(message=self.message, type=self.type, code=self.code, param=self.param)
        return ErrorResponse(error=info).model_dump()

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def api_error(exc: BaseException) -> APIError:
    """The APIError for an exception raised while serving a request."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, QueueFullError):
        return APIError(503, str(exc), "queue_full")
    if isinstance(exc, UnsupportedFeatureError):
        message = str(exc)
        if "fill-in-the-middle" in message:
            message = f"model does not support fill-in-the-middle ({message})"
        return APIError(400, message, "unsupported_feature")
    if isinstance(exc, CodelmError):
        return APIError(400, str(exc), "invalid_request")
    return APIError(500, f"internal error: {type(exc).__name__}", "internal_error")


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One readable line for pydantic's errors: the first problem of each field."""
    seen: dict[str, str] = {}
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"invalid JSON body: {err.get('ctx', {}).get('error', err.get('msg'))}", None
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        # union members appear in the path as type names ('str', 'list[str]'); keep field names only
        field = ".".join(p for p in loc if not (p[:1].islower() and "[" in p) and p not in _TYPE_TAGS)
        if not field:
            return "the request body must be a JSON object", None
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")  # our own validators
        seen.setdefault(field, f"{field}: {msg}")
    first = next(iter(seen), None)
    return "; ".join(seen.values()) or "invalid request", first


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a JSON error body."""

    def count(request: Request, error: APIError) -> None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.error(error.status, error.code)

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = api_error(exc)
        count(request, error)
        if error.status >= 500:
            log.error("request failed: %s", error.message, exc_info=exc)
        return error.response()

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = validation_message(exc)
        error = APIError(400, message, "invalid_request", param)
        count(request, error)
        return error.response()

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        error = APIError(exc.status_code, str(exc.detail), codes.get(exc.status_code))
        count(request, error)
        return error.response(getattr(exc, "headers", None))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(CodelmError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_api_error)
