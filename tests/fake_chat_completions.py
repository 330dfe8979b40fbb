"""``FakeChatCompletionsServerForTests``: a test double of an OpenAI-compatible
``POST /v1/chat/completions`` endpoint, served by a real uvicorn in a thread of the test process.

NOT A MODEL. What it answers is scripted per *key*: the first ``[[key]]`` marker in the request's
messages (tests put it in a transcript, so it also proves the transcript reached the request).
``script(key, *steps)`` queues the answers to that key's requests in order, the last one
repeating; a request without a scripted key gets ``DEFAULT``. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from judge_service.testing import ThreadedUvicorn

MARKER = re.compile(r"\[\[([A-Za-z0-9_-]+)\]\]")


@dataclass(frozen=True)
class Answer:
    """200 with a chat completion whose message content is ``content``."""

    content: str


@dataclass(frozen=True)
class Status:
    """An error status, with an optional ``Retry-After`` header and an OpenAI-style body."""

    code: int
    retry_after: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Answer nothing for ``seconds`` (then a good verdict, so a missed timeout shows)."""

    seconds: float


Step = Answer | Status | Hang


def verdict(score: object, rationale: object = "fake rationale") -> Answer:
    return Answer(json.dumps({"score": score, "rationale": rationale}))


DEFAULT = verdict(3, "fake default rationale")


@dataclass(frozen=True)
class SeenRequest:
    key: str | None
    body: dict[str, Any]
    headers: dict[str, str]
    arrived_s: float
    """``time.monotonic()`` when it arrived."""

    @property
    def user_message(self) -> str:
        return next(m["content"] for m in self.body["messages"] if m["role"] == "user")

    @property
    def system_message(self) -> str:
        return next(m["content"] for m in self.body["messages"] if m["role"] == "system")


class FakeChatCompletionsServerForTests:
    """Use as a context manager; ``base_url`` is what ``JUDGE_LLM_RUBRIC_BASE_URL`` takes.
    ``answer_delay_s`` delays every answer (to observe concurrency: ``max_in_flight``)."""

    def __init__(self, answer_delay_s: float = 0.0) -> None:
        self.answer_delay_s = answer_delay_s
        self.requests: list[SeenRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._scripts: dict[str, list[Step]] = {}
        self._lock = threading.Lock()
        self._server = ThreadedUvicorn(self._app())

    @property
    def base_url(self) -> str:
        return self._server.url + "/v1"

    def script(self, key: str, *steps: Step) -> None:
        with self._lock:
            self._scripts[key] = list(steps)

    def requests_for(self, key: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.key == key]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self.max_in_flight = 0

    def _next_step(self, key: str | None) -> Step:
        with self._lock:
            steps = self._scripts.get(key or "")
            if not steps:
                return DEFAULT
            return steps.pop(0) if len(steps) > 1 else steps[0]

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            match = MARKER.search(text)
            key = match[1] if match else None
            with self._lock:
                self.requests.append(SeenRequest(key, body, dict(request.headers), time.monotonic()))
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                step = self._next_step(key)
                if isinstance(step, Hang):
                    await asyncio.sleep(step.seconds)
                    step = DEFAULT
                if self.answer_delay_s:
                    await asyncio.sleep(self.answer_delay_s)
                if isinstance(step, Status):
                    headers = {"Retry-After": step.retry_after} if step.retry_after is not None else None
                    return JSONResponse({"error": {"message": step.message, "type": "scripted"}},
                                        status_code=step.code, headers=headers)
                return JSONResponse({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": step.content}}],
                })
            finally:
                with self._lock:
                    self._in_flight -= 1

        return app

    def __enter__(self) -> FakeChatCompletionsServerForTests:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)
