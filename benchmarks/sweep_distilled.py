"""Distilled-student recipes side by side: the same teacher, pairs and clip features for every one.

    .venv/bin/python benchmarks/sweep_distilled.py --train RUN.json ... --eval RUN.json ... [--probe RUN.json ...]
        [--seeds 0,1] [--members 1,5] [--weight-decay 0.01,0.1] [--pair-prior none,baseline-tone]
        [--speaking-rate nuclei]
        [--feature-cache .cache/distill-features] [--out .cache/distill-sweep]

Every combination of the grids is trained with ``paras2s-judge distill``'s own ``distill()`` on
the ``--train`` results and measured on the ``--eval`` results (held-out prompts and voices);
``--probe`` results (e.g. ``rl_reward_ceiling.py --pairs-out``, the answers an RL policy chooses
between) are scored too when given. The first combination of the grids is the baseline (the
previous shipped recipe is ``--members 1 --weight-decay 0.01 --pair-prior none``); each row reports its Pearson gain over
the baseline of the same seed. Clip features are computed once per speaking rate and kept in
``--feature-cache`` (one ``.npz`` per rate, keyed by audio path), so a second sweep skips them;
the ``learned`` rate's depend on the syllable counter ``distill()`` fits per seed, so they are
computed in ``distill()`` (one process) and kept per seed (the cache assumes the same ``--train``).

Prints a table and appends rows with provenance (device, commit, date) to
``benchmarks/results/distill_sweep.csv``. Training is full-batch and deterministic on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_service import provenance
from judge_service.judge.distilled import DistilledRewardModel
from judge_service.judge.training.distill import _features, _pairs, agreement, distill, features_of_files

RESULTS = Path(__file__).resolve().parent / "results" / "distill_sweep.csv"


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    data = np.load(path, allow_pickle=False)
    return dict(zip(data["paths"].tolist(), data["features"]))


def _save_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = sorted(cache)
    np.savez(path, paths=np.array(paths), features=np.stack([cache[p] for p in paths]))


def _clip_features_of_files(job: tuple[list[str], str]) -> np.ndarray:
    """A worker's share: ``features_of_files`` of the audio files ``job[0]`` for speaking rate ``job[1]``."""
    torch.set_num_threads(1)  # one thread per worker process: the workers are the parallelism
    return features_of_files(*job)


