"""The newcomer's demo: start the service in its own process with the bundled judge and the
in-process cache, score the bundled example pairs over HTTP, print a table, stop."""

from __future__ import annotations

import base64
import json
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from judge_service.testing import RunningServer

READY_TIMEOUT_S = 300.0


def examples_dir() -> Path:
    """The bundled examples: ``pairs.json`` and ``audio/``."""
    return Path(str(resources.files("judge_service") / "examples"))


def load_example_pairs() -> list[dict[str, Any]]:
    """Example pairs as in ``pairs.json``: id, query/response file names, labels, expectation."""
    return json.loads((examples_dir() / "pairs.json").read_text())["pairs"]


def example_score_request() -> dict[str, Any]:
    """A /v1/score JSON body with every bundled pair."""
    audio = examples_dir() / "audio"

    def b64(name: str) -> str:
        return base64.b64encode((audio / name).read_bytes()).decode()

    return {
        "items": [
            {
                "id": pair["id"],
                "query": {"audio": b64(pair["query"]), "labels": pair.get("labels") or None},
                "response": {"audio": b64(pair["response"])},
            }
            for pair in load_example_pairs()
        ]
    }


def _row(values: list[str], widths: list[int]) -> str:
    return "  ".join(v[:w].ljust(w) for v, w in zip(values, widths))


def print_table(results: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> None:
    expected = {p["id"]: p.get("expected", "") for p in pairs}
    widths = [22, 6, 9, 34, 34, 38]
    print(_row(["pair", "score", "expected", "query heard", "response heard", "response tone"], widths))
    print(_row(["-" * w for w in widths], widths))
    for r in results:
        if r.get("error"):
            print(_row([r["id"], "-", expected.get(r["id"], ""), f"error {r['error']['type']}", r["error"]["message"], ""], widths))
            continue
        print(_row([
            r["id"], f"{r['score']:.2f}", expected.get(r["id"], ""),
            r["query"]["transcript"], r["response"]["transcript"], r["response"]["tone"]["description"],
        ], widths))
    print()
    for r in results:
        if not r.get("error"):
            print(f"{r['id']}: {r['rationale']}")


def run_demo(port: int = 0) -> int:
    # The embedded default: in-process cache (an empty JUDGE_REDIS_URL means no Redis).
    server = RunningServer(
        {"JUDGE_LOG_LEVEL": os.environ.get("JUDGE_LOG_LEVEL", "warning"), "JUDGE_REDIS_URL": ""},
        ready_timeout_s=READY_TIMEOUT_S, port=port,
    )
    print(f"starting the judge service on {server.url} (loading models)...", flush=True)
    started = time.monotonic()
    with server:
        base_url = server.url
        judge = httpx.get(base_url + "/v1/judge", timeout=10).json()
        print(f"ready in {time.monotonic() - started:.1f} s: judge {judge['name']} "
              f"version {judge['version']} rubric {judge['rubric_version']}\n", flush=True)
        pairs = load_example_pairs()
        reply = httpx.post(base_url + "/v1/score", json=example_score_request(), timeout=300)
        if reply.status_code != 200:
            print(f"the service answered {reply.status_code}: {reply.text}")
            return 1
        print_table(reply.json()["results"], pairs)
        print(f"\n{len(pairs)} pairs scored over HTTP in {float(reply.headers['x-total-time-ms']):.0f} ms "
              f"(queue {float(reply.headers['x-queue-time-ms']):.0f} ms, compute "
              f"{float(reply.headers['x-compute-time-ms']):.0f} ms, batch of "
              f"{reply.headers['x-batch-clips']} clips)")
        again = httpx.post(base_url + "/v1/score", json=example_score_request(), timeout=300)
        print(f"the same request again: {float(again.headers['x-total-time-ms']):.0f} ms, "
              f"{again.headers['x-cache-hits']} of {len(pairs)} from the cache")
    print("service stopped")
    return 0
