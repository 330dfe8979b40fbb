"""Built-in reference systems: known-good and known-bad answers, for sanity checks and ranking tests.

In the order a style-aware judge must rank them:

* ``topline``: the level-5 reference reply for the heard style, spoken in its fitting tone.
* ``neutral_tone``: the same level-5 text in a flat, neutral voice (right content, tone adds nothing).
* ``tone_deaf_cascade``: the paper's Whisper -> text LLM -> TTS pipeline, with no access to style:
  Whisper tiny.en transcribes the query, a text-only responder answers it (nearest scenario-bank
  text by MiniLM cosine; it answers with that scenario's level-4 reply for its first style, the
  same reply whatever the style; below ``MATCH_MIN_COSINE`` it falls back to a generic reply),
  and a neutral voice speaks it. Both renderings of a text get the same reply.
* ``mismatched``: the level-5 reply written for the *contrasting* style of the same text (the
  other item of its contrast group), in that reply's tone.
* ``reversed``: the level-1 reply (cue handled in reverse), in its tone.
* ``silence``: 2 s of digital silence.

Replies are spoken by one system voice (``REPLY_VOICE``, a benchmark voice no analyser trained on)
and cached by content (text, tone, voice, seed, renderer version) under ``cache_dir``, so systems
that say the same thing share one file and a rerun renders nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from benchmark_client.manifest import BenchItem, ReferenceReply
from benchmark_client.rendering import RenderJob, render_all, reply_job
from benchmark_client.systems.base import SystemFailure, SystemResponse

REFERENCE_SYSTEMS = ("topline", "neutral_tone", "tone_deaf_cascade", "mismatched", "reversed", "silence")
"""Reference systems, best first: the order a style-aware judge must reproduce."""
REPLY_VOICE = "piper-joe-bright"
SILENCE_S = 2.0
MATCH_MIN_COSINE = 0.6
GENERIC_REPLY = "Okay, I hear you. Can you tell me a little more about that, so I can help?"


class ReferenceSystem:
    """One of ``REFERENCE_SYSTEMS``; ``prepare`` renders every reply the run needs."""

    def __init__(self, kind: str, cache_dir: str | Path, *, voice: str = REPLY_VOICE, workers: int | None = None) -> None:
        if kind not in REFERENCE_SYSTEMS:
            raise ValueError(f"unknown reference system {kind!r}; one of {REFERENCE_SYSTEMS}")
        self.name = kind
        self.kind = kind
        self.cache_dir = Path(cache_dir)
        self.voice = voice
        self.workers = workers
        self._replies: dict[str, RenderJob] = {}
        self._failures: dict[str, SystemFailure] = {}

    # -- planning --------------------------------------------------------------------------

    def _job(self, text: str, tone: str) -> RenderJob:
        return reply_job(text, tone, self.voice, self.cache_dir)

    def plan(self, items: Sequence[BenchItem], log: Callable[[str], None] = print) -> dict[str, ReferenceReply]:
        """item id -> the reply this system speaks (text and tone); failures go to ``_failures``."""
        plan: dict[str, ReferenceReply] = {}
        if self.kind == "silence":
            return plan
        if self.kind == "tone_deaf_cascade":
            return {item.id: ReferenceReply(4, text, "neutral") for item, text in zip(items, cascade_replies(items, log))}
        groups: dict[str, list[BenchItem]] = {}
        for item in items:
            groups.setdefault(item.contrast_group, []).append(item)
        for item in items:
            try:
                if self.kind == "topline":
                    plan[item.id] = item.reply(5)
                elif self.kind == "neutral_tone":
                    plan[item.id] = ReferenceReply(5, item.reply(5).text, "neutral")
                elif self.kind == "reversed":
                    plan[item.id] = item.reply(1)
                elif self.kind == "mismatched":
                    others = [o for o in groups[item.contrast_group] if o.style != item.style]
                    if not others:
                        raise SystemFailure("no_contrast", f"{item.id}: its contrast group has no other style")
                    plan[item.id] = min(others, key=lambda o: o.id).reply(5)
            except KeyError as exc:
                self._failures[item.id] = SystemFailure("no_reference_reply", str(exc.args[0]))
            except SystemFailure as exc:
                self._failures[item.id] = exc
        return plan

    def prepare(self, items: Sequence[BenchItem], log: Callable[[str], None]) -> None:
        plan = self.plan(items, log)
        self._replies = {item_id: self._job(reply.text, reply.tone) for item_id, reply in plan.items()}
        render_all(list(self._replies.values()), workers=self.workers, log=log)

    # -- answering -------------------------------------------------------------------------

    async def respond(self, item: BenchItem) -> SystemResponse:
        if self.kind == "silence":
            buffer = io.BytesIO()
            sf.write(buffer, np.zeros(int(SILENCE_S * 16_000), np.float32), 16_000, format="WAV", subtype="PCM_16")
            return SystemResponse(audio=buffer.getvalue())
        if item.id in self._failures:
            raise self._failures[item.id]
        job = self._replies.get(item.id)
        if job is None:
            raise SystemFailure("not_prepared", f"{self.name}: item {item.id} was not in prepare()")
        return SystemResponse(path=job.path)

    async def aclose(self) -> None:
        return None


def cascade_replies(items: Sequence[BenchItem], log: Callable[[str], None] = print) -> list[str]:
    """The tone-deaf cascade's text replies: Whisper transcript -> nearest bank text -> its reply."""
    import torch

    from judge_service.audio import AudioLimits, decode_audio
    from judge_service.features import log_mel_spectrogram
    from judge_service.judge.asr import WhisperTranscriber, default_whisper_model_path
    from judge_service.judge.scenario_bank import load_scenarios
    from judge_service.judge.text_embedding import TextEmbedder, default_text_model_path

    asr = WhisperTranscriber(default_whisper_model_path(), threads=2)
    transcripts: list[str] = []
    for start in range(0, len(items), 16):
        batch = items[start : start + 16]
        clips = [decode_audio(i.id, i.audio_path.read_bytes(), AudioLimits(0.1, 60.0)) for i in batch]
        padded, num_frames = log_mel_spectrogram([torch.from_numpy(c.samples) for c in clips], n_mels=asr.n_mels)
        transcripts += [t.text for t in asr.transcribe([padded[i, :, : int(n)] for i, n in enumerate(num_frames)])]
    scenarios = load_scenarios()
    embedder = TextEmbedder(default_text_model_path())
    bank = embedder.encode([s.text for s in scenarios])
    heard = embedder.encode([t or "" for t in transcripts])
    cosine = heard @ bank.T  # rows are L2-normalised
    replies = []
    for row, transcript in zip(cosine, transcripts):
        best = int(np.argmax(row))
        if transcript and row[best] >= MATCH_MIN_COSINE:
            scenario = scenarios[best]
            replies.append(scenario.reply(scenario.styles[0], 4).text)
        else:
            replies.append(GENERIC_REPLY)
    matched = sum(r != GENERIC_REPLY for r in replies)
    log(f"[cascade] transcribed {len(items)} queries; {matched} matched a bank text (cosine >= {MATCH_MIN_COSINE})")
    return replies
