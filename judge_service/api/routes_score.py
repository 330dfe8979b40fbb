"""POST /v1/score and POST /v1/score/group."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from judge_service.api.auth import effective_priority
from judge_service.api.error_table import error_response
from judge_service.api.requests import (
    Service,
    Stopwatch,
    disconnect_watch,
    form_file,
    form_files,
    form_priority,
    form_item_id,
    form_text,
    is_multipart,
    parse_json,
    read_form,
    timing_headers,
    validate_model,
)
from judge_service.api.openapi_docs import ERROR_RESPONSES, LABEL_FIELDS, SCORER_ERROR_RESPONSES, multipart_body
from judge_service.errors import InvalidRequestError
from judge_service.schemas import (
    ITEM_ID_PATTERN,
    GroupRequest,
    GroupResponse,
    KnownLabels,
    ScoreRequest,
    ScoreResponse,
)
from judge_service.service import ClipInput, PairInput, RequestTiming

router = APIRouter(prefix="/v1", tags=["scoring"], responses={**ERROR_RESPONSES, **SCORER_ERROR_RESPONSES})

_MULTIPART_SCORE_DOC = multipart_body("ScoreRequest", {
    "query": {"type": "string", "format": "binary"},
    "response": {"type": "string", "format": "binary"},
    "id": {"type": "string", "pattern": ITEM_ID_PATTERN},
    **LABEL_FIELDS,
    "query_text": {"type": "string"}, "response_text": {"type": "string"},
    "priority": {"type": "string", "enum": ["interactive", "bulk"]},
}, required=["query", "response"])

_MULTIPART_GROUP_DOC = multipart_body("GroupRequest", {
    "query": {"type": "string", "format": "binary"},
    "response": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "one file per response; its file name is the item id"},
    "id": {"type": "string", "pattern": ITEM_ID_PATTERN},
    **LABEL_FIELDS,
    "query_text": {"type": "string"},
    "priority": {"type": "string", "enum": ["interactive", "bulk"]},
}, required=["query", "response"])


@router.post(
    "/score",
    response_model=ScoreResponse,
    openapi_extra=_MULTIPART_SCORE_DOC,
    summary="Score (query, response) pairs 1-5 for content and speaking style",
)
async def score(request: Request, service: Service) -> JSONResponse:
    """JSON: a batch of pairs, 200 with a result or an ``error`` per item. Multipart: one pair
    (file fields ``query`` and ``response``); an item error answers with its own status."""
    stopwatch = Stopwatch()
    timing = RequestTiming()
    multipart = is_multipart(request)
    if multipart:
        form = await read_form(request)
        item_id = form_item_id(form, "pair")
        labels = validate_model(
            KnownLabels, {k: form_text(form, k) for k in ("emotion", "sarcasm", "age", "gender") if form.get(k)}
        )
        pairs = [
            PairInput(
                id=item_id,
                query=ClipInput(f"{item_id}/query", data=await form_file(form, "query"), text=form_text(form, "query_text")),
                response=ClipInput(f"{item_id}/response", data=await form_file(form, "response"), text=form_text(form, "response_text")),
                known_labels=labels.as_dict(),
            )
        ]
        priority, timeout_s = form_priority(form), None
    else:
        body = await parse_json(request, ScoreRequest)
        pairs = [
            PairInput(
                id=item.id,
                query=ClipInput(f"{item.id}/query", base64=item.query.audio, text=item.query.text),
                response=ClipInput(f"{item.id}/response", base64=item.response.audio, text=item.response.text),
                known_labels=item.query.labels.as_dict() if item.query.labels else {},
            )
            for item in body.items
        ]
        priority, timeout_s = body.priority, body.timeout_s
    async with disconnect_watch(request) as disconnected:
        results = await service.score_pairs(pairs, effective_priority(request, priority), timeout_s, disconnected, timing)
    headers = timing_headers(service, timing, stopwatch)
    if multipart and results[0].get("error"):
        error = results[0]["error"]
        return error_response(error["type"], error["message"], service.judge, headers)
    payload = ScoreResponse.model_validate({"judge": service.judge, "results": results})
    return JSONResponse(payload.model_dump(mode="json"), headers=headers)


@router.post(
    "/score/group",
    response_model=GroupResponse,
    openapi_extra=_MULTIPART_GROUP_DOC,
    summary="Score G responses to one query; returns group mean, std and GRPO advantages",
)
async def score_group(request: Request, service: Service) -> JSONResponse:
    """JSON ``GroupRequest``, or multipart with a file ``query`` and repeated files ``response``
    (item ids are the file names)."""
    stopwatch = Stopwatch()
    timing = RequestTiming()
    if is_multipart(request):
        form = await read_form(request)
        group_id = form_item_id(form, "group")
        labels = validate_model(
            KnownLabels, {k: form_text(form, k) for k in ("emotion", "sarcasm", "age", "gender") if form.get(k)}
        ).as_dict()
        query = ClipInput(f"{group_id}/query", data=await form_file(form, "query"), text=form_text(form, "query_text"))
        files = await form_files(form, "response")
        responses = [ClipInput(name, data=data) for name, data in files]
        if not responses:
            raise InvalidRequestError("multipart group needs at least one file field 'response'")
        priority, timeout_s = form_priority(form), None
    else:
        body = await parse_json(request, GroupRequest)
        group_id = body.id
        labels = body.query.labels.as_dict() if body.query.labels else {}
        query = ClipInput(f"{group_id}/query", base64=body.query.audio, text=body.query.text)
        responses = [ClipInput(r.id, base64=r.audio, text=r.text) for r in body.responses]
        priority, timeout_s = body.priority, body.timeout_s
    async with disconnect_watch(request) as disconnected:
        result = await service.score_group(
            group_id, query, labels, responses, effective_priority(request, priority), timeout_s, disconnected, timing
        )
    payload = GroupResponse.model_validate({"judge": service.judge, **result})
    return JSONResponse(payload.model_dump(mode="json"), headers=timing_headers(service, timing, stopwatch))
