"""The one table from error type to HTTP status, and the exception handlers that use it."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from judge_service.errors import JudgeError, NotReadyError, PayloadTooLargeError, QueueFullError

log = logging.getLogger(__name__)

ERROR_STATUS: dict[str, int] = {
    "invalid_request": 422,
    "invalid_base64": 400,
    "audio_unreadable": 400,
    "audio_empty": 400,
    "audio_unsupported_format": 415,
    "audio_unsupported_sample_rate": 422,
    "audio_too_short": 422,
    "audio_non_finite": 422,
    "audio_too_long": 413,
    "payload_too_large": 413,
    "too_many_items": 413,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "queue_full": 429,
    "rate_limited": 429,
    "client_disconnected": 499,
    "internal_error": 500,
    "backend_error": 500,
    "scorer_error": 502,
    "not_ready": 503,
    "shutting_down": 503,
    "deadline_exceeded": 504,
}
"""Error type -> HTTP status. Batch endpoints answer 200 with per-item errors of these types;
single-item (multipart) requests answer with the item's status."""

NOT_READY_RETRY_AFTER_S = 5


def status_for(error_type: str) -> int:
    return ERROR_STATUS.get(error_type, 500)


def error_response(
    error_type: str, message: str, judge: dict[str, str] | None = None,
    headers: dict[str, str] | None = None, error_id: str | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"error": {"type": error_type, "message": message}}
    if error_id is not None:
        body["error"]["error_id"] = error_id  # type: ignore[index]
    if judge is not None:
        body["judge"] = judge
    return JSONResponse(body, status_code=status_for(error_type), headers=headers)


def _judge_of(request: Request) -> dict[str, str] | None:
    service = getattr(request.app.state.runtime, "service", None)
    return service.judge if service is not None else None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(JudgeError)
    async def _judge_error(request: Request, exc: JudgeError) -> JSONResponse:
        headers = {}
        if isinstance(exc, QueueFullError):
            headers["Retry-After"] = str(int(exc.retry_after_s))
        elif isinstance(exc, NotReadyError):
            headers["Retry-After"] = str(NOT_READY_RETRY_AFTER_S)
        elif isinstance(exc, PayloadTooLargeError):
            # The rest of an over-long body is never read: closing makes uvicorn drop it instead
            # of draining it (an endless chunked upload would otherwise be read forever).
            headers["Connection"] = "close"
        return error_response(exc.error_type, exc.message, _judge_of(request), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {error.get('msg')}")
        return error_response("invalid_request", "; ".join(problems), _judge_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        response = error_response(error_type, str(exc.detail), _judge_of(request))
        response.status_code = exc.status_code
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return error_response(
            "internal_error", f"unexpected server error; quote error id {error_id}",
            _judge_of(request), error_id=error_id,
        )
