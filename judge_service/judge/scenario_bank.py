"""The scenario bank: hand-written seeds for the judge's training data and the synthetic benchmark.

A *scenario* is one query text that reads neutral on the page but whose right answer depends on
how it is spoken (ParaS2S, ICLR 2026). Each scenario names two contrasting styles of one
dimension (emotion, sarcasm, age, gender) and, for each style, five reference replies at rubric
levels 5..1, each with the tone a TTS voice should render it in:

- 5: the cue is recognised and the reply adds fitting content *and* voice;
- 4: right content, neutral delivery;
- 3: the cue is considered but the content is generic or awkward;
- 2: the cue is misread or partly mismatched;
- 1: the cue is handled in reverse (cheerful reply to sadness, sarcasm taken as sincere, ...).

The level-5 reply for one style is a worse reply for the other style, so a pair tests whether a
judge listens rather than reads.

The data lives in ``judge_service/judge/scenarios/<dimension>.jsonl`` (package data, found with
``importlib.resources``), one JSON object per line::

    {"id": "emotion-0001", "dimension": "emotion", "text": "...", "styles": ["sad", "happy"],
     "topic": "work", "split": "train",
     "replies": {"sad": {"5": {"text": "...", "tone": "sad-comforting"}, "4": {...}, ...},
                 "happy": {...}}}

Every record is validated on load; a bad record raises :class:`ScenarioBankError` naming the
file, line and field. The train/test split is a pure function of the id (:func:`split_for`), so
it cannot drift when seeds are added. :func:`expand` makes surface variants of a query text;
variants inherit their scenario's split, so a test scenario never leaks into training data.

Known properties a consumer should not learn as shortcuts: level-5 replies carry extra content,
so they run longer on average (about 19-25 words against 11-13 for levels 3-1; the unit tests
bound the gap); level-3 replies are often the same generic text for both styles; and in the
gender dimension the tone of levels 5 and 4 differs little (calm vs neutral), so there the gap
is mostly in how well the content fits the speaker.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from judge_service.judge.labels import LABEL_SETS

SCENARIO_BANK_VERSION = "1.0"
"""Bumped whenever a seed's text, styles, replies or tones change (results cite it)."""

DIMENSIONS: tuple[str, ...] = tuple(LABEL_SETS)
"""The paper's four dimensions, in ``labels.LABEL_SETS`` order."""

STYLE_LABELS: dict[str, tuple[str, ...]] = dict(LABEL_SETS)
"""Dimension -> style labels a scenario may name: exactly the judge's label sets."""

REPLY_TONES: tuple[str, ...] = (
    "neutral",
    "happy",
    "excited",
    "sad-comforting",  # soft, slow, warm
    "calm",  # steady, reassuring
    "serious",
    "surprised",
    "sarcastic",
    "child-friendly",  # warm, simple, gentle
    "angry",
)
"""Closed set of speaking styles a reference reply is rendered in by TTS."""

RUBRIC_LEVELS: tuple[int, ...] = (5, 4, 3, 2, 1)

TOPICS: tuple[str, ...] = (
    "work", "school", "family", "health", "shopping", "travel", "food", "hobbies", "money",
    "tech", "weather", "pets", "sports", "events", "home", "friends", "entertainment",
    "transport", "clothing", "music", "safety", "nature",
)  # fmt: skip

SPLITS: tuple[str, ...] = ("train", "test")
TEST_SPLIT_BYTE_BELOW = 64
"""A scenario is in the test split when the first byte of sha256(id) is below this (~25%)."""

MAX_QUERY_WORDS = 20
MAX_REPLY_WORDS = 30

_ID_RE = re.compile(r"^(?P<dimension>[a-z]+)-(?P<number>\d{4})$")
_RECORD_KEYS = frozenset({"id", "dimension", "text", "styles", "topic", "split", "replies"})
_REPLY_KEYS = frozenset({"text", "tone"})
# Plain spoken text only: no markup, stage directions ("*sighs*", "[laughs]") or emojis.
_PLAIN_TEXT_RE = re.compile(r"^[A-Za-z0-9 ,.;:'\"?!$%&/()\-]+$")
_DATA_PACKAGE = "judge_service.judge"
_DATA_DIR = "scenarios"


class ScenarioBankError(ValueError):
    """A scenario record or file breaks the bank's format; the message says where and how."""


@dataclass(frozen=True)
class Reply:
    """One reference reply: ``text`` to speak, ``tone`` to speak it in, and its rubric level for
    a query spoken in ``style``."""

    style: str
    level: int
    text: str
    tone: str