def _fill_cache(cache: dict[str, np.ndarray], paths: set[str], rate: str, workers: int) -> None:
    """Compute the clip features of ``paths`` not yet in ``cache``, in ``workers`` processes."""
    from concurrent.futures import ProcessPoolExecutor

    todo = sorted(paths - cache.keys())
    chunks = [todo[k : k + 64] for k in range(0, len(todo), 64)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk, features in zip(chunks, pool.map(_clip_features_of_files, [(c, rate) for c in chunks])):
            cache.update(zip(chunk, features))


def _grid(text: str, kind: type) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--eval", nargs="+", required=True)
    parser.add_argument("--probe", nargs="*", default=[])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--members", default="1,5")
    parser.add_argument("--weight-decay", default="0.01")
    parser.add_argument("--pair-prior", default="none,baseline-tone")
    parser.add_argument("--speaking-rate", default="nuclei")
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--feature-cache", default=".cache/distill-features")
    parser.add_argument("--workers", type=int, default=2, help="processes that compute clip features")
    parser.add_argument("--out", default=".cache/distill-sweep")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to the results CSV")
    args = parser.parse_args()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    grids = list(itertools.product(_grid(args.speaking_rate, str), _grid(args.pair_prior, str),
                                   _grid(args.weight_decay, float), _grid(args.members, int)))  # fmt: skip
    probe_rows = _pairs([Path(p) for p in args.probe])[0] if args.probe else []
    every_clip = {p for runs in (args.train, args.eval) for q, r, _, _ in _pairs([Path(x) for x in runs])[0] for p in (q, r)}
    every_clip |= {p for q, r, _, _ in probe_rows for p in (q, r)}
    for rate in _grid(args.speaking_rate, str):
        if rate == "learned":
            continue  # its features depend on the counter distill() fits first (per seed): filled there
        cache_file = Path(args.feature_cache) / f"{rate}.npz"
        cache = _load_cache(cache_file)
        if every_clip - cache.keys():
            started = time.perf_counter()
            _fill_cache(cache, every_clip, rate, args.workers)
            _save_cache(cache_file, cache)
            log(f"[sweep] {rate}: features of {len(every_clip)} clips ready in {time.perf_counter() - started:.0f} s")
    rows, baseline = [], {}
    for seed in _grid(args.seeds, int):
        for rate, prior, weight_decay, members in grids:
            cache_file = Path(args.feature_cache) / (f"{rate}-seed{seed}.npz" if rate == "learned" else f"{rate}.npz")
            cache = _load_cache(cache_file)
            known = len(cache)
            name = f"rate-{rate}_prior-{prior}_wd-{weight_decay:g}_members-{members}_seed-{seed}"
            started = time.perf_counter()
            metrics = distill([Path(p) for p in args.train], [Path(p) for p in args.eval], Path(args.out) / name,
                              epochs=args.epochs, seed=seed, speaking_rate=rate, pair_prior=prior, members=members,
                              weight_decay=weight_decay, feature_cache=cache, log=log)  # fmt: skip
            probe = {"pearson": float("nan")}
            if probe_rows:
                model = DistilledRewardModel.load(Path(args.out) / name)
                with torch.no_grad():
                    pred = model(torch.from_numpy(_features(probe_rows, cache, rate, model.syllable_counter))).numpy()
                probe = agreement(pred, np.array([s for _, _, s, _ in probe_rows]))
            if len(cache) > known:
                _save_cache(cache_file, cache)
            row = {"seed": seed, "speaking_rate": rate, "pair_prior": prior, "weight_decay": weight_decay, "members": members,
                   "kept_epochs": " ".join(map(str, metrics["kept_epochs"])), "train_pairs": metrics["train_pairs"],
                   "eval_pairs": metrics["eval_pairs"], "pearson": round(metrics["eval"]["pearson"], 4),
                   "pearson_without_silence": round(metrics["eval_without_silence"]["pearson"], 4),
                   "mae": round(metrics["eval"]["mae"], 4), "probe_pairs": len(probe_rows),
                   "probe_pearson": round(probe["pearson"], 4), "train_s": round(time.perf_counter() - started, 1)}  # fmt: skip
            baseline.setdefault(seed, row)
            row["pearson_gain"] = round(row["pearson"] - baseline[seed]["pearson"], 4)
            rows.append(row)
            log(f"[sweep] {name}: Pearson {row['pearson']:.4f} ({row['pearson_gain']:+.4f}), "
                f"without silence {row['pearson_without_silence']:.4f}, probe {row['probe_pearson']:.4f}")

    print(f"\nteacher {metrics['teacher']['name']} {metrics['teacher']['version']}; {rows[0]['train_pairs']} training "
          f"pairs, {rows[0]['eval_pairs']} held-out pairs, {len(probe_rows)} probe pairs")  # fmt: skip
    print("| seed | rate | pair prior | weight decay | members | Pearson | gain | without silence | probe | kept epochs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['speaking_rate']} | {r['pair_prior']} | {r['weight_decay']:g} | {r['members']} | {r['pearson']:.4f} | "
              f"{r['pearson_gain']:+.4f} | {r['pearson_without_silence']:.4f} | {r['probe_pearson']:.4f} | {r['kept_epochs']} |")
    if not args.no_record:
        meta = {**provenance(), "teacher_version": metrics["teacher"]["version"]}
        new_file = not RESULTS.exists()
        with RESULTS.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*meta, *rows[0]])
            if new_file:
                writer.writeheader()
            writer.writerows({**meta, **r} for r in rows)
        print(f"\nappended {len(rows)} rows to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
