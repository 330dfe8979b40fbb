"""``paras2s-judge train``: regenerate the PolyTone data and the judge's weights.

1. Render the PolyTone dataset (``judge.polytone.dataset``) into ``data_dir``.
2. Extract analyser inputs (Whisper encoder states + prosody) for the synthetic clips and the
   real corpora in ``real_speech_dir`` (TESS, EMO-DB, LibriSpeech; optional).
3. Fit the analysers on the train-split queries (train voices) and all real speech.
4. Fit the reply-intent classifier and the rubric scorer on rubric-levelled pairs of the
   train-split scenarios, with the query-style and reply-intent inputs cross-fitted (predicted
   by models that did not see the scenario) and the words of each pair as Whisper heard them
   (what the service gives the rubric), not the reference texts.
5. Write ``analysers.*``, ``rubric.*`` and ``training.json`` to ``out_dir``.
The test split and the held-out voices are never used here; ``evaluate.py`` measures on them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from judge_service.judge.analysers import PROSODY_FEATURES, save_analyser
from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.rubric import BANK_STYLES, STYLE_DIM, ReplyBank, save_rubric, style_vector
from judge_service.judge.scenario_bank import SCENARIO_BANK_VERSION, bank_sha256
from judge_service.judge.text_embedding import TextEmbedder, default_text_model_path
from judge_service.judge.training.features import FEATURE_VERSION, TRANSCRIPT_VERSION, extract, transcribe
from judge_service.judge.training.fit_analysers import FitSettings, fit_analyser, label_matrix, source_weights
from judge_service.judge.training.fit_rubric import (
    RubricExample,
    RubricFitSettings,
    build_features,
    fit_calibration,
    fit_reply_intent,
    fit_rubric,
)
from judge_service.judge.training.records import ClipRecord, load_polytone_manifest, load_real_speech

CROSS_FIT_FOLDS = 5
MISMATCH_TARGET = 2.0
NEUTRAL_VOICE_TARGET = 4.0
CONTRARY_VOICE_TARGET = 2.0
KNOWN_LABEL_FRACTION = 0.3


def _set_one_hot(style: np.ndarray, query: ClipRecord) -> None:
    """Overwrite the query's cue dimension in a STYLE_DIM vector with its true label."""
    dim = str(query.meta["dimension"])
    offset = 0
    for d, labels in LABEL_SETS.items():
        if d == dim:
            style[offset : offset + len(labels)] = 0.0
            style[offset + labels.index(str(query.labels[dim]))] = 1.0
        offset += len(labels)


def scenario_fold(scenario_id: str, folds: int = CROSS_FIT_FOLDS) -> int:
    return int(hashlib.sha256(scenario_id.encode()).hexdigest()[:8], 16) % folds


class TrainingData:
    """Every clip the training uses, with features, loaded once."""

    def __init__(self, data_dir: Path, real_speech_dir: Path | None, cache_dir: Path, log: Callable[[str], None]) -> None:
        self.queries = load_polytone_manifest(data_dir, "query")
        self.replies = load_polytone_manifest(data_dir, "reply")
        self.real = load_real_speech(real_speech_dir) if real_speech_dir and real_speech_dir.is_dir() else []
        log(f"[train] {len(self.queries)} query clips, {len(self.replies)} reply clips, {len(self.real)} real clips")
        asr = WhisperTranscriber(default_whisper_model_path(), threads=2)
        self.asr, self.cache_dir, self.log = asr, cache_dir, log
        started = time.monotonic()
        self.query_x = extract(self.queries, asr, cache_dir)
        self.reply_x = extract(self.replies, asr, cache_dir)
        self.real_x = extract(self.real, asr, cache_dir) if self.real else (
            np.zeros((0, asr.embedding_dim), np.float32), np.zeros((0, self.query_x[1].shape[1]), np.float32))
        log(f"[train] features extracted in {time.monotonic() - started:.0f} s")

    def transcripts(self) -> tuple[list[str], list[str]]:
        """Whisper's transcripts of the query and of the reply clips (cached in ``cache_dir``)."""
        started = time.monotonic()
        out = transcribe(self.queries, self.asr, self.cache_dir), transcribe(self.replies, self.asr, self.cache_dir)
        self.log(f"[train] transcripts of {len(self.queries) + len(self.replies)} clips in {time.monotonic() - started:.0f} s")
        return out

    def train_queries(self) -> np.ndarray:
        """Mask of the analysers' query clips: train-split texts in train voices. (Reply clips
        are rubric data only: adding the train replies to the analysers' data cost held-out age
        accuracy, 0.954 -> 0.907, and did not help emotion, 0.471 -> 0.463.)"""
        return np.array([r.meta["split"] == "train" and r.meta["voice_split"] == "train" for r in self.queries], bool)

    def analyser_inputs(self, query_mask: np.ndarray, real_mask: np.ndarray | None = None) -> tuple:
        """(embeddings, prosody, labels, weights, records) of the chosen queries + real clips."""
        real_mask = np.ones(len(self.real), bool) if real_mask is None else real_mask
        records = [r for r, m in zip(self.queries, query_mask) if m] + [r for r, m in zip(self.real, real_mask) if m]
        emb = np.concatenate([self.query_x[0][query_mask], self.real_x[0][real_mask]])
        pros = np.concatenate([self.query_x[1][query_mask], self.real_x[1][real_mask]])
        return emb, pros, label_matrix(records), source_weights(records), records


