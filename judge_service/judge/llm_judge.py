"""``paras2s-polytone-llm``: an inner judge's labels and tone (stages 2-3), an LLM's rubric
score (stage 4, ``llm_rubric``).

``describe`` is the inner judge's (the PolyTone judge in the registered backend). ``score_many``
scores a batch's pairs concurrently (at most ``concurrency`` requests in flight) on a private
event loop thread, so the endpoint's connections are pooled across batches; a pair the LLM
gives no verdict for comes back as its ``ScorerError``, and its neighbours keep their scores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any, Coroutine, TypeVar

from judge_service.config import Settings
from judge_service.errors import JudgeError, ScorerError
from judge_service.judge.llm_rubric import (
    LLM_RUBRIC_PROMPT_VERSION,
    TEMPERATURE,
    LLMRubricClient,
    LLMRubricConfig,
    load_system_prompt,
    prompt_path,
    render_user_message,
)
from judge_service.judge.stages import ClipEvidence, ClipStyle, PairEvidence, StyleJudge, Verdict

log = logging.getLogger(__name__)

JUDGE_NAME = "paras2s-polytone-llm"
T = TypeVar("T")


def llm_config_from_settings(settings: Settings) -> LLMRubricConfig:
    """The scorer's configuration from ``JUDGE_LLM_RUBRIC_*``.

    Raises:
        ValueError: the base URL or the model is not set.
    """
    if not settings.llm_rubric_base_url or not settings.llm_rubric_model:
        raise ValueError(
            "the LLM rubric scorer needs JUDGE_LLM_RUBRIC_BASE_URL (e.g. https://api.openai.com/v1) "
            "and JUDGE_LLM_RUBRIC_MODEL (e.g. gpt-4o-mini)"
        )
    return LLMRubricConfig(
        base_url=settings.llm_rubric_base_url,
        model=settings.llm_rubric_model,
        api_key=settings.llm_rubric_api_key,
        timeout_s=settings.llm_rubric_timeout_s,
        deadline_s=settings.llm_rubric_deadline_s,
        max_retries=settings.llm_rubric_max_retries,
        concurrency=settings.llm_rubric_concurrency,
        seed=settings.llm_rubric_seed,
    )


class LLMRubricJudge:
    """A ``stages.BatchScoringJudge``. Starts its loop thread at construction; ``close`` ends it."""

    rubric_version = LLM_RUBRIC_PROMPT_VERSION

    def __init__(self, inner: StyleJudge, config: LLMRubricConfig, name: str = JUDGE_NAME) -> None:
        self.inner = inner
        self.config = config
        self.name = name
        self.description = (
            f"{inner.name} analysers (labels, acoustic tone) + an LLM rubric scorer: model "
            f"{config.model!r} over an OpenAI-compatible API, prompt {LLM_RUBRIC_PROMPT_VERSION}, "
            "given transcripts, labels and tone (never audio)"
        )
        self.system_prompt = load_system_prompt()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-rubric-loop", daemon=True)
        self._thread.start()
        self._client, self._slots = self._run(self._open())
        log.info("LLM rubric scorer: model %s at %s, prompt %s, %d concurrent requests", config.model,
                 config.endpoint_for_logs, LLM_RUBRIC_PROMPT_VERSION, config.concurrency)

    async def _open(self) -> tuple[LLMRubricClient, asyncio.Semaphore]:
        # Made on the loop that will use them.
        return LLMRubricClient(self.config, self.system_prompt), asyncio.Semaphore(self.config.concurrency)

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._client.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    # --- StyleJudge ------------------------------------------------------------------------

    def weight_files(self) -> list[Path]:
        return [*self.inner.weight_files(), prompt_path()]

    def version_identity(self) -> str:
        """Model, endpoint, seed, temperature and the inner judge: each changes the scores."""
        return json.dumps({
            "prompt": LLM_RUBRIC_PROMPT_VERSION, "model": self.config.model, "endpoint": self.config.url,
            "seed": self.config.seed, "temperature": TEMPERATURE,
            "inner": [self.inner.name, self.inner.rubric_version],
        }, sort_keys=True)

    def describe(self, clips: list[ClipEvidence]) -> list[ClipStyle]:
        return self.inner.describe(clips)

    def score(
        self, query: ClipEvidence, query_style: ClipStyle, reply: ClipEvidence,
        reply_style: ClipStyle, known_labels: dict[str, str],
    ) -> Verdict:
        """One pair; raises its ``ScorerError``."""
        (outcome,) = self.score_many([PairEvidence(query, query_style, reply, reply_style, known_labels)])
        if isinstance(outcome, JudgeError):
            raise outcome
        return outcome

    def score_many(self, pairs: list[PairEvidence]) -> list[Verdict | JudgeError]:
        """Every pair concurrently; blocks until each has a verdict or its ``ScorerError``."""
        return self._run(self._score_all(pairs))

    async def _score_all(self, pairs: list[PairEvidence]) -> list[Verdict | JudgeError]:
        return list(await asyncio.gather(*(self._score_one(pair) for pair in pairs)))

    async def _score_one(self, pair: PairEvidence) -> Verdict | JudgeError:
        async with self._slots:
            try:
                verdict = await self._client.score(render_user_message(pair))
            except ScorerError as exc:
                log.warning("%s", exc.message)
                return exc
        return Verdict(score=float(verdict.score), rationale=verdict.rationale,
                       components={"llm_score": float(verdict.score)})
