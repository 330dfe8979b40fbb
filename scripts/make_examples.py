"""Regenerate the bundled example clips in judge_service/examples/ (deterministic).

Rendered with the PolyTone renderer (``judge_service.judge.polytone``) in *benchmark* voices,
which no judge training ever uses, so the demo shows the judge on speakers it has not heard.
Clips are written in the formats the service accepts (FLAC, WAV at 22.05 kHz, stereo WAV,
OGG), so the demo also exercises decoding, downmixing and resampling.

    .venv/bin/python scripts/make_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from judge_service.judge.polytone.render import Renderer
from judge_service.judge.polytone.voices import BENCHMARK_VOICES, voice_by_name

OUT = Path(__file__).resolve().parent.parent / "judge_service" / "examples"
SEED = 7

CLIPS = {
    # name: (text, style or reply tone, voice, file format)
    "query_job_sad": ("I just found out that I did not get the job.", "sad", "piper-mezzo", "flac"),
    "query_promotion_happy": ("Guess what? I got the promotion!", "happy", "piper-joe-bright", "flac"),
    "query_parcel_angry": ("My parcel is late again, for the third time.", "angry", "piper-joe-bright", "flac"),
    "reply_comfort_calm": ("I am so sorry. That must be hard. Do you want to talk about it?", "sad-comforting", "piper-joe-bright", "wav22k"),
    "reply_congrats_happy": ("That is wonderful news, congratulations!", "excited", "piper-joe-bright", "ogg"),
    "reply_congrats_flat": ("That is wonderful news, congratulations!", "neutral", "piper-mezzo", "wav_stereo"),
    "reply_great_happy": ("Great! Well, there will be other jobs, cheer up!", "excited", "piper-joe-bright", "flac"),
    "reply_parcel_calm": ("I understand, that is frustrating. Let me check where your parcel is.", "calm", "piper-mezzo", "flac"),
}

PAIRS = [
    ("job-sad+comfort", "query_job_sad", "reply_comfort_calm", {"emotion": "sad"}, "high"),
    ("job-sad+cheerful", "query_job_sad", "reply_great_happy", {"emotion": "sad"}, "low"),
    ("promo-happy+congrats", "query_promotion_happy", "reply_congrats_happy", {"emotion": "happy"}, "high"),
    ("promo-happy+flat", "query_promotion_happy", "reply_congrats_flat", {"emotion": "happy"}, "medium"),
    ("parcel-angry+calm", "query_parcel_angry", "reply_parcel_calm", {}, "high"),
    ("parcel-angry+comfort", "query_parcel_angry", "reply_great_happy", {}, "low"),
]

EXTENSIONS = {"flac": "flac", "wav22k": "wav", "wav_stereo": "wav", "ogg": "ogg"}


def main() -> None:
    benchmark = {v.name for v in BENCHMARK_VOICES}
    renderer = Renderer()
    audio_dir = OUT / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for old in audio_dir.iterdir():
        old.unlink()
    names = {}
    for name, (text, style, voice, fmt) in CLIPS.items():
        assert voice in benchmark, f"{voice} is not a benchmark voice"
        samples = renderer.render(text, voice_by_name(voice), style, seed=SEED)
        path = audio_dir / f"{name}.{EXTENSIONS[fmt]}"
        if fmt == "flac":
            sf.write(path, samples, 16_000, subtype="PCM_16")
        else:
            upsampled = AF.resample(torch.from_numpy(samples), 16_000, 22_050).numpy()
            if fmt == "wav22k":
                sf.write(path, upsampled, 22_050, subtype="PCM_16")
            elif fmt == "wav_stereo":
                sf.write(path, np.stack([upsampled, upsampled * 0.9], axis=1), 22_050, subtype="PCM_16")
            else:
                sf.write(path, upsampled, 22_050, format="OGG", subtype="VORBIS")
        names[name] = path.name
        print(f"{path.name}: {len(samples) / 16_000:.2f} s, {voice}, {style}: {text}")
    pairs = [
        {"id": pid, "query": names[q], "response": names[r], "labels": labels, "expected": expected,
         "query_text": CLIPS[q][0], "query_style": CLIPS[q][1],
         "response_text": CLIPS[r][0], "response_style": CLIPS[r][1]}
        for pid, q, r, labels, expected in PAIRS
    ]
    (OUT / "pairs.json").write_text(json.dumps({
        "about": "Bundled example pairs, made by scripts/make_examples.py with the PolyTone renderer in "
                 "benchmark voices (never used for training). 'expected' is the rubric band a "
                 "style-aware judge should give.",
        "pairs": pairs,
    }, indent=2) + "\n")
    total = sum(p.stat().st_size for p in audio_dir.iterdir())
    print(f"{len(CLIPS)} clips, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
