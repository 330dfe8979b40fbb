"""``paras2s-judge distill``: train the distilled reward model on pairs the full judge scored.

    paras2s-judge distill --train RUN.json [RUN.json ...] --eval RUN.json [...] --out DIR

Inputs are ParaS2SBench results (``paras2s-bench run``): every scored item gives a (query audio,
response audio, teacher score) triple. All files must come from one teacher (judge name and
version). Train on runs over *training* prompts and evaluate on runs over other prompts (the
benchmark's test split, other voices), so the agreement is measured on held-out pairs.

Writes ``DIR/model.safetensors``, ``config.json`` and ``metrics.json``: Pearson and Spearman
correlation with the teacher and mean absolute error on the eval pairs, overall and per system
under test (and overall without the trivially easy ``silence`` system).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from judge_service.features import log_mel_spectrogram
from judge_service.judge.distilled import N_MELS, DistilledConfig, DistilledRewardModel, clip_features, syllable_nuclei
from judge_service.judge.prosody import count_syllables, speech_duration_s
from judge_service.judge.syllable_counter import SyllableCounter, count_syllables_batched, fit_syllable_counter
from judge_service.judge.training.features import read_clip


def _pairs(paths: Sequence[Path]) -> tuple[list[tuple[str, str, float, str]], dict[str, str]]:
    """(query path, response path, teacher score, system) for every scored item, and the teacher."""
    rows, teacher = [], None
    for path in paths:
        doc = json.loads(Path(path).read_text())
        judge = {k: doc["run"]["judge"][k] for k in ("name", "version")}
        if teacher is None:
            teacher = judge
        elif judge != teacher:
            raise ValueError(f"{path} was scored by {judge}, the others by {teacher}: distil one teacher at a time")
        rows += [(i["query_audio"], i["response_audio"], float(i["score"]), doc["run"]["system"])
                 for i in doc["items"] if i["score"] is not None]  # fmt: skip
    if teacher is None or not rows:
        raise ValueError("no scored items in the given results files")
    return rows, teacher


def _transcripts(paths: Sequence[Path]) -> dict[str, str]:
    """Audio path -> the teacher's transcript of it, for every clip of a scored item whose
    results record one (``query_transcript``, ``response_transcript``; "" for no speech)."""
    out: dict[str, str] = {}
    for path in paths:
        for item in json.loads(Path(path).read_text())["items"]:
            if item["score"] is None:
                continue
            for audio, text in ((item["query_audio"], item.get("query_transcript")),
                                (item["response_audio"], item.get("response_transcript"))):  # fmt: skip
                if text is not None:
                    out[audio] = text
    return out


def syllable_examples(paths: Sequence[str], transcripts: dict[str, str]) -> tuple[list[np.ndarray], list[float], list[float]]:
    """What a ``SyllableCounter`` learns from, for the audio files ``paths``: their log-mels
    ``(N_MELS, frames_i)`` (float16, to halve the memory of thousands of clips), the syllables of
    their transcripts (``count_syllables``, the teacher's own count) and their speech seconds."""
    mels, syllables, seconds = [], [], []
    for path in paths:
        clip = read_clip(Path(path))
        mel, frames = log_mel_spectrogram([torch.from_numpy(clip)], n_mels=N_MELS)
        mels.append(mel[0, :, : max(1, int(frames[0]))].numpy().astype(np.float16))
        syllables.append(float(count_syllables(transcripts[path])))
        seconds.append(speech_duration_s(clip))
    return mels, syllables, seconds


def rate_agreement(counts: np.ndarray, syllables: Sequence[float], seconds: Sequence[float]) -> dict[str, float]:
    """How estimated syllable counts agree with the transcripts' as *rates* (per speech second,
    at least 0.1 s, as ``syllable_rate``): Pearson and RMS error (syllables per second)."""
    s = np.maximum(np.asarray(seconds, dtype=np.float64), 0.1)
    pred, true = np.asarray(counts, dtype=np.float64) / s, np.asarray(syllables, dtype=np.float64) / s
    return {"clips": int(len(s)), "rate_pearson": float(np.corrcoef(pred, true)[0, 1]),
            "rate_rmse": float(np.sqrt(np.mean((pred - true) ** 2)))}  # fmt: skip


def fit_counter(train_runs: Sequence[Path], eval_runs: Sequence[Path], *, seed: int,
                log: Callable[[str], None]) -> tuple[SyllableCounter, dict]:  # fmt: skip
    """A ``SyllableCounter`` fitted to the teacher's transcripts of the training clips with
    speech, and its rate agreement on the eval clips beside that of ``syllable_nuclei``."""
    def spoken(runs: Sequence[Path]) -> tuple[list[str], dict[str, str]]:
        transcripts = _transcripts(runs)
        return sorted(p for p, t in transcripts.items() if t.strip()), transcripts

    train_paths, train_text = spoken(train_runs)
    if not train_paths:
        raise ValueError("speaking_rate 'learned' needs results with the teacher's transcripts (paras2s-bench run records them)")
    counter, validation = fit_syllable_counter(*syllable_examples(train_paths, train_text), seed=seed, log=log)
    metrics: dict = {"training_clips": len(train_paths), "validation": validation}
    eval_paths, eval_text = spoken(eval_runs)
    if len(eval_paths) >= 3:
        mels, syllables, seconds = syllable_examples(eval_paths, eval_text)
        metrics["eval"] = rate_agreement(count_syllables_batched(counter, mels), syllables, seconds)
        nuclei = [syllable_nuclei(m.astype(np.float32)) for m in mels]
        metrics["eval_nuclei"] = rate_agreement(np.array(nuclei, dtype=np.float64), syllables, seconds)
        log(f"[distill] syllable rate on {len(eval_paths)} eval clips: Pearson {metrics['eval']['rate_pearson']:.3f} "
            f"(nuclei {metrics['eval_nuclei']['rate_pearson']:.3f}), RMS error {metrics['eval']['rate_rmse']:.2f} "
            f"(nuclei {metrics['eval_nuclei']['rate_rmse']:.2f}) syllables/s")  # fmt: skip
    return counter, metrics


def features_of_files(paths: Sequence[str], speaking_rate: str, syllable_counter: SyllableCounter | None = None) -> np.ndarray:
    """``clip_features`` ``(len(paths), CLIP_FEATURES)`` of audio files (mono, 16 kHz via ``read_clip``)."""
    return clip_features([read_clip(Path(p)) for p in paths], speaking_rate, syllable_counter)


def _features(rows: Sequence[tuple[str, str, float, str]], cache: dict[str, np.ndarray], speaking_rate: str,
              syllable_counter: SyllableCounter | None) -> np.ndarray:  # fmt: skip
    todo = sorted({p for q, r, _, _ in rows for p in (q, r)} - cache.keys())
    for start in range(0, len(todo), 64):
        chunk = todo[start : start + 64]
        for path, features in zip(chunk, features_of_files(chunk, speaking_rate, syllable_counter)):
            cache[path] = features
    return np.stack([np.concatenate([cache[q], cache[r]]) for q, r, _, _ in rows])


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks


def agreement(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    if len(pred) < 3 or np.std(pred) == 0 or np.std(target) == 0:
        return {"pairs": int(len(pred)), "pearson": float("nan"), "spearman": float("nan"),
                "mae": float(np.mean(np.abs(pred - target))) if len(pred) else float("nan")}  # fmt: skip
    return {"pairs": int(len(pred)), "pearson": float(np.corrcoef(pred, target)[0, 1]),
            "spearman": float(np.corrcoef(_rank(pred), _rank(target))[0, 1]),
            "mae": float(np.mean(np.abs(pred - target)))}  # fmt: skip


def _fit_member(model: DistilledRewardModel, k: int, x_train: torch.Tensor, y_train: torch.Tensor, val: torch.Tensor,
                *, epochs: int, weight_decay: float, log: Callable[[str], None]) -> tuple[int, float]:  # fmt: skip
    """Full-batch AdamW on student ``k`` alone over the rows not in ``val``; keeps its weights of
    the epoch with the lowest MSE on ``val``. Returns (that epoch, its validation MSE)."""
    student = model.students[k]

    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3, weight_decay=weight_decay)
    best = (math.inf, 0, {name: v.clone() for name, v in student.state_dict().items()})
    for epoch in range(epochs):
        student.train()
        loss = torch.mean((model.student_scores(k, x_train[~val]) - y_train[~val]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            val_mse = float(torch.mean((model.student_scores(k, x_train[val]) - y_train[val]) ** 2))
        if val_mse < best[0]:
            best = (val_mse, epoch + 1, {name: v.clone() for name, v in student.state_dict().items()})
        if (epoch + 1) % 200 == 0:
            log(f"[distill] student {k}, epoch {epoch + 1}: train MSE {loss.item():.4f}, validation MSE {val_mse:.4f}")
    student.load_state_dict(best[2])
    return best[1], best[0]


def distill(train_runs: Sequence[Path], eval_runs: Sequence[Path], out_dir: Path, *, epochs: int = 600, seed: int = 0,
            architecture: str = "towers", clip_inputs: str = "summary", hidden: int = 256, clip_embedding: int = 64,
            speaking_rate: str = "nuclei", pair_prior: str = "none", members: int = 1, weight_decay: float = 1e-2,
            feature_cache: dict[str, np.ndarray] | None = None, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Train a student on ``train_runs``, measure it on ``eval_runs``, write it to ``out_dir``;
    returns the metrics. With ``members`` > 1 the model is an ensemble: student k is trained
    from seed ``seed + k`` with its own early-stopping queries, and the model scores their mean
    (``members=1`` is exactly the single student of ``seed``). ``feature_cache`` (audio path ->
    clip features for this ``speaking_rate``) is filled and reused, so several students can
    share one feature pass. With ``speaking_rate="learned"`` a ``SyllableCounter`` is fitted
    first, on the teacher's transcripts in ``train_runs`` (seed ``seed``), and the features
    depend on it: a cache is only valid for the counter of the same training runs and seed."""
    train_rows, teacher = _pairs(train_runs)
    eval_rows, eval_teacher = _pairs(eval_runs)
    if eval_teacher != teacher:
        raise ValueError(f"eval runs were scored by {eval_teacher}, training runs by {teacher}")
    counter, counter_metrics = None, None
    if speaking_rate == "learned":
        counter, counter_metrics = fit_counter(train_runs, eval_runs, seed=seed, log=log)
    cache: dict[str, np.ndarray] = {} if feature_cache is None else feature_cache
    x_train = torch.from_numpy(_features(train_rows, cache, speaking_rate, counter))
    y_train = torch.tensor([s for _, _, s, _ in train_rows], dtype=torch.float32)
    x_eval = torch.from_numpy(_features(eval_rows, cache, speaking_rate, counter))
    y_eval = np.array([s for _, _, s, _ in eval_rows])
    torch.manual_seed(seed)
    model = DistilledRewardModel(DistilledConfig(teacher_name=teacher["name"], teacher_version=teacher["version"],
                                                 hidden=hidden, architecture=architecture, clip_inputs=clip_inputs,
                                                 clip_embedding=clip_embedding, speaking_rate=speaking_rate,
                                                 pair_prior=pair_prior, members=members))  # fmt: skip
    if counter is not None:
        model.syllable_counter.load_state_dict(counter.state_dict())
    model.input_mean.copy_(x_train.mean(dim=0))
    model.input_std.copy_(x_train.std(dim=0) + 1e-3)
    queries = sorted({q for q, _, _, _ in train_rows})
    kept = []
    for k in range(members):
        # Early stopping on 15% of the training *queries* (all their pairs), so the student is
        # picked on prompts it did not fit; a small MLP memorises ~1000 pairs within a few
        # hundred epochs. Each member holds out other queries: they are fitted on different data.
        held = set(random.Random(seed + k).sample(queries, max(1, len(queries) * 15 // 100)))
        val = torch.tensor([q in held for q, _, _, _ in train_rows])
        kept.append(_fit_member(model, k, x_train, y_train, val, epochs=epochs, weight_decay=weight_decay, log=log))
    log(f"[distill] kept epochs {', '.join(str(e) for e, _ in kept)} "
        f"(validation MSE {', '.join(f'{m:.4f}' for _, m in kept)})")
    model.eval()
    with torch.no_grad():
        pred_eval = model(x_eval).numpy()
        pred_train = model(x_train).numpy()
    systems = np.array([s for _, _, _, s in eval_rows])
    metrics = {
        "teacher": teacher, "train_pairs": len(train_rows), "eval_pairs": len(eval_rows), "kept_epochs": [e for e, _ in kept],
        "train": agreement(pred_train, y_train.numpy()), "eval": agreement(pred_eval, y_eval),
        "eval_without_silence": agreement(pred_eval[systems != "silence"], y_eval[systems != "silence"]),
        "eval_by_system": {s: agreement(pred_eval[systems == s], y_eval[systems == s]) for s in sorted(set(systems))},
        "config": {"architecture": architecture, "clip_inputs": clip_inputs, "hidden": hidden,
                   "clip_embedding": clip_embedding, "speaking_rate": speaking_rate, "pair_prior": pair_prior, "members": members,
                   "weight_decay": weight_decay, "seed": seed},
        "train_runs": [str(p) for p in train_runs], "eval_runs": [str(p) for p in eval_runs],
    }  # fmt: skip
    if counter_metrics is not None:
        metrics["syllable_counter"] = counter_metrics
    model.save(out_dir, metrics)
    log(f"[distill] eval Pearson {metrics['eval']['pearson']:.3f} (without silence "
        f"{metrics['eval_without_silence']['pearson']:.3f}), MAE {metrics['eval']['mae']:.3f}; wrote {out_dir}")
    return metrics
