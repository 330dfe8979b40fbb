"""The contract between the judge's shared acoustic stages and a style judge.

The backend (``backends/multistage.py``) runs what every judge needs once per clip: log-mel,
Whisper (transcript + pooled encoder states), prosody and a sentence embedding of the
transcript. A ``StyleJudge`` turns that evidence into labels and a tone per clip (stages 2-3)
and into a verdict per pair (stage 4). ``baseline.BaselineJudge`` uses heuristics;
``polytone_judge.PolyToneJudge`` uses the trained analysers and rubric scorer.

A judge whose stage 4 is remote (``llm_judge.LLMRubricJudge``) also implements
``BatchScoringJudge``: the backend then hands it every pair of a batch at once, so it can
score them concurrently, and a pair it cannot score comes back as that pair's ``JudgeError``
instead of failing the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from judge_service.errors import JudgeError
from judge_service.judge.prosody import Prosody


@dataclass(frozen=True)
class ClipEvidence:
    """What the shared stages measured in one clip."""

    text: str
    prosody: Prosody
    embedding: np.ndarray
    """Pooled Whisper encoder states, float32 ``(embedding_dim,)``."""
    text_vector: np.ndarray
    """Unit-norm MiniLM embedding of ``text`` (zeros for no speech), float32 ``(384,)``."""


@dataclass(frozen=True)
class ClipStyle:
    """A judge's reading of one clip: wire-form ``labels`` and ``tone``, and whatever the
    judge keeps for scoring (``internal``)."""

    labels: dict[str, Any]
    tone: dict[str, Any]
    internal: Any = None


@dataclass(frozen=True)
class Verdict:
    score: float
    rationale: str
    components: dict[str, float]


class StyleJudge(Protocol):
    name: str
    rubric_version: str
    description: str

    def weight_files(self) -> list[Path]:
        """Files whose bytes define the judge (hashed into its version)."""

    def describe(self, clips: list[ClipEvidence]) -> list[ClipStyle]:
        """Labels and tone for each clip."""

    def score(
        self, query: ClipEvidence, query_style: ClipStyle, reply: ClipEvidence,
        reply_style: ClipStyle, known_labels: dict[str, str],
    ) -> Verdict:
        """The rubric verdict for one pair; ``known_labels`` (from the client) override the
        judge's reading of the query."""


@dataclass(frozen=True)
class PairEvidence:
    """Everything stage 4 may use for one pair (the arguments of ``StyleJudge.score``)."""

    query: ClipEvidence
    query_style: ClipStyle
    reply: ClipEvidence
    reply_style: ClipStyle
    known_labels: dict[str, str]


class BatchScoringJudge(StyleJudge, Protocol):
    """Optional extension of ``StyleJudge``, used by the backend when present."""

    def version_identity(self) -> str:
        """What defines the judge besides its ``weight_files`` (e.g. a remote model's name and
        endpoint); hashed into the judge version, so caches never mix two scorers."""

    def score_many(self, pairs: list[PairEvidence]) -> list[Verdict | JudgeError]:
        """One verdict per pair, in order, or the ``JudgeError`` that pair failed with."""
