"""Turn a text completion into a spoken response, for text policies scored by a speech judge.

A completion may start with a tone tag, ``"[sad-comforting] I'm so sorry to hear that."``: the
text is spoken in that tone (``REPLY_TONES``: the PolyTone renderer's reply tones), so a policy
that writes text still chooses *how* it is said, and the judge hears both. No tag: neutral.

``SpeakCompletion`` is the default ``audio_from_completion`` hook of the reward adapters. It
renders with the judge package's PolyTone renderer (espeak-ng and Piper voices; needs the
``tts`` extra) and caches clips by (text, tone, voice), so a repeated completion costs nothing.
"""

from __future__ import annotations

import collections
import re
import threading
from typing import Any

import numpy as np

from benchmark_client.rendering import content_seed
from judge_service.judge.polytone.styles import REPLY_TONE_LABELS

REPLY_TONES = tuple(REPLY_TONE_LABELS)
SAMPLE_RATE_HZ = 16_000
_TAG = re.compile(r"^\s*\[(?P<tone>[a-z-]+)\]\s*")


def completion_text(completion: Any) -> str:
    """TRL completions are a string, or (conversational) a list of messages: the last content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def split_tone(text: str) -> tuple[str, str]:
    """``"[happy] Great!"`` -> ``("happy", "Great!")``; an unknown or missing tag -> neutral."""
    match = _TAG.match(text)
    if match and match.group("tone") in REPLY_TONE_LABELS:
        return match.group("tone"), text[match.end():].strip()
    return "neutral", text.strip()


class SpeakCompletion:
    """``hook(completion, **row) -> (samples float32 (n,), 16000)``; thread-safe, cached.

    Args:
        voice: a PolyTone voice name (default: a benchmark voice no analyser trained on).
        cache_size: clips kept in memory.
        empty_text: what to say for an empty completion (the judge needs audio to score).
    """

    def __init__(self, voice: str = "piper-joe-bright", cache_size: int = 512, empty_text: str = "Hmm.") -> None:
        self.voice = voice
        self.cache_size = cache_size
        self.empty_text = empty_text
        self._renderer = None
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[str, str], np.ndarray] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:  # picklable for trainers that pickle reward functions
        return {"voice": self.voice, "cache_size": self.cache_size, "empty_text": self.empty_text}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __call__(self, completion: Any, **row: Any) -> tuple[np.ndarray, int]:
        tone, text = split_tone(completion_text(completion))
        text = text or self.empty_text
        key = (tone, text)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], SAMPLE_RATE_HZ
            if self._renderer is None:
                from judge_service.judge.polytone.render import Renderer

                self._renderer = Renderer()
            from judge_service.judge.polytone.voices import voice_by_name

            # The benchmark's and the GRPO loop's seed rule, so one (text, tone, voice) is one clip everywhere.
            seed = content_seed(text, tone, self.voice)
            samples = self._renderer.render(text, voice_by_name(self.voice), tone, seed).astype(np.float32)
            self._cache[key] = samples
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return samples, SAMPLE_RATE_HZ
