"""The multi-stage judge backend: log-mel -> Whisper (transcript + encoder states) -> prosody
-> text embedding -> a ``StyleJudge`` for labels, tone and the rubric score.

Registered as ``paras2s-baseline`` (heuristic ``BaselineJudge``), ``paras2s-polytone``
(the trained ``PolyToneJudge``) and ``paras2s-polytone-llm`` (PolyTone labels and tone, an LLM's
rubric score: ``LLMRubricJudge``); all share every acoustic stage below.

A judge with ``score_many`` (``stages.BatchScoringJudge``) gets every pair of the batch at
once, and a pair it could not score is carried in ``JobResult.scores`` as
``{"error": {type, message}}``, which the service answers as that item's error.

Each unique clip of a batch (same PCM hash, same client text) is featurised, transcribed and
measured once, so a group's query, or a query repeated across pairs, costs one analysis.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from judge_service.audio.clip import DecodedAudio
from judge_service.backends.base import BackendJob, BatchReport, JobResult, JudgeInfo
from judge_service.config import Settings
from judge_service.errors import JudgeError
from judge_service.features import frame_offsets, log_mel_spectrogram
from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.prosody import measure_prosody
from judge_service.judge.stages import ClipEvidence, PairEvidence, StyleJudge, Verdict
from judge_service.judge.text_embedding import TextEmbedder, default_text_model_path

log = logging.getLogger(__name__)

PIPELINE_VERSION = "features-1/asr-2/prosody-3"
"""Bump when code that changes a score changes (front end, ASR decoding, prosody): it enters
the judge version, so caches keyed on the version never serve a stale score."""


def _file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("JUDGE_DEVICE=cuda but torch sees no CUDA device; use auto or cpu")
    return requested


class MultiStageBackend:
    """The real judge. Loads Whisper and MiniLM at construction (seconds), not at import."""

    def __init__(self, settings: Settings, judge: StyleJudge) -> None:
        self.device = _resolve_device(settings.device)
        self.judge = judge
        threads = settings.resolved_threads()
        torch.set_num_threads(threads)
        whisper_path = settings.whisper_model_path or default_whisper_model_path()
        text_path = settings.text_model_path or default_text_model_path()
        self.asr = WhisperTranscriber(
            whisper_path,
            device=self.device,
            compute_type=settings.whisper_compute_type,
            threads=threads,
            min_window_s=settings.asr_min_window_s,
        )
        self.text = TextEmbedder(text_path, device=self.device)
        self.info = JudgeInfo(
            name=judge.name,
            version=self._version(whisper_path, text_path, settings.asr_min_window_s),
            rubric_version=judge.rubric_version,
            labels=LABEL_SETS,
            description=judge.description,
        )

    def _version(self, whisper_path: Path, text_path: Path, asr_window_s: float) -> str:
        """Hash of every weight file and every setting that changes a score."""
        digest = hashlib.sha256()
        digest.update(_file_sha256(whisper_path / "model.bin").encode())
        for weights in sorted(text_path.glob("*.safetensors")):
            digest.update(_file_sha256(weights).encode())
        for weights in self.judge.weight_files():
            digest.update(_file_sha256(weights).encode())
        digest.update(
            f"asr_window={asr_window_s};pipeline={PIPELINE_VERSION};judge={self.judge.name};"
            f"rubric={self.judge.rubric_version}".encode()
        )
        identity = getattr(self.judge, "version_identity", None)
        if identity is not None:  # absent for local judges, whose versions stay as they were
            digest.update(f";identity={identity()}".encode())
        return digest.hexdigest()[:16]

    def warm_up(self) -> None:
        rng = np.random.default_rng(0)
        t = np.arange(16_000) / 16_000
        tone = (0.2 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(t.size)).astype(
            np.float32
        )
        from judge_service.audio.clip import AudioClip, pcm_sha256
        from judge_service.backends.base import PairSpec

        clip = AudioClip("warm-up", 16_000, tone.size, pcm_sha256(tone), "wav", 16_000, 1)
        decoded = DecodedAudio(clip, tone)
        # A remote scorer is not called: its answer would be discarded, and a slow or absent
        # endpoint would hold up start-up (its failures are per-pair errors at serving time).
        pairs = [] if hasattr(self.judge, "score_many") else [PairSpec(0, 1)]
        self.run_batch([BackendJob([decoded, decoded], [None, "warm up"], pairs)])

    # --- the batch --------------------------------------------------------------------------

    def run_batch(self, jobs: list[BackendJob]) -> BatchReport:
        stage_ms: dict[str, float] = {}
        # 1. Unique clips: same PCM and same client text -> one analysis.
        unique_keys: list[tuple[str, str | None]] = []
        unique_audio: list[DecodedAudio] = []
        index_of: dict[tuple[str, str | None], int] = {}
        for job in jobs:
            for decoded, text in zip(job.clips, job.clip_texts):
                key = (decoded.clip.sha256, text)
                if key not in index_of:
                    index_of[key] = len(unique_keys)
                    unique_keys.append(key)
                    unique_audio.append(decoded)

        # 2. Log-mel for every unique clip in one pass (packed layout, no padding).
        started = time.perf_counter()
        waveforms = [torch.from_numpy(d.samples).to(self.device) for d in unique_audio]
        packed, num_frames = log_mel_spectrogram(waveforms, n_mels=self.asr.n_mels, layout="packed")
        offsets = frame_offsets(num_frames).tolist()
        features = [packed[a:b].T for a, b in zip(offsets[:-1], offsets[1:])]
        stage_ms["features"] = _ms_since(started)

        # 3. Whisper: encoder states for every clip, text for clips without a client transcript.
        started = time.perf_counter()
        transcripts, embeddings = self.asr.encode_and_transcribe(
            features, [text is None for _, text in unique_keys]
        )
        texts: list[str] = []
        asr_meta: list[dict[str, Any] | None] = []
        for (_, client_text), transcript in zip(unique_keys, transcripts):
            texts.append(client_text if transcript is None else transcript.text)
            asr_meta.append(None if transcript is None else {
                "no_speech_prob": round(transcript.no_speech_prob, 4),
                "avg_logprob": round(transcript.avg_logprob, 4),
            })
        stage_ms["asr"] = _ms_since(started)

        # 4. Prosody per unique clip.
        started = time.perf_counter()
        prosody = [measure_prosody(d.samples, texts[i]) for i, d in enumerate(unique_audio)]
        stage_ms["prosody"] = _ms_since(started)

        # 5. Text embeddings of the unique transcripts.
        started = time.perf_counter()
        distinct_texts = sorted(set(texts))
        vectors = dict(zip(distinct_texts, self.text.encode(distinct_texts)))
        stage_ms["text"] = _ms_since(started)

        # 6. The style judge: labels and tone per clip (stages 2-3 of the paper's judge).
        started = time.perf_counter()
        evidence = [
            ClipEvidence(texts[i], prosody[i], embeddings[i], vectors[texts[i]]) for i in range(len(unique_keys))
        ]
        styles = self.judge.describe(evidence)
        analyses = [
            {
                "clip": _clip_dict(decoded),
                "transcript": texts[i],
                "transcript_source": "client" if client_text is not None else "asr",
                "asr": asr_meta[i],
                "prosody": prosody[i].to_dict(),
                "labels": styles[i].labels,
                "tone": styles[i].tone,
            }
            for i, (decoded, (_, client_text)) in enumerate(zip(unique_audio, unique_keys))
        ]
        stage_ms["style"] = _ms_since(started)

        # 7. Rubric per pair (stage 4): every pair of the batch at once for a judge that scores
        # many (a remote scorer, concurrently; a failed pair is its own error), else one by one.
        started = time.perf_counter()
        job_indices = [[index_of[(d.clip.sha256, t)] for d, t in zip(job.clips, job.clip_texts)] for job in jobs]
        pair_evidence = []
        for job, indices in zip(jobs, job_indices):
            for pair in job.pairs:
                qi, ri = indices[pair.query_index], indices[pair.response_index]
                pair_evidence.append(PairEvidence(evidence[qi], styles[qi], evidence[ri], styles[ri], pair.known_labels))
        score_many = getattr(self.judge, "score_many", None)
        verdicts: list[Verdict | JudgeError] = (
            score_many(pair_evidence) if score_many is not None and pair_evidence
            else [self.judge.score(p.query, p.query_style, p.reply, p.reply_style, p.known_labels) for p in pair_evidence]
        )
        assert len(verdicts) == len(pair_evidence), "a judge must answer every pair"
        results = []
        next_verdict = iter(verdicts)
        for job, indices in zip(jobs, job_indices):
            scores = []
            for pair in job.pairs:
                verdict = next(next_verdict)
                if isinstance(verdict, JudgeError):
                    scores.append({"error": verdict.to_dict()})
                    continue
                query_labels = dict(styles[indices[pair.query_index]].labels)
                for dimension, label in pair.known_labels.items():
                    query_labels[dimension] = {"label": label, "confidence": 1.0, "source": "client"}
                scores.append(
                    {
                        "score": verdict.score,
                        "rationale": verdict.rationale,
                        "components": verdict.components,
                        "query_labels": query_labels,
                    }
                )
            results.append(JobResult(analyses=[analyses[i] for i in indices], scores=scores))
        stage_ms["rubric"] = _ms_since(started)
        return BatchReport(results=results, stage_ms=stage_ms, unique_clips=len(unique_keys))


def _clip_dict(decoded: DecodedAudio) -> dict[str, Any]:
    clip = decoded.clip
    return {
        "sha256": clip.sha256,
        "duration_s": round(clip.duration_s, 4),
        "sample_rate_hz": clip.sample_rate_hz,
        "num_samples": clip.num_samples,
        "source_format": clip.source_format,
        "source_sample_rate_hz": clip.source_sample_rate_hz,
        "source_channels": clip.source_channels,
    }


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
