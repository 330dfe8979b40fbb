"""GRPO pieces: config validation, advantages and loss against plain references, the policy's
sampling and log-probabilities, checkpoint/resume, and a tiny experiment with the real judge."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from judge_service.testing import RunningServer, voiced_wav
from trainer_client.grpo.config import ConfigError, GRPOConfig
from trainer_client.grpo.loop import GRPORun, group_advantages, grpo_loss, resume, save_checkpoint, train_grpo, train_sft
from trainer_client.grpo.policy import TONES, Action, Candidate, Prompt, QueryFeatures, ReplyPolicy


def test_config_is_validated_with_the_fix_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="group_size=1: GRPO needs at least 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ConfigError, match="advantage='rank'"):
        GRPOConfig(advantage="rank")
    with pytest.raises(ConfigError, match="clip_epsilon"):
        GRPOConfig(clip_epsilon=1.5)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 3, "kl_beta": 0.1}))
    assert GRPOConfig.from_json_file(path) == GRPOConfig(steps=3, kl_beta=0.1)
    path.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['stepz'\]"):
        GRPOConfig.from_json_file(path)


def _advantages_reference(rewards: list[list[float]], mode: str) -> list[list[float]]:
    out = []
    for row in rewards:
        valid = [r for r in row if not math.isnan(r)]
        mean = sum(valid) / len(valid)
        std = math.sqrt(sum((r - mean) ** 2 for r in valid) / (len(valid) - 1)) if len(valid) > 1 else 0.0
        adv = []
        for r in row:
            if math.isnan(r):
                adv.append(0.0)
            elif mode == "group":
                adv.append((r - mean) / (std + 1e-4))
            elif mode == "group_mean":
                adv.append(r - mean)
            else:
                adv.append(r)
        out.append(adv)
    return out


@pytest.mark.parametrize("mode", ["group", "group_mean", "none"])
def test_group_advantages_match_the_reference(mode: str) -> None:
    rewards = [[1.0, 2.0, 4.5, 3.0], [2.0, 2.0, 2.0, 2.0], [5.0, math.nan, 1.0, 3.0], [math.nan, 4.0, math.nan, math.nan]]
    got = group_advantages(torch.tensor(rewards), mode)
    expected = _advantages_reference(rewards, mode)
    assert [x for row in got.tolist() for x in row] == pytest.approx([x for row in expected for x in row], abs=1e-5)


def test_grpo_loss_on_policy_is_the_policy_gradient_and_clips_off_policy() -> None:
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, clip_epsilon=0.2, kl_beta=0.2)
    loss.backward()
    assert stats == {"kl": 0.0, "clip_fraction": 0.0}
    assert logp.grad[0].tolist() == pytest.approx([-0.5, 0.5])  # -A / N: raise good, lower bad
    far = torch.tensor([[0.0, 0.0]])
    _, stats = grpo_loss(far, torch.tensor([[-1.0, -1.0]]), far, adv, clip_epsilon=0.2, kl_beta=0.0)
    assert stats["clip_fraction"] == 1.0


def _prompts(tmp_path: Path, n: int = 4) -> list[Prompt]:
    prompts = []
    for k in range(n):
        path = tmp_path / f"q{k}.wav"
        path.write_bytes(voiced_wav(0.7, f0_hz=110 + 60 * (k % 2), seed=k))
        style = "sad" if k % 2 else "happy"
        candidates = tuple(Candidate(f"reply {s} {lvl}", f"emotion:{s}", lvl, "sad-comforting" if s == "sad" else "happy")
                           for s in ("happy", "sad") for lvl in (5, 4, 3, 2, 1))  # fmt: skip
        prompts.append(Prompt(f"p{k}", path, "emotion", style, candidates))
    return prompts


def _policy(prompts: list[Prompt], seed: int = 0) -> ReplyPolicy:
    features = QueryFeatures()
    features.fit([p.audio_path for p in prompts])
    return ReplyPolicy(features, features(prompts[:1]).shape[1], seed=seed)


def test_policy_sampling_log_probs_and_sft(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path)
    policy = _policy(prompts)
    actions, logp = policy.sample(prompts, 5, torch.Generator().manual_seed(0), temperature=1.0)
    assert logp.shape == (4, 5) and all(len(a) == 5 for a in actions)
    again = policy.log_prob(prompts, actions, 1.0)
    assert torch.allclose(again.detach(), logp, atol=1e-6)
    # A distribution: the probabilities of every (content, tone) action of a prompt sum to 1.
    every = [[Action(c, t) for c in range(10) for t in range(len(TONES))]]
    assert float(policy.log_prob(prompts[:1], every, 1.0).exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert prompts[1].gold() == Action(5, TONES.index("sad-comforting"))
    losses = train_sft(policy, prompts, GRPOConfig(sft_epochs=150, sft_learning_rate=0.05))
    assert losses[-1] < losses[0] / 4
    assert policy.greedy(prompts) == [p.gold() for p in prompts]  # it heard which is which


class _ConstantRewards:
    """Rewards without a judge, for the loop's bookkeeping only: the gold content scores 5."""

    judge_s = tts_s = 0.0

    def __call__(self, prompts, actions):
        return torch.tensor([[5.0 if a.content == p.gold().content else 1.0 for a in acts]
                             for p, acts in zip(prompts, actions)])  # fmt: skip


