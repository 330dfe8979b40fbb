"""Distilled reward model vs its teacher, in the same run on the same batches.

    .venv/bin/python benchmarks/bench_distilled.py --results RUN.json [RUN.json ...] [--pairs 480]
        [--model judge_service/models/distilled] [--pairs-per-batch 16] [--pair-set NAME]

Takes scored pairs from ParaS2SBench results (held-out prompts), decodes them once, and runs the
same batches (``--pairs-per-batch`` pairs, as the service forms them) through the teacher (the
multi-stage judge named in the distilled model's config) and through the ``paras2s-distilled``
backend, in-process (no HTTP: the backends' own cost). Prints pairs/s of both, the speed-up, and
the student's Pearson correlation with the teacher on exactly these pairs; appends a row with
provenance and ``--pair-set`` (which pairs: Pearson depends on them far more than speed does) to
``benchmarks/results/distilled.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from bench_service import provenance
from judge_service.audio import AudioLimits, decode_audio
from judge_service.backends.base import BackendJob, PairSpec
from judge_service.backends.distilled import DistilledBackend
from judge_service.judge.distilled import default_distilled_model_path

RESULTS = Path(__file__).resolve().parent / "results" / "distilled.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", nargs="+", required=True)
    parser.add_argument("--pairs", type=int, default=480)
    parser.add_argument("--pairs-per-batch", type=int, default=16)
    parser.add_argument("--model", default=str(default_distilled_model_path()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pair-set", default="paras2sbench runs, 6 systems",
                        help="what the pairs are, for the results table")
    args = parser.parse_args()

    rows = []
    for path in args.results:
        doc = json.loads(Path(path).read_text())
        rows += [(i["query_audio"], i["response_audio"]) for i in doc["items"] if i["score"] is not None]
    rows = random.Random(args.seed).sample(rows, min(args.pairs, len(rows)))
    limits = AudioLimits(0.1, 60.0)
    decoded = {p: decode_audio(Path(p).name, Path(p).read_bytes(), limits) for pair in rows for p in pair}
    batches = [[BackendJob([decoded[q], decoded[r]], [None, None], [PairSpec(0, 1)]) for q, r in rows[k : k + args.pairs_per_batch]]
               for k in range(0, len(rows), args.pairs_per_batch)]  # fmt: skip

    student = DistilledBackend(Path(args.model))
    teacher_name = student.model.config.teacher_name
    from judge_service.backends.registry import create_backend
    from judge_service.config import load_settings

    teacher = create_backend(load_settings(backend=teacher_name))
    scores, seconds = {}, {}
    for name, backend in (("teacher", teacher), ("distilled", student)):
        backend.warm_up()
        started = time.perf_counter()
        out = [s["score"] for batch in batches for result in backend.run_batch(batch).results for s in result.scores]
        seconds[name] = time.perf_counter() - started
        scores[name] = np.array(out)
    pearson = float(np.corrcoef(scores["teacher"], scores["distilled"])[0, 1])
    speedup = seconds["teacher"] / seconds["distilled"]
    print(f"\n{len(rows)} held-out pairs in batches of {args.pairs_per_batch} (same batches for both)")
    print("| backend | seconds | pairs/s |\n|---|---|---|")
    for name in ("teacher", "distilled"):
        print(f"| {name if name == 'distilled' else teacher_name} | {seconds[name]:.1f} | {len(rows) / seconds[name]:.1f} |")
    print(f"\nspeed-up {speedup:.1f}x; Pearson(student, teacher) on these pairs {pearson:.3f}")
    meta = provenance()
    row = {**meta, "teacher": teacher_name, "student_version": student.info.version, "pairs": len(rows),
           "pair_set": args.pair_set, "pairs_per_batch": args.pairs_per_batch, "teacher_s": round(seconds["teacher"], 2),
           "distilled_s": round(seconds["distilled"], 3), "speedup": round(speedup, 1), "pearson": round(pearson, 4)}  # fmt: skip
    append_row(row)
    print(f"appended to {RESULTS}")
    return 0


def append_row(row: dict) -> None:
    """Append to ``RESULTS`` (the header first when the file is new)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new_file = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new_file:
            writer.writeheader()
        writer.writerow(row)


if __name__ == "__main__":
    sys.exit(main())
