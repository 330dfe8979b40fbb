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


def test_decoder_depth_rule_matches_ctranslate2(asr):
    """``_new_tokens`` (from one probe at load) says how far a decode can run; check it on
    decodes of real speech that cannot end, at other lengths."""
    encoded = asr._encode(features_of([example_clips()[0][0]])[0][None, :, :1000].numpy())
    for max_length in (5, 6, 17, 40, 448):
        assert asr._decode_to_cap(encoded, max_length) == asr._new_tokens(max_length), max_length
    for new_tokens in (1, 7, 100, asr.max_new_tokens):
        max_length = asr._max_length_for(new_tokens)
        assert asr._new_tokens(max_length) >= new_tokens > asr._new_tokens(max_length - 1)


def test_cut_chunks_do_not_depend_on_batch_neighbours(asr, monkeypatch):
    """Limits small enough that ordinary speech is cut (as a repetition loop is): a clip's whole
    transcript, mean log-probability included, is the same alone and beside longer clips."""
    import judge_service.judge.asr as asr_module

    monkeypatch.setattr(asr_module, "TOKEN_MARGIN", 1)
    monkeypatch.setattr(asr_module, "MAX_TOKENS_PER_SECOND", 2)
    clips = [c for c, _ in example_clips()]
    batch = [clips[0], np.concatenate([clips[1], clips[2]]), clips[3], np.concatenate(clips[2:6])]
    together = asr.transcribe(features_of(batch))
    alone = [asr.transcribe(features_of([c]))[0] for c in batch]
    assert together == alone
    limits = [1 + int(np.ceil(2 * (len(c) // 160) / 100)) for c in batch]
    assert [t.num_tokens for t in together] == limits  # every clip was cut at its own limit
    assert len(set(limits)) >= 3
