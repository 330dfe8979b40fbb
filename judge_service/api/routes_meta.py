"""GET /v1/judge, /healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from judge_service.api.error_table import NOT_READY_RETRY_AFTER_S
from judge_service.api.openapi_docs import ERROR_RESPONSES
from judge_service.api.requests import Service
from judge_service.schemas import JudgeInfoOut

router = APIRouter(tags=["meta"])


@router.get("/v1/judge", response_model=JudgeInfoOut, summary="Judge identity, labels and limits",
            responses={k: ERROR_RESPONSES[k] for k in (401, 403, 503)})
async def judge_info(service: Service) -> JudgeInfoOut:
    info = service.backend.info
    s = service.settings
    return JudgeInfoOut(
        name=info.name,
        version=info.version,
        rubric_version=info.rubric_version,
        description=info.description,
        labels={k: list(v) for k, v in info.labels.items()},
        backend=s.backend,
        limits={
            "max_items_per_request": s.max_items_per_request,
            "max_group_size": s.max_group_size,
            "max_batch_items": s.max_batch_items,
            "max_batch_audio_s": s.max_batch_audio_s,
            "max_clip_duration_s": s.max_clip_duration_s,
            "min_clip_duration_s": s.min_clip_duration_s,
            "max_request_bytes": s.max_request_bytes,
            "max_queue_items": s.max_queue_items,
            "request_timeout_s": s.request_timeout_s,
            "sample_rate_hz": 16_000,
        },
    )


@router.get("/healthz", summary="Liveness: the process runs and its judge did not fail to load",
            responses={500: {"description": "the judge failed to load: restart the process"}})
async def healthz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    if runtime.status == "failed":
        return JSONResponse({"status": "failed", "error": runtime.load_error}, status_code=500)
    return JSONResponse({"status": "ok", "judge": runtime.status})


@router.get("/readyz", summary="Readiness: models loaded and warmed up",
            responses={503: {"description": "loading, waiting for workers, degraded or stopping; see Retry-After"}})
async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    problem = runtime.readiness_problem() if runtime.status == "ready" else None
    if problem is not None:
        return JSONResponse(
            {"status": "degraded", "error": problem}, status_code=503,
            headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)},
        )
    if runtime.status != "ready":
        return JSONResponse(
            {"status": runtime.status, "error": runtime.load_error},
            status_code=503,
            headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)},
        )
    return JSONResponse({"status": "ready", "judge": runtime.service.judge})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={401: ERROR_RESPONSES[401]})
async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
