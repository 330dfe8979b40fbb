"""OpenRLHF's remote reward-model protocol, answered by the judge service.

    python -m trainer_client.openrlhf_server --judge-url http://127.0.0.1:8000 --port 5000
    # then, in OpenRLHF: --remote_rm_url http://127.0.0.1:5000/get_reward --label_key query_audio

OpenRLHF POSTs ``{"query": [prompt + response text, ...], "prompts": [prompt, ...],
"labels": [label, ...]}`` and reads ``{"rewards": [...]}``. Here ``labels`` carry the spoken
query (a path the server can read; set ``--label_key`` to the dataset column holding it), the
response is ``query[i]`` with its prompt prefix removed, spoken by ``SpeakCompletion`` (an
optional ``[tone]`` tag picks the tone), and the reward is the judge score (``--reward-scale``).
The answer also carries ``scores`` (the same values) and ``extra_logs`` (raw judge scores), which
newer OpenRLHF versions log. An item the judge cannot score gets ``--failure-reward`` (OpenRLHF
needs a number).
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from trainer_client.client import JudgeClient
from trainer_client.rewards import REWARD_SCALES, query_groups
from trainer_client.speech import SpeakCompletion


class RewardRequest(BaseModel):
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None


def response_text(query: str, prompt: str | None) -> str:
    """The response part of OpenRLHF's ``query`` (prompt + response)."""
    return query[len(prompt):] if prompt and query.startswith(prompt) else query


def create_app(judge_url: str, *, reward_scale: str = "raw", failure_reward: float = 0.0,
               speak: SpeakCompletion | None = None) -> FastAPI:  # fmt: skip
    if reward_scale not in REWARD_SCALES:
        raise ValueError(f"reward_scale must be one of {tuple(REWARD_SCALES)}")
    speak = speak or SpeakCompletion()
    scale = REWARD_SCALES[reward_scale]
    app = FastAPI(title="ParaS2S judge as an OpenRLHF remote reward model")
    state: dict[str, JudgeClient] = {}

    @app.post("/get_reward")
    async def get_reward(request: RewardRequest) -> JSONResponse:
        n = len(request.query)
        if request.labels is None or len(request.labels) != n:
            return JSONResponse({"error": "labels must hold the spoken query (an audio path) of every item; "
                                          "start OpenRLHF with --label_key <column of query audio paths>"}, status_code=422)
        prompts = request.prompts if request.prompts and len(request.prompts) == n else [None] * n
        if "client" not in state:
            state["client"] = JudgeClient(judge_url)
        responses = [speak(response_text(q, p)) for q, p in zip(request.query, prompts)]
        scores: list[float | None] = []
        for a, b in query_groups(request.labels):
            group = await state["client"].score_group(request.labels[a], responses[a:b])
            scores += [s.score for s in group.scores]
        rewards = [failure_reward if s is None else float(scale(s)) for s in scores]
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": {"judge_score": scores}})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--reward-scale", default="raw", choices=tuple(REWARD_SCALES))
    parser.add_argument("--failure-reward", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(create_app(args.judge_url, reward_scale=args.reward_scale, failure_reward=args.failure_reward),
                host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
