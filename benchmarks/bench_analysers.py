"""Style-analyser throughput: how many times faster than real time one clip is analysed.

The analysers' cost per clip is: log-mel, the Whisper encoder (shared with ASR), prosody and
the MLP heads. Measured for clips of 1, 3, 5 and 10 s, one clip at a time and in batches of
16, with the shipped PolyTone model (or random heads when none is trained; the MLP's cost
does not depend on its weights). Baseline in the same run: the full judge stage including
Whisper decoding (transcription). Appends rows with provenance to
``benchmarks/results/analysers.csv``.

    .venv/bin/python benchmarks/bench_analysers.py
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ClipFactory, provenance  # noqa: E402

from judge_service.judge.analysers import AnalyserConfig, StyleAnalyser, load_analyser  # noqa: E402
from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path  # noqa: E402
from judge_service.judge.polytone_judge import default_model_dir  # noqa: E402
from judge_service.judge.training.features import clip_features  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "analysers.csv"


def clips_of(duration_s: float, count: int, factory: ClipFactory) -> list[np.ndarray]:
    out = []
    for _ in range(count):
        speech = factory.speech[int(factory.rng.integers(len(factory.speech)))]
        n = int(duration_s * 16_000)
        clip = np.resize(speech, n).astype(np.float32) + (1e-4 * factory.rng.standard_normal(n)).astype(np.float32)
        out.append(clip)
    return out


def analyse(clips: list[np.ndarray], asr: WhisperTranscriber, model: StyleAnalyser, transcribe: bool) -> None:
    embeddings, prosody = clip_features(clips, [None] * len(clips), asr, transcribe=transcribe)
    model.predict_proba(embeddings, prosody)


def main() -> int:
    torch.set_num_threads(2)
    meta = provenance()
    asr = WhisperTranscriber(default_whisper_model_path(), threads=2)
    model_dir = default_model_dir()
    if (model_dir / "analysers.safetensors").exists():
        model, heads = load_analyser(model_dir), "shipped PolyTone heads"
    else:
        model, heads = StyleAnalyser(AnalyserConfig(embedding_dim=asr.embedding_dim)), "random heads (no trained model)"
    factory = ClipFactory(seed=1)
    rows = []
    print(f"device: {meta['device']}; commit {meta['commit']}; {meta['date_utc']}; {heads}\n")
    print("| clip s | batch | analysers: ms/clip | x real time | with transcription: ms/clip | x real time | ratio |")
    print("|---|---|---|---|---|---|---|")
    for duration_s in (1.0, 3.0, 5.0, 10.0):
        for batch in (1, 16):
            clips = clips_of(duration_s, 16, factory)
            timings = {}
            for transcribe in (False, True):
                analyse(clips[:batch], asr, model, transcribe)  # warm-up
                samples = []
                for _ in range(3):
                    started = time.perf_counter()
                    for i in range(0, len(clips), batch):
                        analyse(clips[i : i + batch], asr, model, transcribe)
                    samples.append((time.perf_counter() - started) / len(clips))
                timings[transcribe] = statistics.median(samples)
            a, t = timings[False], timings[True]
            rows.append({**meta, "clip_s": duration_s, "batch": batch, "analyse_ms": round(a * 1000, 2),
                         "x_realtime": round(duration_s / a, 1), "with_asr_ms": round(t * 1000, 2),
                         "with_asr_x_realtime": round(duration_s / t, 1), "heads": heads})
            print(f"| {duration_s:g} | {batch} | {a * 1000:.1f} | {duration_s / a:.0f}x | {t * 1000:.1f} | "
                  f"{duration_s / t:.0f}x | {t / a:.2f} |", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"\nappended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