def rubric_examples(
    queries: list[ClipRecord], replies: list[ClipRecord], query_text_rows: list[int], reply_text_rows: list[int],
    scenario_ids: set[str],
) -> list[RubricExample]:
    """Own replies -> their level; the other style's level 5 -> 2; the level-5 text in the
    level-4 (neutral) voice -> 4 and in the other style's level-5 voice -> 2. A clip's words are
    its row in the text table, ``query_text_rows[i]`` for ``queries[i]`` (``reply_text_rows``
    likewise)."""
    reply_of: dict[tuple[str, str, int], int] = {}
    styles_of: dict[str, set[str]] = {}
    for i, r in enumerate(replies):
        sid = str(r.meta["scenario_id"])
        reply_of[(sid, str(r.meta["style"]), int(r.meta["level"]))] = i
        styles_of.setdefault(sid, set()).add(str(r.meta["style"]))
    examples = []
    for qi, q in enumerate(queries):
        sid, style = str(q.meta["scenario_id"]), str(q.meta["style"])
        if sid not in scenario_ids or len(styles_of.get(sid, ())) != 2:
            continue
        (other,) = styles_of[sid] - {style}
        q_text, r_text = query_text_rows[qi], reply_text_rows
        for level in range(1, 6):
            row = reply_of[(sid, style, level)]
            examples.append(RubricExample(q_text, r_text[row], qi, row, float(level), f"own-{level}", sid))
        own5, own4, other5 = reply_of[(sid, style, 5)], reply_of[(sid, style, 4)], reply_of[(sid, other, 5)]
        examples.append(RubricExample(q_text, r_text[other5], qi, other5, MISMATCH_TARGET, "mismatched", sid))
        examples.append(RubricExample(q_text, r_text[own5], qi, own4, NEUTRAL_VOICE_TARGET, "l5-text-neutral-voice", sid))
        examples.append(RubricExample(q_text, r_text[own5], qi, other5, CONTRARY_VOICE_TARGET, "l5-text-contrary-voice", sid))
    return examples


def reply_bank(replies: list[ClipRecord], text_index: dict[str, int], text_table: np.ndarray, scenario_ids: set[str]) -> ReplyBank:
    """The rubric's nearest-neighbour memory: every reply of the given scenarios, once."""
    seen, rows = set(), []
    for r in replies:
        key = (r.meta["scenario_id"], r.meta["style"], r.meta["level"])
        if r.meta["scenario_id"] in scenario_ids and key not in seen:
            seen.add(key)
            rows.append(r)
    style_index = {style: i for i, style in enumerate(BANK_STYLES)}
    return ReplyBank(
        vectors=text_table[[text_index[r.text or ""] for r in rows]],
        styles=np.array([style_index[(str(r.meta["dimension"]), str(r.meta["style"]))] for r in rows]),
        levels=np.array([float(r.meta["level"]) for r in rows]),
        groups=[str(r.meta["scenario_id"]) for r in rows],
    )


