"""ParaS2SBench end to end: the synthetic split, every reference system, one judge service.

    .venv/bin/python benchmarks/bench_paras2sbench.py [--per-dimension 100] [--backend paras2s-baseline]
        [--systems topline,neutral_tone,...] [--concurrency 16] [--data-dir .cache/bench-synthetic]
        [--real-speech ../shared/speech] [--real-per-style 15]

1. ``paras2s-bench generate`` (timed; a rerun keeps the rendered clips), plus, when
   ``--real-speech`` holds TESS and EMO-DB, a real split of ``--real-per-style`` clips per
   (corpus, emotion), merged into one manifest.
2. One judge service (``--backend``, cache off so every pair is really judged) for all systems.
3. Per system: ``run_benchmark`` against it, with the judge's Prometheus counters read before
   and after, so the wall time splits into where it goes: the judge's batch compute by stage
   (features, ASR, prosody, text, style, rubric), request decode, queueing, and the client
   (its CPU time, and per request the client-side time beyond the server's own
   ``x-total-time-ms``).

Prints the ranking table (mean and 95% bootstrap interval per system, overall and per dimension,
whether neighbours' intervals overlap) and the time split, and appends rows with provenance
(device, commit, date) to ``benchmarks/results/paras2sbench.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench_service import provenance
from benchmark_client.generate import generate
from benchmark_client.run import run_benchmark
from benchmark_client.systems import REFERENCE_SYSTEMS, make_system
from judge_service.testing import RunningServer, iter_metric

RESULTS = Path(__file__).resolve().parent / "results" / "paras2sbench.csv"


def metric_sums(url: str) -> dict[str, float]:
    """Histogram sums/counts of the judge's time metrics (seconds)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    sums: dict[str, float] = {}
    for name in ("judge_compute_time_seconds", "judge_queue_time_seconds", "judge_stage_time_seconds",
                 "judge_batch_size_clips"):
        for suffix in ("_sum", "_count"):
            for labels, value in iter_metric(text, name + suffix):
                key = name + suffix + "".join(f":{v}" for v in labels.values())
                sums[key] = sums.get(key, 0.0) + value
    return sums


