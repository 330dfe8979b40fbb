"""The ``distilled`` backend: the fast student of the full judge (``judge/distilled.py``), served by
the same service, for RL rewards where throughput matters more than a rationale."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from judge_service.backends.base import BackendJob, BatchReport, JobResult, JudgeInfo
from judge_service.judge.distilled import DistilledRewardModel
from judge_service.judge.labels import LABEL_SETS


class DistilledBackend:
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.model = DistilledRewardModel.load(self.model_dir)
        teacher = self.model.config
        self.info = JudgeInfo(
            name="paras2s-distilled", version=self.model.version(self.model_dir),
            rubric_version=f"distilled-from:{teacher.teacher_name}/{teacher.teacher_version}", labels=LABEL_SETS,
            description=f"student of {teacher.teacher_name} {teacher.teacher_version}: pooled log-mel -> MLP; "
                        "no transcript, labels or tone (see judge_service/judge/distilled.py)",
        )  # fmt: skip

    def warm_up(self) -> None:
        silence = np.zeros(16_000, np.float32)
        with torch.no_grad():
            silence_features = self.model.clip_features([silence])
            self.model(torch.from_numpy(np.concatenate([silence_features] * 2, axis=1)))

    def run_batch(self, jobs: list[BackendJob]) -> BatchReport:
        started = time.perf_counter()
        index_of: dict[str, int] = {}
        unique: list[np.ndarray] = []
        for job in jobs:
            for decoded in job.clips:
                if decoded.clip.sha256 not in index_of:
                    index_of[decoded.clip.sha256] = len(unique)
                    unique.append(decoded.samples)
        features = self.model.clip_features(unique)
        features_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        rows = [(index_of[job.clips[p.query_index].clip.sha256], index_of[job.clips[p.response_index].clip.sha256])
                for job in jobs for p in job.pairs]  # fmt: skip
        scores: list[float] = []
        if rows:
            pair_x = np.stack([np.concatenate([features[q], features[r]]) for q, r in rows])
            with torch.no_grad():
                scores = self.model(torch.from_numpy(pair_x)).tolist()
        results, k = [], 0
        for job in jobs:
            analyses = [_analysis(d, t) for d, t in zip(job.clips, job.clip_texts)]
            job_scores = []
            for pair in job.pairs:
                job_scores.append({
                    "score": round(float(scores[k]), 6),
                    "rationale": f"distilled reward model ({self.info.rubric_version}): a fast estimate of the "
                                 "teacher's score from acoustics alone; no transcript or labels",
                    "components": {},
                    "query_labels": {d: {"label": v, "confidence": 1.0, "source": "client"}
                                     for d, v in pair.known_labels.items()},
                })  # fmt: skip
                k += 1
            results.append(JobResult(analyses=analyses, scores=job_scores))
        return BatchReport(results=results, stage_ms={"features": features_ms,
                                                      "model": (time.perf_counter() - started) * 1000.0},
                           unique_clips=len(unique))  # fmt: skip


def _analysis(decoded: Any, text: str | None) -> dict[str, Any]:
    return {
        "clip": {"sha256": decoded.clip.sha256, "duration_s": round(decoded.clip.duration_s, 4)},
        "transcript": text or "", "transcript_source": "client" if text is not None else "asr", "asr": None,
        "prosody": {"duration_s": round(decoded.clip.duration_s, 4)}, "labels": {}, "tone": {},
    }  # fmt: skip
