"""Request plumbing shared by routes: the service dependency, body parsing, disconnect
watching and the timing headers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Annotated, Any, AsyncIterator, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from judge_service.errors import InvalidRequestError, NotReadyError
from judge_service.schemas import ITEM_ID_PATTERN
from judge_service.service import JudgeService, RequestTiming

ModelT = TypeVar("ModelT", bound=BaseModel)
DISCONNECT_POLL_S = 0.1
MULTIPART_MAX_FILES = 257


def ready_part(request: Request, name: str) -> Any:
    """``runtime.<name>`` (the service, the jobs), or ``NotReadyError`` while it is not built."""
    runtime = request.app.state.runtime
    part = getattr(runtime, name)
    if part is None:
        raise NotReadyError(f"the judge is {runtime.status}; retry shortly (see /readyz)")
    return part


def get_service(request: Request) -> JudgeService:
    return ready_part(request, "service")


Service = Annotated[JudgeService, Depends(get_service)]


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def parse_json(request: Request, model: type[ModelT]) -> ModelT:
    """Validate a JSON body against ``model``; errors become ``invalid_request``."""
    content_type = request.headers.get("content-type", "")
    if content_type and not content_type.startswith("application/json"):
        raise InvalidRequestError(
            f"content-type {content_type!r} is not accepted here; send application/json "
            "(or multipart/form-data where the route documents it)"
        )
    body = await request.body()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequestError(_validation_message(exc)) from None


def validate_model(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(_validation_message(exc)) from None


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error["loc"])
        problems.append(f"{where or 'body'}: {error['msg']}")
    more = f" (and {exc.error_count() - 10} more)" if exc.error_count() > 10 else ""
    return "; ".join(problems) + more


async def read_form(request: Request, max_files: int = MULTIPART_MAX_FILES, max_fields: int = 64) -> FormData:
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except StarletteHTTPException as exc:  # starlette's answer to a malformed multipart body
        raise InvalidRequestError(f"multipart body could not be parsed: {exc.detail}") from None


async def form_file(form: FormData, field: str) -> bytes:
    value = form.get(field)
    if not isinstance(value, UploadFile):
        raise InvalidRequestError(f"multipart field {field!r} must be a file upload")
    return await value.read()


async def form_files(form: FormData, field: str) -> list[tuple[str, bytes]]:
    files = []
    for value in form.getlist(field):
        if not isinstance(value, UploadFile):
            raise InvalidRequestError(f"multipart field {field!r} must be file uploads")
        files.append((value.filename or f"{field}-{len(files)}", await value.read()))
    return files


def form_text(form: FormData, field: str) -> str | None:
    value = form.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"multipart field {field!r} must be text, not a file")
    return value


def form_item_id(form: FormData, default: str) -> str:
    """The multipart ``id`` field, held to the same rule as JSON item ids (no control characters)."""
    value = form_text(form, "id")
    if value is None:
        return default
    if not re.fullmatch(ITEM_ID_PATTERN, value):
        raise InvalidRequestError("multipart field 'id' must be 1-256 characters without control characters")
    return value


def form_priority(form: FormData) -> str:
    priority = form_text(form, "priority") or "interactive"
    if priority not in ("interactive", "bulk"):
        raise InvalidRequestError(f"priority must be 'interactive' or 'bulk', got {priority!r}")
    return priority


@contextlib.asynccontextmanager
async def disconnect_watch(request: Request) -> AsyncIterator[asyncio.Event]:
    """An event set when the client goes away, so its queued work can be dropped."""
    event = asyncio.Event()

    async def poll() -> None:
        while not event.is_set():
            if await request.is_disconnected():
                event.set()
                return
            await asyncio.sleep(DISCONNECT_POLL_S)

    task = asyncio.create_task(poll())
    try:
        yield event
    finally:
        task.cancel()


class Stopwatch:
    """Request wall time for the ``x-total-time-ms`` header."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def timing_headers(service: JudgeService, timing: RequestTiming, stopwatch: Stopwatch) -> dict[str, str]:
    judge = service.judge
    stages = ", ".join(f"{name};dur={ms:.1f}" for name, ms in timing.stage_ms.items())
    headers = {
        "x-judge-name": judge["name"],
        "x-judge-version": judge["version"],
        "x-rubric-version": judge["rubric_version"],
        "x-decode-time-ms": f"{timing.decode_ms:.2f}",
        "x-queue-time-ms": f"{timing.queue_ms:.2f}",
        "x-compute-time-ms": f"{timing.compute_ms:.2f}",
        "x-total-time-ms": f"{stopwatch.ms():.2f}",
        "x-batch-clips": str(timing.batch_clips),
        "x-batch-unique-clips": str(timing.batch_unique_clips),
        "x-cache-hits": str(timing.cache_hits),
    }
    if stages:
        headers["server-timing"] = stages
    return headers
