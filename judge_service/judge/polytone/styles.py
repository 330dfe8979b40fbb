"""Speaking styles as prosody transforms: emotions, sarcasm and the reply tones.

A :class:`Style` moves F0 level and spread (contour scaling around the utterance median), adds an
optional global contour shape over the utterance (final rise, fall, rise-fall) and an F0 tremor,
changes tempo (with optional lengthening of the final words), loudness, spectral tilt (vocal
effort: loud speech has relatively more high-frequency energy) and breathiness. The renderer
applies them with WORLD; for espeak-ng voices, level and tempo go through its native ``-p`` and
``-s`` controls instead (``espeak_pitch_delta``), and the rest through WORLD.

Directions follow the acoustic literature's usual findings (Banse & Scherer 1996; Juslin & Laukka
2003 review; Scherer 2003), written beside each style:

- sad: low, flat, slow, soft, dull (steep tilt), falling;
- angry (hot anger): loud, fast, high F0 and high F0 variability, bright (flat tilt);
- fearful: high F0, tremor/irregularity, fast, somewhat breathy;
- disgust: low F0, slow, lengthened, falling;
- surprised: high F0, wide range, rising;
- happy: high, varied, fast-ish, bright;
- sarcastic vs sincere (Cheang & Pell 2008; Rockwell 2000): sarcasm is slower, lower in mean
  F0, with exaggerated, drawn-out pitch movement, here a rise-fall over lengthened final words.

Reply tones (the scenario bank's ``REPLY_TONES``) reuse the same controls: excited = more than
happy; sad-comforting = soft, slow, low, narrow, warm; calm = steady, slightly slow and soft;
serious = low, narrow, falling; child-friendly = high, wide, slow (child-directed speech).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from judge_service.judge.labels import AGES, EMOTIONS, GENDERS, SARCASM

CONTOURS: tuple[str, ...] = ("flat", "rise", "fall", "rise-fall")

ESPEAK_SEMITONES_PER_PITCH_STEP = 0.17
"""espeak-ng's ``-p`` moves the median F0 by ~0.17 semitones per step (measured: -p 20 / 50 / 80
gave 76 / 101 / 138 Hz for en-us)."""


@dataclass(frozen=True)
class Style:
    """One speaking style.

    f0_level: multiplier of the median F0 (1.2 = ~3 semitones up).
    f0_spread: multiplier of F0 movement around the median (log domain; 0.5 = half the range).
    contour: global shape added over the voiced span: ``flat``, ``rise`` (final rise), ``fall``
        (declination to the end) or ``rise-fall`` (a hump over the final ~40 %).
    contour_semitones: size of that shape.
    tremor_hz, tremor_semitones: sinusoidal F0 modulation (fear).
    jitter: std of per-frame log-F0 noise (fraction).
    tempo: speaking-rate multiplier (> 1 faster).
    final_lengthening: extra duration of the last ~30 % of the utterance (0.4 = up to 40 % longer).
    energy_db: loudness against neutral.
    tilt_db_per_octave: spectral tilt change around 1 kHz (> 0 brighter, as in raised effort).
    breathiness: 0..1, aperiodic energy mixed into voiced frames.
    """

    name: str
    f0_level: float = 1.0
    f0_spread: float = 1.0
    contour: str = "flat"
    contour_semitones: float = 0.0
    tremor_hz: float = 0.0
    tremor_semitones: float = 0.0
    jitter: float = 0.0
    tempo: float = 1.0
    final_lengthening: float = 0.0
    energy_db: float = 0.0
    tilt_db_per_octave: float = 0.0
    breathiness: float = 0.0

    def __post_init__(self) -> None:
        if self.contour not in CONTOURS:
            raise ValueError(f"style {self.name!r}: contour must be one of {CONTOURS}, got {self.contour!r}")
        for field in ("f0_level", "f0_spread", "tempo"):
            if getattr(self, field) <= 0:
                raise ValueError(f"style {self.name!r}: {field} must be > 0, got {getattr(self, field)}")
        if not 0.0 <= self.breathiness < 1.0:
            raise ValueError(f"style {self.name!r}: breathiness must be in [0, 1), got {self.breathiness}")

    @property
    def espeak_pitch_delta(self) -> int:
        """Steps to add to espeak-ng's ``-p`` for ``f0_level`` (its native pitch control)."""
        return round(12.0 * math.log2(self.f0_level) / ESPEAK_SEMITONES_PER_PITCH_STEP)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        # Baseline: the voice's own prosody.
        Style("neutral"),
        # High, varied, slightly fast, louder and brighter.
        Style("happy", f0_level=1.15, f0_spread=1.5, contour="rise-fall", contour_semitones=1.0,
              tempo=1.07, energy_db=3.0, tilt_db_per_octave=1.5),
        # High and wide, with a strong final rise.
        Style("surprised", f0_level=1.22, f0_spread=1.6, contour="rise", contour_semitones=4.0,
              tempo=1.0, energy_db=3.0, tilt_db_per_octave=1.0),
        # Low, flat, slow, soft, dull, falling, a little breathy.
        Style("sad", f0_level=0.88, f0_spread=0.45, contour="fall", contour_semitones=2.0, tempo=0.8,
              final_lengthening=0.2, energy_db=-8.0, tilt_db_per_octave=-3.0, breathiness=0.1),
        # Loud, fast, raised and highly variable F0, bright (hot anger).
        Style("angry", f0_level=1.12, f0_spread=1.7, contour="fall", contour_semitones=1.5, tempo=1.12,
              energy_db=6.0, tilt_db_per_octave=4.0),
        # High F0 in a narrow range, trembling and irregular, fast, breathy.
        Style("fearful", f0_level=1.22, f0_spread=0.8, tremor_hz=7.0, tremor_semitones=1.5, jitter=0.02,
              tempo=1.15, energy_db=0.0, breathiness=0.25),
        # Low, slow, drawn out, falling, slightly dull.
        Style("disgust", f0_level=0.85, f0_spread=1.0, contour="fall", contour_semitones=3.0, tempo=0.8,
              final_lengthening=0.45, energy_db=-2.0, tilt_db_per_octave=-1.5),
        # Sarcasm labels.
        Style("sincere", f0_spread=1.05),
        # Slower, lower, exaggerated and drawn-out pitch movement: a rise-fall over lengthened
        # final words.
        Style("sarcastic", f0_level=0.9, f0_spread=1.8, contour="rise-fall", contour_semitones=5.0,
              tempo=0.85, final_lengthening=0.5, energy_db=1.0),
        # Reply tones beyond the labels above.
        Style("excited", f0_level=1.25, f0_spread=1.8, contour="rise-fall", contour_semitones=1.5,
              tempo=1.15, energy_db=5.0, tilt_db_per_octave=2.0),
        Style("sad-comforting", f0_level=0.92, f0_spread=0.7, tempo=0.82, final_lengthening=0.1,
              energy_db=-6.0, tilt_db_per_octave=-2.0, breathiness=0.08),
        Style("calm", f0_level=0.95, f0_spread=0.65, tempo=0.88, energy_db=-4.0, tilt_db_per_octave=-1.0),
        Style("serious", f0_level=0.9, f0_spread=0.6, contour="fall", contour_semitones=1.5, tempo=0.93),
        Style("child-friendly", f0_level=1.18, f0_spread=1.6, contour="rise-fall", contour_semitones=1.5,
              tempo=0.85, final_lengthening=0.15),
    )
}
"""Style name -> :class:`Style`; includes every emotion, sarcasm label and reply tone."""

