"""POST /v1/jobs, GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel: large evaluations.

A job is accepted at once (202 with its id and a ``Location``), scored in the background by
``jobs.runner.JobSupervisor`` at bulk priority, and read back page by page. A retried POST
with the same ``Idempotency-Key`` returns the job it created the first time. With API keys on,
a job is visible only to the key that created it (another key gets 404).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from judge_service.api.auth import effective_priority
from judge_service.api.openapi_docs import ERROR_RESPONSES, multipart_body
from judge_service.api.requests import (
    form_files,
    form_text,
    is_multipart,
    parse_json,
    read_form,
    ready_part,
    validate_model,
)
from judge_service.errors import InvalidRequestError, NotFoundError, TooManyItemsError
from judge_service.jobs.runner import JobSupervisor
from judge_service.jobs.store import JobStore
from judge_service.schemas import ErrorResponse, JobOut, JobRequest

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses={**ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": "no such job (unknown, expired, or another key's)"}})

MAX_PAGE_ITEMS = 1000
MULTIPART_JOB_MAX_FILES = 2 * 5000

_MULTIPART_JOB_DOC = multipart_body("JobRequest", {
    "query": {"type": "array", "items": {"type": "string", "format": "binary"}},
    "response": {"type": "array", "items": {"type": "string", "format": "binary"}},
    "items": {"type": "string", "description": "JSON list, one object per pair in file order: "
              "{id, labels?, query_text?, response_text?}"},
    "priority": {"type": "string", "enum": ["interactive", "bulk"]},
}, required=["query", "response"])


class Jobs:
    def __init__(self, store: JobStore, supervisor: JobSupervisor) -> None:
        self.store = store
        self.supervisor = supervisor


def get_jobs(request: Request) -> Jobs:
    return ready_part(request, "jobs")


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def _owner(request: Request) -> str:
    return getattr(request.state, "api_key_name", "") or ""


async def _job_items_from_multipart(request: Request) -> tuple[list[dict[str, Any]], str]:
    form = await read_form(request, max_files=MULTIPART_JOB_MAX_FILES, max_fields=16)
    queries, responses = await form_files(form, "query"), await form_files(form, "response")
    if not queries or len(queries) != len(responses):
        raise InvalidRequestError(
            f"multipart job needs as many 'query' as 'response' files, paired in order "
            f"(got {len(queries)} and {len(responses)})"
        )
    described = None
    if form.get("items"):
        try:
            described = json.loads(form_text(form, "items") or "null")
        except (ValueError, RecursionError):
            raise InvalidRequestError("multipart field 'items' is not valid JSON; send a JSON list of "
                                      "{id, labels?, query_text?, response_text?} objects") from None
    if described is not None and (not isinstance(described, list) or len(described) != len(queries)):
        raise InvalidRequestError("multipart field 'items' must be a JSON list with one object per pair")
    items = []
    for i, ((_, q), (_, r)) in enumerate(zip(queries, responses)):
        extra = described[i] if described else {}
        if not isinstance(extra, dict):
            raise InvalidRequestError(f"items[{i}] must be an object")
        items.append({
            "id": extra.get("id", str(i)),
            "query": {"audio": base64.b64encode(q).decode(), "labels": extra.get("labels"), "text": extra.get("query_text")},
            "response": {"audio": base64.b64encode(r).decode(), "text": extra.get("response_text")},
        })
    priority = form_text(form, "priority") or "bulk"
    body = validate_model(JobRequest, {"items": items, "priority": priority})
    return [item.model_dump(mode="json") for item in body.items], body.priority


def _job_out(meta: dict[str, Any], offset: int, results: list[dict[str, Any] | None]) -> dict[str, Any]:
    end = offset + len(results)
    public = {k: v for k, v in meta.items() if k not in ("owner", "item_timeout_s")}
    return JobOut.model_validate({
        **public, "offset": offset, "results": results, "next_offset": end if end < meta["total"] else None,
    }).model_dump(mode="json")


@router.post("", status_code=202, response_model=JobOut, openapi_extra=_MULTIPART_JOB_DOC,
             summary="Submit many pairs for background scoring; returns the job at once")
async def create_job(request: Request, jobs: JobsDep) -> JSONResponse:
    settings = jobs.supervisor.service.settings
    if is_multipart(request):
        items, priority = await _job_items_from_multipart(request)
        item_timeout_s, metadata = None, {}
    else:
        body = await parse_json(request, JobRequest)
        items = [item.model_dump(mode="json") for item in body.items]
        priority, item_timeout_s, metadata = body.priority, body.item_timeout_s, body.metadata
    if len(items) > settings.max_job_items:
        raise TooManyItemsError(
            f"{len(items)} items in one job; the limit is {settings.max_job_items} (JUDGE_MAX_JOB_ITEMS); "
            "split the evaluation into several jobs"
        )
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
        raise InvalidRequestError("Idempotency-Key must be 1-200 printable characters")
    owner = _owner(request)
    meta = {
        "id": f"job_{uuid.uuid4().hex}", "status": "queued", "total": len(items), "done": 0, "errors": 0,
        "priority": effective_priority(request, priority), "created_at": time.time(), "metadata": metadata,
        "owner": owner, "item_timeout_s": item_timeout_s or settings.request_timeout_s,
    }
    job_id = await jobs.store.create(meta, items, f"{owner} {key}" if key is not None else None)
    jobs.supervisor.wake.set()
    stored = await jobs.store.meta(job_id)
    headers = {"location": f"/v1/jobs/{job_id}"}
    if job_id != meta["id"]:
        headers["idempotent-replayed"] = "true"
    return JSONResponse(_job_out(stored, 0, []), status_code=202, headers=headers)


async def _owned_meta(jobs: Jobs, request: Request, job_id: str) -> dict[str, Any]:
    if not (0 < len(job_id) <= 64) or not job_id.replace("_", "").isalnum():
        raise NotFoundError(f"no job {job_id!r}")
    meta = await jobs.store.meta(job_id)
    if meta is None or meta.get("owner", "") != _owner(request):
        raise NotFoundError(f"no job {job_id!r} (unknown, expired after JUDGE_JOB_TTL_S, or another key's)")
    return meta


@router.get("/{job_id}", response_model=JobOut, summary="A job's progress and a page of its results")
async def get_job(
    request: Request, jobs: JobsDep, job_id: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE_ITEMS)] = 100,
) -> JSONResponse:
    meta = await _owned_meta(jobs, request, job_id)
    results = await jobs.store.results(job_id, offset, limit)
    return JSONResponse(_job_out(meta, offset, results))


@router.post("/{job_id}/cancel", response_model=JobOut,
             summary="Stop scoring a job; results so far are kept (no-op on a finished job)")
async def cancel_job(request: Request, jobs: JobsDep, job_id: str) -> JSONResponse:
    meta = await _owned_meta(jobs, request, job_id)
    if meta["status"] in ("queued", "running"):
        await jobs.store.update(job_id, status="cancelled")
        if meta["status"] == "queued":
            ttl_s = jobs.supervisor.service.settings.job_ttl_s
            await jobs.store.finish(job_id, ttl_s, status="cancelled", finished_at=time.time(),
                                    expires_at=time.time() + ttl_s)
        jobs.supervisor.wake.set()
        meta = await jobs.store.meta(job_id)
    return JSONResponse(_job_out(meta, 0, []))

