"""Teacher-scored training pairs for the distilled reward model (``paras2s-judge distill --train``).

    .venv/bin/python scripts/make_distill_runs.py [--out .cache/distill-train] [--per-dimension 100]
        [--backend paras2s-baseline] [--seed 0]

1. ``paras2s-bench generate --split train``: the scenario bank's *train* split spoken by the
   judge's training voices (4 dimensions x ``--per-dimension`` texts x 2 styles), never the
   benchmark's test scenarios or voices, so the distilled model's held-out agreement is honest.
2. One judge service (the teacher, ``--backend``, cache off) scores every reference system's
   replies to those queries: ``OUT/runs-<backend>/<system>.json``. Another teacher reuses the
   rendered queries and replies and scores them again, beside the first one's runs.

The held-out pairs are the benchmark's own runs (``benchmarks/bench_paras2sbench.py`` writes
them to ``.cache/bench-synthetic/runs-<backend>/``). Then::

    paras2s-judge distill \\
        --train OUT/runs-paras2s-baseline/{topline,neutral_tone,tone_deaf_cascade,mismatched,reversed,silence}.json \\
        --eval .cache/bench-synthetic/runs-paras2s-baseline/{topline,neutral_tone,tone_deaf_cascade,mismatched,reversed,silence}.json \\
        --out judge_service/models/distilled

(name the results files: ``runs/*.json`` would also match the ``*.run.json`` run state).
Measured on a 2-core Xeon beside the benchmark run: 800 queries rendered, then 6 x 800 pairs
scored in about 75 min in all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark_client.generate import SPLIT_VOICES, generate
from benchmark_client.run import run_benchmark
from benchmark_client.systems import REFERENCE_SYSTEMS, make_system
from judge_service.testing import RunningServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".cache/distill-train")
    parser.add_argument("--per-dimension", type=int, default=100)
    parser.add_argument("--backend", default="paras2s-baseline")
    parser.add_argument("--systems", default=",".join(REFERENCE_SYSTEMS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    out = Path(args.out)
    manifest = generate(out / "prompts", per_dimension=args.per_dimension, seed=args.seed, scenario_split="train",
                        voices=SPLIT_VOICES["train"], log=log)  # fmt: skip
    env = {"JUDGE_BACKEND": args.backend, "JUDGE_CACHE_MAX_ENTRIES": "0", "JUDGE_REDIS_URL": "", "JUDGE_LOG_LEVEL": "warning"}
    with RunningServer(env=env) as server:
        for name in args.systems.split(","):
            system = make_system(name, cache_dir=out / "reference_replies")
            doc = run_benchmark(manifest, system, out / f"runs-{args.backend}" / f"{name}.json", judge_url=server.url,
                                restart=False, progress=False, log=log)  # fmt: skip
            log(f"[distill-runs] {name}: {doc['counts']['items']} pairs, overall {doc['table']['overall']['mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
