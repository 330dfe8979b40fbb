"""verl's custom reward function, answered by the judge service.

In the verl config::

    custom_reward_function:
      path: <site-packages>/trainer_client/verl.py   # or a file that imports from it
      name: compute_score                             # or compute_score_batch with reward_model.reward_manager=batch

with ``PARAS2S_JUDGE_URL=http://...`` in the workers' environment. Each row's
``reward_model.ground_truth`` holds the spoken query (an audio path); ``solution_str`` is the
response text, spoken by ``SpeakCompletion`` (an optional ``[tone]`` tag picks the tone). The score
is the judge's 1-5 score; an item the judge cannot score gets ``0.0`` (verl needs a number) and
its error in the returned dict.
"""

from __future__ import annotations

import os
from typing import Any

from trainer_client.client import Pair, SyncJudgeClient
from trainer_client.speech import SpeakCompletion

JUDGE_URL_ENV = "PARAS2S_JUDGE_URL"
_STATE: dict[str, Any] = {}


def _client() -> SyncJudgeClient:
    url = os.environ.get(JUDGE_URL_ENV)
    if not url:
        raise RuntimeError(f"set {JUDGE_URL_ENV} to the judge service URL (e.g. http://127.0.0.1:8000)")
    if _STATE.get("url") != url:
        _STATE.update(url=url, client=SyncJudgeClient(url), speak=SpeakCompletion())
    return _STATE["client"]


def _result(score) -> dict[str, Any]:
    if score.score is None:
        return {"score": 0.0, "judge_score": None, "error": f"{score.error.type}: {score.error.message}"}
    return {"score": float(score.score), "judge_score": float(score.score), "error": None}


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None,
                  **kwargs: Any) -> dict[str, Any]:  # fmt: skip
    """One item (verl's naive reward manager)."""
    client = _client()
    (score,) = client.score([Pair(query=ground_truth, response=_STATE["speak"](solution_str))])
    return _result(score)


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[str],
                        extra_infos: list[dict | None] | None = None, **kwargs: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Every item of a batch in one call (verl's batch reward manager)."""
    client = _client()
    speak = _STATE["speak"]
    pairs = [Pair(query=q, response=speak(s), id=str(k)) for k, (q, s) in enumerate(zip(ground_truths, solution_strs))]
    return [_result(s) for s in client.score(pairs)]
