"""Distributed mode under load: capacity, a sustained run at 80% of it, overload, recovery.

Starts, as real processes on this machine: Redis streams under a fresh key prefix on the
shared Redis (deleted afterwards), 2 workers (``paras2s-judge worker``) and 1 API replica
(``JUDGE_MODE=distributed``), with the judge chosen by ``--backend`` (default: the bundled
baseline judge). Every request is one pair of unique 3-5 s speech clips (``bench_service.
ClipFactory``: bundled speech, unique noise floor), so neither the cache nor in-batch
de-duplication helps.

Phases (printed as a table, appended with provenance to ``benchmarks/results/distributed_load.csv``):

  baseline   the embedded single-process service, closed loop (``--concurrency``): its capacity
  capacity   the distributed deployment, closed loop: capacity C in pairs/s (ratio to baseline)
  sustained  open loop, Poisson arrivals at ``--load`` x C for ``--sustained-s`` (default 300 s):
             lost requests (no answer), 5xx, 429, latency p50/p99
  overload   open loop at ``--overload`` x C for ``--overload-s``: 429s with Retry-After, and
             how fast they come back
  recovery   open loop at 0.5 x C: everything answered again

    .venv/bin/python benchmarks/bench_distributed_load.py [--backend paras2s-baseline] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ClipFactory, provenance  # noqa: E402

from judge_service.distributed.testing import RunningWorker  # noqa: E402
from judge_service.testing import RunningServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "distributed_load.csv"
REDIS_URL = "redis://127.0.0.1:6379/0"


def percentile_ms(values: list[float], q: float) -> float:
    return float(1000 * np.percentile(values, q)) if values else float("nan")


async def closed_loop(url: str, bodies: list[dict], concurrency: int) -> dict:
    """Send every body, ``concurrency`` at a time; throughput in pairs/s."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    statuses: list[int] = []
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                reply = await client.post("/v1/score", json=body)
                latencies.append(time.perf_counter() - started)
                statuses.append(reply.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        wall_s = time.perf_counter() - started
    ok = statuses.count(200)
    return {"sent": len(bodies), "ok": ok, "pairs_per_s": ok / wall_s, "wall_s": wall_s,
            "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99),
            "5xx": sum(1 for s in statuses if s >= 500), "429": statuses.count(429), "lost": len(bodies) - len(statuses)}


async def open_loop(url: str, bodies: list[dict], rate_per_s: float, seed: int) -> dict:
    """Poisson arrivals at ``rate_per_s``, one request per body, whatever the answers; a
    request with no HTTP answer (connection error, client timeout) counts as lost."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate_per_s, size=len(bodies))
    outcomes: list[dict] = []
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(body: dict) -> None:
            started = time.perf_counter()
            try:
                reply = await client.post("/v1/score", json=body)
            except httpx.HTTPError as exc:
                outcomes.append({"status": None, "latency_s": time.perf_counter() - started, "error": type(exc).__name__})
                return
            result = reply.json()
            scored = reply.status_code == 200 and result["results"][0].get("error") is None
            outcomes.append({
                "status": reply.status_code, "latency_s": time.perf_counter() - started, "scored": scored,
                "retry_after": reply.headers.get("retry-after"),
            })

        tasks = []
        started = time.perf_counter()
        next_at = started
        for body, gap in zip(bodies, gaps):
            next_at += gap
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(body)))
        offered_s = time.perf_counter() - started
        await asyncio.gather(*tasks)
        wall_s = time.perf_counter() - started
    ok = [o for o in outcomes if o["status"] == 200]
    rejected = [o for o in outcomes if o["status"] == 429]
    return {
        "sent": len(bodies), "offered_per_s": len(bodies) / offered_s, "wall_s": wall_s,
        "ok": len(ok), "scored": sum(1 for o in ok if o["scored"]), "pairs_per_s": len(ok) / wall_s,
        "lost": sum(1 for o in outcomes if o["status"] is None) + len(bodies) - len(outcomes),
        "5xx": sum(1 for o in outcomes if o["status"] is not None and o["status"] >= 500),
        "429": len(rejected),
        "429_with_retry_after": sum(1 for o in rejected if o["retry_after"] and int(o["retry_after"]) >= 1),
        "p50_ms": percentile_ms([o["latency_s"] for o in ok], 50),
        "p99_ms": percentile_ms([o["latency_s"] for o in ok], 99),
        "429_p99_ms": percentile_ms([o["latency_s"] for o in rejected], 99),
    }


def bodies(factory: ClipFactory, tag: str, n: int) -> list[dict]:
    return [{"items": [factory.pair_item(f"{tag}-{i}")]} for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="paras2s-baseline")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (capacity phases)")
    parser.add_argument("--capacity-requests", type=int, default=160)
    parser.add_argument("--load", type=float, default=0.8)
    parser.add_argument("--sustained-s", type=float, default=300.0)
    parser.add_argument("--overload", type=float, default=2.0)
    parser.add_argument("--overload-s", type=float, default=60.0)
    parser.add_argument("--recovery-s", type=float, default=30.0)
    parser.add_argument("--max-queue-items", type=int, default=64,
                        help="clips in flight per API replica before 429 (a few seconds of work)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (not a measurement)")
    args = parser.parse_args()
    if args.quick:
        args.capacity_requests, args.sustained_s, args.overload_s, args.recovery_s = 24, 20.0, 10.0, 5.0

    threads = max(1, (os.cpu_count() or 1) // args.workers)
    common = {"JUDGE_BACKEND": args.backend, "JUDGE_LOG_LEVEL": "warning",
              "JUDGE_MAX_QUEUE_ITEMS": str(args.max_queue_items), "JUDGE_CACHE_MAX_ENTRIES": "0",
              # a full group must fit in the queue (settings check); benchmark requests are pairs
              "JUDGE_MAX_GROUP_SIZE": str(min(64, args.max_queue_items - 1))}
    factory = ClipFactory(seed=7)
    rows: list[dict] = []

    print(f"baseline: embedded service, {args.concurrency} clients, {args.capacity_requests} pairs", flush=True)
    with RunningServer({**common, "JUDGE_MAX_QUEUE_ITEMS": "512"}) as embedded:
        base = asyncio.run(closed_loop(embedded.url, bodies(factory, "base", args.capacity_requests), args.concurrency))
    rows.append({"phase": "baseline", **base})

    prefix = f"bench-load-{uuid.uuid4().hex[:8]}:"
    env = {**common, "JUDGE_MODE": "distributed", "JUDGE_REDIS_URL": REDIS_URL, "JUDGE_REDIS_KEY_PREFIX": prefix,
           "JUDGE_NUM_THREADS": str(threads)}
    workers = [RunningWorker(env, f"bench-w{i}").start() for i in range(args.workers)]
    try:
        with RunningServer({**env, "JUDGE_MAX_QUEUE_ITEMS": "512"}, port=0) as api:
            print(f"capacity: distributed, {args.workers} workers x {threads} threads", flush=True)
            cap = asyncio.run(closed_loop(api.url, bodies(factory, "cap", args.capacity_requests), args.concurrency))
        rows.append({"phase": "capacity", **cap, "ratio_to_baseline": cap["pairs_per_s"] / base["pairs_per_s"]})
        capacity = cap["pairs_per_s"]
        with RunningServer(env) as api:
            for phase, factor, seconds in (("sustained", args.load, args.sustained_s),
                                            ("overload", args.overload, args.overload_s),
                                            ("recovery", 0.5, args.recovery_s)):
                rate = factor * capacity
                n = max(1, int(rate * seconds))
                print(f"{phase}: {rate:.2f} pairs/s ({factor:.1f} x capacity) for {seconds:.0f} s, {n} requests", flush=True)
                result = asyncio.run(open_loop(api.url, bodies(factory, phase, n), rate, seed=len(rows)))
                rows.append({"phase": phase, "load_x_capacity": factor, **result})
                print(json.dumps(rows[-1]), flush=True)
    except Exception:
        for worker in workers:
            print(f"--- worker {worker.worker_id} log ---\n{worker.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for worker in workers:
            worker.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    meta = {**provenance(), "backend": args.backend, "workers": args.workers, "threads_per_worker": threads,
            "max_queue_items": args.max_queue_items, "quick": args.quick}
    columns = ["phase", "load_x_capacity", "sent", "ok", "lost", "5xx", "429", "429_with_retry_after",
               "pairs_per_s", "ratio_to_baseline", "p50_ms", "p99_ms", "429_p99_ms", "wall_s"]
    print()
    print(" | ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print(" | ".join(f"{row[c]:>12.3f}" if isinstance(row.get(c), float) else f"{str(row.get(c, '')):>12}" for c in columns))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*meta, *columns], extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({**meta, **{c: (round(v, 3) if isinstance(v, float) else v) for c, v in row.items()}})
    sustained = next(r for r in rows if r["phase"] == "sustained")
    return 0 if sustained["lost"] == 0 and sustained["5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
