"""What a judge rewards on the RL experiment's held-out prompts: the room a policy has above SFT.

    .venv/bin/python benchmarks/rl_reward_ceiling.py [--judge-url URL] [--out DIR]
        [--eval-per-dimension 25] [--seed 0] [--pairs-out PAIRS.json]

Without ``--judge-url`` the bundled service is started here (``JUDGE_*`` settings apply, e.g.
``JUDGE_BACKEND=paras2s-polytone``). For every held-out prompt of ``paras2s-train experiment``
(``experiment.heldout_prompts``: the same 200 prompts by default) the judge scores 19 answers:

  * the labelled demonstration's words (level-5 reply for the true style) in each of the 10
    tones, one of which is the demonstration itself (its written tone): what SFT imitates;
  * each of the other 9 candidates (the contrast style's replies, lower levels) in a neutral tone.

It prints, and writes with provenance to ``benchmarks/results/rl_ceiling_<judge>.json`` / ``.md``:

  * the demonstration's mean score, and the demonstration's words in each fixed tone;
  * per true style, the best fixed tone, chosen on these same prompts (so optimistic): the score
    of a policy that hears every style perfectly and has learned one tone per style;
  * per prompt, the best of the 19 (a max over the judge's noise too: an upper bound, not a goal);
  * mean score by (written for the true style?, rubric level) in a neutral tone: does the judge
    read the words at all?

The experiment's +10%-over-SFT target is reachable only where these bounds exceed 1.1 x SFT.

``--pairs-out`` also writes every scored pair (query and reply audio paths, score) in the shape
of ``paras2s-bench run`` results, system ``rl-probe``: the pairs an RL policy chooses between, for
``benchmarks/bench_distilled.py --results`` and ``paras2s-judge distill --eval``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_service import provenance
from trainer_client.client import Pair, SyncJudgeClient
from trainer_client.grpo.ceiling import markdown, probe_actions, summarise
from trainer_client.grpo.experiment import heldout_prompts
from trainer_client.grpo.loop import Speaker
from trainer_client.grpo.policy import response_of

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge-url", default=None)
    parser.add_argument("--out", default=".cache/rl-ceiling", help="prompts and rendered replies (reused)")
    parser.add_argument("--eval-per-dimension", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs-out", type=Path, default=None, help="also write the scored pairs as run results")
    args = parser.parse_args()

    out = Path(args.out)
    prompts = heldout_prompts(out, args.eval_per_dimension, args.seed, log=lambda _: None)
    actions = [probe_actions(p) for p in prompts]
    flat = [(p, a) for p, acts in zip(prompts, actions) for a in acts]
    print(f"{len(prompts)} prompts, {len(flat)} answers; rendering replies ...", file=sys.stderr, flush=True)
    paths = Speaker(out / "replies").paths([response_of(p, a) for p, a in flat])

    server = None
    url = args.judge_url
    if url is None:
        from judge_service.testing import RunningServer

        server = RunningServer({"JUDGE_REDIS_URL": "", "JUDGE_LOG_LEVEL": "warning"}).start()
        url = server.url
    try:
        with SyncJudgeClient(url, deadline_s=None) as client:
            info = client.wait_until_ready()
            started = time.perf_counter()
            results = client.score([Pair(str(p.audio_path), str(path), id=f"{p.id}|{a.content}|{a.tone}")
                                    for (p, a), path in zip(flat, paths)])  # fmt: skip
            judge_s = time.perf_counter() - started
    finally:
        if server is not None:
            server.stop()
    scores, k = [], 0
    for acts in actions:
        scores.append([r.score for r in results[k : k + len(acts)]])
        k += len(acts)
    report = {"judge": {"name": info.name, "version": info.version}, "pairs": len(flat), "judge_s": round(judge_s, 1),
              "unscored": sum(r.score is None for r in results), "summary": summarise(prompts, scores),
              "provenance": provenance()}  # fmt: skip
    if args.pairs_out is not None:
        items = [{"id": r.id, "query_audio": str(p.audio_path), "response_audio": str(path), "score": r.score,
                  "error": None if r.error is None else {"type": r.error.type, "message": r.error.message}}
                 for (p, _), path, r in zip(flat, paths, results)]  # fmt: skip
        run = {"system": "rl-probe", "judge": report["judge"], "provenance": report["provenance"]}
        args.pairs_out.parent.mkdir(parents=True, exist_ok=True)
        args.pairs_out.write_text(json.dumps({"run": run, "items": items}, indent=1) + "\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"rl_ceiling_{info.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / f"rl_ceiling_{info.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
