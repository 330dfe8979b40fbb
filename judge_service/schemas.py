"""Wire models of the /v1 API (pydantic 2). Audio travels as base64 of a WAV/FLAC/OGG file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from judge_service.judge.labels import AGES, EMOTIONS, GENDERS, SARCASM

Emotion = Literal[EMOTIONS]  # type: ignore[valid-type]
Sarcasm = Literal[SARCASM]  # type: ignore[valid-type]
Age = Literal[AGES]  # type: ignore[valid-type]
Gender = Literal[GENDERS]  # type: ignore[valid-type]
Priority = Literal["interactive", "bulk"]

ITEM_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"
"""Item ids: 1-256 characters, no control characters; echoed back in results."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnownLabels(_Strict):
    """Labels the caller already knows for the query (they override the judge's guesses)."""

    emotion: Emotion | None = None
    sarcasm: Sarcasm | None = None
    age: Age | None = None
    gender: Gender | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class QueryIn(_Strict):
    audio: str = Field(description="base64 of a WAV, FLAC or OGG file")
    labels: KnownLabels | None = None
    text: str | None = Field(None, max_length=2000, description="Known transcript; skips ASR")


class ResponseIn(_Strict):
    audio: str = Field(description="base64 of a WAV, FLAC or OGG file")
    text: str | None = Field(None, max_length=2000, description="Known transcript; skips ASR")


class ScoreItemIn(_Strict):
    id: str = Field(pattern=ITEM_ID_PATTERN)
    query: QueryIn
    response: ResponseIn


class _RequestOptions(_Strict):
    priority: Priority = Field(
        "interactive", description="interactive/CI traffic runs before bulk (training) traffic"
    )
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Deadline for queue + compute; server default if unset"
    )


def _require_unique_ids(items: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"item id {item.id!r} appears more than once")
        seen.add(item.id)
    return items


UniqueIds = AfterValidator(_require_unique_ids)
"""Items of one request must have distinct ids (results are matched to them by id)."""


class ScoreRequest(_RequestOptions):
    items: Annotated[list[ScoreItemIn], Field(min_length=1), UniqueIds]


class GroupResponseIn(ResponseIn):
    id: str = Field(pattern=ITEM_ID_PATTERN)


class GroupRequest(_RequestOptions):
    id: str = Field("group", pattern=ITEM_ID_PATTERN)
    query: QueryIn
    responses: Annotated[list[GroupResponseIn], Field(min_length=1), UniqueIds]


class AnalyzeItemIn(_Strict):
    id: str = Field(pattern=ITEM_ID_PATTERN)
    audio: str = Field(description="base64 of a WAV, FLAC or OGG file")
    text: str | None = Field(None, max_length=2000)


class AnalyzeRequest(_RequestOptions):
    items: Annotated[list[AnalyzeItemIn], Field(min_length=1), UniqueIds]


class JobRequest(_Strict):
    items: Annotated[list[ScoreItemIn], Field(min_length=1), UniqueIds]
    priority: Priority = Field("bulk", description="jobs default to bulk: they yield to interactive traffic")
    item_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Deadline of each chunk of items; server default if unset"
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32, description="Echoed back; yours to use")


# --- responses -------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    type: str
    message: str
    error_id: str | None = None


class JudgeOut(BaseModel):
    name: str
    version: str
    rubric_version: str


class ClipAnalysisOut(BaseModel):
    """Stage outputs for one clip: transcript, measured prosody, labels and tone."""

    clip: dict[str, Any]
    transcript: str
    transcript_source: Literal["asr", "client"]
    asr: dict[str, Any] | None = None
    prosody: dict[str, Any]
    labels: dict[str, Any]
    tone: dict[str, Any]


class ScoreResultOut(BaseModel):
    id: str
    score: float | None = Field(None, ge=1.0, le=5.0)
    rationale: str | None = None
    components: dict[str, float] | None = None
    query_labels: dict[str, Any] | None = None
    query: ClipAnalysisOut | None = None
    response: ClipAnalysisOut | None = None
    cached: bool = False
    error: ErrorOut | None = None


class ScoreResponse(BaseModel):
    judge: JudgeOut
    results: list[ScoreResultOut]


class GroupStatsOut(BaseModel):
    """Over the scored responses: mean, unbiased std (as TRL's GRPO), and advantages
    ``(score - mean) / (std + 1e-4)``; ``None`` for responses that failed."""

    count: int
    mean: float | None
    std: float | None
    advantages: list[float | None]


class GroupResponse(BaseModel):
    judge: JudgeOut
    id: str
    query: ClipAnalysisOut | None
    results: list[ScoreResultOut]
    group: GroupStatsOut
    error: ErrorOut | None = None


class AnalyzeResultOut(BaseModel):
    id: str
    analysis: ClipAnalysisOut | None = None
    cached: bool = False
    error: ErrorOut | None = None


class AnalyzeResponse(BaseModel):
    judge: JudgeOut
    results: list[AnalyzeResultOut]


class JudgeInfoOut(BaseModel):
    name: str
    version: str
    rubric_version: str
    description: str
    labels: dict[str, list[str]]
    limits: dict[str, float | int]
    backend: str


class ErrorResponse(BaseModel):
    error: ErrorOut
    judge: JudgeOut | None = None


class JobOut(BaseModel):
    """A job's state; ``results`` holds items ``[offset, offset + limit)`` in submission order,
    ``null`` for an item not scored yet."""

    id: str
    status: Literal["queued", "running", "succeeded", "cancelled", "failed"]
    total: int
    done: int
    errors: int
    priority: Priority
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    judge: JudgeOut | None = None
    offset: int = 0
    next_offset: int | None = None
    results: list[ScoreResultOut | None] = Field(default_factory=list)
