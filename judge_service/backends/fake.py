"""``FakeBackendForTests``: a stand-in judge for HTTP and scheduler tests ONLY.

Scores are a deterministic function of the clips' PCM hashes, with no listening at all; it
exists so the HTTP and batching layers can be tested in milliseconds. Never serve it to users:
its judge name says so in every response.
"""

from __future__ import annotations

import time

from judge_service.backends.base import BackendJob, BatchReport, JobResult, JudgeInfo
from judge_service.judge.labels import LABEL_SETS

FAIL_BATCH_TEXT = "__fake_backend_fail_batch__"
"""A client transcript equal to this makes the fake backend raise on the whole batch, to test
that a backend error reaches every job of that batch and the loop survives it."""


class FakeBackendForTests:
    """Hash-based scores; ``delay_ms`` of simulated compute per batch (time.sleep)."""

    def __init__(self, delay_ms: float = 0.0) -> None:
        self.delay_s = delay_ms / 1000.0
        self.info = JudgeInfo(
            name="fake-for-tests-only",
            version="fake-0",
            rubric_version="fake-rubric/0",
            labels=LABEL_SETS,
            description="NOT A JUDGE: scores are a hash of the audio; for HTTP/scheduler tests",
        )
        self.batches: list[int] = []

    def warm_up(self) -> None:
        pass

    def run_batch(self, jobs: list[BackendJob]) -> BatchReport:
        if any(text == FAIL_BATCH_TEXT for job in jobs for text in job.clip_texts):
            raise RuntimeError("fake backend asked to fail this batch")
        if self.delay_s:
            time.sleep(self.delay_s)
        self.batches.append(sum(job.num_clips for job in jobs))
        results = []
        for job in jobs:
            analyses = [
                {
                    "clip": {"sha256": d.clip.sha256, "duration_s": round(d.clip.duration_s, 4)},
                    "transcript": text if text is not None else f"fake transcript {d.clip.sha256[:8]}",
                    "transcript_source": "client" if text is not None else "asr",
                    "asr": None,
                    "prosody": {"duration_s": round(d.clip.duration_s, 4)},
                    "labels": {},
                    "tone": {"description": "fake"},
                }
                for d, text in zip(job.clips, job.clip_texts)
            ]
            scores = []
            for pair in job.pairs:
                q, r = job.clips[pair.query_index].clip.sha256, job.clips[pair.response_index].clip.sha256
                fraction = int(q[:8], 16) ^ int(r[:8], 16)
                scores.append(
                    {
                        "score": round(1.0 + 4.0 * fraction / 0xFFFFFFFF, 6),
                        "rationale": "fake backend: score is a hash of the two clips",
                        "components": {},
                        "query_labels": {
                            k: {"label": v, "confidence": 1.0, "source": "client"}
                            for k, v in pair.known_labels.items()
                        },
                    }
                )
            results.append(JobResult(analyses=analyses, scores=scores))
        return BatchReport(results=results, stage_ms={"fake": self.delay_s * 1000.0},
                           unique_clips=sum(j.num_clips for j in jobs))
