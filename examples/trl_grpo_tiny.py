"""Runnable example: TRL's GRPOTrainer with the judge service as reward (ParaS2SReward).

    .venv/bin/paras2s-judge serve --port 8000 &          # or any running judge
    .venv/bin/python examples/trl_grpo_tiny.py --judge-url http://127.0.0.1:8000 --steps 2

The policy is a tiny GPT-2 built here from a config (no hub download) whose vocabulary is a few
reply words and tone tags; ``ParaS2SReward``'s default hook speaks each completion (a leading
``[tone]`` tag picks the tone) and the judge scores it against the spoken query in the dataset
column ``query_audio``. Swap in your own model, tokenizer, dataset and ``audio_from_completion``.
Needs the ``rl`` extra (trl, accelerate, datasets) and the ``tts`` extra.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

WORDS = ["[happy]", "[sad-comforting]", "[calm]", "[excited]", "I'm", "so", "sorry", "great", "news", "that",
         "sounds", "hard", "congratulations", "okay", "noted", "let's", "talk", "tell", "me", "more", "."]  # fmt: skip


def build_tiny_model(folder: Path) -> None:
    """A 2-layer GPT-2 and a word-level tokenizer over ``WORDS``, saved to ``folder`` (TRL loads
    the policy and its frozen KL reference from this path)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {token: k for k, token in enumerate(["<pad>", "<eos>", "<q>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    config = GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=1, eos_token_id=1, pad_token_id=0)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def train(judge_url: str, out_dir: Path, steps: int = 2, seed: int = 0):
    """GRPO for ``steps`` steps on the bundled example queries; returns the trainer and reward."""
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    from judge_service.demo import examples_dir
    from trainer_client.rewards import ParaS2SReward

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(seed)
    model_dir = out_dir / "tiny-gpt2"
    build_tiny_model(model_dir)
    queries = [str(examples_dir() / "audio" / name) for name in ("query_job_sad.flac", "query_promotion_happy.flac")]
    dataset = Dataset.from_dict({"prompt": ["<q>"] * 4, "query_audio": queries * 2})
    reward = ParaS2SReward(judge_url)
    config = GRPOConfig(
        output_dir=str(out_dir / "grpo"), max_steps=steps, per_device_train_batch_size=4, num_generations=4,
        max_completion_length=6, learning_rate=1e-3, beta=0.2, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=True, bf16=False, seed=seed,
    )  # fmt: skip
    trainer = GRPOTrainer(model=str(model_dir), processing_class=PreTrainedTokenizerFast.from_pretrained(model_dir),
                          reward_funcs=[reward], args=config, train_dataset=dataset)  # fmt: skip
    trainer.train()
    reward.close()
    return trainer, reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--out", default="trl-grpo-tiny")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    trainer, _ = train(args.judge_url, Path(args.out), args.steps)
    for entry in trainer.state.log_history:
        if "reward" in entry:
            print(f"step {entry.get('step')}: reward {entry['reward']:.3f} (std {entry.get('reward_std', 0):.3f}), KL {entry.get('kl', 0):.4f}")


if __name__ == "__main__":
    main()
