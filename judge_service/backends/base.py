"""The backend protocol: what the scheduler hands a judge and what it gets back.

A *job* is the unit of scheduling: the clips of one scoring pair, one group (a query and its
G responses) or one clip to analyse. The scheduler packs jobs into a batch; the backend runs
the batch and returns one result per job, in order. A backend that raises fails the whole
batch (the scheduler turns that into a typed error for each job of the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from judge_service.audio.clip import DecodedAudio


@dataclass(frozen=True)
class JudgeInfo:
    """Identity of a judge; every result carries it."""

    name: str
    version: str
    rubric_version: str
    labels: dict[str, tuple[str, ...]]
    description: str = ""


@dataclass(frozen=True)
class PairSpec:
    """One (query, response) pair inside a job, as indices into ``BackendJob.clips``."""

    query_index: int
    response_index: int
    known_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendJob:
    """Clips to analyse and pairs to score.

    ``clip_texts[i]`` is a transcript the client supplied for clip ``i`` (then the backend
    does not transcribe it) or ``None``.
    """

    clips: list[DecodedAudio]
    clip_texts: list[str | None]
    pairs: list[PairSpec]

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def longest_clip_s(self) -> float:
        return max(c.clip.duration_s for c in self.clips)


@dataclass(frozen=True)
class JobResult:
    """Per-clip analyses (wire dicts, one per job clip) and per-pair scores (one per pair).

    A pair the judge could not score is ``{"error": {"type", "message"}}`` in ``scores`` (a
    ``JudgeError.to_dict()``; see ``errors.pair_error_from_dict``): only that pair fails.
    """

    analyses: list[dict[str, Any]]
    scores: list[dict[str, Any]]


@dataclass
class BatchReport:
    """Results of one batch, one per job in order, with per-stage times in milliseconds."""

    results: list[JobResult]
    stage_ms: dict[str, float] = field(default_factory=dict)
    unique_clips: int = 0


class JudgeBackend(Protocol):
    """What a judge must provide to be served."""

    info: JudgeInfo

    def warm_up(self) -> None:
        """Load models and run one small batch, so the first request is not slow."""

    def run_batch(self, jobs: list[BackendJob]) -> BatchReport:
        """Analyse every clip of every job and score every pair. Blocking; runs in a thread."""
