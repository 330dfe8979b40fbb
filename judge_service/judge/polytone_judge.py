"""``paras2s-polytone``: the PolyTone-trained style judge (stages 2-4 of the paper's judge).

Stage 2: the analysers predict the query's emotion, sarcasm, age and gender from the clip's
pooled Whisper encoder states and prosody. Stage 3: the reply's tone is described from its
acoustics only (the same analysers and its prosody; its words are never used). Stage 4: the
learned rubric scorer maps transcripts + query labels + reply tone to a score in [1, 5].
Weights: ``analysers.safetensors`` and ``rubric.safetensors`` in a model directory (the one
shipped in ``judge_service/models/polytone`` or ``JUDGE_JUDGE_MODEL_PATH``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from judge_service.judge import analysers as analysers_module
from judge_service.judge import rubric as rubric_module
from judge_service.judge.analysers import PROSODY_FEATURES, analyser_vector, labels_from_proba, load_analyser
from judge_service.judge.baseline import describe_tone
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.rubric import (
    RUBRIC_LEVELS,
    RUBRIC_VERSION,
    affinity_features,
    band_of,
    intent_features,
    load_rubric,
    rubric_features,
    style_vector,
)
from judge_service.judge.stages import ClipEvidence, ClipStyle, Verdict

JUDGE_NAME = "paras2s-polytone"
CUE_DIMENSIONS = ("emotion", "sarcasm", "age", "gender")


def default_model_dir() -> Path:
    return Path(str(resources.files("judge_service") / "models" / "polytone"))


@dataclass(frozen=True)
class PolyToneClip:
    """What the judge keeps per clip for scoring."""

    style: np.ndarray  # (STYLE_DIM,) probabilities, LABEL_SETS order
    prosody: np.ndarray  # (len(PROSODY_FEATURES),)


class PolyToneJudge:
    name = JUDGE_NAME
    rubric_version = RUBRIC_VERSION
    description = (
        "Whisper ASR + PolyTone-trained paralinguistic analysers (emotion, sarcasm, age, gender) "
        "on Whisper encoder states and prosody + acoustic tone description + learned rubric scorer"
    )

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (self.model_dir / analysers_module.WEIGHTS_FILE).exists():
            raise FileNotFoundError(
                f"no trained judge in {self.model_dir}; run `paras2s-judge train` or set "
                "JUDGE_JUDGE_MODEL_PATH to a directory it wrote"
            )
        self.analyser = load_analyser(self.model_dir)
        self.rubric = load_rubric(self.model_dir)
        self.bank = self.rubric.bank()
        self.intent = self.rubric.intent()

    def weight_files(self) -> list[Path]:
        return [self.model_dir / analysers_module.WEIGHTS_FILE, self.model_dir / rubric_module.WEIGHTS_FILE]

    def describe(self, clips: list[ClipEvidence]) -> list[ClipStyle]:
        if not clips:
            return []
        prosody = np.stack([analyser_vector(c.prosody) for c in clips])
        proba = self.analyser.predict_proba(np.stack([c.embedding for c in clips]), prosody)
        style_rows = style_vector(proba)
        styles = []
        for i, clip in enumerate(clips):
            labels = labels_from_proba(proba, i, LABEL_SETS)
            tone = describe_tone(clip.prosody, labels["gender"]["label"]).to_dict()
            emotion = labels["emotion"]
            sounds = [f"{emotion['label']}-sounding"] if emotion["label"] != "neutral" and emotion["confidence"] >= 0.4 else []
            if labels["sarcasm"]["label"] == "sarcastic" and labels["sarcasm"]["confidence"] >= 0.5:
                sounds.append("sarcastic")
            tone["emotion"] = emotion["label"]
            tone["emotion_confidence"] = emotion["confidence"]
            if sounds:
                tone["description"] = tone["description"].replace(" voice (", ", " + ", ".join(sounds) + " voice (", 1)
            styles.append(ClipStyle(
                labels=labels, tone=tone,
                internal=PolyToneClip(style_rows[i], prosody[i, : len(PROSODY_FEATURES)]),
            ))
        return styles

    def score(
        self, query: ClipEvidence, query_style: ClipStyle, reply: ClipEvidence,
        reply_style: ClipStyle, known_labels: dict[str, str],
    ) -> Verdict:
        q_style = query_style.internal.style.copy()
        offset = 0
        for dim, labels in LABEL_SETS.items():
            if dim in known_labels:
                q_style[offset : offset + len(labels)] = 0.0
                q_style[offset + labels.index(known_labels[dim])] = 1.0
            offset += len(labels)
        affinity = affinity_features(self.bank.expected_levels(reply.text_vector[None]), q_style[None])
        intent = intent_features(self.intent.predict(reply.text_vector[None]), q_style[None])
        features = rubric_features(
            query.text_vector[None], reply.text_vector[None], q_style[None],
            reply_style.internal.style[None], reply_style.internal.prosody[None], affinity, intent,
        )
        score = float(self.rubric.score(features)[0])
        cue = self._cue(query_style.labels, known_labels)
        reply_words = reply.text if len(reply.text) <= 60 else reply.text[:57] + "..."
        rationale = (
            f"The query sounds {cue}. The reply, \"{reply_words}\", has a {reply_style.tone['description']}. "
            f"Rubric {score:.1f}: {RUBRIC_LEVELS[band_of(score)]}."
            if reply.text.strip()
            else f"The query sounds {cue}. The reply has no recognisable speech. Rubric {score:.1f}."
        )
        return Verdict(
            score=round(score, 6),
            rationale=rationale,
            components={
                "topic_similarity": round(float(np.dot(query.text_vector, reply.text_vector)), 6),
                "query_emotion_confidence": round(float(query_style.labels["emotion"]["confidence"]), 6),
                "reply_arousal": round(float(reply_style.tone["arousal"]), 6),
            },
        )

    @staticmethod
    def _cue(labels: dict[str, dict], known: dict[str, str]) -> str:
        parts = []
        for dim in CUE_DIMENSIONS:
            if dim in known:
                parts.append(f"{known[dim]} (given)")
            elif dim in labels:
                parts.append(f"{labels[dim]['label']} ({labels[dim]['confidence']:.2f})")
        return ", ".join(parts)
