"""The audio decoder under hostile bytes, CI size (~300 hypothesis examples): every input
decodes to a finite 16 kHz mono clip or raises a ``JudgeError``. The full run (10,000+ inputs,
time and memory watch, decompression bombs) is ``scripts/hostile/fuzz_audio_decoder.py``.

The decoder bugs that run found (gigabyte resampling kernels at rates coprime to 16 kHz,
decompression bombs, finite samples that overflow to inf) are fixed; their reproducers below
guard the fixes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge_service.audio.decode import AudioLimits, decode_audio, decode_base64_audio
from judge_service.errors import JudgeError
from scripts.hostile.audio_mutations import STRATEGIES, wav_bytes
from scripts.hostile.fuzz_audio_decoder import output_problem

REPO_ROOT = Path(__file__).resolve().parents[2]
LIMITS = AudioLimits()


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_every_hostile_input_decodes_to_a_valid_clip_or_raises_a_judge_error(data):
    kind = data.draw(st.sampled_from(sorted(STRATEGIES)), label="kind")
    payload = data.draw(STRATEGIES[kind], label="input")
    if isinstance(payload, str):
        try:
            decoded = decode_base64_audio("fuzz", payload, LIMITS)
        except JudgeError:
            return
    else:
        try:
            decoded = decode_audio("fuzz", payload, LIMITS)
        except JudgeError:
            return
    assert output_problem(decoded, LIMITS) is None


def _run_isolated(code: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose address space is capped at 768 MB above its
    size after imports, so a runaway allocation fails there instead of loading this machine."""
    prelude = textwrap.dedent("""
        import io, resource, time
        import numpy as np, soundfile as sf
        from judge_service.audio.decode import AudioLimits, decode_audio
        from judge_service.errors import JudgeError
        def status_mb(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
        resource.setrlimit(resource.RLIMIT_AS, ((status_mb("VmPeak") + 768) << 20, resource.RLIM_INFINITY))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.parametrize("rate_hz", [4_001, 191_999])
def test_a_sample_rate_coprime_to_16khz_decodes_cheaply(rate_hz):
    done = _run_isolated(f"""
        import struct
        rate = {rate_hz}
        pcm = bytes([128]) * int(rate * 0.11)  # 0.11 s of 8-bit silence, just over the minimum
        fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
        wav = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
        started = time.perf_counter()
        try:
            decode_audio("x", wav, AudioLimits())
        except JudgeError:
            pass
        assert time.perf_counter() - started < 0.5, "decoding took over 0.5 s"
    """)
    assert done.returncode == 0, done.stderr[-2000:]


def test_many_channels_of_silence_do_not_take_hundreds_of_megabytes():
    done = _run_isolated("""
        buffer = io.BytesIO()
        with sf.SoundFile(buffer, "w", 192_000, 8, format="FLAC", subtype="PCM_16") as handle:
            silence = np.zeros((192_000, 8), dtype=np.float32)
            for _ in range(59):
                handle.write(silence)
        data = buffer.getvalue()
        open("/proc/self/clear_refs", "w").write("5")
        before = status_mb("VmHWM")
        try:
            decode_audio("x", data, AudioLimits())  # refused from its header (decoding budget)
        except JudgeError:
            pass
        grown = status_mb("VmHWM") - before
        assert grown < 256, f"decoding {len(data)} bytes raised peak RSS by {grown} MB"
    """)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(("channels", "rate_hz"), [(2, 16_000), (1, 22_050)])
def test_huge_float_samples_never_decode_to_inf(channels, rate_hz):
    samples = np.full((int(rate_hz * 0.2), channels), 3.0e38 if channels == 2 else 3.4e38, dtype="<f4")
    data = wav_bytes(3, channels, rate_hz, 32, samples.tobytes())
    try:
        decoded = decode_audio("x", data, LIMITS)
    except JudgeError:
        return
    assert output_problem(decoded, LIMITS) is None
