"""Paralinguistic label sets (the paper's four dimensions, plus neutral emotion and senior age)."""

from __future__ import annotations

EMOTIONS = ("neutral", "happy", "surprised", "sad", "angry", "fearful", "disgust")
SARCASM = ("sincere", "sarcastic")
AGES = ("adult", "child", "senior")
GENDERS = ("male", "female")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "emotion": EMOTIONS,
    "sarcasm": SARCASM,
    "age": AGES,
    "gender": GENDERS,
}
"""Dimension name -> allowed labels; the wire schema validates known labels against these."""