def time_split(doc: dict, before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    items = [i for i in doc["items"] if i["timing"].get("client_s") is not None]
    split = {
        "scoring_wall_s": doc["run"]["scoring_s"],
        "prepare_s": doc["run"]["prepare_s"],
        "judge_compute_s": delta.get("judge_compute_time_seconds_sum", 0.0),
        "judge_batches": delta.get("judge_compute_time_seconds_count", 0.0),
        "mean_batch_clips": delta.get("judge_batch_size_clips_sum", 0.0) / max(1.0, delta.get("judge_batch_size_clips_count", 0.0)),
        "decode_s": sum(i["timing"].get("decode_ms", 0.0) for i in items) / 1000,
        "client_cpu_s": doc["run"]["scoring_client_cpu_s"],
        "client_minus_server_ms_p50": statistics.median(
            [i["timing"]["client_s"] * 1000 - i["timing"].get("server_total_ms", 0.0) for i in items]) if items else 0.0,
        "server_total_ms_p50": statistics.median([i["timing"].get("server_total_ms", 0.0) for i in items]) if items else 0.0,
    }
    for key, value in delta.items():
        if key.startswith("judge_stage_time_seconds_sum:"):
            split["stage_" + key.split(":", 1)[1] + "_s"] = value
    return split


def _stat(stat: dict) -> str:
    if stat.get("mean") is None:
        return "-"
    lo, hi = stat["ci95"]
    return f"{stat['mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-dimension", type=int, default=100)
    parser.add_argument("--backend", default="paras2s-baseline")
    parser.add_argument("--systems", default=",".join(REFERENCE_SYSTEMS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--data-dir", default=".cache/bench-synthetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-speech", default=str(Path(__file__).resolve().parents[2] / "shared" / "speech"))
    parser.add_argument("--real-per-style", type=int, default=15)
    args = parser.parse_args()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    data_dir = Path(args.data_dir)
    started = time.monotonic()
    manifest = generate(data_dir, per_dimension=args.per_dimension, seed=args.seed, log=log)
    generate_s = time.monotonic() - started
    real = Path(args.real_speech)
    if args.real_per_style > 0 and (real / "tess").is_dir() and (real / "emodb").is_dir():
        from datetime import datetime, timezone

        from benchmark_client.corpora import build_real_split
        from benchmark_client.manifest import merge_manifests

        real_split = build_real_split(data_dir / "real", {"tess": real / "tess", "emodb": real / "emodb"},
                                      max_per_style=args.real_per_style, seed=args.seed)
        manifest = merge_manifests(data_dir / "both" / "manifest.jsonl", [manifest, real_split],
                                   datetime.now(timezone.utc).isoformat(timespec="seconds"))
        log(f"[bench] + real split: {len(real_split.items)} items (TESS, EMO-DB)")
    runs_dir = data_dir / f"runs-{args.backend}"
    rows = []
    env = {"JUDGE_BACKEND": args.backend, "JUDGE_CACHE_MAX_ENTRIES": "0", "JUDGE_REDIS_URL": "", "JUDGE_LOG_LEVEL": "warning"}
    with RunningServer(env=env) as server:
        for name in args.systems.split(","):
            system = make_system(name, cache_dir=data_dir / "reference_replies")
            before = metric_sums(server.url)
            doc = run_benchmark(manifest, system, runs_dir / f"{name}.json", judge_url=server.url,
                                concurrency=args.concurrency, restart=True, progress=False, log=log)
            split = time_split(doc, before, metric_sums(server.url))
            rows.append((name, doc, split))
            overall = doc["table"]["overall"]
            log(f"[bench] {name}: overall {overall['mean']:.3f} {overall['ci95']}, {split}")

    print(f"\n{len(manifest.items)} queries, generated in {generate_s:.0f} s; judge {rows[0][1]['run']['judge']}")
    dims = list(rows[0][1]["table"]["splits"]["synthetic"]["dimensions"])
    has_real = "real" in rows[0][1]["table"]["splits"]
    print("\n| system | overall [95% CI] | synthetic avg | " + " | ".join(dims) + " | real avg | overlaps next |")
    print("|---|---|---|" + "---|" * len(dims) + "---|---|")
    for k, (name, doc, _) in enumerate(rows):
        table = doc["table"]
        nxt = rows[k + 1][1]["table"]["overall"]["ci95"] if k + 1 < len(rows) else None
        overlap = "-" if nxt is None else ("yes" if nxt[1] >= table["overall"]["ci95"][0] else "no")
        cells = [f"{table['splits']['synthetic']['dimensions'][d]['mean']:.2f}" for d in dims]
        real_avg = _stat(table["splits"]["real"]["average"]) if has_real else "-"
        print(f"| {name} | {_stat(table['overall'])} | {_stat(table['splits']['synthetic']['average'])} | "
              + " | ".join(cells) + f" | {real_avg} | {overlap} |")
    print("\n| system | pairs | scoring wall s | pairs/s | judge compute s | mean batch clips | decode s | "
          "client CPU s | client-server p50 ms | server p50 ms | stages s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, doc, s in rows:
        stages = ", ".join(f"{k[6:-2]} {v:.0f}" for k, v in s.items() if k.startswith("stage_"))
        n = doc["counts"]["items"]
        print(f"| {name} | {n} | {s['scoring_wall_s']:.0f} | {n / s['scoring_wall_s']:.2f} | {s['judge_compute_s']:.0f} | "
              f"{s['mean_batch_clips']:.1f} | {s['decode_s']:.1f} | {s['client_cpu_s']:.1f} | "
              f"{s['client_minus_server_ms_p50']:.1f} | {s['server_total_ms_p50']:.0f} | {stages} |")

    meta = provenance()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new_file = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*meta, "backend", "system", "items", "overall_mean", "overall_ci95",
                                                    "dimension_means", "generate_s", "time_split"])
        if new_file:
            writer.writeheader()
        for name, doc, split in rows:
            table = doc["table"]
            writer.writerow({
                **meta, "backend": args.backend, "system": name, "items": doc["counts"]["items"],
                "overall_mean": round(table["overall"]["mean"], 4), "overall_ci95": json.dumps(table["overall"]["ci95"]),
                "dimension_means": json.dumps({f"{split}/{d}": round(v["mean"], 4) for split, t in table["splits"].items()
                                               for d, v in t["dimensions"].items() if v["mean"] is not None}),
                "generate_s": round(generate_s, 1), "time_split": json.dumps({k: round(v, 3) for k, v in split.items()}),
            })  # fmt: skip
    print(f"\nappended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