@dataclass(frozen=True)
class Scenario:
    """One seed: a neutral query ``text`` and two contrasting ``styles`` (A, B) of ``dimension``.

    ``replies`` holds ten replies, levels 5..1 for style A then for style B.
    """

    id: str
    dimension: str
    text: str
    styles: tuple[str, str]
    topic: str
    split: str
    replies: tuple[Reply, ...]

    def reply(self, style: str, level: int) -> Reply:
        """The reference reply at rubric ``level`` (1..5) for the query spoken in ``style``."""
        for reply in self.replies:
            if reply.style == style and reply.level == level:
                return reply
        raise KeyError(f"{self.id}: no reply for style {style!r} at level {level!r}; styles are {self.styles}")

    def replies_for(self, style: str) -> tuple[Reply, ...]:
        """The five replies for ``style``, best (5) first."""
        if style not in self.styles:
            raise KeyError(f"{self.id}: style {style!r} is not one of {self.styles}")
        return tuple(self.reply(style, level) for level in RUBRIC_LEVELS)


@dataclass(frozen=True)
class QueryVariant:
    """A surface variant of a scenario's query text. ``split`` is always the scenario's split."""

    scenario_id: str
    index: int
    text: str
    split: str


def split_for(scenario_id: str) -> str:
    """``"test"`` when the first byte of sha256(id) is below ``TEST_SPLIT_BYTE_BELOW``, else
    ``"train"``. A pure function of the id, so adding seeds never moves an old one."""
    first_byte = int(hashlib.sha256(scenario_id.encode("utf-8")).hexdigest()[:2], 16)
    return "test" if first_byte < TEST_SPLIT_BYTE_BELOW else "train"


def _word_count(text: str) -> int:
    return len(text.split())


