"""A real TRL ``GRPOTrainer`` run (2 steps, a tiny GPT-2 built here from a config, no hub) whose
reward is ``ParaS2SReward`` against a live judge service (the real bundled judge, real TTS)."""

from __future__ import annotations

import math
import shutil

import pytest

from judge_service.testing import RunningServer

pytest.importorskip("trl", reason="the 'rl' extra (trl, accelerate, datasets) is not installed")

WORDS = ["[happy]", "[sad-comforting]", "[calm]", "[excited]", "I'm", "so", "sorry", "great", "news", "that",
         "sounds", "hard", "congratulations", "okay", "noted", "let's", "talk", "tell", "me", "more", "."]  # fmt: skip


def _tiny_model_and_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {token: k for k, token in enumerate(["<pad>", "<eos>", "<q>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=1, eos_token_id=1, pad_token_id=0)  # fmt: skip
    return GPT2LMHeadModel(config), tokenizer


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_grpo_trainer_two_steps_with_the_judge_as_reward(tmp_path, monkeypatch) -> None:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from judge_service.demo import examples_dir
    from trainer_client.rewards import ParaS2SReward

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model, tokenizer = _tiny_model_and_tokenizer()
    # Saved to a local folder: TRL builds the frozen KL reference from the policy's path.
    model_dir = tmp_path / "tiny-gpt2"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    queries = [str(examples_dir() / "audio" / name) for name in ("query_job_sad.flac", "query_promotion_happy.flac")]
    dataset = Dataset.from_dict({"prompt": ["<q>"] * 4, "query_audio": queries * 2})
    with RunningServer({"JUDGE_REDIS_URL": ""}) as judge:
        reward = ParaS2SReward(judge.url)
        config = GRPOConfig(
            output_dir=str(tmp_path / "grpo"), max_steps=2, per_device_train_batch_size=4, num_generations=4,
            max_completion_length=6, learning_rate=1e-3, beta=0.2, logging_steps=1, report_to=[],
            save_strategy="no", use_cpu=True, bf16=False, seed=0, temperature=1.0,
        )  # fmt: skip
        trainer = GRPOTrainer(model=str(model_dir), processing_class=tokenizer, reward_funcs=[reward], args=config,
                              train_dataset=dataset)  # fmt: skip
        trainer.train()
        reward.close()
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert 1.0 <= entry["reward"] <= 5.0 and math.isfinite(entry["kl"])
    assert len(reward.last_groups) >= 1 and all(s.score is not None for g in reward.last_groups for s in g.scores)
