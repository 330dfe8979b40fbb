"""Log-mel throughput in seconds of audio turned into features per second of wall time.

For batches of clips 1-30 s long (fixed seed), times our op (Triton on CUDA, the torch path),
torchaudio ``MelSpectrogram`` on the zero-padded batch, ``torchaudio.compliance.kaldi.fbank``
clip by clip, HF ``WhisperFeatureExtractor`` (its torch path, ``device=``) and a device-to-
device copy of the packed waveform (reads and writes its bytes once: a bandwidth ceiling).

Methods are timed round-robin, one repetition of each in turn, so a load spike on a shared
machine hits them alike; each number is the median over repetitions after a warm-up.  Ratios
are against torchaudio ``MelSpectrogram`` in the same run.  Rows are appended to
``<out-dir>/log_mel.csv`` with device name, commit, UTC date and versions: never compare rows
from different devices.

    python benchmarks/bench_log_mel.py --device cpu --batches 1,8,64 --quick
    python benchmarks/bench_log_mel.py --device cuda --batches 1,8,64,256
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

try:  # optional: without it the torchaudio rows (and the ratios) are left out
    import torchaudio
except ImportError:
    torchaudio = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_service.features import log_mel_spectrogram  # noqa: E402
from judge_service.features.reference import HOP_LENGTH_SAMPLES, N_FFT_SAMPLES, SAMPLE_RATE_HZ  # noqa: E402

MIN_CLIP_S, MAX_CLIP_S = 1.0, 30.0
CSV_FIELDS = [
    "date_utc", "commit", "device", "torch", "torchaudio", "method", "batch", "audio_s",
    "median_s", "audio_s_per_s", "ratio_vs_torchaudio", "reps",
]  # fmt: skip


def make_batch(batch: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """``batch`` float32 clips of uniform random length in [1, 30] s, speech-level noise."""
    gen = torch.Generator().manual_seed(seed * 1000 + batch)
    lengths = torch.randint(
        int(MIN_CLIP_S * SAMPLE_RATE_HZ), int(MAX_CLIP_S * SAMPLE_RATE_HZ) + 1, (batch,), generator=gen
    )
    return [(0.1 * torch.randn(int(n), generator=gen)).to(device) for n in lengths]


def methods(clips: list[torch.Tensor], device: torch.device) -> dict[str, Callable[[], object]]:
    """Name -> zero-argument callable doing one full pass over ``clips``."""
    packed = torch.cat(clips)
    found: dict[str, Callable[[], object]] = {}
    if device.type == "cuda":
        found["ours_triton"] = lambda: log_mel_spectrogram(clips, 80, "padded", impl="triton")
        found["ours_triton_tf32"] = lambda: log_mel_spectrogram(
            clips, 80, "padded", impl="triton", precision="tf32"
        )
    found["ours_torch"] = lambda: log_mel_spectrogram(clips, 80, "padded", impl="torch")
    if torchaudio is not None:
        padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
        mel_spec = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE_HZ, n_fft=N_FFT_SAMPLES, hop_length=HOP_LENGTH_SAMPLES,
            n_mels=80, power=2.0, norm="slaney", mel_scale="slaney",
        ).to(device)  # fmt: skip
        found["torchaudio_melspec"] = lambda: mel_spec(padded)
        found["kaldi_fbank_loop"] = lambda: [
            torchaudio.compliance.kaldi.fbank(
                c[None], num_mel_bins=80, frame_length=25.0, frame_shift=10.0,
                sample_frequency=SAMPLE_RATE_HZ, dither=0.0,
            )
            for c in clips
        ]  # fmt: skip
    extractor = _whisper_extractor()
    if extractor is not None:
        # The extractor takes numpy on the host and returns numpy: that round trip is its cost.
        host_clips = [c.cpu().numpy() for c in clips]
        found["hf_whisper"] = lambda: extractor(
            host_clips, sampling_rate=SAMPLE_RATE_HZ, padding="longest", return_tensors="np",
            device=str(device),
        )  # fmt: skip
    found["d2d_copy"] = lambda: packed.clone()
    return found


TILE_CANDIDATES = [  # (block_frames, block_k, block_freq, num_warps)
    (32, 32, 32, 8), (64, 32, 32, 8), (16, 32, 32, 4), (32, 16, 32, 4), (32, 32, 64, 8), (64, 32, 32, 4),
]  # fmt: skip


def tile_methods(clips: list[torch.Tensor]) -> dict[str, Callable[[], object]]:
    """The Triton launcher on the packed waveform with each candidate tiling (CUDA only)."""
    from judge_service.features import kernels

    packed = torch.cat(clips)
    offsets = torch.tensor([0, *torch.cumsum(torch.tensor([c.shape[0] for c in clips]), 0).tolist()])
    found: dict[str, Callable[[], object]] = {}
    for frames, taps, bins, warps in TILE_CANDIDATES:
        for precision in ("ieee", "tf32"):
            name = f"tiles_{frames}x{taps}x{bins}_w{warps}_{precision}"
            found[name] = lambda f=frames, t=taps, b=bins, w=warps, p=precision: kernels.log_mel_spectrogram_triton(
                packed, offsets, 80, "padded", p, blocks=(f, t, b), num_warps=w
            )
    return found


def _whisper_extractor():
    try:
        from transformers import WhisperFeatureExtractor
    except ImportError:
        return None
    return WhisperFeatureExtractor(feature_size=80)


def time_round_robin(
    fns: dict[str, Callable[[], object]], reps: int, warmup: int, device: torch.device, min_rep_s: float
) -> dict[str, float]:
    """Median seconds per call of each function, repetitions interleaved across functions.

    A repetition loops a fast function enough times to last about ``min_rep_s``, so timer
    resolution and one-off hiccups do not dominate sub-millisecond calls.
    """

    def timed(fn: Callable[[], object], calls: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / calls

    calls: dict[str, int] = {}
    for name, fn in fns.items():
        seconds = min(timed(fn, 1) for _ in range(max(1, warmup)))
        calls[name] = max(1, min(1000, round(min_rep_s / max(seconds, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            samples[name].append(timed(fn, calls[name]))
    return {name: statistics.median(ts) for name, ts in samples.items()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{torch.get_num_threads()} threads"
    except OSError:
        pass
    return platform.processor() or "cpu"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,8,64,256", help="comma-separated batch sizes")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7, quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile-sweep", action="store_true", help="CUDA: also time candidate Triton tilings")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    reps = args.reps or (3 if args.quick else 7)
    warmup = 2  # the first call may compile (Triton) or fault pages in
    skip = {s for s in args.skip.split(",") if s}
    batches = [int(b) for b in args.batches.split(",") if b]

    provenance = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "device": device_name(device),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__ if torchaudio is not None else "absent",
    }
    print(f"# {provenance['device']} | torch {provenance['torch']} | commit {provenance['commit']} | reps {reps}")
    header = f"{'batch':>5} {'audio_s':>8} {'method':<26} {'median_ms':>10} {'audio_s/s':>11} {'vs_torchaudio':>13}"
    print(header)
    rows = []
    for batch in batches:
        clips = make_batch(batch, args.seed, device)
        audio_s = sum(c.shape[0] for c in clips) / SAMPLE_RATE_HZ
        fns = {k: v for k, v in methods(clips, device).items() if k not in skip}
        if args.tile_sweep and device.type == "cuda":
            fns.update(tile_methods(clips))
        medians = time_round_robin(fns, reps, warmup, device, 0.02 if args.quick else 0.05)
        baseline = medians.get("torchaudio_melspec")
        for name, seconds in medians.items():
            ratio = baseline / seconds if baseline else float("nan")
            print(f"{batch:>5} {audio_s:>8.1f} {name:<26} {seconds * 1e3:>10.2f} {audio_s / seconds:>11.0f} {ratio:>13.2f}")
            rows.append({
                **provenance, "method": name, "batch": batch, "audio_s": round(audio_s, 3),
                "median_s": f"{seconds:.6g}", "audio_s_per_s": f"{audio_s / seconds:.6g}",
                "ratio_vs_torchaudio": f"{ratio:.4g}", "reps": reps,
            })  # fmt: skip
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "log_mel.csv"
    new_file = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
    print(f"# appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
