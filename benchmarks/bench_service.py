"""Service throughput and latency: batched vs unbatched, and group vs single-pair scoring.

Starts the real service (bundled judge, cache off) in its own process, once batched (the
default limits) and once with one pair per batch (``JUDGE_MAX_BATCH_ITEMS=1``), and drives it
over HTTP with 3-5 s clips at several concurrency levels. Every request's audio is unique
(a bundled example clip, padded with a different noise floor to 3-5 s), so neither the cache
nor in-batch de-duplication can help. Prints a table and appends rows with provenance to
``benchmarks/results/service.csv``.

    .venv/bin/python benchmarks/bench_service.py [--concurrency 1,4,16,64] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from judge_service.demo import examples_dir
from judge_service.testing import RunningServer, b64, encode_audio

RESULTS = Path(__file__).resolve().parent / "results" / "service.csv"


def provenance() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit or "unknown",
        "device": f"{cpu} x{os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


class ClipFactory:
    """Unique 3-5 s clips made from the bundled speech: clip + silence with a unique noise."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.speech = []
        for path in sorted((examples_dir() / "audio").iterdir()):
            samples, rate = sf.read(path, dtype="float32", always_2d=True)
            mono = samples.mean(axis=1)
            if rate != 16_000:
                import torch
                import torchaudio.functional as AF

                mono = AF.resample(torch.from_numpy(mono), rate, 16_000).numpy()
            self.speech.append(mono)

    def clip_wav(self) -> bytes:
        speech = self.speech[int(self.rng.integers(len(self.speech)))]
        duration = int(self.rng.uniform(3.0, 5.0) * 16_000)
        out = np.zeros(max(duration, speech.size), dtype=np.float32)
        offset = int(self.rng.integers(0, max(1, out.size - speech.size)))
        out[offset : offset + speech.size] = speech
        out += (1e-4 * self.rng.standard_normal(out.size)).astype(np.float32)
        return encode_audio(out, 16_000, "WAV")

    def pair_item(self, item_id: str) -> dict:
        return {"id": item_id, "query": {"audio": b64(self.clip_wav())}, "response": {"audio": b64(self.clip_wav())}}


async def load(url: str, factory: ClipFactory, concurrency: int, requests: int) -> dict[str, float]:
    """``requests`` single-pair /v1/score calls, ``concurrency`` at a time."""
    bodies = [{"items": [factory.pair_item(f"r{i}")]} for i in range(requests)]
    latencies: list[float] = []
    server_ms: list[float] = []
    errors = 0
    queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                reply = await client.post("/v1/score", json=body)
                latencies.append(time.perf_counter() - started)
                if reply.status_code != 200 or reply.json()["results"][0].get("error"):
                    errors += 1
                else:
                    server_ms.append(float(reply.headers["x-total-time-ms"]))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall_s = time.perf_counter() - started
    return {
        "pairs_per_s": requests / wall_s,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "server_p50_ms": statistics.median(server_ms) if server_ms else float("nan"),
        "errors": errors,
        "wall_s": wall_s,
    }


