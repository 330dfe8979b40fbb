"""Scenario bank: counts, the hash split, rubric completeness, neutral query texts, surface
variants, and validation errors on deliberately corrupted files."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

import pytest

from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.scenario_bank import (
    DIMENSIONS,
    MAX_QUERY_WORDS,
    REPLY_TONES,
    RUBRIC_LEVELS,
    SCENARIO_BANK_VERSION,
    QueryVariant,
    Scenario,
    ScenarioBankError,
    bank_sha256,
    expand,
    load_scenario_file,
    load_scenarios,
    parse_scenario,
    split_for,
)

# Words that would give the style away on the page. The style must live only in the voice.
STYLE_WORDS = (
    "sad", "sadly", "happy", "happily", "angry", "angrily", "mad", "furious", "upset", "scared",
    "afraid", "frightened", "terrified", "nervous", "worried", "anxious", "disgusting", "disgusted",
    "gross", "yuck", "excited", "thrilled", "surprised", "shocked", "kid", "kids", "child",
    "children", "sarcastic", "sarcasm", "ugh", "yay", "unfortunately", "luckily", "thankfully",
    "heartbroken", "devastated", "crying", "lol", "haha", "grown-up", "grownup",
)  # fmt: skip
STYLE_PHRASES = (
    "mom says", "dad says", "my mommy", "my daddy", "as a man", "as a woman", "as a girl",
    "as a boy", "as a guy", "as a lady", "i'm so sad", "i'm a kid", "when i grow up",
)  # fmt: skip
OPENERS = ("So, ", "Hey, ", "Okay, ", "Well, ")
# Styles the bank is written for (labels.py also has emotion "neutral" and age "senior").
BANK_STYLES = {
    "emotion": {"happy", "surprised", "sad", "angry", "fearful", "disgust"},
    "sarcasm": {"sincere", "sarcastic"},
    "age": {"adult", "child"},
    "gender": {"male", "female"},
}


def _style_words_in(text: str) -> list[str]:
    low = text.lower()
    found = [w for w in STYLE_WORDS if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", low)]
    return found + [p for p in STYLE_PHRASES if p in low]


@pytest.fixture(scope="module")
def bank() -> list[Scenario]:
    return load_scenarios()


def _a_record(dimension: str = "emotion") -> dict:
    """A valid raw record, copied from the bundled data, to corrupt in tests."""
    path = Path(__file__).resolve().parents[2] / "judge_service" / "judge" / "scenarios" / f"{dimension}.jsonl"
    return json.loads(path.read_text(encoding="utf-8").splitlines()[0])


# --- the bundled data --------------------------------------------------------------------------


def test_version_and_digest_are_stable_strings():
    assert SCENARIO_BANK_VERSION and isinstance(SCENARIO_BANK_VERSION, str)
    assert re.fullmatch(r"[0-9a-f]{64}", bank_sha256())
    assert bank_sha256() == bank_sha256()


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_each_dimension_has_enough_seeds_and_test_seeds(dimension):
    scenarios = load_scenarios(dimension)
    test = load_scenarios(dimension, split="test")
    train = load_scenarios(dimension, split="train")
    assert len(scenarios) >= 100
    assert len(test) >= 25
    assert len(test) + len(train) == len(scenarios)
    assert all(s.dimension == dimension for s in scenarios)


def test_split_follows_the_sha256_rule(bank):
    for s in bank:
        first_byte = int(hashlib.sha256(s.id.encode()).hexdigest()[:2], 16)
        assert s.split == ("test" if first_byte < 64 else "train"), s.id
        assert split_for(s.id) == s.split


def test_ids_are_unique_and_numbered_per_dimension(bank):
    ids = [s.id for s in bank]
    assert len(ids) == len(set(ids))
    for s in bank:
        assert re.fullmatch(rf"{s.dimension}-\d{{4}}", s.id)


def test_styles_are_contrasting_labels_of_the_dimension(bank):
    for s in bank:
        assert s.styles[0] != s.styles[1], s.id
        assert set(s.styles) <= set(LABEL_SETS[s.dimension]), s.id
        assert set(s.styles) <= BANK_STYLES[s.dimension], s.id


def test_every_style_has_all_levels_with_valid_tones(bank):
    for s in bank:
        assert len(s.replies) == 2 * len(RUBRIC_LEVELS)
        for style in s.styles:
            replies = s.replies_for(style)
            assert [r.level for r in replies] == [5, 4, 3, 2, 1]
            assert all(r.tone in REPLY_TONES for r in replies)
            assert len({r.text for r in replies}) == 5, f"{s.id} {style}: repeated reply text"


def test_tone_conventions_of_the_rubric(bank):
    for s in bank:
        for style in s.styles:
            five, four, _, _, one = s.replies_for(style)
            assert four.tone == "neutral", (s.id, style)
            assert five.tone != "neutral", (s.id, style)
            assert one.tone != five.tone, (s.id, style)
            assert five.tone != "angry", (s.id, style)


def test_the_best_reply_for_one_style_is_not_the_best_for_the_other(bank):
    for s in bank:
        a, b = s.styles
        assert s.reply(a, 5).text != s.reply(b, 5).text, s.id


def test_query_texts_are_unique_short_and_neutral(bank):
    texts = [s.text.lower() for s in bank]
    assert len(texts) == len(set(texts))
    for s in bank:
        assert len(s.text.split()) <= MAX_QUERY_WORDS, s.id
        assert not _style_words_in(s.text), (s.id, s.text, _style_words_in(s.text))


def test_topics_are_varied(bank):
    for dimension in DIMENSIONS:
        topics = {s.topic for s in bank if s.dimension == dimension}
        assert len(topics) >= 8, (dimension, topics)


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_reply_length_does_not_give_the_level_away(dimension):
    """Level 5 replies add content, so they run longer; the other levels must not be so short
    that a judge could score by length alone."""
    by_level = {level: [] for level in RUBRIC_LEVELS}
    for s in load_scenarios(dimension):
        for r in s.replies:
            by_level[r.level].append(len(r.text.split()))
    best = statistics.mean(by_level[5])
    assert statistics.mean(by_level[4]) >= 0.55 * best
    for level in (3, 2, 1):
        assert statistics.mean(by_level[level]) >= 0.4 * best, (level, statistics.mean(by_level[level]), best)


def test_filters_and_argument_checks(bank):
    assert len(load_scenarios()) == len(bank)
    assert {s.split for s in load_scenarios(split="test")} == {"test"}
    with pytest.raises(ValueError, match="unknown dimension"):
        load_scenarios("accent")
    with pytest.raises(ValueError, match="unknown split"):
        load_scenarios(split="dev")


def test_reply_lookup(bank):
    s = bank[0]
    a, b = s.styles
    assert s.reply(a, 5).style == a and s.reply(b, 1).level == 1
    with pytest.raises(KeyError):
        s.reply(a, 6)
    with pytest.raises(KeyError):
        s.replies_for("senior")


# --- surface variants ---------------------------------------------------------------------------


_SHORT_TO_LONG = (
    ("i'm", "i am"), ("don't", "do not"), ("doesn't", "does not"), ("isn't", "is not"),
    ("aren't", "are not"), ("didn't", "did not"), ("wasn't", "was not"), ("can't", "cannot"),
    ("won't", "will not"), ("we're", "we are"), ("you're", "you are"), ("they're", "they are"),
    ("it's", "it is"), ("that's", "that is"), ("what's", "what is"), ("i'll", "i will"),
    ("we'll", "we will"), ("shouldn't", "should not"),
)  # fmt: skip


def _normalise(text: str) -> str:
    """Undo the templates: drop an opener and the tag, expand every contraction, lowercase."""
    for opener in OPENERS:
        if text.startswith(opener):
            text = text[len(opener) :]
    text = text.replace(", by the way", "").lower()
    for short, long in _SHORT_TO_LONG:
        text = re.sub(rf"\b{re.escape(short)}\b", long, text)
    return text


def test_expansion_is_deterministic_and_keeps_the_split(bank):
    for s in bank[::7]:
        first = expand(s, 6, seed=3)
        assert first == expand(s, 6, seed=3)
        assert first[0].text == s.text and first[0].index == 0
        assert [v.index for v in first] == list(range(len(first)))
        assert len({v.text for v in first}) == len(first)
        assert all(isinstance(v, QueryVariant) and v.split == s.split and v.scenario_id == s.id for v in first)


def test_expansion_depends_on_the_seed():
    s = next(s for s in load_scenarios("age") if len(expand(s, 30, 0)) > 10)
    orders = {tuple(v.text for v in expand(s, 8, seed)) for seed in range(5)}
    assert len(orders) > 1


def test_expansion_stays_neutral_and_adds_only_template_words(bank):
    for s in bank:
        for v in expand(s, 12, seed=0):
            assert not _style_words_in(v.text), (s.id, v.text)
            assert _normalise(v.text) == _normalise(s.text), (s.id, v.text)
            assert len(v.text.split()) <= MAX_QUERY_WORDS + 4


def test_test_scenario_variants_are_all_test(bank):
    test_ids = {s.id for s in bank if s.split == "test"}
    for s in bank:
        for v in expand(s, 5, seed=1):
            assert (v.split == "test") == (s.id in test_ids)


def _scenario_with_text(text: str) -> Scenario:
    base = load_scenarios("emotion")[0]
    return Scenario(base.id, base.dimension, text, base.styles, base.topic, base.split, base.replies)


def test_expansion_handles_contractions_and_existing_openers():
    forms = {v.text for v in expand(_scenario_with_text("I am not sure it's been a good week."), 100, 0)}
    assert "I'm not sure it's been a good week." in forms
    assert not any("it is been" in f for f in forms)
    assert all(v.text != "Yes, I'm." for v in expand(_scenario_with_text("Yes, I am."), 100, 0))
    assert {v.text for v in expand(_scenario_with_text("Well, the client loved it."), 100, 0)} == {
        "Well, the client loved it.",
        "Well, the client loved it, by the way.",
    }
    two_sentences = expand(_scenario_with_text("My legs hurt. Is that normal?"), 100, 0)
    assert not any("by the way" in v.text for v in two_sentences)
    with pytest.raises(ValueError, match="n_variants"):
        expand(_scenario_with_text("Hello there."), 0, 0)


# --- validation of corrupted files --------------------------------------------------------------


def _write(tmp_path: Path, records: list, name: str = "emotion.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def _set_tone(r):
    r["replies"][r["styles"][0]]["5"]["tone"] = "cheerful"


def _set_style(r):
    old = r["styles"][0]
    r["styles"][0] = "melancholy"
    r["replies"]["melancholy"] = r["replies"].pop(old)


def _cross_dimension_style(r):
    old = r["styles"][0]
    r["styles"][0] = "child"
    r["replies"]["child"] = r["replies"].pop(old)


def _drop_level(r):
    del r["replies"][r["styles"][1]]["3"]


def _flip_split(r):
    r["split"] = "train" if r["split"] == "test" else "test"


def _long_query(r):
    r["text"] = " ".join(["word"] * (MAX_QUERY_WORDS + 1)) + "."


def _long_reply(r):
    r["replies"][r["styles"][0]]["2"]["text"] = " ".join(["very"] * 40) + " long."


def _stage_direction(r):
    r["replies"][r["styles"][0]]["5"]["text"] = "*sighs* I'm so sorry to hear that."


def _emoji_query(r):
    r["text"] = "My exam results came back today \U0001f600"


def _extra_key(r):
    r["mood"] = "sad"


def _bad_id(r):
    r["id"] = "sarcasm-0001"


def _same_styles(r):
    r["styles"][1] = r["styles"][0]


def _bad_topic(r):
    r["topic"] = "astrology"


@pytest.mark.parametrize(
    "corrupt,needle",
    [
        (_set_tone, "unknown tone 'cheerful'"),
        (_set_style, "is not a valid emotion label"),
        (_cross_dimension_style, "'child' is not a valid emotion label"),
        (_drop_level, "must have levels"),
        (_flip_split, "does not match the hash rule"),
        (_long_query, "too long"),
        (_long_reply, "too long"),
        (_stage_direction, "plain spoken text"),
        (_emoji_query, "plain spoken text"),
        (_extra_key, "unknown keys ['mood']"),
        (_bad_id, "must look like 'emotion-0001'"),
        (_same_styles, "two different labels"),
        (_bad_topic, "unknown topic"),
    ],
)
def test_corrupted_record_is_rejected_with_a_clear_error(tmp_path, corrupt, needle):
    record = _a_record("emotion")
    corrupt(record)
    path = _write(tmp_path, [_a_record("emotion"), record])
    with pytest.raises(ScenarioBankError) as excinfo:
        load_scenario_file(path)
    message = str(excinfo.value)
    assert needle in message
    assert "emotion.jsonl line 2" in message


def test_duplicate_id_is_rejected(tmp_path):
    record = _a_record("emotion")
    path = _write(tmp_path, [record, record])
    with pytest.raises(ScenarioBankError, match=r"duplicate id 'emotion-0001' \(first on line 1\)"):
        load_scenario_file(path)


def test_invalid_json_and_wrong_file_dimension_are_rejected(tmp_path):
    with pytest.raises(ScenarioBankError, match="line 1: not valid JSON"):
        load_scenario_file(_write(tmp_path, ['{"id": "emotion-0001",']))
    with pytest.raises(ScenarioBankError, match="dimension 'emotion' in the 'age' file"):
        load_scenario_file(_write(tmp_path, [_a_record("emotion")], "age.jsonl"), dimension="age")
    with pytest.raises(ScenarioBankError, match="must be a JSON object"):
        parse_scenario(["not", "a", "record"])


def test_a_valid_copy_loads_from_a_path(tmp_path):
    records = [_a_record(d) for d in DIMENSIONS]
    loaded = load_scenario_file(_write(tmp_path, records, "mixed.jsonl"))
    assert [s.dimension for s in loaded] == list(DIMENSIONS)
    assert loaded[0] == load_scenarios("emotion")[0]
