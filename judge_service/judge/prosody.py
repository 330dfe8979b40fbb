"""Measured prosody of a clip: F0 (YIN), energy, pauses and speaking rate.

Pure signal processing, deterministic, no learned parts. ``yin_f0_hz`` is the vectorised fast
path; ``yin_f0_hz_reference`` beside it is the textbook per-frame loop it is tested against.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch

SAMPLE_RATE_HZ = 16_000
FRAME_HOP_SAMPLES = 160
"""10 ms between analysis frames."""
YIN_WINDOW_SAMPLES = 512
"""32 ms integration window of the YIN difference function."""
F0_MIN_HZ = 60.0
F0_MAX_HZ = 600.0
"""Search range: low male voices to high child voices."""
YIN_THRESHOLD = 0.1
"""Cumulative-mean-normalised difference below which a lag counts as a period (de Cheveigne
& Kawahara 2002 use 0.1-0.15; 0.1 separated LibriSpeech genders best here)."""
YIN_FALLBACK_THRESHOLD = 0.35
"""When no dip crosses ``YIN_THRESHOLD`` (expressive, breathy or synthetic speech), YIN takes
the global minimum; we accept it as voiced below this value (librosa's yin always accepts it)."""
ACTIVITY_RANGE_DB = 30.0
"""A frame is active (speech, not pause) when within this many dB of the clip's loudest frame."""
MIN_VOICED_FRAMES = 5
SILENCE_DBFS = -70.0
"""Frames quieter than this are never voiced, however periodic (digital silence, dither)."""

_TAU_MIN = int(SAMPLE_RATE_HZ / F0_MAX_HZ)  # 26 samples
_TAU_MAX = int(math.ceil(SAMPLE_RATE_HZ / F0_MIN_HZ))  # 267 samples
_FRAME_SAMPLES = YIN_WINDOW_SAMPLES + _TAU_MAX + 1
_FFT_SIZE = 1296  # >= frame + window - 1 = 1291 (no wrap-around); 2^4 * 3^4 is FFT-friendly


@dataclass(frozen=True)
class Prosody:
    """Acoustic measurements of one clip. ``None`` where a quantity is undefined (no voicing,
    no transcript)."""

    duration_s: float
    speech_duration_s: float
    pause_fraction: float
    voiced_fraction: float
    f0_median_hz: float | None
    f0_p5_hz: float | None
    f0_p95_hz: float | None
    f0_range_semitones: float | None
    f0_std_semitones: float | None
    energy_dbfs: float
    energy_range_db: float
    speaking_rate_syllables_per_s: float | None
    # Style contour (``STYLE_CONTOUR_FIELDS``): the shape of the melody and the voice quality,
    # the cues PolyTone's emotion and sarcasm renderings differ in beyond level and range
    # (final rise, fall, rise-fall, tremor, vocal effort, breathiness). 0.0 where undefined.
    f0_segment_1_st: float = 0.0
    f0_segment_2_st: float = 0.0
    f0_segment_3_st: float = 0.0
    f0_segment_4_st: float = 0.0
    f0_segment_5_st: float = 0.0
    f0_slope_st_per_s: float = 0.0
    f0_final_slope_st_per_s: float = 0.0
    f0_micro_std_st: float = 0.0
    f0_jitter_st: float = 0.0
    aperiodicity: float = 0.0
    spectral_tilt_db: float = 0.0
    high_band_db: float = 0.0
    energy_std_db: float = 0.0
    energy_slope_db_per_s: float = 0.0
    voiced_run_mean_s: float = 0.0
    final_run_ratio: float = 0.0

    def to_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def frame_energy_db(samples: torch.Tensor) -> torch.Tensor:
    """RMS level in dBFS of 25 ms frames every 10 ms, shape ``(num_frames,)``."""
    frame = 400
    x = samples.to(torch.float64)
    if x.shape[0] < frame:
        x = torch.nn.functional.pad(x, (0, frame - x.shape[0]))
    frames = x.unfold(0, frame, FRAME_HOP_SAMPLES)
    rms = frames.square().mean(dim=1).sqrt()
    return 20.0 * torch.log10(torch.clamp(rms, min=1e-10))


def active_frames(energy_db: torch.Tensor) -> torch.Tensor:
    """Which frames of ``frame_energy_db`` are speech rather than pause: bool ``(num_frames,)``."""
    return energy_db >= energy_db.max() - ACTIVITY_RANGE_DB


def _seconds_of(frames: torch.Tensor) -> float:
    """Duration of the ``True`` frames of a bool ``(num_frames,)`` mask, 10 ms each."""
    return float(frames.sum()) * FRAME_HOP_SAMPLES / SAMPLE_RATE_HZ


def speech_duration_s(samples: np.ndarray) -> float:
    """Seconds of active frames of a mono 16 kHz clip ``(num_samples,)``: the denominator of
    the speaking rate (``measure_prosody`` computes the same on its way)."""
    energy = frame_energy_db(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
    return _seconds_of(active_frames(energy))


def _difference_frames(samples: torch.Tensor) -> torch.Tensor:
    """YIN difference function d(tau) for tau in [0, TAU_MAX], shape ``(num_frames, TAU_MAX+1)``."""
    x = samples.to(torch.float64)
    if x.shape[0] < _FRAME_SAMPLES:
        x = torch.nn.functional.pad(x, (0, _FRAME_SAMPLES - x.shape[0]))
    frames = x.unfold(0, _FRAME_SAMPLES, FRAME_HOP_SAMPLES)  # (F, L)
    window = frames[:, :YIN_WINDOW_SAMPLES]
    # r(tau) = sum_j window[j] * frames[j + tau], by FFT cross-correlation.
    spec_full = torch.fft.rfft(frames, n=_FFT_SIZE)
    spec_win = torch.fft.rfft(window, n=_FFT_SIZE)
    corr = torch.fft.irfft(spec_full * spec_win.conj(), n=_FFT_SIZE)[:, : _TAU_MAX + 1]
    # Energies of window-length slices starting at each tau.
    cumsq = torch.nn.functional.pad(frames.square().cumsum(dim=1), (1, 0))
    taus = torch.arange(_TAU_MAX + 1)
    energy_tau = cumsq[:, taus + YIN_WINDOW_SAMPLES] - cumsq[:, taus]
    energy_0 = energy_tau[:, :1]
    return torch.clamp(energy_0 + energy_tau - 2.0 * corr, min=0.0)


def _cmnd(diff: torch.Tensor) -> torch.Tensor:
    """Cumulative mean normalised difference d'(tau); d'(0) = 1."""
    taus = torch.arange(1, diff.shape[1], dtype=diff.dtype)
    running_mean = diff[:, 1:].cumsum(dim=1) / taus
    out = torch.ones_like(diff)
    out[:, 1:] = diff[:, 1:] / torch.clamp(running_mean, min=1e-12)
    return out


def yin_f0_hz(samples: torch.Tensor) -> torch.Tensor:
    """F0 per 10 ms frame in Hz (0 where unvoiced), shape ``(num_frames,)``. Vectorised YIN."""
    return _yin(samples)[0]


def _yin(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F0 in Hz, 0 where unvoiced; the normalised difference at the chosen lag, i.e. YIN's
    aperiodicity, 1 where unvoiced), each ``(num_frames,)`` float64."""
    cmnd = _cmnd(_difference_frames(samples))
    lag = cmnd[:, _TAU_MIN : _TAU_MAX]
    prev = cmnd[:, _TAU_MIN - 1 : _TAU_MAX - 1]
    nxt = cmnd[:, _TAU_MIN + 1 : _TAU_MAX + 1]
    is_dip = (lag < YIN_THRESHOLD) & (lag < prev) & (lag <= nxt)
    has_dip = is_dip.any(dim=1)
    first = torch.argmax(is_dip.to(torch.int8), dim=1) + _TAU_MIN
    global_min, global_at = lag.min(dim=1)
    fallback = ~has_dip & (global_min < YIN_FALLBACK_THRESHOLD)
    first = torch.where(fallback, global_at + _TAU_MIN, first)
    has_dip = has_dip | fallback
    rows = torch.arange(cmnd.shape[0])
    left, mid, right = cmnd[rows, first - 1], cmnd[rows, first], cmnd[rows, first + 1]
    denom = left - 2.0 * mid + right
    shift = torch.where(denom.abs() > 1e-12, 0.5 * (left - right) / denom, torch.zeros_like(denom))
    tau = first.to(torch.float64) + torch.clamp(shift, -1.0, 1.0)
    f0 = _gate_by_activity(torch.where(has_dip, SAMPLE_RATE_HZ / tau, torch.zeros_like(tau)), samples)
    aperiodicity = torch.where(f0 > 0, torch.clamp(mid, 0.0, 1.0), torch.ones_like(mid))
    return f0, aperiodicity


def yin_f0_hz_reference(samples: np.ndarray) -> np.ndarray:
    """Textbook YIN, one frame at a time in numpy; same output as ``yin_f0_hz``."""
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < _FRAME_SAMPLES:
        x = np.pad(x, (0, _FRAME_SAMPLES - x.shape[0]))
    num_frames = (x.shape[0] - _FRAME_SAMPLES) // FRAME_HOP_SAMPLES + 1
    f0 = np.zeros(num_frames)
    for i in range(num_frames):
        frame = x[i * FRAME_HOP_SAMPLES : i * FRAME_HOP_SAMPLES + _FRAME_SAMPLES]
        w = frame[:YIN_WINDOW_SAMPLES]
        diff = np.array(
            [np.sum((w - frame[tau : tau + YIN_WINDOW_SAMPLES]) ** 2) for tau in range(_TAU_MAX + 1)]
        )
        cmnd = np.ones_like(diff)
        running = np.cumsum(diff[1:]) / np.arange(1, _TAU_MAX + 1)
        cmnd[1:] = diff[1:] / np.maximum(running, 1e-12)
        chosen = None
        for tau in range(_TAU_MIN, _TAU_MAX):
            if cmnd[tau] < YIN_THRESHOLD and cmnd[tau] < cmnd[tau - 1] and cmnd[tau] <= cmnd[tau + 1]:
                chosen = tau
                break
        if chosen is None:
            best = _TAU_MIN + int(np.argmin(cmnd[_TAU_MIN:_TAU_MAX]))
            chosen = best if cmnd[best] < YIN_FALLBACK_THRESHOLD else None
        if chosen is not None:
            tau = chosen
            denom = cmnd[tau - 1] - 2 * cmnd[tau] + cmnd[tau + 1]
            shift = 0.5 * (cmnd[tau - 1] - cmnd[tau + 1]) / denom if abs(denom) > 1e-12 else 0.0
            f0[i] = SAMPLE_RATE_HZ / (tau + min(max(shift, -1.0), 1.0))
    return _gate_by_activity(torch.from_numpy(f0), torch.from_numpy(x[: samples.shape[0]])).numpy()


def _gate_by_activity(f0: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Zero the F0 of frames far below the clip's loudest frame (noise, breath, silence)."""
    energy = frame_energy_db(samples)
    n = min(f0.shape[0], energy.shape[0])
    active = torch.zeros_like(f0, dtype=torch.bool)
    active[:n] = (energy[:n] >= energy.max() - ACTIVITY_RANGE_DB) & (energy[:n] > SILENCE_DBFS)
    return torch.where(active, f0, torch.zeros_like(f0))


_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def count_syllables(text: str) -> int:
    """Approximate English syllables: vowel groups per word, a final silent 'e' dropped, at
    least one per word. Numbers count one per digit."""
    total = 0
    for word in re.findall(r"[a-z]+|\d", text.lower()):
        if word.isdigit():
            total += 1
            continue
        groups = len(_VOWEL_GROUPS.findall(word))
        if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
            groups -= 1
        total += max(groups, 1)
    return total


def syllable_rate(syllables: float, speech_duration_s: float) -> float | None:
    """Syllables per speech second (at least 0.1 s of speech assumed); ``None`` without speech."""
    if speech_duration_s <= 0:
        return None
    return syllables / max(speech_duration_s, 0.1)


def measure_prosody(samples: np.ndarray, transcript: str | None) -> Prosody:
    """Prosody of a mono 16 kHz float32 clip ``(num_samples,)``; ``transcript`` gives the rate."""
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    duration_s = x.shape[0] / SAMPLE_RATE_HZ
    energy = frame_energy_db(x)
    active = active_frames(energy)
    speech_s = _seconds_of(active)
    active_db = energy[active]
    f0, aperiodicity = _yin(x)
    voiced = f0[f0 > 0]
    if voiced.numel() >= MIN_VOICED_FRAMES:
        semitones = 12.0 * torch.log2(voiced / 100.0)
        p5, p50, p95 = (float(torch.quantile(voiced, q)) for q in (0.05, 0.5, 0.95))
        f0_stats = dict(
            f0_median_hz=p50,
            f0_p5_hz=p5,
            f0_p95_hz=p95,
            f0_range_semitones=12.0 * math.log2(p95 / p5),
            # Robust spread (1.4826 x median absolute deviation = std for a normal
            # distribution): a few octave errors of the tracker must not read as "lively".
            f0_std_semitones=float(1.4826 * (semitones - semitones.median()).abs().median()),
        )
    else:
        f0_stats = dict.fromkeys(
            ("f0_median_hz", "f0_p5_hz", "f0_p95_hz", "f0_range_semitones", "f0_std_semitones")
        )
    rate = syllable_rate(count_syllables(transcript), speech_s) if transcript else None
    # Mean power over active frames, in dB (not the mean of dB values).
    energy_dbfs = float(10.0 * torch.log10(torch.mean(10.0 ** (active_db / 10.0))))
    return Prosody(
        duration_s=duration_s,
        speech_duration_s=speech_s,
        pause_fraction=1.0 - float(active.float().mean()),
        voiced_fraction=float((f0 > 0).float().mean()) if f0.numel() else 0.0,
        energy_dbfs=energy_dbfs,
        energy_range_db=float(torch.quantile(active_db, 0.95) - torch.quantile(active_db, 0.05)),
        speaking_rate_syllables_per_s=rate,
        **f0_stats,
        **style_contour(x, f0, aperiodicity, energy, active),
    )


STYLE_CONTOUR_FIELDS: tuple[str, ...] = (
    "f0_segment_1_st", "f0_segment_2_st", "f0_segment_3_st", "f0_segment_4_st", "f0_segment_5_st",
    "f0_slope_st_per_s", "f0_final_slope_st_per_s", "f0_micro_std_st", "f0_jitter_st", "aperiodicity",
    "spectral_tilt_db", "high_band_db", "energy_std_db", "energy_slope_db_per_s", "voiced_run_mean_s",
    "final_run_ratio",
)
"""``Prosody`` fields measured by ``style_contour``, in the order the analysers read them."""

CONTOUR_SEGMENTS = 5
FINAL_PART = 0.3
"""The final part of the voiced span (sarcasm's lengthened, rise-fall ending; surprise's rise)."""
MICRO_SMOOTHING_FRAMES = 25
"""250 ms local linear trend: what is left of log F0 around it is tremor (4-9 Hz) and jitter."""
MIN_RUN_FRAMES = 3
_SPECTRUM_FFT = 512
_BANDS_HZ = {"low": (100.0, 1000.0), "mid": (1000.0, 4000.0), "high": (4000.0, 8000.0)}


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``t`` (0 for fewer than 3 points or no spread)."""
    if t.size < 3 or np.ptp(t) <= 0:
        return 0.0
    tc = t - t.mean()
    return float((tc * (y - y.mean())).sum() / (tc * tc).sum())


def _local_linear_trend(y: np.ndarray, window: int) -> np.ndarray:
    """At each point, the value of the least-squares line through the ``window`` points centred
    on it (fewer at the edges). Unlike a moving average it follows a glide to the end of a run,
    so only movement faster than the window (tremor, jitter) is left in ``y - trend``."""
    n = y.size
    i = np.arange(n, dtype=np.float64)
    half = window // 2
    lo, hi = np.maximum(np.arange(n) - half, 0), np.minimum(np.arange(n) + half + 1, n)

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[hi] - c[lo]

    count, s_t, s_tt, s_y, s_ty = (window_sum(v) for v in (np.ones(n), i, i * i, y, i * y))
    denominator = count * s_tt - s_t * s_t
    slope = np.where(denominator > 1e-9, (count * s_ty - s_t * s_y) / np.where(denominator > 1e-9, denominator, 1.0), 0.0)
    return (s_y - slope * s_t) / count + slope * i


def _voiced_runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) frame ranges of consecutive voiced frames."""
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def style_contour(
    samples: torch.Tensor, f0_hz: torch.Tensor, aperiodicity: torch.Tensor, energy_db: torch.Tensor,
    active: torch.Tensor,
) -> dict[str, float]:
    """The ``STYLE_CONTOUR_FIELDS`` of one clip, from the 10 ms tracks ``measure_prosody`` has:
    F0 (Hz, 0 unvoiced), YIN aperiodicity, frame energy (dBFS) and activity (bool).

    * ``f0_segment_k_st``: median log F0 (semitones) of the k-th fifth of the voiced span minus
      the utterance median: the melody's shape (rise, fall, rise-fall) independent of the voice.
    * slopes in semitones per second over all voiced frames and over the final 30 %.
    * ``f0_micro_std_st``: std of log F0 around its 250 ms local linear trend within voiced runs
      (tremor and jitter); ``f0_jitter_st``: median |frame-to-frame change|.
    * ``aperiodicity``: median YIN difference at the chosen lag in voiced frames (breathy > modal).
    * ``spectral_tilt_db`` / ``high_band_db``: power in 1-4 kHz / 4-8 kHz against 0.1-1 kHz over
      voiced frames (vocal effort brightens, breath adds high-band noise).
    * energy spread and slope over active frames; mean voiced-run length in seconds and the
      final 30 %'s mean run length against the whole (final lengthening).
    """
    out = dict.fromkeys(STYLE_CONTOUR_FIELDS, 0.0)
    n = min(f0_hz.shape[0], energy_db.shape[0], active.shape[0])
    f0 = f0_hz[:n].numpy()
    energy = energy_db[:n].numpy()
    is_active = active[:n].numpy()
    frame_s = FRAME_HOP_SAMPLES / SAMPLE_RATE_HZ
    times = np.arange(n) * frame_s
    if is_active.sum() >= 3:
        out["energy_std_db"] = float(energy[is_active].std())
        out["energy_slope_db_per_s"] = _slope(times[is_active], energy[is_active])
    voiced = f0 > 0
    if voiced.sum() < MIN_VOICED_FRAMES:
        return out
    st = np.where(voiced, 12.0 * np.log2(np.maximum(f0, 1e-9) / 100.0), 0.0)
    median = float(np.median(st[voiced]))
    idx = np.flatnonzero(voiced)
    first, last = int(idx[0]), int(idx[-1]) + 1
    bounds = np.linspace(first, last, CONTOUR_SEGMENTS + 1).round().astype(int)
    for k in range(CONTOUR_SEGMENTS):
        seg = st[bounds[k] : bounds[k + 1]][voiced[bounds[k] : bounds[k + 1]]]
        if seg.size:
            out[f"f0_segment_{k + 1}_st"] = float(np.median(seg)) - median
    out["f0_slope_st_per_s"] = _slope(times[voiced], st[voiced])
    final_start = first + int((1.0 - FINAL_PART) * (last - first))
    final = voiced & (np.arange(n) >= final_start)
    out["f0_final_slope_st_per_s"] = _slope(times[final], st[final])
    runs = [(a, b) for a, b in _voiced_runs(voiced) if b - a >= MIN_RUN_FRAMES]
    residuals, steps = [], []
    for a, b in runs:
        run = st[a:b]
        residuals.append(run - _local_linear_trend(run, MICRO_SMOOTHING_FRAMES))
        steps.append(np.abs(np.diff(run)))
    if residuals:
        out["f0_micro_std_st"] = float(np.concatenate(residuals).std())
        out["f0_jitter_st"] = float(np.median(np.concatenate(steps)))
        lengths = np.array([b - a for a, b in runs], dtype=np.float64) * frame_s
        out["voiced_run_mean_s"] = float(lengths.mean())
        final_lengths = np.array([b - a for a, b in runs if a >= final_start], dtype=np.float64) * frame_s
        if final_lengths.size:
            out["final_run_ratio"] = float(final_lengths.mean() / lengths.mean())
    out["aperiodicity"] = float(np.median(aperiodicity[:n].numpy()[voiced]))
    # Band powers of the voiced frames (25 ms Hann windows on the same 10 ms grid).
    x = samples.to(torch.float64)
    if x.shape[0] >= 400:
        spec = torch.stft(x, _SPECTRUM_FFT, FRAME_HOP_SAMPLES, 400, torch.hann_window(400, dtype=torch.float64),
                          center=False, return_complex=True).abs().square().T.numpy()  # (frames, bins)
        m = min(spec.shape[0], n)
        frames = spec[:m][voiced[:m]]
        if frames.shape[0]:
            freqs = np.fft.rfftfreq(_SPECTRUM_FFT, 1.0 / SAMPLE_RATE_HZ)
            power = {name: frames[:, (freqs >= lo) & (freqs < hi)].sum() + 1e-12 for name, (lo, hi) in _BANDS_HZ.items()}
            out["spectral_tilt_db"] = float(10.0 * np.log10(power["mid"] / power["low"]))
            out["high_band_db"] = float(10.0 * np.log10(power["high"] / power["low"]))
    return out