def _check_text(text: Any, what: str, max_words: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ScenarioBankError(f"{what} must be a non-empty string, got {text!r}")
    if text != text.strip() or "  " in text:
        raise ScenarioBankError(f"{what} has stray whitespace: {text!r}")
    if not _PLAIN_TEXT_RE.match(text):
        bad = sorted({c for c in text if not _PLAIN_TEXT_RE.match(c)})
        raise ScenarioBankError(
            f"{what} must be plain spoken text (letters, digits, basic punctuation); found {bad!r} in {text!r}"
        )
    words = _word_count(text)
    if words > max_words:
        raise ScenarioBankError(f"{what} is too long: {words} words, the limit is {max_words}: {text!r}")
    return text


def parse_scenario(record: Any, *, where: str = "record") -> Scenario:
    """Validate one decoded JSON record and build its :class:`Scenario`.

    Raises :class:`ScenarioBankError` with ``where`` (e.g. ``"age.jsonl line 3"``) in the message.
    """
    if not isinstance(record, Mapping):
        raise ScenarioBankError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    sid = record.get("id")
    where = f"{where} ({sid})" if isinstance(sid, str) else where
    missing = sorted(_RECORD_KEYS - set(record))
    extra = sorted(set(record) - _RECORD_KEYS)
    if missing or extra:
        raise ScenarioBankError(
            f"{where}: missing keys {missing}, unknown keys {extra}; expected {sorted(_RECORD_KEYS)}"
        )

    dimension = record["dimension"]
    if dimension not in STYLE_LABELS:
        raise ScenarioBankError(f"{where}: unknown dimension {dimension!r}; use one of {DIMENSIONS}")
    match = _ID_RE.match(sid) if isinstance(sid, str) else None
    if match is None or match["dimension"] != dimension:
        raise ScenarioBankError(f"{where}: id {sid!r} must look like '{dimension}-0001'")

    split = record["split"]
    expected_split = split_for(sid)
    if split != expected_split:
        raise ScenarioBankError(
            f"{where}: split {split!r} does not match the hash rule, which puts {sid!r} in {expected_split!r} "
            f"(test when sha256(id)[:2] < {TEST_SPLIT_BYTE_BELOW:#x})"
        )

    topic = record["topic"]
    if topic not in TOPICS:
        raise ScenarioBankError(f"{where}: unknown topic {topic!r}; use one of {TOPICS}")
    text = _check_text(record["text"], f"{where}: query text", MAX_QUERY_WORDS)

    styles = record["styles"]
    if not isinstance(styles, list) or len(styles) != 2 or styles[0] == styles[1]:
        raise ScenarioBankError(f"{where}: styles must be a list of two different labels, got {styles!r}")
    for style in styles:
        if style not in STYLE_LABELS[dimension]:
            raise ScenarioBankError(
                f"{where}: style {style!r} is not a valid {dimension} label; use one of {STYLE_LABELS[dimension]}"
            )

    replies_by_style = record["replies"]
    if not isinstance(replies_by_style, Mapping) or set(replies_by_style) != set(styles):
        got = sorted(replies_by_style) if isinstance(replies_by_style, Mapping) else replies_by_style
        raise ScenarioBankError(f"{where}: replies must have exactly the styles {styles}, got {got!r}")
    replies: list[Reply] = []
    for style in styles:
        by_level = replies_by_style[style]
        expected_levels = {str(level) for level in RUBRIC_LEVELS}
        if not isinstance(by_level, Mapping) or set(by_level) != expected_levels:
            got = sorted(by_level) if isinstance(by_level, Mapping) else by_level
            raise ScenarioBankError(
                f"{where}: replies for {style!r} must have levels {sorted(expected_levels)}, got {got!r} "
                "(a missing level or an extra one)"
            )
        for level in RUBRIC_LEVELS:
            entry = by_level[str(level)]
            at = f"{where}: reply {style!r} level {level}"
            if not isinstance(entry, Mapping) or set(entry) != _REPLY_KEYS:
                raise ScenarioBankError(f"{at} must be an object with keys {sorted(_REPLY_KEYS)}, got {entry!r}")
            tone = entry["tone"]
            if tone not in REPLY_TONES:
                raise ScenarioBankError(f"{at}: unknown tone {tone!r}; use one of {REPLY_TONES}")
            reply_text = _check_text(entry["text"], f"{at} text", MAX_REPLY_WORDS)
            replies.append(Reply(style=style, level=level, text=reply_text, tone=tone))
    return Scenario(
        id=sid,
        dimension=dimension,
        text=text,
        styles=(styles[0], styles[1]),
        topic=topic,
        split=split,
        replies=tuple(replies),
    )


def _parse_lines(lines: Iterable[str], name: str, dimension: str | None) -> list[Scenario]:
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name} line {line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScenarioBankError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        scenario = parse_scenario(record, where=where)
        if dimension is not None and scenario.dimension != dimension:
            raise ScenarioBankError(
                f"{where} ({scenario.id}): dimension {scenario.dimension!r} in the {dimension!r} file"
            )
        if scenario.id in seen:
            raise ScenarioBankError(f"{where}: duplicate id {scenario.id!r} (first on line {seen[scenario.id]})")
        seen[scenario.id] = line_no
        scenarios.append(scenario)
    return scenarios


def load_scenario_file(path: str | Path | Traversable, *, dimension: str | None = None) -> list[Scenario]:
    """Load and validate one JSONL file; ``dimension``, when given, must be every record's.

    Raises :class:`ScenarioBankError` on the first bad record (file, line and field named).
    """
    source = Path(path) if isinstance(path, str) else path
    text = source.read_text(encoding="utf-8")
    return _parse_lines(text.splitlines(), source.name, dimension)


@functools.lru_cache(maxsize=1)
def _load_bank() -> tuple[Scenario, ...]:
    data_dir = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)
    scenarios: list[Scenario] = []
    seen: set[str] = set()
    for dimension in DIMENSIONS:
        for scenario in load_scenario_file(data_dir.joinpath(f"{dimension}.jsonl"), dimension=dimension):
            # Ids carry their dimension, so a clash across files can only come from a bad edit.
            if scenario.id in seen:
                raise ScenarioBankError(f"duplicate id {scenario.id!r} across scenario files")
            seen.add(scenario.id)
            scenarios.append(scenario)
    return tuple(scenarios)


def load_scenarios(dimension: str | None = None, split: str | None = None) -> list[Scenario]:
    """The bundled scenarios, validated, in file order (emotion, sarcasm, age, gender).

    ``dimension`` and ``split`` filter; ``None`` means all. The files are read once per process.
    """
    if dimension is not None and dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; use one of {DIMENSIONS} or None")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS} or None")
    return [
        s
        for s in _load_bank()
        if (dimension is None or s.dimension == dimension) and (split is None or s.split == split)
    ]


def bank_sha256() -> str:
    """sha256 over the bundled data files, for provenance next to ``SCENARIO_BANK_VERSION``."""
    data_dir = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)
    digest = hashlib.sha256()
    for dimension in DIMENSIONS:
        digest.update(data_dir.joinpath(f"{dimension}.jsonl").read_bytes())
    return digest.hexdigest()


# --- surface variants -------------------------------------------------------------------------

_OPENERS: tuple[str, ...] = ("", "So,", "Hey,", "Okay,", "Well,")
"""Discourse openers that carry no emotion, sarcasm, age or gender cue. Left out on purpose:
"Oh,", "Ugh,", "Wow," (affect) and fillers like "Um," (hesitation reads as nervousness)."""

_CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("I am", "I'm"), ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"),
    ("is not", "isn't"), ("are not", "aren't"), ("was not", "wasn't"), ("can not", "can't"),
    ("cannot", "can't"), ("will not", "won't"), ("we are", "we're"), ("you are", "you're"),
    ("they are", "they're"), ("it is", "it's"), ("that is", "that's"), ("what is", "what's"),
    ("I will", "I'll"), ("we will", "we'll"), ("should not", "shouldn't"),
)  # fmt: skip
_KEEP_CAPITALISED_FIRST_WORDS = frozenset({"I", "I'm", "I've", "I'd", "I'll"})
# "it's been" is "it has been": expanding it to "it is been" would be ungrammatical, so an 's
# before a likely participle stays as written.
_HAS_CONTRACTION_NEXT = re.compile(r"^\s+(been|got|gotten|had|\w+ed|\w+en)\b", re.IGNORECASE)
# Contract only before another word: "Yes, I am." cannot become "Yes, I'm."
_WORD_FOLLOWS = r"(?=\s+[A-Za-z])"


def _match_case(template: str, replacement: str) -> str:
    return replacement[0].upper() + replacement[1:] if template[0].isupper() else replacement


def _contract(text: str) -> str:
    for long, short in _CONTRACTIONS:
        text = re.sub(
            rf"\b{long}\b{_WORD_FOLLOWS}", lambda m, s=short: _match_case(m.group(0), s), text, flags=re.IGNORECASE
        )
    return text


def _expand_contractions(text: str) -> str:
    for long, short in _CONTRACTIONS:
        if long == "can not":
            continue  # "can't" expands to "cannot"

        def repl(m: re.Match[str], long: str = long, short: str = short) -> str:
            if short.endswith("'s") and _HAS_CONTRACTION_NEXT.match(m.string[m.end() :]):
                return m.group(0)
            return _match_case(m.group(0), long)

        text = re.sub(rf"\b{re.escape(short)}\b", repl, text, flags=re.IGNORECASE)
    return text


def _with_opener(text: str, opener: str) -> str:
    # A text that already opens with a discourse marker ("Great, ...", "Well, ...") gets no
    # second one: "Well, well, the client loved it" would read as a different utterance.
    if not opener or text.split(" ", 1)[0].endswith(","):
        return text
    first_word = text.split(" ", 1)[0].rstrip(",.?!")
    keep = first_word in _KEEP_CAPITALISED_FIRST_WORDS or (len(first_word) > 1 and first_word.isupper())
    body = text if keep else text[0].lower() + text[1:]
    return f"{opener} {body}"


_SENTENCE_BREAK = re.compile(r"[.?!]\s")


def _with_by_the_way(text: str) -> str:
    if _SENTENCE_BREAK.search(text):
        return text  # two sentences: a trailing tag would attach to the second one only
    body, end = (text[:-1], text[-1]) if text[-1] in ".?!" else (text, ".")
    return f"{body}, by the way{end}"


def _surface_forms(text: str) -> list[str]:
    bodies = [text, _contract(text), _expand_contractions(text)]
    forms: list[str] = []
    for body in bodies:
        for tagged in (body, _with_by_the_way(body)):
            for opener in _OPENERS:
                forms.append(_with_opener(tagged, opener))
    return forms


def expand(scenario: Scenario, n_variants: int, seed: int) -> list[QueryVariant]:
    """Up to ``n_variants`` distinct surface variants of ``scenario.text``, deterministic in
    ``(scenario.id, seed)``.

    Variant 0 is the text as written; the others add a neutral opener ("So,", "Hey,", "Okay,",
    "Well,"), a trailing "by the way" (one-sentence texts only), and/or contract or expand
    contractions ("I am" <-> "I'm"). None of these adds a style cue, so the style still lives only
    in the voice. Fewer than ``n_variants`` come back when the templates run out of distinct forms.

    Every variant carries its scenario's split: variants of a test scenario are test data and must
    never be used for training, or the benchmark would measure memorised texts.
    """
    if n_variants < 1:
        raise ValueError(f"n_variants must be >= 1, got {n_variants}")
    others = list(dict.fromkeys(f for f in _surface_forms(scenario.text) if f != scenario.text))
    # A str seed is hashed with sha512 by `random`, so this does not depend on PYTHONHASHSEED.
    random.Random(f"{scenario.id}|{seed}").shuffle(others)
    texts = [scenario.text, *others][:n_variants]
    return [QueryVariant(scenario_id=scenario.id, index=i, text=t, split=scenario.split) for i, t in enumerate(texts)]
