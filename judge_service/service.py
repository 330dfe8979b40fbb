"""The scoring service between HTTP and the scheduler: decode, cache, submit, gather.

Knows nothing of HTTP. Routes turn wire requests into ``ClipInput``/``PairInput`` and turn
the returned dicts into responses. Per-item failures come back as ``{"error": ...}`` dicts;
failures of the whole request (queue full, not ready) raise ``JudgeError``s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from judge_service.audio import AudioLimits, DecodedAudio, decode_audio, decode_base64_audio
from judge_service.backends.base import BackendJob, JobResult, JudgeBackend, PairSpec
from judge_service.batching.policy import PRIORITIES
from judge_service.batching.queue import JobTiming, ScheduledJob
from judge_service.batching.scheduler import Scheduler
from judge_service.cache import ResultCache, cache_key
from judge_service.config import Settings
from judge_service.errors import (
    ClientDisconnectedError,
    DeadlineExceededError,
    JudgeError,
    TooManyItemsError,
    pair_error_from_dict,
)
from judge_service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

GROUP_STD_EPS = 1e-4
"""Added to the group std in advantages, as TRL's GRPOTrainer does."""


@dataclass(frozen=True)
class ClipInput:
    """One uploaded clip: ``base64`` text (JSON) or raw ``data`` bytes (multipart)."""

    id: str
    base64: str | None = None
    data: bytes | None = None
    text: str | None = None


@dataclass(frozen=True)
class PairInput:
    id: str
    query: ClipInput
    response: ClipInput
    known_labels: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestTiming:
    """Per-request timings for the response headers, in milliseconds."""

    decode_ms: float = 0.0
    queue_ms: float = 0.0
    compute_ms: float = 0.0
    batch_clips: int = 0
    batch_unique_clips: int = 0
    cache_hits: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)

    def add_job(self, timing: JobTiming) -> None:
        self.queue_ms = max(self.queue_ms, timing.queue_ms)
        self.compute_ms = max(self.compute_ms, timing.compute_ms)
        self.batch_clips = max(self.batch_clips, timing.batch_clips)
        self.batch_unique_clips = max(self.batch_unique_clips, timing.batch_unique_clips)
        for stage, ms in timing.stage_ms.items():
            self.stage_ms[stage] = max(self.stage_ms.get(stage, 0.0), ms)


