"""POST /v1/analyze: transcript, paralinguistic labels, prosody and tone of clips alone."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from judge_service.api.auth import effective_priority
from judge_service.api.error_table import error_response
from judge_service.api.openapi_docs import ERROR_RESPONSES, multipart_body
from judge_service.api.requests import (
    Service,
    Stopwatch,
    disconnect_watch,
    form_file,
    form_item_id,
    form_text,
    is_multipart,
    parse_json,
    read_form,
    timing_headers,
)
from judge_service.schemas import ITEM_ID_PATTERN, AnalyzeRequest, AnalyzeResponse
from judge_service.service import ClipInput, RequestTiming

router = APIRouter(prefix="/v1", tags=["analysis"], responses=ERROR_RESPONSES)

_MULTIPART_DOC = multipart_body("AnalyzeRequest", {
    "audio": {"type": "string", "format": "binary"},
    "id": {"type": "string", "pattern": ITEM_ID_PATTERN},
    "text": {"type": "string"},
    "priority": {"type": "string", "enum": ["interactive", "bulk"]},
}, required=["audio"])


@router.post("/analyze", response_model=AnalyzeResponse, openapi_extra=_MULTIPART_DOC,
             summary="Transcribe clips and measure their speaking style")
async def analyze(request: Request, service: Service) -> JSONResponse:
    stopwatch = Stopwatch()
    timing = RequestTiming()
    multipart = is_multipart(request)
    if multipart:
        form = await read_form(request)
        clip_id = form_item_id(form, "clip")
        clips = [ClipInput(clip_id, data=await form_file(form, "audio"), text=form_text(form, "text"))]
        priority, timeout_s = "interactive", None
    else:
        body = await parse_json(request, AnalyzeRequest)
        clips = [ClipInput(item.id, base64=item.audio, text=item.text) for item in body.items]
        priority, timeout_s = body.priority, body.timeout_s
    async with disconnect_watch(request) as disconnected:
        results = await service.analyze(clips, effective_priority(request, priority), timeout_s, disconnected, timing)
    headers = timing_headers(service, timing, stopwatch)
    if multipart and results[0].get("error"):
        error = results[0]["error"]
        return error_response(error["type"], error["message"], service.judge, headers)
    payload = AnalyzeResponse.model_validate({"judge": service.judge, "results": results})
    return JSONResponse(payload.model_dump(mode="json"), headers=headers)
