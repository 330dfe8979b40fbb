"""Request bodies and concurrent senders shared by the distributed-mode tests."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx

from judge_service.testing import b64, voiced_wav


def pair_item(item_id: str, seed: int, seconds: float = 1.0) -> dict[str, Any]:
    """A pair of distinct clips (distinct seeds: no cache hit across items)."""
    return {
        "id": item_id,
        "query": {"audio": b64(voiced_wav(seconds, seed=seed))},
        "response": {"audio": b64(voiced_wav(seconds, f0_hz=220.0, seed=seed + 100_000))},
    }


def score_body(first_seed: int, n: int, **extra: Any) -> dict[str, Any]:
    return {"items": [pair_item(f"p{first_seed + i}", first_seed + i) for i in range(n)], **extra}


def post_all(url: str, bodies: list[dict[str, Any]], timeout_s: float = 60.0, workers: int = 16) -> list[httpx.Response]:
    """POST every body to ``url`` at once (one thread each); responses in order."""
    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(url, json=body, timeout=timeout_s)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(post, bodies))
