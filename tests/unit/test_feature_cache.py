"""The training feature cache: one extraction per set of clips, whatever form their paths take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path
from judge_service.judge.training import features
from judge_service.judge.training.records import ClipRecord
from judge_service.testing import voiced_clip


class _CountingTranscriber:
    """The real transcriber, counting encoder passes."""

    def __init__(self) -> None:
        self.inner = WhisperTranscriber(default_whisper_model_path(), threads=1)
        self.embedding_dim = self.inner.embedding_dim
        self.n_mels = self.inner.n_mels
        self.calls = 0

    def encode_and_transcribe(self, *args, **kwargs):
        self.calls += 1
        return self.inner.encode_and_transcribe(*args, **kwargs)


def _records(directory: Path) -> list[ClipRecord]:
    return [ClipRecord(path=directory / f"clip{i}.flac", source="polytone", group="voice:a",
                       labels={}, text="hello there") for i in range(2)]


def test_relative_and_absolute_data_dirs_share_one_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        sf.write(data / f"clip{i}.flac", voiced_clip(1.0, f0_hz=120.0 + 40 * i, seed=i), 16_000, subtype="PCM_16")
    monkeypatch.chdir(tmp_path)
    transcriber = _CountingTranscriber()
    emb_rel, pros_rel = features.extract(_records(Path("data")), transcriber, tmp_path / "cache")
    assert transcriber.calls == 1 and emb_rel.shape == (2, transcriber.embedding_dim)
    emb_abs, pros_abs = features.extract(_records(data), transcriber, tmp_path / "cache")
    assert transcriber.calls == 1  # served from the cache written by the relative run
    np.testing.assert_array_equal(emb_rel, emb_abs)
    np.testing.assert_array_equal(pros_rel, pros_abs)
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1
    # A changed clip is a new key: extracted again.
    sf.write(data / "clip1.flac", voiced_clip(1.5, seed=3), 16_000, subtype="PCM_16")
    features.extract(_records(data), transcriber, tmp_path / "cache")
    assert transcriber.calls == 2
