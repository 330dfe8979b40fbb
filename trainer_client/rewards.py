"""The judge service as a reward function: TRL, OpenRLHF and verl adapters.

TRL (``GRPOTrainer(reward_funcs=[...])``)::

    from trainer_client.rewards import ParaS2SReward
    reward = ParaS2SReward("http://127.0.0.1:8000")              # or AsyncParaS2SReward
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds, args=GRPOConfig(...))

TRL calls ``reward(prompts=..., completions=..., **columns)`` with one entry per completion and
the dataset's columns repeated alongside. The spoken query comes from the column
``query_audio`` (a path or bytes; ``query_audio_column`` renames it); the spoken response from
``audio_from_completion(completion, **row)`` (default: ``SpeakCompletion``, TTS of the text with
an optional ``[tone]`` tag). Completions of one query are contiguous in TRL's batches (its
sampler repeats each prompt ``num_generations`` times), so every run of identical queries goes
to ``/v1/score/group`` in one call: the query is heard once per group.

Returns one float per completion, or ``None`` where the judge could not score it (an unusable
clip); TRL turns ``None`` into NaN and leaves it out of the group's statistics. Scale with
``reward_scale``: ``"raw"`` (the 1-5 judge score, the paper's reward), ``"unit"`` ((s - 1) / 4)
or ``"centered"`` (s - 3).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from trainer_client.client import AudioLike, GroupScore, JudgeClient, SyncJudgeClient
from trainer_client.speech import SpeakCompletion

logger = logging.getLogger(__name__)

REWARD_SCALES = {
    "raw": lambda s: s,
    "unit": lambda s: (s - 1.0) / 4.0,
    "centered": lambda s: s - 3.0,
}


def _same_audio(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and isinstance(a, (str, bytes)) and a == b)


def query_groups(queries: Sequence[Any]) -> list[tuple[int, int]]:
    """``[start, end)`` runs of identical consecutive queries (paths or bytes compared by value)."""
    runs: list[tuple[int, int]] = []
    start = 0
    for k in range(1, len(queries) + 1):
        if k == len(queries) or not _same_audio(queries[k], queries[start]):
            runs.append((start, k))
            start = k
    return runs


class _RewardBase:
    def __init__(
        self, judge_url: str, audio_from_completion: Callable[..., AudioLike] | None = None, *,
        query_audio_column: str = "query_audio", reward_scale: str = "raw", client_kwargs: dict[str, Any] | None = None,
        name: str = "paras2s_judge",
    ) -> None:  # fmt: skip
        if reward_scale not in REWARD_SCALES:
            raise ValueError(f"reward_scale must be one of {tuple(REWARD_SCALES)}, got {reward_scale!r}")
        self.judge_url = judge_url
        self.audio_from_completion = audio_from_completion or SpeakCompletion()
        self.query_audio_column = query_audio_column
        self.reward_scale = reward_scale
        self.client_kwargs = dict(client_kwargs or {})
        self.__name__ = name  # TRL logs rewards under the callable's name
        self._client: Any = None
        self.last_groups: list[GroupScore] = []

    def __getstate__(self) -> dict[str, Any]:  # a live client is not picklable; a new one is made on use
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    def _inputs(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> tuple[list[Any], list[AudioLike]]:
        if self.query_audio_column not in kwargs:
            raise KeyError(f"the dataset has no column {self.query_audio_column!r} with the spoken queries "
                           f"(columns seen: {sorted(k for k in kwargs if not k.startswith(('trainer_', 'log_')))}); "
                           "pass query_audio_column=...")  # fmt: skip
        queries = list(kwargs[self.query_audio_column])
        if len(queries) != len(completions):
            raise ValueError(f"{len(queries)} queries for {len(completions)} completions")
        columns = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(completions)}
        responses = [self.audio_from_completion(c, **{k: v[i] for k, v in columns.items()}) for i, c in enumerate(completions)]
        return queries, responses

    def _rewards(self, groups: list[GroupScore], n: int) -> list[float | None]:
        self.last_groups = groups
        scale = REWARD_SCALES[self.reward_scale]
        rewards = [None if s.score is None else float(scale(s.score)) for g in groups for s in g.scores]
        assert len(rewards) == n
        failed = [s for g in groups for s in g.scores if s.error is not None]
        if failed:
            logger.warning("judge could not score %d of %d completions (first: %s: %s)", len(failed), n,
                           failed[0].error.type, failed[0].error.message)  # fmt: skip
        return rewards


class ParaS2SReward(_RewardBase):
    """Synchronous TRL reward function (see the module docstring)."""

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if self._client is None:
            self._client = SyncJudgeClient(self.judge_url, **self.client_kwargs)
        queries, responses = self._inputs(completions, kwargs)
        groups = [self._client.score_group(queries[a], responses[a:b]) for a, b in query_groups(queries)]
        return self._rewards(groups, len(completions))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncParaS2SReward(_RewardBase):
    """``async`` TRL reward function: TRL awaits it alongside its other async reward functions,
    and every group of the batch is in flight at once."""

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        import asyncio

        if self._client is None:
            self._client = JudgeClient(self.judge_url, **self.client_kwargs)
        queries, responses = self._inputs(completions, kwargs)
        groups = await asyncio.gather(*(self._client.score_group(queries[a], responses[a:b])
                                        for a, b in query_groups(queries)))  # fmt: skip
        return self._rewards(list(groups), len(completions))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
