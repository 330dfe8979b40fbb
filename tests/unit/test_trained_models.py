"""The analyser and rubric models: save/load by safetensors, batch invariance, fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_service.judge.analysers import (
    PROSODY_FEATURES,
    AnalyserConfig,
    StyleAnalyser,
    load_analyser,
    prosody_vector,
    save_analyser,
)
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.prosody import measure_prosody
from judge_service.judge.rubric import (
    AFFINITY_DIM,
    BANK_STYLES,
    STYLE_DIM,
    ReplyBank,
    RubricConfig,
    RubricScorer,
    affinity_features,
    load_rubric,
    rubric_features,
    save_rubric,
)
from judge_service.judge.training.fit_analysers import FitSettings, fit_analyser
from judge_service.judge.training.metrics import accuracy, uar
from judge_service.testing import voiced_clip

EMBEDDING_DIM = 32


def random_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32), rng.standard_normal((n, len(PROSODY_FEATURES))).astype(np.float32)


def test_analyser_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = StyleAnalyser(AnalyserConfig(embedding_dim=EMBEDDING_DIM, hidden_dim=16))
    save_analyser(model, tmp_path)
    assert (tmp_path / "analysers.safetensors").read_bytes()[:8] != b"\x80\x04"  # not a pickle
    loaded = load_analyser(tmp_path)
    emb, pros = random_inputs(5)
    for dim, p in model.predict_proba(emb, pros).items():
        np.testing.assert_array_equal(p, loaded.predict_proba(emb, pros)[dim])
        assert p.shape == (5, len(LABEL_SETS[dim])) and np.allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_analyser_predictions_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = StyleAnalyser(AnalyserConfig(embedding_dim=EMBEDDING_DIM, hidden_dim=16))
    emb, pros = random_inputs(9)
    together = model.predict_proba(emb, pros)
    alone = [model.predict_proba(emb[i : i + 1], pros[i : i + 1]) for i in range(9)]
    for dim in LABEL_SETS:
        np.testing.assert_array_equal(together[dim], np.concatenate([a[dim] for a in alone]))


def test_fit_learns_a_separable_label_and_masks_unknown_ones():
    n = 1500
    emb, pros = random_inputs(n, seed=1)
    gender = (emb[:, 0] > 0).astype(np.int64)
    labels = {dim: np.full(n, -1, np.int64) for dim in LABEL_SETS}
    labels["gender"] = gender
    labels["emotion"][:100] = np.random.default_rng(2).integers(0, 7, 100)  # noise on a few
    model = fit_analyser(emb, pros, labels, np.ones(n, np.float32), FitSettings(epochs=30, hidden_dim=32, batch_size=64))
    test_emb, test_pros = random_inputs(200, seed=3)
    pred = model.predict_proba(test_emb, test_pros)["gender"].argmax(axis=1)
    assert accuracy((test_emb[:, 0] > 0).astype(int), pred) > 0.9


def test_prosody_vector_layout():
    vector = prosody_vector(measure_prosody(voiced_clip(1.0, f0_hz=200.0), "hello there"))
    assert vector.shape == (len(PROSODY_FEATURES),) and vector.dtype == np.float32
    f0_st = vector[PROSODY_FEATURES.index("f0_median_st")]
    assert abs(f0_st - 12.0) < 0.5  # 200 Hz is 12 semitones above 100 Hz
    silent = prosody_vector(measure_prosody(np.zeros(16_000, np.float32), None))
    assert silent[PROSODY_FEATURES.index("f0_missing")] == 1.0 and silent[PROSODY_FEATURES.index("rate_missing")] == 1.0


def test_rubric_round_trip_range_and_invariance(tmp_path):
    torch.manual_seed(0)
    model = RubricScorer(RubricConfig(hidden_dim=16))
    rng = np.random.default_rng(0)
    n = 6
    features = rubric_features(
        rng.standard_normal((n, 384)).astype(np.float32), rng.standard_normal((n, 384)).astype(np.float32),
        rng.random((n, STYLE_DIM)).astype(np.float32), rng.random((n, STYLE_DIM)).astype(np.float32),
        rng.standard_normal((n, len(PROSODY_FEATURES))).astype(np.float32),
        rng.random((n, AFFINITY_DIM)).astype(np.float32),
    )
    assert features.shape == (n, RubricConfig().input_dim)
    scores = model.score(features)
    assert ((scores >= 1.0) & (scores <= 5.0)).all()
    save_rubric(model, tmp_path)
    np.testing.assert_array_equal(load_rubric(tmp_path).score(features), scores)
    np.testing.assert_array_equal(model.score(features[2:3]), scores[2:3])


def test_uar_weights_classes_equally():
    y = np.array([0, 0, 0, 0, 1, -1])
    p = np.array([0, 0, 0, 0, 0, 1])
    assert accuracy(y, p) == pytest.approx(0.8)
    assert uar(y, p) == pytest.approx(0.5)


def test_reply_bank_reads_levels_of_similar_replies_and_leaves_a_scenario_out():
    sad, happy = BANK_STYLES.index(("emotion", "sad")), BANK_STYLES.index(("emotion", "happy"))
    comfort, cheer = np.eye(384, dtype=np.float32)[0], np.eye(384, dtype=np.float32)[1]
    bank = ReplyBank(
        vectors=np.stack([comfort, cheer, comfort, cheer]),
        styles=np.array([sad, sad, happy, happy]),
        levels=np.array([5.0, 1.0, 1.0, 5.0]),
        groups=["s1", "s1", "s2", "s2"],
    )
    expected = bank.expected_levels(np.stack([comfort, cheer]))
    assert expected[0, sad] == pytest.approx(5.0, abs=1e-3) and expected[0, happy] == pytest.approx(1.0, abs=1e-3)
    assert expected[1, sad] == pytest.approx(1.0, abs=1e-3) and expected[1, happy] == pytest.approx(5.0, abs=1e-3)
    left_out = bank.expected_levels(comfort[None], exclude_groups=["s1"])
    assert left_out[0, sad] == 0.0  # only s1 had sad replies
    query_sad = np.zeros((1, STYLE_DIM), np.float32)
    query_sad[0, list(LABEL_SETS["emotion"]).index("sad")] = 1.0
    fit = affinity_features(expected[:1], query_sad)
    assert fit.shape == (1, AFFINITY_DIM) and fit[0, len(BANK_STYLES)] == pytest.approx(5.0, abs=1e-3)
