"""Whisper ASR through CTranslate2 on our log-mel features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_service.audio import AudioLimits, decode_audio
from judge_service.demo import examples_dir, load_example_pairs
from judge_service.features import frame_offsets, log_mel_spectrogram
from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asr():
    return WhisperTranscriber(default_whisper_model_path(), threads=2, min_window_s=10)


def features_of(clips: list[np.ndarray]) -> list[torch.Tensor]:
    packed, num_frames = log_mel_spectrogram([torch.from_numpy(c) for c in clips], layout="packed")
    offsets = frame_offsets(num_frames).tolist()
    return [packed[a:b].T for a, b in zip(offsets[:-1], offsets[1:])]


def example_clips() -> list[tuple[np.ndarray, str]]:
    texts = {}
    for pair in load_example_pairs():
        texts[pair["query"]] = pair["query_text"]
        texts[pair["response"]] = pair["response_text"]
    out = []
    for name, text in sorted(texts.items()):
        decoded = decode_audio(name, (examples_dir() / "audio" / name).read_bytes(), AudioLimits())
        out.append((decoded.samples, text))
    return out


def _words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


def test_transcribes_the_bundled_speech(asr):
    clips = example_clips()
    transcripts = asr.transcribe(features_of([c for c, _ in clips]))
    for (_, text), transcript in zip(clips, transcripts):
        overlap = len(_words(text) & _words(transcript.text)) / len(_words(text))
        assert overlap >= 0.6, (text, transcript.text)


def test_window_is_a_multiple_of_the_step_and_at_most_30_s(asr):
    assert asr.window_frames(1) == 1000 and asr.window_frames(1000) == 1000
    assert asr.window_frames(1001) == 2000 and asr.window_frames(2999) == 3000 and asr.window_frames(3000) == 3000


def test_transcripts_do_not_depend_on_batch_neighbours_or_order(asr):
    clips = [c for c, _ in example_clips()]
    long_clip = np.concatenate([clips[0], np.zeros(16_000 * 9, np.float32), clips[1]])  # 2nd window size
    very_long = np.concatenate([clips[2]] * 12)  # > 30 s: two chunks
    batch = [clips[3], long_clip, clips[0], very_long, clips[5]]
    together = [t.text for t in asr.transcribe(features_of(batch))]
    alone = [asr.transcribe(features_of([c]))[0].text for c in batch]
    reversed_batch = [t.text for t in asr.transcribe(features_of(batch[::-1]))][::-1]
    assert together == alone == reversed_batch
    assert together[3].lower().count("promotion") + together[3].lower().count("parcel") + together[3].lower().count("job") >= 2


def test_silence_transcribes_to_nothing(asr):
    rng = np.random.default_rng(0)
    silence = (1e-4 * rng.standard_normal(32_000)).astype(np.float32)
    assert asr.transcribe(features_of([silence]))[0].text == ""
