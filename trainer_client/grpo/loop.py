"""SFT warm-up and the GRPO loop, with the judge service as the reward oracle.

One GRPO step (ParaS2SAlign):
  1. rollout: ``prompts_per_step`` prompts (a seeded draw per step), ``group_size`` sampled
     responses each, their log-probabilities under the policy and the frozen reference;
  2. rewards: every response spoken (cached TTS) and scored with its query by the service,
     one ``/v1/score/group`` call per prompt, all in flight at once; reward = judge score;
  3. advantages normalised within each group (``config.advantage``); a failed score gets
     advantage 0 and is left out of its group's statistics;
  4. ``inner_epochs`` updates of  -(min(ratio A, clip(ratio, 1-eps, 1+eps) A) - beta KL)  where
     KL is the k3 estimator exp(ref - logp) - (ref - logp) - 1 (as in GRPO / TRL).
Logged per step to ``log.jsonl``: reward mean/std, fraction of groups with zero reward spread,
KL, clip fraction, judge and TTS seconds. Checkpoints (``checkpoints/step-NNNNNN``) hold the
policy (safetensors) and optimiser state; the step's randomness is a function of (seed, step),
so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchmark_client.rendering import render_all, reply_job
from trainer_client.client import GROUP_STD_EPS, SyncJudgeClient
from trainer_client.grpo.config import GRPOConfig
from trainer_client.grpo.policy import Action, Prompt, ReplyPolicy, response_of

REPLY_VOICE = "piper-joe-bright"


class Speaker:
    """(text, tone) -> an audio file, rendered once and cached by content under ``cache_dir``."""

    def __init__(self, cache_dir: Path, voice: str = REPLY_VOICE, workers: int | None = None) -> None:
        self.cache_dir, self.voice, self.workers = Path(cache_dir), voice, workers

    def paths(self, responses: Sequence[tuple[str, str]]) -> list[Path]:
        jobs = [reply_job(text, tone, self.voice, self.cache_dir) for text, tone in responses]
        render_all(jobs, workers=self.workers, log=lambda _: None)
        return [job.path for job in jobs]


class JudgeRewards:
    """Rewards ``(P, G)`` from the service (NaN where an item could not be scored)."""

    def __init__(self, client: SyncJudgeClient, speaker: Speaker, reward_scale: str = "raw") -> None:
        self.client, self.speaker, self.reward_scale = client, speaker, reward_scale
        self.judge_s = self.tts_s = 0.0

    def __call__(self, prompts: Sequence[Prompt], actions: Sequence[Sequence[Action]]) -> torch.Tensor:
        started = time.perf_counter()
        flat = [response_of(p, a) for p, acts in zip(prompts, actions) for a in acts]
        paths = self.speaker.paths(flat)
        self.tts_s = time.perf_counter() - started
        started = time.perf_counter()
        g = len(actions[0])
        groups = self.client.score_groups([(str(p.audio_path), [str(x) for x in paths[k * g : (k + 1) * g]])
                                           for k, p in enumerate(prompts)])  # fmt: skip
        self.judge_s = time.perf_counter() - started
        scores = [[math.nan if s.score is None else s.score for s in group.scores] for group in groups]
        rewards = torch.tensor(scores, dtype=torch.float32)
        return (rewards - 1.0) / 4.0 if self.reward_scale == "unit" else rewards


def group_advantages(rewards: torch.Tensor, mode: str) -> torch.Tensor:
    """``(P, G)`` advantages; NaN rewards (unscored) get 0 and do not count in their group."""
    valid = ~torch.isnan(rewards)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = r.sum(dim=1, keepdim=True) / count
    if mode == "none":
        out = r
    else:
        out = r - mean
        if mode == "group":
            var = (torch.where(valid, (r - mean) ** 2, torch.zeros_like(r))).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
            out = out / (var.sqrt() + GROUP_STD_EPS)
    return torch.where(valid, out, torch.zeros_like(out))


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              clip_epsilon: float, kl_beta: float) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """The clipped surrogate with a k3 KL penalty, mean over all (prompt, response); plus stats."""
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    surrogate = torch.minimum(ratio * advantages, clipped * advantages)
    log_ref_ratio = ref_logp - logp
    kl = torch.exp(log_ref_ratio) - log_ref_ratio - 1.0
    loss = -(surrogate - kl_beta * kl).mean()
    clip_fraction = ((ratio - clipped).abs() > 1e-6).float().mean()
    return loss, {"kl": kl.mean().item(), "clip_fraction": clip_fraction.item()}


@dataclass
class GRPORun:
    policy: ReplyPolicy
    reference: ReplyPolicy
    optimizer: torch.optim.Optimizer
    config: GRPOConfig
    out_dir: Path
    step: int = 0


def _checkpoint_dir(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(run: GRPORun) -> Path:
    from safetensors.torch import save_file

    folder = _checkpoint_dir(run.out_dir, run.step)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in run.policy.state_dict().items()}
    tensors.update(run.policy.features.state())
    save_file(tensors, str(folder / "policy.safetensors"))
    torch.save(run.optimizer.state_dict(), folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps({"step": run.step, "config": json.loads(run.config.to_json())}))
    return folder


def load_policy_tensors(policy: ReplyPolicy, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    policy.features.load_state(tensors)
    policy.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("features.")})


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted((out_dir / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def resume(run: GRPORun) -> bool:
    """Load the newest checkpoint under ``run.out_dir``; ``False`` when there is none."""
    folder = latest_checkpoint(run.out_dir)
    if folder is None:
        return False
    load_policy_tensors(run.policy, folder / "policy.safetensors")
    run.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    run.step = json.loads((folder / "state.json").read_text())["step"]
    return True


def grpo_step(run: GRPORun, prompts: Sequence[Prompt], rewards_of: JudgeRewards) -> dict[str, float]:
    cfg = run.config
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + run.step)
    batch = random.Random(f"{cfg.seed}|{run.step}").sample(list(prompts), min(cfg.prompts_per_step, len(prompts)))
    actions, old_logp = run.policy.sample(batch, cfg.group_size, generator, cfg.temperature)
    with torch.no_grad():
        ref_logp = run.reference.log_prob(batch, actions, cfg.temperature)
    rewards = rewards_of(batch, actions)
    advantages = group_advantages(rewards, cfg.advantage)
    stats: dict[str, float] = {}
    for _ in range(cfg.inner_epochs):
        logp = run.policy.log_prob(batch, actions, cfg.temperature)
        loss, stats = grpo_loss(logp, old_logp, ref_logp, advantages, cfg.clip_epsilon, cfg.kl_beta)
        run.optimizer.zero_grad()
        loss.backward()
        run.optimizer.step()
    valid = ~torch.isnan(rewards)
    spread = torch.stack([rewards[k][valid[k]].std() if valid[k].sum() > 1 else torch.tensor(0.0) for k in range(len(batch))])
    return {
        "step": run.step + 1, "reward_mean": float(rewards[valid].mean()), "reward_std": float(rewards[valid].std()),
        "zero_std_groups": float((spread < 1e-6).float().mean()), "unscored": int((~valid).sum()),
        "loss": loss.item(), **stats, "judge_s": round(rewards_of.judge_s, 3), "tts_s": round(rewards_of.tts_s, 3),
    }  # fmt: skip


def train_grpo(run: GRPORun, prompts: Sequence[Prompt], rewards_of: JudgeRewards,
               log: Callable[[str], None] = print) -> list[dict]:  # fmt: skip
    """Steps ``run.step .. config.steps``, appending to ``log.jsonl``; checkpoints as configured."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    (run.out_dir / "config.json").write_text(run.config.to_json())
    history = []
    with (run.out_dir / "log.jsonl").open("a") as log_file:
        while run.step < run.config.steps:
            entry = grpo_step(run, prompts, rewards_of)
            run.step += 1
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()
            history.append(entry)
            log(f"[grpo] step {run.step}/{run.config.steps}: reward {entry['reward_mean']:.3f} +- {entry['reward_std']:.3f}, "
                f"KL {entry['kl']:.4f}, clip {entry['clip_fraction']:.2f}, zero-std groups {entry['zero_std_groups']:.2f}, "
                f"judge {entry['judge_s']:.1f} s, TTS {entry['tts_s']:.1f} s")  # fmt: skip
            if run.step % run.config.checkpoint_every == 0 or run.step == run.config.steps:
                save_checkpoint(run)
    return history


def train_sft(policy: ReplyPolicy, prompts: Sequence[Prompt], config: GRPOConfig) -> list[float]:
    """Maximum likelihood of the gold action (level-5 reply for the true style, its tone)."""
    if not prompts:
        return []
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.sft_learning_rate)
    gold = [[p.gold()] for p in prompts]
    losses = []
    for _ in range(config.sft_epochs):
        loss = -policy.log_prob(prompts, gold).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def reward_curve_png(log_path: Path, out_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [e["step"] for e in entries]
    mean = [e["reward_mean"] for e in entries]
    std = [e["reward_std"] for e in entries]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(steps, mean, color="tab:blue", label="reward mean")
    left.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    left.set_xlabel("GRPO step")
    left.set_ylabel("judge score (reward)")
    right = left.twinx()
    right.plot(steps, [e["kl"] for e in entries], color="tab:red", label="KL to reference")
    right.set_ylabel("KL")
    figure.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
