"""The analyser and rubric models: save/load by safetensors, batch invariance, fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_service.judge.analysers import (
    ANALYSER_PROSODY_FEATURES,
    PROSODY_FEATURES,
    AnalyserConfig,
    StyleAnalyser,
    analyser_vector,
    load_analyser,
    prosody_vector,
    save_analyser,
)
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.prosody import STYLE_CONTOUR_FIELDS, measure_prosody
from judge_service.judge.rubric import (
    AFFINITY_DIM,
    BANK_STYLES,
    INTENT_DIM,
    STYLE_DIM,
    ReplyBank,
    RubricConfig,
    RubricScorer,
    affinity_features,
    intent_features,
    load_rubric,
    rubric_features,
    save_rubric,
    style_fit_terms,
)
from judge_service.judge.training.fit_analysers import FitSettings, fit_analyser
from judge_service.judge.training.fit_rubric import fit_reply_intent, pairwise_rank_loss
from judge_service.judge.training.metrics import accuracy, uar
from judge_service.judge.training.optim import OptimiserSettings, grouped_minibatches
from judge_service.testing import voiced_clip

EMBEDDING_DIM = 32


def random_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32), rng.standard_normal((n, len(ANALYSER_PROSODY_FEATURES))).astype(np.float32)


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


def test_analyser_vector_is_the_prosody_vector_then_the_contour():
    prosody = measure_prosody(voiced_clip(1.0, f0_hz=200.0), "hello there")
    vector = analyser_vector(prosody)
    assert vector.shape == (len(ANALYSER_PROSODY_FEATURES),) and vector.dtype == np.float32
    np.testing.assert_array_equal(vector[: len(PROSODY_FEATURES)], prosody_vector(prosody))
    for i, name in enumerate(STYLE_CONTOUR_FIELDS):
        assert vector[len(PROSODY_FEATURES) + i] == np.float32(getattr(prosody, name))


def test_an_analyser_trained_on_other_prosody_features_is_refused(tmp_path):
    import json

    save_analyser(StyleAnalyser(AnalyserConfig(embedding_dim=EMBEDDING_DIM, hidden_dim=16)), tmp_path)
    config = json.loads((tmp_path / "analysers.json").read_text())
    config["prosody_features"] = list(PROSODY_FEATURES)  # an analyser of the first release
    (tmp_path / "analysers.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="retrain"):
        load_analyser(tmp_path)


def test_rubric_round_trip_range_and_invariance(tmp_path):
    torch.manual_seed(0)
    model = RubricScorer(RubricConfig(hidden_dim=16))
    rng = np.random.default_rng(0)
    n = 6
    features = rubric_features(
        rng.standard_normal((n, 384)).astype(np.float32), rng.standard_normal((n, 384)).astype(np.float32),
        rng.random((n, STYLE_DIM)).astype(np.float32), rng.random((n, STYLE_DIM)).astype(np.float32),
        rng.standard_normal((n, len(PROSODY_FEATURES))).astype(np.float32),
        rng.random((n, AFFINITY_DIM)).astype(np.float32), rng.random((n, INTENT_DIM)).astype(np.float32),
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


def test_reply_intent_learns_which_style_a_reply_was_written_for_and_weights_it_by_the_query():
    sad, happy = BANK_STYLES.index(("emotion", "sad")), BANK_STYLES.index(("emotion", "happy"))
    rng = np.random.default_rng(0)
    comfort, cheer = np.eye(384, dtype=np.float32)[0], np.eye(384, dtype=np.float32)[1]

    def noisy(base: np.ndarray, n: int) -> np.ndarray:
        v = base + 0.3 * rng.standard_normal((n, 384)).astype(np.float32) / np.sqrt(384)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors = np.concatenate([noisy(comfort, 20), noisy(cheer, 20)])
    styles = np.array([sad] * 20 + [happy] * 20)
    intent = fit_reply_intent(vectors, styles, len(BANK_STYLES), seed=0)
    p = intent.predict(np.stack([comfort, cheer]))
    assert p.shape == (2, len(BANK_STYLES)) and np.allclose(p.sum(axis=1), 1.0)
    assert p[0, sad] > 0.8 and p[1, happy] > 0.8
    query_sad = np.zeros((2, STYLE_DIM), np.float32)
    query_sad[:, list(LABEL_SETS["emotion"]).index("sad")] = 1.0
    fit = intent_features(p, query_sad)
    emotion_fit = fit[:, len(BANK_STYLES) + list(LABEL_SETS).index("emotion")]
    assert fit.shape == (2, INTENT_DIM) and emotion_fit[0] > 0.9 > 0.1 > emotion_fit[1]


def test_prosody_expert_blends_log_probabilities_and_ignores_the_encoder_states():
    torch.manual_seed(0)
    config = AnalyserConfig(embedding_dim=EMBEDDING_DIM, hidden_dim=16, prosody_expert_heads=("emotion",),
                            prosody_expert_weight=0.3)
    model = StyleAnalyser(config).eval()
    emb, pros = random_inputs(4, seed=5)
    x = torch.from_numpy(np.concatenate([emb, pros], axis=1))
    with torch.no_grad():
        main, expert = model.head_logits(x)["emotion"]
        blended = model(x)["emotion"]
        # The slow, obvious reference: a normalised weighted geometric mean of the two heads.
        p_main, p_expert = torch.softmax(main, -1), torch.softmax(expert, -1)
        reference = p_main**0.7 * p_expert**0.3
        reference = reference / reference.sum(-1, keepdim=True)
        torch.testing.assert_close(torch.softmax(blended, -1), reference, rtol=1e-5, atol=1e-6)
        other_states = torch.from_numpy(np.concatenate([emb + 1.0, pros], axis=1))
        torch.testing.assert_close(model.head_logits(other_states)["emotion"][1], expert)  # prosody only
        assert len(model.head_logits(x)["gender"]) == 1


def _rubric_rows(query_style: np.ndarray, reply_intent: np.ndarray) -> np.ndarray:
    """Rubric inputs for one fixed reply text/tone, varying only the query style and the
    reply intent (rows of each)."""
    n = len(query_style)
    text = np.tile(np.eye(384, dtype=np.float32)[0], (n, 1))
    return rubric_features(
        text, text, query_style, np.full((n, STYLE_DIM), 0.1, np.float32),
        np.zeros((n, len(PROSODY_FEATURES)), np.float32), np.full((n, AFFINITY_DIM), 3.0, np.float32),
        intent_features(reply_intent, query_style),
    )


def _one_hot_style(**labels: str) -> np.ndarray:
    style = np.zeros(STYLE_DIM, np.float32)
    offset = 0
    for dim, names in LABEL_SETS.items():
        style[offset + names.index(labels.get(dim, names[0]))] = 1.0
        offset += len(names)
    return style


def test_style_fit_terms_are_plus_for_a_reply_written_for_the_heard_style_and_minus_for_its_contrast():
    """And zero where the query has no cue: an emotion reply to a query heard as neutral."""
    female, male = BANK_STYLES.index(("gender", "female")), BANK_STYLES.index(("gender", "male"))
    intent = np.full(len(BANK_STYLES), 0.01)
    intent[female], intent[male] = 0.8, 0.2 - 0.01 * (len(BANK_STYLES) - 2)
    rows = _rubric_rows(np.stack([_one_hot_style(gender="female"), _one_hot_style(gender="male")]), np.stack([intent, intent]))
    terms = style_fit_terms(torch.from_numpy(rows)).numpy()
    gender = list(LABEL_SETS).index("gender")
    mass = intent[female] + intent[male]
    assert terms[0, gender] == pytest.approx(mass * (2 * intent[female] / mass - 1), abs=1e-5)
    assert terms[1, gender] == pytest.approx(-terms[0, gender], abs=1e-5) and terms[0, gender] > 0.5
    others = [i for i in range(len(LABEL_SETS)) if i != gender]
    assert np.abs(terms[:, others]).max() < 0.1  # the words barely address the other dimensions
    sad = BANK_STYLES.index(("emotion", "sad"))
    for_sad = np.full(len(BANK_STYLES), 0.01)
    for_sad[sad] = 1.0 - 0.01 * (len(BANK_STYLES) - 1)
    emotion = list(LABEL_SETS).index("emotion")
    heard = style_fit_terms(torch.from_numpy(_rubric_rows(
        np.stack([_one_hot_style(emotion="neutral"), _one_hot_style(emotion="sad")]), np.stack([for_sad, for_sad])))).numpy()
    assert heard[0, emotion] == 0.0 and heard[1, emotion] > 0.8


def test_the_style_fit_term_alone_prefers_the_reply_written_for_the_heard_style(tmp_path):
    torch.manual_seed(0)
    model = RubricScorer(RubricConfig(hidden_dim=16, style_fit_weight=3.0))
    with torch.no_grad():  # silence the MLP: only the explicit term is left
        model.net[-1].weight.zero_()
        model.net[-1].bias.zero_()
    sad, happy = BANK_STYLES.index(("emotion", "sad")), BANK_STYLES.index(("emotion", "happy"))
    for_sad, for_happy = np.full(len(BANK_STYLES), 0.02), np.full(len(BANK_STYLES), 0.02)
    for_sad[sad] = for_happy[happy] = 1.0 - 0.02 * (len(BANK_STYLES) - 1)
    heard_sad = _one_hot_style(emotion="sad")
    scores = model.score(_rubric_rows(np.stack([heard_sad, heard_sad]), np.stack([for_sad, for_happy])))
    assert scores[0] > 3.5 > 2.5 > scores[1]
    save_rubric(model, tmp_path)
    np.testing.assert_array_equal(load_rubric(tmp_path).score(_rubric_rows(heard_sad[None], for_sad[None])), scores[:1])


def test_a_rubric_saved_before_the_style_fit_term_still_loads(tmp_path):
    import json

    model = RubricScorer(RubricConfig(hidden_dim=16))
    save_rubric(model, tmp_path)
    config = json.loads((tmp_path / "rubric.json").read_text())
    del config["style_fit_weight"]  # a rubric.json of the first release
    (tmp_path / "rubric.json").write_text(json.dumps(config))
    assert load_rubric(tmp_path).config.style_fit_weight == 0.0


def test_pairwise_rank_loss_compares_only_ordered_pairs_of_one_query():
    targets = torch.tensor([5.0, 2.0, 4.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1])
    right = pairwise_rank_loss(torch.tensor([4.0, 2.0, 3.0, 2.0]), targets, groups, sharpness=2.0)
    wrong = pairwise_rank_loss(torch.tensor([2.0, 4.0, 3.0, 2.0]), targets, groups, sharpness=2.0)
    softplus = torch.nn.functional.softplus
    assert float(right) == pytest.approx(float((softplus(torch.tensor(-4.0)) + softplus(torch.tensor(-2.0))) / 2))
    assert float(wrong) == pytest.approx(float((softplus(torch.tensor(4.0)) + softplus(torch.tensor(-2.0))) / 2))
    assert float(pairwise_rank_loss(torch.tensor([1.0, 5.0]), torch.tensor([5.0, 1.0]), torch.tensor([0, 1]), 2.0)) == 0.0


def test_grouped_minibatches_keep_a_group_together_and_cover_every_example_once_per_epoch():
    groups = np.repeat(np.arange(13), 8)[np.random.default_rng(1).permutation(104)]
    settings = OptimiserSettings(epochs=3, batch_size=20)
    batches = [b.numpy() for b in grouped_minibatches(groups, settings, np.random.default_rng(0))]
    assert len(batches) == 3 * int(np.ceil(104 / 20))
    per_epoch = len(batches) // 3
    for epoch in range(3):
        seen = np.concatenate(batches[epoch * per_epoch : (epoch + 1) * per_epoch])
        assert sorted(seen.tolist()) == list(range(104))
    for b in batches:
        for g in set(groups[b]):
            assert (groups[b] == g).sum() == 8
