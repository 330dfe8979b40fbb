"""Audio decoding and validation: every bad input gets its own typed error."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from judge_service.audio import AudioLimits, decode_audio, decode_base64_audio
from judge_service.errors import (
    AudioEmptyError,
    AudioFormatError,
    AudioNonFiniteError,
    AudioSampleRateError,
    AudioTooLongError,
    AudioTooShortError,
    AudioUnreadableError,
    InvalidBase64Error,
)
from judge_service.testing import b64, encode_audio, voiced_clip

LIMITS = AudioLimits(min_duration_s=0.1, max_duration_s=5.0)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_accepted_formats_decode_to_16k_mono(fmt):
    data = encode_audio(voiced_clip(1.0, sample_rate_hz=16_000), 16_000, fmt)
    decoded = decode_audio("c", data, LIMITS)
    assert decoded.clip.sample_rate_hz == 16_000
    assert decoded.clip.source_format == fmt.lower()
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert abs(decoded.clip.duration_s - 1.0) < 0.01
    assert decoded.clip.num_samples == decoded.samples.shape[0]


@pytest.mark.parametrize("rate_hz", [8_000, 22_050, 44_100, 48_000])
def test_other_rates_are_resampled(rate_hz):
    data = encode_audio(voiced_clip(1.0, sample_rate_hz=rate_hz), rate_hz)
    decoded = decode_audio("c", data, LIMITS)
    assert decoded.clip.source_sample_rate_hz == rate_hz
    assert decoded.clip.sample_rate_hz == 16_000
    assert abs(decoded.clip.num_samples - 16_000) <= 1


def test_resampling_keeps_the_pitch():
    from judge_service.judge.prosody import measure_prosody

    data = encode_audio(voiced_clip(1.0, f0_hz=200.0, sample_rate_hz=44_100), 44_100)
    prosody = measure_prosody(decode_audio("c", data, LIMITS).samples, None)
    assert abs(prosody.f0_median_hz - 200.0) < 8.0


def test_multichannel_is_downmixed_by_mean():
    mono = voiced_clip(0.5)
    stereo = np.stack([mono, np.zeros_like(mono)], axis=1)
    decoded = decode_audio("c", encode_audio(stereo, 16_000, "WAV", "FLOAT"), LIMITS)
    assert decoded.clip.source_channels == 2
    np.testing.assert_allclose(decoded.samples, mono / 2, atol=1e-7)
    six = np.repeat(mono[:, None], 6, axis=1)
    assert decode_audio("c", encode_audio(six, 16_000, "WAV", "FLOAT"), LIMITS).clip.source_channels == 6


def test_same_pcm_in_wav_and_flac_has_the_same_hash():
    # int16 samples: libsndfile rounds float->PCM16 differently for WAV and FLAC writers.
    samples = (voiced_clip(0.7) * 32767).astype(np.int16)
    wav = decode_audio("a", encode_audio(samples, 16_000, "WAV"), LIMITS)
    flac = decode_audio("b", encode_audio(samples, 16_000, "FLAC"), LIMITS)
    assert wav.clip.sha256 == flac.clip.sha256
    other = decode_audio("c", encode_audio(samples[::-1].copy(), 16_000, "WAV"), LIMITS)
    assert other.clip.sha256 != wav.clip.sha256


def _float_wav(samples: np.ndarray) -> bytes:
    return encode_audio(samples.astype(np.float32), 16_000, "WAV", "FLOAT")


def _aiff() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, voiced_clip(0.5), 16_000, format="AIFF")
    return buffer.getvalue()


def _wav_header_only() -> bytes:
    return encode_audio(np.zeros(0, dtype=np.float32), 16_000, "WAV")


def _long_header_claim() -> bytes:
    # A valid WAV header that claims 10 minutes of audio, followed by 1 s of data.
    data = encode_audio(voiced_clip(1.0), 16_000, "WAV")
    claimed_bytes = 16_000 * 600 * 2
    return data[:40] + struct.pack("<I", claimed_bytes) + data[44:]


BAD_INPUTS = [
    ("empty bytes", b"", AudioEmptyError),
    ("random bytes", bytes(range(256)) * 4, AudioUnreadableError),
    ("truncated header", encode_audio(voiced_clip(0.5), 16_000)[:20], AudioUnreadableError),
    ("text file", b"hello, this is not audio at all\n" * 10, AudioUnreadableError),
    ("aiff container", _aiff(), AudioFormatError),
    ("no samples", _wav_header_only(), AudioEmptyError),
    ("nan samples", _float_wav(np.where(np.arange(8000) == 100, np.nan, voiced_clip(0.5))), AudioNonFiniteError),
    ("inf samples", _float_wav(np.where(np.arange(8000) == 7, np.inf, voiced_clip(0.5))), AudioNonFiniteError),
    ("too short", encode_audio(voiced_clip(0.05), 16_000), AudioTooShortError),
    ("too long", encode_audio(voiced_clip(6.0), 16_000), AudioTooLongError),
    ("2 kHz rate", encode_audio(voiced_clip(1.0, sample_rate_hz=2_000), 2_000), AudioSampleRateError),
]


@pytest.mark.parametrize("name,data,error", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_its_own_error(name, data, error):
    with pytest.raises(error) as raised:
        decode_audio("clip-7", data, LIMITS)
    assert raised.value.message.startswith("clip-7:"), "the message names the clip"
    assert raised.value.error_type != "judge_error"


def test_a_header_that_lies_about_length_costs_only_the_real_data():
    decoded = decode_audio("c", _long_header_claim(), LIMITS)
    assert abs(decoded.clip.duration_s - 1.0) < 0.01


def test_invalid_base64():
    with pytest.raises(InvalidBase64Error):
        decode_base64_audio("c", "this is not base64!!", LIMITS)


def test_base64_without_padding_is_accepted():
    text = b64(encode_audio(voiced_clip(0.5), 16_000)).rstrip("=")
    assert decode_base64_audio("c", text, LIMITS).clip.num_samples == 8000


def test_ogg_over_the_limit_is_refused_while_decoding():
    data = encode_audio(voiced_clip(6.0), 16_000, "OGG")
    with pytest.raises(AudioTooLongError):
        decode_audio("c", data, LIMITS)


# --- bounded cost for hostile files (found by scripts/hostile/fuzz_audio_decoder.py) -----------


def _sines(t: np.ndarray) -> np.ndarray:
    """A band-limited test signal (all partials under 2 kHz, the Nyquist rate of 4001 Hz)."""
    return 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t) + 0.1 * np.sin(2 * np.pi * 1900 * t)


@pytest.mark.parametrize("rate_hz", [4_001, 44_101, 191_999])
def test_fft_resampling_of_an_awkward_rate_matches_the_analytic_signal(rate_hz):
    from judge_service.audio.decode import MAX_POLYPHASE_KERNEL, resample_to_target

    g = np.gcd(rate_hz, 16_000)
    assert (rate_hz // g) * (16_000 // g) > MAX_POLYPHASE_KERNEL  # the FFT path is the one taken
    n = rate_hz  # 1 s
    got = resample_to_target(_sines(np.arange(n) / rate_hz).astype(np.float32), rate_hz)
    assert got.shape == (16_000,)
    expected = _sines(np.arange(16_000) / 16_000)
    interior = slice(800, 15_200)  # the FFT treats the clip as periodic: edges ring
    assert np.max(np.abs(got[interior] - expected[interior])) < 2e-2


def test_fft_resampling_agrees_with_torchaudio_on_a_common_rate():
    import torch
    import torchaudio.functional as AF

    from judge_service.audio.decode import resample_fft

    samples = _sines(np.arange(22_050) / 22_050).astype(np.float32)
    reference = AF.resample(torch.from_numpy(samples), 22_050, 16_000).numpy()
    got = resample_fft(samples, 22_050, 16_000)
    assert got.shape == reference.shape
    assert np.max(np.abs(got[800:-800] - reference[800:-800])) < 1e-2


def test_block_downmix_equals_the_whole_file_mean():
    """Decoding block by block changes nothing: same samples, same hash, as one big read."""
    rng = np.random.default_rng(0)
    stereo = (0.3 * rng.standard_normal((100_000, 3))).astype(np.float32)
    data = encode_audio(stereo, 22_050, "FLAC")
    whole, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    import torch
    import torchaudio.functional as AF

    expected = AF.resample(torch.from_numpy(whole.mean(axis=1, dtype=np.float32)), 22_050, 16_000).numpy()
    decoded = decode_audio("c", data, LIMITS)
    np.testing.assert_array_equal(decoded.samples, expected)


def test_many_channels_at_a_high_rate_are_refused_from_the_header():
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", 192_000, 8, format="FLAC", subtype="PCM_16") as handle:
        handle.write(np.zeros((192_000 * 4, 8), dtype=np.float32))  # 4 s: under the 5 s limit
    with pytest.raises(AudioTooLongError, match="decoding budget"):
        decode_audio("c", buffer.getvalue(), LIMITS)


def test_finite_samples_that_overflow_in_the_downmix_are_refused():
    huge = np.full((3200, 2), 3.0e38, dtype=np.float32)
    data = encode_audio(huge, 16_000, "WAV", subtype="FLOAT")
    with pytest.raises(AudioNonFiniteError, match="overflow"):
        decode_audio("c", data, LIMITS)


def test_error_messages_do_not_leak_buffer_addresses():
    with pytest.raises(AudioUnreadableError) as raised:
        decode_audio("c", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10, LIMITS)
    assert "0x" not in raised.value.message and "BytesIO" not in raised.value.message