class JudgeService:
    """Request-level logic shared by every route."""

    def __init__(
        self,
        settings: Settings,
        backend: JudgeBackend,
        scheduler: Scheduler,
        cache: ResultCache,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.scheduler = scheduler
        self.cache = cache
        self.metrics = metrics
        self.limits = AudioLimits(settings.min_clip_duration_s, settings.max_clip_duration_s)

    @property
    def judge(self) -> dict[str, str]:
        info = self.backend.info
        return {"name": info.name, "version": info.version, "rubric_version": info.rubric_version}

    # --- decoding ---------------------------------------------------------------------------

    def _decode_one(self, clip: ClipInput) -> DecodedAudio:
        if clip.data is not None:
            return decode_audio(clip.id, clip.data, self.limits)
        return decode_base64_audio(clip.id, clip.base64 or "", self.limits)

    async def _decode_all(
        self, clips: list[ClipInput], timing: RequestTiming
    ) -> list[DecodedAudio | JudgeError]:
        started = time.perf_counter()

        def work() -> list[DecodedAudio | JudgeError]:
            out: list[DecodedAudio | JudgeError] = []
            for clip in clips:
                try:
                    out.append(self._decode_one(clip))
                except JudgeError as exc:
                    out.append(exc)
            return out

        decoded = await asyncio.to_thread(work)
        timing.decode_ms += (time.perf_counter() - started) * 1000.0
        return decoded

    # --- scheduling -------------------------------------------------------------------------

    def _deadline(self, timeout_s: float | None) -> float:
        return time.monotonic() + (timeout_s or self.settings.request_timeout_s)

    async def _run_jobs(
        self,
        works: list[BackendJob],
        priority: str,
        deadline_s: float,
        disconnected: asyncio.Event | None,
        timing: RequestTiming,
    ) -> list[JobResult | JudgeError]:
        """Queue the jobs, wait for all of them, the deadline, or the client leaving."""
        if not works:
            return []
        jobs = self.scheduler.submit(works, PRIORITIES[priority], deadline_s)
        pending: set[asyncio.Future[Any]] = {job.future for job in jobs}
        watcher = asyncio.ensure_future(disconnected.wait()) if disconnected else None
        try:
            while pending:
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    break
                waiting = pending | ({watcher} if watcher else set())
                done, _ = await asyncio.wait(waiting, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED)
                if watcher is not None and watcher in done:
                    for job in jobs:
                        self.scheduler.cancel(job)
                    raise ClientDisconnectedError("the client disconnected")
                pending -= done
        finally:
            if watcher is not None:
                watcher.cancel()
        return [self._job_outcome(job, timing) for job in jobs]

    def _job_outcome(self, job: ScheduledJob, timing: RequestTiming) -> JobResult | JudgeError:
        if not job.future.done():
            self.scheduler.cancel(job)
            return DeadlineExceededError("the request's deadline passed before it was scored")
        exc = job.future.exception()
        if exc is not None:
            if isinstance(exc, JudgeError):
                return exc
            raise exc
        result, job_timing = job.future.result()
        timing.add_job(job_timing)
        return result

    def _item_error(self, item_id: str, error: JudgeError) -> dict[str, Any]:
        self.metrics.item_errors.labels(type=error.error_type).inc()
        return {"id": item_id, "error": error.to_dict()}

    # --- scoring pairs ----------------------------------------------------------------------

    def _pair_key(self, query: DecodedAudio, response: DecodedAudio, pair: PairInput) -> str:
        return cache_key(
            "score",
            self.backend.info,
            {
                "q": query.clip.sha256,
                "r": response.clip.sha256,
                "labels": pair.known_labels,
                "q_text": pair.query.text,
                "r_text": pair.response.text,
            },
        )

    async def score_pairs(
        self,
        pairs: list[PairInput],
        priority: str = "interactive",
        timeout_s: float | None = None,
        disconnected: asyncio.Event | None = None,
        timing: RequestTiming | None = None,
    ) -> list[dict[str, Any]]:
        """Score each pair; one result dict per pair, in order (``error`` on failure)."""
        if len(pairs) > self.settings.max_items_per_request:
            raise TooManyItemsError(
                f"{len(pairs)} items in one request; the limit is "
                f"{self.settings.max_items_per_request} (JUDGE_MAX_ITEMS_PER_REQUEST)"
            )
        timing = timing or RequestTiming()
        deadline_s = self._deadline(timeout_s)
        clips = [c for p in pairs for c in (p.query, p.response)]
        decoded = await self._decode_all(clips, timing)
        results: list[dict[str, Any] | None] = [None] * len(pairs)
        ready: list[tuple[int, DecodedAudio, DecodedAudio, str]] = []
        for i, pair in enumerate(pairs):
            query, response = decoded[2 * i], decoded[2 * i + 1]
            if isinstance(query, JudgeError):
                results[i] = self._item_error(pair.id, query)
            elif isinstance(response, JudgeError):
                results[i] = self._item_error(pair.id, response)
            else:
                ready.append((i, query, response, self._pair_key(query, response, pair)))
        cached = await self.cache.get_many([key for *_, key in ready])
        to_run = []
        for (i, query, response, key), hit in zip(ready, cached):
            if hit is not None:
                results[i] = _with_ids(hit, pairs[i], cached=True)
                timing.cache_hits += 1
            else:
                to_run.append((i, query, response, key))
        works = [
            BackendJob(
                clips=[query, response],
                clip_texts=[pairs[i].query.text, pairs[i].response.text],
                pairs=[PairSpec(0, 1, pairs[i].known_labels)],
            )
            for i, query, response, _ in to_run
        ]
        outcomes = await self._run_jobs(works, priority, deadline_s, disconnected, timing)
        fresh: dict[str, dict[str, Any]] = {}
        for (i, _, _, key), outcome in zip(to_run, outcomes):
            if isinstance(outcome, JudgeError):
                results[i] = self._item_error(pairs[i].id, outcome)
                continue
            if "error" in outcome.scores[0]:  # the judge failed on this pair alone; never cached
                results[i] = self._item_error(pairs[i].id, pair_error_from_dict(outcome.scores[0]["error"]))
                continue
            value = _pair_value(outcome.scores[0], outcome.analyses[0], outcome.analyses[1])
            fresh[key] = value
            results[i] = _with_ids(value, pairs[i], cached=False)
        await self.cache.set_many(fresh)
        return [r for r in results if r is not None]

    # --- scoring a group --------------------------------------------------------------------

    async def score_group(
        self,
        group_id: str,
        query: ClipInput,
        known_labels: dict[str, str],
        responses: list[ClipInput],
        priority: str = "interactive",
        timeout_s: float | None = None,
        disconnected: asyncio.Event | None = None,
        timing: RequestTiming | None = None,
    ) -> dict[str, Any]:
        """Score G responses to one query; the query is decoded and analysed once.

        Raises the query's decode error (nothing can be scored without it)."""
        if len(responses) > self.settings.max_group_size:
            raise TooManyItemsError(
                f"{len(responses)} responses in one group; the limit is "
                f"{self.settings.max_group_size} (JUDGE_MAX_GROUP_SIZE)"
            )
        timing = timing or RequestTiming()
        deadline_s = self._deadline(timeout_s)
        decoded = await self._decode_all([query, *responses], timing)
        query_audio = decoded[0]
        if isinstance(query_audio, JudgeError):
            raise query_audio
        results: list[dict[str, Any] | None] = [None] * len(responses)
        pairs = [PairInput(r.id, query, r, known_labels) for r in responses]
        ready = []
        for i, (pair, audio) in enumerate(zip(pairs, decoded[1:])):
            if isinstance(audio, JudgeError):
                results[i] = self._item_error(pair.id, audio)
            else:
                ready.append((i, audio, self._pair_key(query_audio, audio, pair)))
        cached = await self.cache.get_many([key for *_, key in ready])
        query_analysis: dict[str, Any] | None = None
        to_run = []
        for (i, audio, key), hit in zip(ready, cached):
            if hit is not None:
                results[i] = _with_ids(hit, pairs[i], cached=True)
                query_analysis = query_analysis or hit["query"]
                timing.cache_hits += 1
            else:
                to_run.append((i, audio, key))
        if to_run:
            work = BackendJob(
                clips=[query_audio, *(audio for _, audio, _ in to_run)],
                clip_texts=[query.text, *(pairs[i].response.text for i, _, _ in to_run)],
                pairs=[PairSpec(0, j + 1, known_labels) for j in range(len(to_run))],
            )
            (outcome,) = await self._run_jobs([work], priority, deadline_s, disconnected, timing)
            fresh: dict[str, dict[str, Any]] = {}
            for j, (i, _, key) in enumerate(to_run):
                if isinstance(outcome, JudgeError):
                    results[i] = self._item_error(pairs[i].id, outcome)
                    continue
                if "error" in outcome.scores[j]:
                    results[i] = self._item_error(pairs[i].id, pair_error_from_dict(outcome.scores[j]["error"]))
                    continue
                value = _pair_value(outcome.scores[j], outcome.analyses[0], outcome.analyses[j + 1])
                fresh[key] = value
                results[i] = _with_ids(value, pairs[i], cached=False)
            if not isinstance(outcome, JudgeError):
                query_analysis = outcome.analyses[0]
            await self.cache.set_many(fresh)
        final = [r for r in results if r is not None]
        return {
            "id": group_id,
            "query": None if query_analysis is None else {**query_analysis, "clip": {**query_analysis["clip"], "id": query.id}},
            "results": final,
            "group": group_stats([r.get("score") for r in final]),
        }

    # --- analysing clips --------------------------------------------------------------------

    async def analyze(
        self,
        clips: list[ClipInput],
        priority: str = "interactive",
        timeout_s: float | None = None,
        disconnected: asyncio.Event | None = None,
        timing: RequestTiming | None = None,
    ) -> list[dict[str, Any]]:
        """Transcript, labels, prosody and tone per clip; one result dict per clip."""
        if len(clips) > self.settings.max_items_per_request:
            raise TooManyItemsError(
                f"{len(clips)} clips in one request; the limit is "
                f"{self.settings.max_items_per_request} (JUDGE_MAX_ITEMS_PER_REQUEST)"
            )
        timing = timing or RequestTiming()
        deadline_s = self._deadline(timeout_s)
        decoded = await self._decode_all(clips, timing)
        results: list[dict[str, Any] | None] = [None] * len(clips)
        ready = []
        for i, (clip, audio) in enumerate(zip(clips, decoded)):
            if isinstance(audio, JudgeError):
                results[i] = self._item_error(clip.id, audio)
            else:
                key = cache_key("analyze", self.backend.info, {"c": audio.clip.sha256, "text": clip.text})
                ready.append((i, audio, key))
        cached = await self.cache.get_many([key for *_, key in ready])
        to_run = []
        for (i, audio, key), hit in zip(ready, cached):
            if hit is not None:
                results[i] = _analysis_result(clips[i].id, hit, cached=True)
                timing.cache_hits += 1
            else:
                to_run.append((i, audio, key))
        works = [BackendJob([audio], [clips[i].text], []) for i, audio, _ in to_run]
        outcomes = await self._run_jobs(works, priority, deadline_s, disconnected, timing)
        fresh = {}
        for (i, _, key), outcome in zip(to_run, outcomes):
            if isinstance(outcome, JudgeError):
                results[i] = self._item_error(clips[i].id, outcome)
                continue
            fresh[key] = outcome.analyses[0]
            results[i] = _analysis_result(clips[i].id, outcome.analyses[0], cached=False)
        await self.cache.set_many(fresh)
        return [r for r in results if r is not None]


def _pair_value(score: dict[str, Any], query: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The cacheable part of a pair result (no request ids)."""
    return {**score, "query": query, "response": response}


def _with_ids(value: dict[str, Any], pair: PairInput, cached: bool) -> dict[str, Any]:
    return {
        **value,
        "id": pair.id,
        "cached": cached,
        "query": {**value["query"], "clip": {**value["query"]["clip"], "id": pair.query.id}},
        "response": {**value["response"], "clip": {**value["response"]["clip"], "id": pair.response.id}},
    }


def _analysis_result(clip_id: str, analysis: dict[str, Any], cached: bool) -> dict[str, Any]:
    return {"id": clip_id, "analysis": {**analysis, "clip": {**analysis["clip"], "id": clip_id}}, "cached": cached}


def group_stats(scores: list[float | None]) -> dict[str, Any]:
    """Group mean, unbiased std and normalised advantages over the non-``None`` scores."""
    valid = [s for s in scores if s is not None]
    if not valid:
        return {"count": 0, "mean": None, "std": None, "advantages": [None] * len(scores)}
    mean = sum(valid) / len(valid)
    std = math.sqrt(sum((s - mean) ** 2 for s in valid) / (len(valid) - 1)) if len(valid) > 1 else 0.0
    advantages = [None if s is None else (s - mean) / (std + GROUP_STD_EPS) for s in scores]
    return {"count": len(valid), "mean": mean, "std": std, "advantages": advantages}
