"""Async client for the judge service's ``POST /v1/score``, one pair per request.

One pair per request keeps each result's timing headers its own (the service batches concurrent
requests itself, so nothing is lost). ``429`` and ``503`` are retried after ``Retry-After``;
transport errors a few times with backoff; a ``4xx`` that names a bad clip is that item's judge
error, never an exception for the run.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from trainer_client.client import retry_after_s

TIMING_HEADERS = {
    "x-total-time-ms": "server_total_ms",
    "x-decode-time-ms": "decode_ms",
    "x-queue-time-ms": "queue_ms",
    "x-compute-time-ms": "compute_ms",
}


@dataclass
class JudgeVerdict:
    """The judge's answer for one pair: ``result`` (a ``ScoreResultOut`` dict) or ``error``."""

    result: dict[str, Any] | None
    error: dict[str, str] | None
    judge: dict[str, str] | None
    timing: dict[str, Any] = field(default_factory=dict)


def parse_server_timing(value: str) -> dict[str, float]:
    """``"asr;dur=12.5, style;dur=3.0"`` -> ``{"asr": 12.5, "style": 3.0}`` (milliseconds)."""
    stages: dict[str, float] = {}
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    stages[name] = float(number)
                except ValueError:
                    pass
    return stages


class JudgeClient:
    def __init__(self, base_url: str, *, timeout_s: float = 300.0, max_retries: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, limits=limits)

    async def info(self) -> dict[str, Any]:
        reply = await self._client.get("/v1/judge")
        reply.raise_for_status()
        return reply.json()

    async def score(self, item_id: str, query_audio: bytes, response_audio: bytes) -> JudgeVerdict:
        body = {"items": [{
            "id": item_id,
            "query": {"audio": base64.b64encode(query_audio).decode()},
            "response": {"audio": base64.b64encode(response_audio).decode()},
        }], "priority": "bulk"}  # fmt: skip
        started = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                reply = await self._client.post("/v1/score", json=body)
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    return JudgeVerdict(None, {"type": "judge_unreachable", "message": f"{type(exc).__name__}: {exc}"}, None)
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
                continue
            if reply.status_code in (429, 503) and attempt < self.max_retries:
                await asyncio.sleep(retry_after_s(reply))
                continue
            break
        timing: dict[str, Any] = {"client_s": round(time.perf_counter() - started, 4), "attempts": attempt + 1}
        for header, key in TIMING_HEADERS.items():
            if header in reply.headers:
                timing[key] = float(reply.headers[header])
        if "server-timing" in reply.headers:
            timing["stages_ms"] = parse_server_timing(reply.headers["server-timing"])
        payload = _json_or_none(reply)
        if reply.status_code == 200 and payload is not None:
            result = payload["results"][0]
            error = result.get("error")
            return JudgeVerdict(None if error else result, error and {"type": error["type"], "message": error["message"]},
                                payload.get("judge"), timing)  # fmt: skip
        detail = payload.get("error", {}) if isinstance(payload, dict) else {}
        return JudgeVerdict(None, {
            "type": str(detail.get("type") or f"http_{reply.status_code}"),
            "message": str(detail.get("message") or reply.text[:300]),
        }, None, timing)  # fmt: skip

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None