def test_grpo_learns_a_clear_reward_and_resumes_exactly(tmp_path: Path) -> None:
    prompts = _prompts(tmp_path)
    config = GRPOConfig(steps=6, group_size=6, prompts_per_step=4, checkpoint_every=3, learning_rate=0.1, kl_beta=0.01)

    def new_run(out: Path) -> GRPORun:
        policy = _policy(prompts)
        reference = copy.deepcopy(policy).requires_grad_(False)
        return GRPORun(policy, reference, torch.optim.Adam(policy.parameters(), lr=config.learning_rate), config, out)

    straight = new_run(tmp_path / "a")
    history = train_grpo(straight, prompts, _ConstantRewards(), log=lambda _: None)
    assert history[-1]["reward_mean"] > history[0]["reward_mean"]
    assert {"kl", "clip_fraction", "zero_std_groups", "judge_s"} <= set(history[0])
    # Interrupted after 3 steps (a checkpoint), resumed in a new process-like object: same weights.
    half = new_run(tmp_path / "b")
    train_grpo(GRPORun(half.policy, half.reference, half.optimizer, GRPOConfig(**{**config.__dict__, "steps": 3}),
                       tmp_path / "b"), prompts, _ConstantRewards(), log=lambda _: None)  # fmt: skip
    resumed = new_run(tmp_path / "b")
    assert resume(resumed) and resumed.step == 3
    train_grpo(resumed, prompts, _ConstantRewards(), log=lambda _: None)
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert save_checkpoint(resumed).name == "step-000006"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_tiny_experiment_end_to_end_with_the_real_judge(tmp_path: Path) -> None:
    from trainer_client.grpo.experiment import run_experiment

    config = GRPOConfig(steps=2, group_size=3, prompts_per_step=2, sft_epochs=20)
    # As in the paper: the fast distilled model gives the GRPO rewards, the full judge evaluates.
    with RunningServer({"JUDGE_REDIS_URL": ""}) as judge, \
            RunningServer({"JUDGE_REDIS_URL": "", "JUDGE_BACKEND": "paras2s-distilled"}) as reward_judge:
        report = run_experiment(tmp_path / "exp", judge.url, config=config, train_per_dimension=1, eval_per_dimension=1,
                                label_fraction=0.5, annotation_fractions=(1.0,), workers=0, log=lambda _: None,
                                reward_judge_url=reward_judge.url)  # fmt: skip
    assert report["judge"]["name"] == "paras2s-baseline" and report["reward_judge"]["name"] == "paras2s-distilled"
    assert set(report["policies"]) == {"base", "sft", "sft+grpo", "sft@1", "gold"}
    assert report["policies"]["gold"]["gold_content_rate"] == 1.0 and report["policies"]["gold"]["gold_tone_rate"] == 1.0
    for policy in report["policies"].values():
        assert 1.0 <= policy["overall"]["mean"] <= 5.0
    log = [json.loads(line) for line in (tmp_path / "exp" / "grpo" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(1.0 <= e["reward_mean"] <= 5.0 and e["judge_s"] > 0 for e in log)
    assert (tmp_path / "exp" / "reward_curve.png").stat().st_size > 1000
    assert "SFT+GRPO vs SFT" in (tmp_path / "exp" / "results.md").read_text()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_paras2s_train_grpo_cli_runs_and_resumes(tmp_path: Path) -> None:
    """The CLI end to end against a fake-backend judge (the loop's plumbing, not the judge)."""
    import os
    import subprocess
    import sys

    from tests.bench.conftest import make_manifest

    manifest = make_manifest(tmp_path / "prompts", groups=2)
    config = tmp_path / "grpo.json"
    config.write_text(json.dumps({"group_size": 2, "prompts_per_step": 2, "checkpoint_every": 1}))
    repo = Path(__file__).resolve().parents[2]
    with RunningServer({"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": ""}) as judge:
        def train(steps: int) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "trainer_client.cli", "grpo", "--prompts", str(manifest),
                                   "--out", str(tmp_path / "run"), "--judge-url", judge.url, "--config", str(config),
                                   "--steps", str(steps)], capture_output=True, text=True, cwd=repo, timeout=300,
                                  env={**os.environ, "PYTHONPATH": str(repo)})  # fmt: skip

        first = train(2)
        assert first.returncode == 0, first.stderr[-2000:]
        second = train(3)
        assert second.returncode == 0 and "resumed at step 2" in second.stderr, second.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]
    assert (tmp_path / "run" / "reward_curve.png").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-000001", "step-000002", "step-000003"]
