"""``paras2s-train``: GRPO with the judge service as the reward oracle.

    paras2s-train experiment --out DIR [--judge-url URL] [--config grpo.json] [--train-per-dimension 40]
                             [--eval-per-dimension 25] [--label-fraction 0.1] [--steps N] [--workers N]
    paras2s-train grpo --prompts MANIFEST --out DIR [--judge-url URL] [--config grpo.json] [--init POLICY]
    paras2s-train config > grpo.json            (the default GRPOConfig, to edit)

With no ``--judge-url`` the bundled judge service is started locally (``JUDGE_*`` settings apply,
e.g. ``JUDGE_BACKEND=paras2s-polytone``). A rerun of ``experiment`` with the same ``--out`` resumes
GRPO from its last checkpoint and reuses rendered audio.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config(args: argparse.Namespace):
    from trainer_client.grpo.config import GRPOConfig

    config = GRPOConfig.from_json_file(args.config) if args.config else GRPOConfig()
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    return dataclasses.replace(config, **overrides)


def _experiment(args: argparse.Namespace) -> int:
    from trainer_client.grpo.experiment import experiment_markdown, run_experiment

    config = _config(args)
    server, judge_url = _local_judge(args)
    try:
        report = run_experiment(Path(args.out), judge_url, config=config, train_per_dimension=args.train_per_dimension,
                                eval_per_dimension=args.eval_per_dimension, label_fraction=args.label_fraction,
                                workers=args.workers, log=_log, reward_judge_url=args.reward_judge_url)  # fmt: skip
    finally:
        if server is not None:
            server.stop()
    print(experiment_markdown(report))
    return 0


def _local_judge(args: argparse.Namespace):
    if args.judge_url is not None:
        return None, args.judge_url
    from judge_service.testing import RunningServer

    _log("[paras2s-train] starting the judge service locally (pass --judge-url to use a running one)")
    server = RunningServer({"JUDGE_REDIS_URL": "", "JUDGE_LOG_LEVEL": "warning"}).start()
    return server, server.url


def _grpo(args: argparse.Namespace) -> int:
    """GRPO of a ReplyPolicy on a manifest's prompts; the reference is the initial policy."""
    import copy

    import torch

    from benchmark_client.manifest import load_manifest
    from trainer_client.client import SyncJudgeClient
    from trainer_client.grpo.data import prompts_from_manifest
    from trainer_client.grpo.loop import GRPORun, JudgeRewards, Speaker, load_policy_tensors, resume, reward_curve_png, train_grpo
    from trainer_client.grpo.policy import QueryFeatures, ReplyPolicy

    config = _config(args)
    prompts = prompts_from_manifest(load_manifest(args.prompts))
    features = QueryFeatures()
    features.fit([p.audio_path for p in prompts])
    policy = ReplyPolicy(features, features(prompts[:1]).shape[1], seed=config.seed)
    if args.init:
        load_policy_tensors(policy, Path(args.init))
    out = Path(args.out)
    run = GRPORun(policy, copy.deepcopy(policy).requires_grad_(False),
                  torch.optim.Adam(policy.parameters(), lr=config.learning_rate), config, out)  # fmt: skip
    if resume(run):
        _log(f"[paras2s-train] resumed at step {run.step} from {out / 'checkpoints'}")
    server, url = _local_judge(args)
    try:
        with SyncJudgeClient(url, deadline_s=None) as client:
            client.wait_until_ready()
            train_grpo(run, prompts, JudgeRewards(client, Speaker(out / "replies"), config.reward_scale), _log)
    finally:
        if server is not None:
            server.stop()
    reward_curve_png(out / "log.jsonl", out / "reward_curve.png")
    print(out / "checkpoints")
    return 0


def _print_config(args: argparse.Namespace) -> int:
    from trainer_client.grpo.config import GRPOConfig

    print(GRPOConfig().to_json())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paras2s-train", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("experiment", help="base vs SFT vs SFT+GRPO on held-out benchmark prompts")
    p.add_argument("--out", required=True)
    p.add_argument("--judge-url", default=None)
    p.add_argument("--config", default=None, help="a GRPOConfig JSON file (see `paras2s-train config`)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--train-per-dimension", type=int, default=40)
    p.add_argument("--eval-per-dimension", type=int, default=25)
    p.add_argument("--label-fraction", type=float, default=0.1)
    p.add_argument("--reward-judge-url", default=None,
                   help="a judge service for the GRPO rewards only (e.g. JUDGE_BACKEND=paras2s-distilled); "
                        "the held-out evaluation uses --judge-url")
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_experiment)
    p = sub.add_parser("grpo", help="GRPO of the CPU ReplyPolicy on a manifest's prompts (resumable)")
    p.add_argument("--prompts", required=True, help="a paras2s-bench manifest of spoken prompts")
    p.add_argument("--out", required=True)
    p.add_argument("--judge-url", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--init", default=None, help="policy.safetensors to start from (e.g. an SFT checkpoint)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=_grpo)
    p = sub.add_parser("config", help="print the default GRPO config as JSON")
    p.set_defaults(func=_print_config)
    args = parser.parse_args(argv)
    from trainer_client.grpo.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        _log(f"paras2s-train: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
