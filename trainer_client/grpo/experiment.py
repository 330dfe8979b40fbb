"""The paper's RL experiment in small: SFT on a few labelled prompts, then GRPO on unlabelled ones.

Data: training prompts are the scenario bank's *train* split rendered in the judge's train voices
(``generate(scenario_split="train", voices=SPLIT_VOICES["train"])``); held-out prompts are the benchmark's
synthetic split (test scenarios, benchmark voices). Policies (``ReplyPolicy``):
  * base: untrained (random initialisation);
  * SFT: maximum likelihood of the level-5 reply in its tone on ``label_fraction`` of the
    training prompts (the labelled demonstrations);
  * SFT+GRPO: the SFT policy trained with GRPO on *all* training prompts, rewards from the judge
    service, KL to the frozen SFT policy;
  * SFT with more labels (``annotation_fractions``): how many demonstrations SFT alone needs to
    reach SFT+GRPO;
  * gold (``DemonstrationPolicy``, a reference row): the labelled demonstration itself for every
    held-out prompt, i.e. what SFT imitates, heard perfectly. Where the judge scores it below
    SFT+GRPO, the judge rewards something the demonstrations do not teach.
Each policy answers every held-out prompt greedily; the judge scores the pairs; the report is a
ParaS2SBench table (means with 95% bootstrap intervals) per policy plus the relative gain of
SFT+GRPO over SFT. Everything is seeded.
"""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchmark_client.generate import SPLIT_VOICES, generate
from benchmark_client.report import score_table
from benchmark_client.results import ItemError, ItemResult
from trainer_client.client import Pair, SyncJudgeClient
from trainer_client.grpo.config import GRPOConfig
from trainer_client.grpo.data import prompts_from_manifest
from trainer_client.grpo.loop import GRPORun, JudgeRewards, Speaker, reward_curve_png, train_grpo, train_sft
from trainer_client.grpo.policy import Action, Prompt, QueryFeatures, ReplyPolicy, response_of


class DemonstrationPolicy:
    """Answers every prompt with its labelled demonstration (``Prompt.gold``: the level-5 reply
    for the true style, in its own tone). It reads the label, so it is a reference, not a policy
    that hears; it has nothing to train."""

    def greedy(self, prompts: Sequence[Prompt]) -> list[Action]:
        return [p.gold() for p in prompts]


def heldout_prompts(out_dir: Path, per_dimension: int, seed: int, *, workers: int | None = None,
                    log: Callable[[str], None] = print) -> list[Prompt]:
    """The held-out prompts: the benchmark's synthetic split (test scenarios, benchmark voices),
    rendered once under ``out_dir / "heldout-prompts"``."""
    return prompts_from_manifest(generate(out_dir / "heldout-prompts", per_dimension=per_dimension, seed=seed,
                                          workers=workers, log=log))  # fmt: skip


def evaluate(policy: ReplyPolicy | DemonstrationPolicy, prompts: Sequence[Prompt], client: SyncJudgeClient,
             speaker: Speaker) -> list[ItemResult]:  # fmt: skip
    """Greedy answers to every prompt, scored by the judge, as benchmark item results."""
    actions = policy.greedy(prompts)
    paths = speaker.paths([response_of(p, a) for p, a in zip(prompts, actions)])
    scores = client.score([Pair(str(p.audio_path), str(path), id=p.id) for p, path in zip(prompts, paths)])
    results = []
    for prompt, action, path, score in zip(prompts, actions, paths, scores):
        chosen = prompt.candidates[action.content]
        results.append(ItemResult(
            id=prompt.id, split="synthetic", dimension=prompt.dimension, style=prompt.style,
            contrast_group=prompt.id.rsplit(".", 1)[0], scenario_id=None, query_audio=str(prompt.audio_path),
            response_audio=str(path), score=score.score,
            error=None if score.error is None else ItemError("judge", score.error.type, score.error.message),
            rationale=f"chose the level-{chosen.level} reply written for {chosen.style}, in a {response_of(prompt, action)[1]} tone",
        ))  # fmt: skip
    return results


def _choice_stats(policy: ReplyPolicy | DemonstrationPolicy, prompts: Sequence[Prompt]) -> dict[str, float]:
    """How often the greedy action is the gold content / the gold tone (a label-based check the
    judge does not see)."""
    actions = policy.greedy(prompts)
    gold = [p.gold() for p in prompts]
    return {"gold_content_rate": sum(a.content == g.content for a, g in zip(actions, gold)) / len(prompts),
            "gold_tone_rate": sum(a.tone == g.tone for a, g in zip(actions, gold)) / len(prompts)}  # fmt: skip


