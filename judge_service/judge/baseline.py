"""The ``paras2s-baseline`` style heuristics and rubric scorer.

A documented, deterministic stand-in for the PolyTone-trained analysers and the learned
rubric scorer. It uses only what can be measured without training:

* **Labels** from prosody: gender from the F0 median (a 165 Hz split), child voice from a very
  high F0, and an *arousal* estimate from pitch movement, loudness and speaking rate. It does
  not predict emotion or sarcasm; when the client gives known labels, those are used.
* **Response tone**: arousal, pitch, rate, loudness and expressiveness levels and a short
  description ("soft, slow, flat voice").
* **Rubric**: ``score = 1 + 4 * (W_RELEVANCE * relevance + W_TONE * tone_fit)`` where
  ``relevance`` maps the MiniLM cosine between query and reply transcripts to [0, 1] and
  ``tone_fit = 1 - |reply arousal - target arousal|`` (clipped to [0, 1]), the target coming
  from the query's emotion (calm replies to sad, angry, fearful speakers; lively ones to happy
  or surprised speakers) or, with no emotion known, from mirroring half the query's arousal.

Limits, stated plainly: it cannot hear sarcasm or discrete emotions, its arousal is
recording-level dependent, and relevance is topical only. The trained judge replaces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from judge_service.judge.prosody import Prosody
from judge_service.judge.stages import ClipEvidence, ClipStyle, Verdict

RUBRIC_VERSION = "paras2s-baseline-rubric/1"

GENDER_SPLIT_F0_HZ = 165.0
CHILD_MIN_F0_HZ = 280.0
W_RELEVANCE = 0.4
W_TONE = 0.6
"""Tone outweighs topic: MiniLM relevance is topical only (a cheerful reply about jobs is
'closer' to 'I did not get the job' than a comforting one), and style is what we judge."""
RELEVANCE_COSINE_ZERO = 0.0
RELEVANCE_COSINE_FULL = 0.35
"""MiniLM cosine at or below which a reply counts as off topic, and at or above which it
counts as fully on topic (a fitting reply to a statement often shares few words with it:
question-reply pairs sit around 0.1-0.5, unrelated sentences near 0)."""

# Arousal cues as (mean, spread) of a neutral-to-lively reading voice, measured on the
# LibriSpeech sample and TESS (see README, "baseline judge").
F0_STD_SEMITONES_NORM = (2.5, 1.5)
ENERGY_DBFS_NORM = (-28.0, 5.0)
RATE_SYLLABLES_PER_S_NORM = (4.5, 1.0)

TARGET_AROUSAL_BY_EMOTION = {
    "neutral": 0.0,
    "happy": 0.5,
    "surprised": 0.4,
    "sad": -0.5,
    "angry": -0.4,
    "fearful": -0.3,
    "disgust": -0.1,
}
"""What a fitting reply's voice sounds like for each query emotion, on the arousal scale
[-1, 1]: share joy with energy; comfort, calm and reassure with a soft, slow voice."""
MIRROR_FRACTION = 0.5


@dataclass(frozen=True)
class Tone:
    """Structured description of how a clip sounds."""

    arousal: float
    arousal_level: str
    pitch_level: str | None
    rate_level: str | None
    loudness_level: str
    expressiveness: str | None
    description: str

    def to_dict(self) -> dict[str, object]:
        return {
            "arousal": round(self.arousal, 4),
            "arousal_level": self.arousal_level,
            "pitch_level": self.pitch_level,
            "rate_level": self.rate_level,
            "loudness_level": self.loudness_level,
            "expressiveness": self.expressiveness,
            "description": self.description,
        }


def _z(value: float | None, norm: tuple[float, float]) -> float | None:
    return None if value is None else (value - norm[0]) / norm[1]


def arousal_from_prosody(p: Prosody) -> float:
    """Arousal in [-1, 1]: the mean of z-scored pitch movement, loudness and rate, halved and
    clipped. 0 is a calm reading voice."""
    cues = [
        _z(p.f0_std_semitones, F0_STD_SEMITONES_NORM),
        _z(p.energy_dbfs, ENERGY_DBFS_NORM),
        _z(p.speaking_rate_syllables_per_s, RATE_SYLLABLES_PER_S_NORM),
    ]
    present = [c for c in cues if c is not None]
    return float(np.clip(np.mean(present) / 2.0, -1.0, 1.0)) if present else 0.0


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def heuristic_labels(p: Prosody) -> dict[str, dict[str, object]]:
    """Labels the baseline can estimate from prosody: gender and age (adult/child)."""
    if p.f0_median_hz is None:
        return {}
    octaves_from_split = math.log2(p.f0_median_hz / GENDER_SPLIT_F0_HZ)
    p_female = _logistic(octaves_from_split * 8.0)
    p_child = _logistic(math.log2(p.f0_median_hz / CHILD_MIN_F0_HZ) * 10.0)
    return {
        "gender": {
            "label": "female" if p_female >= 0.5 else "male",
            "confidence": round(max(p_female, 1 - p_female), 4),
            "source": "f0-heuristic",
        },
        "age": {
            "label": "child" if p_child >= 0.5 else "adult",
            "confidence": round(max(p_child, 1 - p_child), 4),
            "source": "f0-heuristic",
        },
    }


def describe_tone(p: Prosody, gender: str | None) -> Tone:
    """Acoustics-only tone description (stage 3 of the judge)."""
    arousal = arousal_from_prosody(p)
    arousal_level = "low" if arousal < -0.2 else "high" if arousal > 0.2 else "medium"
    pitch_level = None
    if p.f0_median_hz is not None:
        typical_hz = 120.0 if gender == "male" else 210.0
        semis = 12.0 * math.log2(p.f0_median_hz / typical_hz)
        pitch_level = "low-pitched" if semis < -3 else "high-pitched" if semis > 3 else None
    rate = p.speaking_rate_syllables_per_s
    rate_level = None if rate is None else "slow" if rate < 3.5 else "fast" if rate > 5.5 else "normal"
    loudness = "soft" if p.energy_dbfs < -33 else "loud" if p.energy_dbfs > -20 else "normal"
    expressiveness = None
    if p.f0_std_semitones is not None:
        expressiveness = "flat" if p.f0_std_semitones < 1.0 else "lively" if p.f0_std_semitones > 4.0 else None
    words = [w for w in (loudness if loudness != "normal" else None, rate_level if rate_level != "normal" else None, pitch_level, expressiveness) if w]
    description = ", ".join(words) + (" voice" if words else "even voice")
    description += f" ({arousal_level} arousal)"
    return Tone(arousal, arousal_level, pitch_level, rate_level, loudness, expressiveness, description)


def relevance_from_cosine(cosine: float) -> float:
    """Topical relevance in [0, 1] from the MiniLM cosine of two transcripts."""
    span = RELEVANCE_COSINE_FULL - RELEVANCE_COSINE_ZERO
    return float(np.clip((cosine - RELEVANCE_COSINE_ZERO) / span, 0.0, 1.0))


def score_pair(
    cosine: float,
    response_has_text: bool,
    query_arousal: float,
    response_tone: Tone,
    query_emotion: str | None,
) -> Verdict:
    """The baseline rubric; see the module docstring for the formula."""
    relevance = relevance_from_cosine(cosine) if response_has_text else 0.0
    if query_emotion is not None:
        target = TARGET_AROUSAL_BY_EMOTION[query_emotion]
        target_why = f"a {query_emotion} speaker"
    else:
        target = MIRROR_FRACTION * query_arousal
        target_why = f"a speaker of {query_arousal:+.2f} arousal"
    tone_fit = float(np.clip(1.0 - abs(response_tone.arousal - target), 0.0, 1.0))
    score = 1.0 + 4.0 * (W_RELEVANCE * relevance + W_TONE * tone_fit)
    topic = "no speech in the reply" if not response_has_text else (
        "on topic" if relevance >= 0.66 else "partly on topic" if relevance >= 0.33 else "off topic"
    )
    rationale = (
        f"Reply is {topic} (similarity {cosine:.2f}); its {response_tone.description} "
        f"{'fits' if tone_fit >= 0.7 else 'partly fits' if tone_fit >= 0.4 else 'does not fit'} "
        f"{target_why} (reply arousal {response_tone.arousal:+.2f}, target {target:+.2f})."
    )
    return Verdict(
        score=round(score, 6),
        rationale=rationale,
        components={
            "relevance": round(relevance, 6),
            "tone_fit": round(tone_fit, 6),
            "cosine": round(cosine, 6),
            "target_arousal": round(target, 6),
        },
    )


class BaselineJudge:
    """The ``paras2s-baseline`` style judge: heuristics only, no trained weights."""

    name = "paras2s-baseline"
    rubric_version = RUBRIC_VERSION
    description = (
        "Whisper ASR + measured prosody + heuristic labels + baseline rubric "
        "(stand-in until the PolyTone-trained judge is used)"
    )

    def weight_files(self) -> list:
        return []

    def describe(self, clips: list[ClipEvidence]) -> list[ClipStyle]:
        styles = []
        for clip in clips:
            labels = heuristic_labels(clip.prosody)
            tone = describe_tone(clip.prosody, labels.get("gender", {}).get("label"))
            styles.append(ClipStyle(labels=labels, tone=tone.to_dict(), internal=tone))
        return styles

    def score(
        self, query: ClipEvidence, query_style: ClipStyle, reply: ClipEvidence,
        reply_style: ClipStyle, known_labels: dict[str, str],
    ) -> Verdict:
        return score_pair(
            cosine=float(np.dot(query.text_vector, reply.text_vector)),
            response_has_text=bool(reply.text.strip()),
            query_arousal=query_style.internal.arousal,
            response_tone=reply_style.internal,
            query_emotion=known_labels.get("emotion"),
        )