def intent_training_rows(
    replies: list[ClipRecord], text_index: dict[str, int], scenario_ids: set[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(text rows, BANK_STYLES indices, scenario ids) of the level-5 replies of the given
    scenarios, each (scenario, style) once: the reply-intent classifier's training set."""
    style_index = {style: i for i, style in enumerate(BANK_STYLES)}
    seen, texts, styles, groups = set(), [], [], []
    for r in replies:
        key = (str(r.meta["scenario_id"]), str(r.meta["style"]))
        if key[0] in scenario_ids and int(r.meta["level"]) == 5 and key not in seen:
            seen.add(key)
            texts.append(text_index[r.text or ""])
            styles.append(style_index[(str(r.meta["dimension"]), key[1])])
            groups.append(key[0])
    return np.array(texts), np.array(styles), groups


def cross_fitted_intents(
    examples: list[RubricExample], text_table: np.ndarray, intent_rows: np.ndarray, intent_styles: np.ndarray,
    intent_groups: list[str], seed: int,
) -> np.ndarray:
    """``(len(examples), len(BANK_STYLES))``: each example's reply intent from a classifier
    trained (on ``intent_training_rows``) without its scenario's fold, so the rubric learns how
    far to trust intents on new scenarios."""
    row_folds = np.array([scenario_fold(g) for g in intent_groups])
    example_folds = np.array([scenario_fold(e.group) for e in examples])
    reply_rows = np.array([e.reply_text for e in examples])
    out = np.zeros((len(examples), len(BANK_STYLES)), np.float64)
    for fold in range(CROSS_FIT_FOLDS):
        target = example_folds == fold
        if not target.any():
            continue
        keep = row_folds != fold
        intent = fit_reply_intent(text_table[intent_rows[keep]], intent_styles[keep], len(BANK_STYLES), seed)
        out[target] = intent.predict(text_table[reply_rows[target]])
    return out


def train_judge(
    out_dir: Path, data_dir: Path, real_speech_dir: Path | None, seed: int = 0, workers: int = 2,
    build: bool = True, max_seeds_per_dimension: int | None = None, log: Callable[[str], None] = print,
) -> dict:
    """Run steps 1-5 (see the module docstring); returns the summary written to training.json."""
    started = time.monotonic()
    if build:
        from judge_service.judge.polytone.dataset import build_dataset

        build_dataset(data_dir, workers=workers, seed=seed, max_seeds_per_dimension=max_seeds_per_dimension, log=log)
    data = TrainingData(data_dir, real_speech_dir, data_dir / "cache", log)
    train_q = data.train_queries()
    fit = FitSettings(seed=seed)

    # Cross-fitted query styles for the rubric: each fold's queries predicted by analysers
    # that never saw their scenario.
    query_style = np.zeros((len(data.queries), STYLE_DIM), np.float32)
    folds = np.array([scenario_fold(str(r.meta["scenario_id"])) for r in data.queries])
    for fold in range(CROSS_FIT_FOLDS):
        target = train_q & (folds == fold)
        if not target.any():  # tiny builds (tests) can leave a fold empty
            continue
        emb, pros, labels, weights, records = data.analyser_inputs(train_q & (folds != fold))
        model = fit_analyser(emb, pros, labels, weights, fit)
        query_style[target] = style_vector(model.predict_proba(data.query_x[0][target], data.query_x[1][target]))
        log(f"[train] cross-fit fold {fold + 1}/{CROSS_FIT_FOLDS} done ({time.monotonic() - started:.0f} s)")

    emb, pros, labels, weights, records = data.analyser_inputs(train_q)
    analyser = fit_analyser(emb, pros, labels, weights, fit, trained_on={
        "polytone_train_queries": int(train_q.sum()),
        "real_clips_by_corpus": {s: sum(r.source == s for r in data.real) for s in ("tess", "emodb", "librispeech")},
    })
    save_analyser(analyser, out_dir)
    log(f"[train] analysers fitted on {len(records)} clips ({time.monotonic() - started:.0f} s)")

    reply_style = style_vector(analyser.predict_proba(*data.reply_x))
    query_words, reply_words = data.transcripts()
    # The reply bank and the intent classifier are knowledge of the written replies (reference
    # texts); the rubric's rows carry what Whisper heard.
    texts = sorted({r.text or "" for r in data.queries + data.replies} | set(query_words) | set(reply_words))
    text_index = {t: i for i, t in enumerate(texts)}
    text_table = TextEmbedder(default_text_model_path()).encode(texts)
    train_scenarios = {str(r.meta["scenario_id"]) for r in data.queries if r.meta["split"] == "train"}
    examples = [e for e in rubric_examples(data.queries, data.replies, [text_index[t] for t in query_words],
                                           [text_index[t] for t in reply_words], train_scenarios)
                if train_q[e.query_style]]
    # Clients may send known labels, which the judge uses as one-hot probabilities; show the
    # rubric such inputs: a copy of KNOWN_LABEL_FRACTION of the examples with the cue one-hot.
    rng = np.random.default_rng(seed)
    known_rows = []
    for e in list(examples):
        if rng.random() < KNOWN_LABEL_FRACTION:
            known = query_style[e.query_style].copy()
            _set_one_hot(known, data.queries[e.query_style])
            known_rows.append(known)
            e_known = RubricExample(e.query_text, e.reply_text, len(query_style) + len(known_rows) - 1,
                                    e.reply_voice, e.target, e.kind + "+known-label", e.group)
            examples.append(e_known)
    query_style = np.concatenate([query_style, np.array(known_rows, np.float32).reshape(-1, query_style.shape[1])])
    bank = reply_bank(data.replies, text_index, text_table, train_scenarios)
    intent_rows, intent_styles, intent_groups = intent_training_rows(data.replies, text_index, train_scenarios)
    intent = fit_reply_intent(text_table[intent_rows], intent_styles, len(BANK_STYLES), seed)
    example_intents = cross_fitted_intents(examples, text_table, intent_rows, intent_styles, intent_groups, seed)
    reply_prosody = data.reply_x[1][:, : len(PROSODY_FEATURES)]  # the rubric reads level/range/energy/rate
    features, targets = build_features(examples, text_table, query_style, reply_style, reply_prosody, bank,
                                       example_intents)
    # Calibration from cross-fitted predictions: each fold scored by a rubric that never saw it.
    example_folds = np.array([scenario_fold(e.group) for e in examples])
    query_rows = np.array([e.query_style for e in examples])
    raw = np.zeros(len(examples))
    rubric_fit = RubricFitSettings(seed=seed)
    for fold in range(CROSS_FIT_FOLDS):
        held = example_folds == fold
        if not held.any():
            continue
        model = fit_rubric(features[~held], targets[~held], query_rows[~held], bank, intent, rubric_fit)
        raw[held] = model.raw_score(features[held])
    calibration = fit_calibration(raw, targets)
    log(f"[train] rubric calibration a={calibration[0]:.3f} b={calibration[1]:.3f} ({time.monotonic() - started:.0f} s)")
    rubric = fit_rubric(features, targets, query_rows, bank, intent, rubric_fit, calibration=calibration, trained_on={
        "examples": len(examples), "scenarios": len(train_scenarios), "reply_bank": len(bank.levels),
        "kinds": {k: sum(e.kind == k for e in examples) for k in sorted({e.kind for e in examples})},
    })
    save_rubric(rubric, out_dir)
    summary = {
        "seed": seed,
        "scenario_bank_version": SCENARIO_BANK_VERSION,
        "scenario_bank_sha256": bank_sha256(),
        "feature_version": FEATURE_VERSION,
        "rubric_text": TRANSCRIPT_VERSION,
        "dataset": json.loads((data_dir / "build.json").read_text()) if (data_dir / "build.json").exists() else None,
        "analyser_training_clips": len(records),
        "rubric_examples": len(examples),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"[train] done in {summary['train_seconds']:.0f} s: weights in {out_dir}")
    return summary