def group_vs_singles(url: str, factory: ClipFactory, group_size: int, repeats: int) -> dict[str, float]:
    """One /v1/score/group call vs ``group_size`` sequential single-pair calls (same audio)."""
    group_s, singles_s, one_batch_s = [], [], []
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(repeats):
            query = b64(factory.clip_wav())
            responses = [b64(factory.clip_wav()) for _ in range(group_size)]
            body = {"query": {"audio": query}, "responses": [{"id": f"r{i}", "audio": a} for i, a in enumerate(responses)]}
            started = time.perf_counter()
            assert client.post("/v1/score/group", json=body).status_code == 200
            group_s.append(time.perf_counter() - started)
            # Fresh audio for the singles, so nothing is shared with the group call.
            query = b64(factory.clip_wav())
            responses = [b64(factory.clip_wav()) for _ in range(group_size)]
            started = time.perf_counter()
            for i, audio in enumerate(responses):
                item = {"id": f"r{i}", "query": {"audio": query}, "response": {"audio": audio}}
                assert client.post("/v1/score", json={"items": [item]}).status_code == 200
            singles_s.append(time.perf_counter() - started)
            query = b64(factory.clip_wav())
            items = [{"id": f"r{i}", "query": {"audio": query}, "response": {"audio": b64(factory.clip_wav())}}
                     for i in range(group_size)]
            started = time.perf_counter()
            assert client.post("/v1/score", json={"items": items}).status_code == 200
            one_batch_s.append(time.perf_counter() - started)
    return {
        "group_s": statistics.median(group_s),
        "singles_s": statistics.median(singles_s),
        "one_request_s": statistics.median(one_batch_s),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--requests-per-level", type=int, default=0, help="default: max(12, 3 x concurrency)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--group-repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="concurrency 1,16 and fewer requests")
    args = parser.parse_args()
    levels = [1, 16] if args.quick else [int(c) for c in args.concurrency.split(",")]
    meta = provenance()
    factory = ClipFactory(seed=0)
    env_common = {"JUDGE_CACHE_MAX_ENTRIES": "0", "JUDGE_LOG_LEVEL": "warning", "JUDGE_MAX_QUEUE_ITEMS": "1024"}
    configs = {
        "batched": {**env_common},
        "unbatched": {**env_common, "JUDGE_MAX_BATCH_ITEMS": "1", "JUDGE_MAX_WAIT_MS": "0"},
    }
    rows = []
    group_result = None
    for name, env in configs.items():
        with RunningServer(env) as server:
            asyncio.run(load(server.url, factory, 2, 4))  # warm-up
            for concurrency in levels:
                requests = args.requests_per_level or max(12, 3 * concurrency)
                if args.quick:
                    requests = max(8, 2 * concurrency)
                result = asyncio.run(load(server.url, factory, concurrency, requests))
                rows.append({"config": name, "concurrency": concurrency, "requests": requests, **result})
                print(f"{name:10s} c={concurrency:<3d} {result['pairs_per_s']:6.2f} pairs/s  "
                      f"p50 {result['p50_ms']:7.0f} ms  p99 {result['p99_ms']:7.0f} ms  errors {result['errors']}",
                      flush=True)
            if name == "batched":
                group_result = group_vs_singles(server.url, factory, args.group_size, args.group_repeats)
    print()
    print(f"device: {meta['device']}; commit {meta['commit']}; {meta['date_utc']}; torch {meta['torch']}")
    print()
    print("| concurrency | batched pairs/s | p50 ms | p99 ms | unbatched pairs/s | p50 ms | p99 ms | batched/unbatched |")
    print("|---|---|---|---|---|---|---|---|")
    by = {(r["config"], r["concurrency"]): r for r in rows}
    for c in levels:
        b, u = by[("batched", c)], by[("unbatched", c)]
        print(f"| {c} | {b['pairs_per_s']:.2f} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | {u['pairs_per_s']:.2f} | "
              f"{u['p50_ms']:.0f} | {u['p99_ms']:.0f} | {b['pairs_per_s'] / u['pairs_per_s']:.2f}x |")
    assert group_result is not None
    g = args.group_size
    print()
    print(f"| G={g} | seconds | vs group |")
    print("|---|---|---|")
    print(f"| /v1/score/group (one call) | {group_result['group_s']:.2f} | 1.00x |")
    print(f"| {g} single-pair /v1/score calls, one after another | {group_result['singles_s']:.2f} | "
          f"{group_result['singles_s'] / group_result['group_s']:.2f}x slower |")
    print(f"| one /v1/score call with {g} pairs (same query, de-duplicated in the batch) | "
          f"{group_result['one_request_s']:.2f} | {group_result['one_request_s'] / group_result['group_s']:.2f}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new_file = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*meta, "config", "concurrency", "requests", "pairs_per_s",
                                                    "p50_ms", "p99_ms", "server_p50_ms", "errors", "wall_s"])
        if new_file:
            writer.writeheader()
        for row in rows:
            writer.writerow({**meta, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}})
        for key, value in group_result.items():
            writer.writerow({**meta, "config": f"group{g}:{key}", "concurrency": 1, "requests": args.group_repeats,
                             "wall_s": round(value, 3)})
    print(f"\nappended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
