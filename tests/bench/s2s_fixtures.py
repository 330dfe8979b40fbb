"""Stand-in S2S systems for adapter and run tests: a Python entry point and an HTTP server that
follow the documented contracts (they answer with real audio; what they say is irrelevant here)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Form, UploadFile
from fastapi.responses import Response

from judge_service.testing import ThreadedUvicorn, voiced_clip, voiced_wav

CALLS_LOG_ENV = "PARAS2S_TEST_CALLS_LOG"
FAIL_IDS_ENV = "PARAS2S_TEST_FAIL_IDS"
SLEEP_ENV = "PARAS2S_TEST_SLEEP_S"


def _note(item_id: str) -> None:
    log = os.environ.get(CALLS_LOG_ENV)
    if log:
        with open(log, "a") as handle:
            handle.write(item_id + "\n")


def answer_bytes(query_audio: bytes, item: dict) -> bytes:
    """Answers every item with a voiced WAV; fails the ids listed in $PARAS2S_TEST_FAIL_IDS."""
    _note(item["id"])
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    if item["id"] in os.environ.get(FAIL_IDS_ENV, "").split(","):
        raise RuntimeError(f"model crashed on {item['id']}")
    assert Path(item["audio_path"]).read_bytes() == query_audio
    return voiced_wav(1.0, f0_hz=180.0, seed=len(item["id"]))


def answer_array(query_audio: bytes, item: dict):
    return voiced_clip(1.0, f0_hz=120.0), 22_050


def answer_nan(query_audio: bytes, item: dict):
    samples = voiced_clip(1.0)
    samples[100] = np.nan
    return samples, 16_000


def answer_path(query_audio: bytes, item: dict) -> str:
    return item["audio_path"]  # an echo system


def answer_missing_path(query_audio: bytes, item: dict) -> str:
    return "/nonexistent/reply.wav"


def answer_wrong_type(query_audio: bytes, item: dict) -> int:
    return 42


async def answer_async(query_audio: bytes, item: dict) -> bytes:
    await asyncio.sleep(0.01)
    return voiced_wav(0.8, f0_hz=200.0)


class ContractServer:
    """A real HTTP server (uvicorn in a thread) speaking the S2S HTTP contract v1.

    ``POST /respond``: 200 + WAV; the first request of an id listed in ``busy_ids`` gets 429
    with ``Retry-After: 0``; ids in ``fail_ids`` get 500; ids in ``empty_ids`` an empty 200.
    """

    def __init__(self, busy_ids=(), fail_ids=(), empty_ids=()) -> None:
        app = FastAPI()
        self.requests: list[str] = []
        seen_busy: set[str] = set()

        @app.post("/respond")
        async def respond(query: UploadFile, id: str = Form(...)) -> Response:  # noqa: A002
            self.requests.append(id)
            audio = await query.read()
            assert audio[:4] in (b"RIFF", b"fLaC")
            if id in busy_ids and id not in seen_busy:
                seen_busy.add(id)
                return Response(status_code=429, headers={"Retry-After": "0"})
            if id in fail_ids:
                return Response("boom", status_code=500)
            if id in empty_ids:
                return Response(b"", media_type="audio/wav")
            return Response(voiced_wav(0.7), media_type="audio/wav")

        self._server = ThreadedUvicorn(app)
        self.url = f"{self._server.url}/respond"

    def __enter__(self) -> "ContractServer":
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)