def run_experiment(
    out_dir: Path, judge_url: str, *, config: GRPOConfig, train_per_dimension: int = 40, eval_per_dimension: int = 25,
    label_fraction: float = 0.1, annotation_fractions: Sequence[float] = (0.25, 0.5, 1.0), workers: int | None = None,
    log: Callable[[str], None] = print, reward_judge_url: str | None = None,
) -> dict:  # fmt: skip
    """Run the experiment; ``judge_url`` scores the held-out evaluation and, unless
    ``reward_judge_url`` is given (e.g. the distilled reward model, as in the paper), the GRPO
    rewards too."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train_manifest = generate(out_dir / "train-prompts", per_dimension=train_per_dimension, seed=config.seed,
                              scenario_split="train", voices=SPLIT_VOICES["train"], workers=workers, log=log)  # fmt: skip
    train = prompts_from_manifest(train_manifest)
    heldout = heldout_prompts(out_dir, eval_per_dimension, config.seed, workers=workers, log=log)
    features = QueryFeatures()
    features.fit([p.audio_path for p in train])
    input_dim = features([train[0]]).shape[1]
    ordered = random.Random(f"{config.seed}|labels").sample(train, len(train))

    def labelled(fraction: float) -> list[Prompt]:
        return ordered[: max(1, round(fraction * len(train)))]

    def fresh() -> ReplyPolicy:
        return ReplyPolicy(features, input_dim, seed=config.seed)

    speaker = Speaker(out_dir / "replies", workers=workers)
    client = SyncJudgeClient(judge_url, deadline_s=None)
    info = client.wait_until_ready()
    reward_client = client if reward_judge_url is None else SyncJudgeClient(reward_judge_url, deadline_s=None)
    reward_info = info if reward_judge_url is None else reward_client.wait_until_ready()
    policies: dict[str, ReplyPolicy | DemonstrationPolicy] = {"base": fresh()}
    sft = fresh()
    train_sft(sft, labelled(label_fraction), config)
    policies["sft"] = sft
    log(f"[experiment] SFT on {len(labelled(label_fraction))} labelled prompts of {len(train)}")
    grpo_policy = copy.deepcopy(sft)
    reference = copy.deepcopy(sft).requires_grad_(False)
    run = GRPORun(grpo_policy, reference, torch.optim.Adam(grpo_policy.parameters(), lr=config.learning_rate),
                  config, out_dir / "grpo")  # fmt: skip
    grpo_started = time.monotonic()
    history = train_grpo(run, train, JudgeRewards(reward_client, speaker, config.reward_scale), log)
    grpo_s = time.monotonic() - grpo_started
    policies["sft+grpo"] = grpo_policy
    for fraction in annotation_fractions:
        more = fresh()
        train_sft(more, labelled(fraction), config)
        policies[f"sft@{fraction:g}"] = more
    policies["gold"] = DemonstrationPolicy()
    if (out_dir / "grpo" / "log.jsonl").exists():
        reward_curve_png(out_dir / "grpo" / "log.jsonl", out_dir / "reward_curve.png")

    report: dict = {"judge": {"name": info.name, "version": info.version, "rubric_version": info.rubric_version},
                    "reward_judge": {"name": reward_info.name, "version": reward_info.version},
                    "config": json.loads(config.to_json()), "train_prompts": len(train), "heldout_prompts": len(heldout),
                    "labelled_prompts": len(labelled(label_fraction)), "grpo_s": round(grpo_s, 1),
                    "grpo_pairs_scored": len(history) * config.prompts_per_step * config.group_size, "policies": {}}  # fmt: skip
    for name, policy in policies.items():
        items = evaluate(policy, heldout, client, speaker)
        table = score_table(items)
        report["policies"][name] = {
            "overall": table["overall"], "dimensions": {d: {"mean": v["mean"], "ci95": v["ci95"]}
                                                        for d, v in table["splits"]["synthetic"]["dimensions"].items()},
            **_choice_stats(policy, heldout),
        }  # fmt: skip
        log(f"[experiment] {name}: held-out judge score {table['overall']['mean']:.3f} {table['overall']['ci95']}")
    client.close()
    if reward_client is not client:
        reward_client.close()
    sft_mean = report["policies"]["sft"]["overall"]["mean"]
    grpo_mean = report["policies"]["sft+grpo"]["overall"]["mean"]
    report["grpo_relative_gain_over_sft"] = (grpo_mean - sft_mean) / sft_mean
    matching = [f for f in annotation_fractions if report["policies"][f"sft@{f:g}"]["overall"]["mean"] >= grpo_mean]
    report["sft_label_fraction_to_match_grpo"] = min(matching) if matching else None
    report["seconds"] = round(time.monotonic() - started, 1)
    report["provenance"] = _provenance()
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "results.md").write_text(experiment_markdown(report))
    return report


def _provenance() -> dict[str, str | None]:
    import os
    import platform
    from datetime import datetime, timezone

    from benchmark_client.run import git_commit

    return {"date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
            "host": platform.node(), "cpus": str(os.cpu_count()), "python": platform.python_version()}  # fmt: skip


def experiment_markdown(report: dict) -> str:
    dims = list(next(iter(report["policies"].values()))["dimensions"])
    lines = [f"# ParaS2SAlign in small: judge `{report['judge']['name']}` {report['judge']['version']}", "",
             f"{report['train_prompts']} training prompts ({report['labelled_prompts']} labelled), "
             f"{report['heldout_prompts']} held-out prompts; GRPO {report['config']['steps']} steps x "
             f"{report['config']['prompts_per_step']} prompts x G={report['config']['group_size']}, "
             f"KL beta {report['config']['kl_beta']} ({report['grpo_s']} s); GRPO rewards from "
             f"`{report.get('reward_judge', report['judge'])['name']}`.", "",
             "| policy | held-out score [95% CI] | " + " | ".join(dims) + " | gold content | gold tone |",
             "|---|---|" + "---|" * len(dims) + "---|---|"]  # fmt: skip
    for name, p in report["policies"].items():
        lo, hi = p["overall"]["ci95"]
        cells = " | ".join(f"{p['dimensions'][d]['mean']:.2f}" for d in dims)
        lines.append(f"| {name} | {p['overall']['mean']:.3f} [{lo:.3f}, {hi:.3f}] | {cells} | "
                     f"{p['gold_content_rate']:.2f} | {p['gold_tone_rate']:.2f} |")  # fmt: skip
    gain = report["grpo_relative_gain_over_sft"]
    lines += ["", f"SFT+GRPO vs SFT: {gain:+.1%} relative (target: >= +10%). "
                  f"Smallest labelled fraction with which SFT alone matches SFT+GRPO: "
                  f"{report['sft_label_fraction_to_match_grpo']}."]  # fmt: skip
    return "\n".join(lines) + "\n"