_NEUTRAL_PROSODY_LABELS = frozenset(AGES) | frozenset(GENDERS)

REPLY_TONE_LABELS: dict[str, dict[str, str]] = {
    "neutral": {"emotion": "neutral", "sarcasm": "sincere"},
    "calm": {"emotion": "neutral", "sarcasm": "sincere"},
    "serious": {"emotion": "neutral", "sarcasm": "sincere"},
    "happy": {"emotion": "happy", "sarcasm": "sincere"},
    "excited": {"emotion": "happy", "sarcasm": "sincere"},
    "child-friendly": {"emotion": "happy", "sarcasm": "sincere"},
    "sad-comforting": {"emotion": "sad", "sarcasm": "sincere"},
    "surprised": {"emotion": "surprised", "sarcasm": "sincere"},
    "angry": {"emotion": "angry", "sarcasm": "sincere"},
    "sarcastic": {"emotion": "neutral", "sarcasm": "sarcastic"},
}
"""Reply tone -> the emotion and sarcasm labels its rendered prosody carries. Excited and
child-friendly are rendered high, wide and varied, i.e. with happy prosody; sad-comforting with
sad prosody (low, slow, soft); calm and serious are narrow but not sad, so neutral."""


def style_for_label(label: str) -> Style:
    """The prosody used to render a query whose style is the dimension label ``label``.

    Emotion and sarcasm labels are styles of their own; age and gender labels are carried by the
    voice, so they get neutral prosody.
    """
    if label in _NEUTRAL_PROSODY_LABELS:
        return STYLES["neutral"]
    if label in STYLES:
        return STYLES[label]
    raise KeyError(f"no style for label {label!r}; known: {sorted(STYLES)} and {sorted(_NEUTRAL_PROSODY_LABELS)}")


def labels_for_style(label: str) -> dict[str, str]:
    """Emotion and sarcasm labels of a clip rendered in style (or tone) ``label``."""
    if label in REPLY_TONE_LABELS:
        return dict(REPLY_TONE_LABELS[label])
    if label in EMOTIONS:
        return {"emotion": label, "sarcasm": "sincere"}
    if label in SARCASM:
        return {"emotion": "neutral", "sarcasm": label}
    if label in _NEUTRAL_PROSODY_LABELS:
        return {"emotion": "neutral", "sarcasm": "sincere"}
    raise KeyError(f"no labels for style {label!r}")
