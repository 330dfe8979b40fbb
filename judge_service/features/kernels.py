"""Triton kernels for Whisper's log-mel front end, read straight from a packed waveform.

Importing this module imports Triton; ``ops`` imports it lazily, only when the Triton path is
chosen, so CPU-only installs never pay for it.  Whether the kernels run compiled (CUDA) or in
Triton's CPU interpreter is decided when this module is first imported: set
``TRITON_INTERPRET=1`` before that to run them on CPU tensors (slow; tests only).

Two passes per call, both over a grid ``(frame tiles, clips)``:
  1. ``_log_mel_tile_kernel``: for ``BLOCK_FRAMES`` frames of one clip, gather the 400-sample
     frames from the waveform (reflect padding at the clip's edges computed from indices, no
     frame tensor in memory), windowed DFT as ``tl.dot`` with a cos/sin basis that has the Hann
     window folded in, power, mel projection (``tl.dot`` with the Slaney bank), log10 of the
     clamped power.  Writes the log-mel tile to the output and the tile's maximum to a small
     ``(batch, max_tiles)`` buffer.
  2. ``_log_mel_finalize_kernel``: the clip maximum from the tile maxima (deterministic: no
     atomics, so a clip's features are bit-identical whatever its neighbours), then in place
     ``(max(x, clip_max - 8) + 4) / 4``; writes zeros into padding in the padded layout.

Accuracy (features in Whisper units, against the float64 reference, broadband input):
  - ``"ieee"``: fp32 FMA dots; relative L2 <= 1e-5, max abs <= 1e-4 (measured ~1e-7 / ~3e-6).
  - ``"tf32x3"``: split-float dots on tensor cores; same bounds (emulated ~1e-7 / ~1.5e-5).
  - ``"tf32"``: one tensor-core pass, 10-bit mantissa inputs; relative L2 <= 1e-3, max abs
    <= 3e-2 on broadband input (emulated ~2e-4 / ~6e-3).  Pure tones over a weak noise floor
    lose far more (emulated max abs ~0.15 in the quiet bins): not for scoring.
Strongly tonal input (e.g. one sine 60 dB over noise) costs every fp32 implementation,
``torch.stft`` included, about 3e-5 relative L2 / 4e-4 max abs: rounding of the loud bin
leaks into the quiet ones.
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache

import torch
import triton
import triton.language as tl

from judge_service.features.reference import (
    DYNAMIC_RANGE_LOG10,
    HOP_LENGTH_SAMPLES,
    LOG_CLAMP_POWER,
    LOG_OFFSET,
    LOG_SCALE,
    N_FFT_SAMPLES,
    N_FREQ_BINS,
    SUPPORTED_N_MELS,
    hann_window,
    mel_filters,
)

PRECISIONS = ("ieee", "tf32x3", "tf32")
"""``tl.dot`` input precisions offered; see the module docstring for their error bounds."""
GPU_BLOCKS = (32, 32, 32)
"""(frames, K taps, frequency bins) per tile on a GPU, with ``GPU_NUM_WARPS``: the largest tile
that compiles for sm_90 without register spills in all three precisions (ptxas: 128 registers
for "ieee", 253 for "tf32x3"); 7 frequency chunks x 13 K chunks per tile.  Not yet tuned on a
GPU: ``benchmarks/bench_log_mel.py --tile-sweep`` compares alternatives."""
GPU_NUM_WARPS = 8
INTERPRETER_BLOCKS = (16, 128, 256)
"""Wide tiles for the CPU interpreter, where each Triton op costs Python overhead: numpy does
the looping (1 frequency chunk x 4 K chunks per tile)."""
MAX_CLIPS_PER_LAUNCH = 65_535
"""CUDA's limit on grid axis 1, which indexes clips."""
MEL_PAD = 128
"""Mel columns computed per tile: 80 and 128 both fit, the extra columns are zero filters."""

_N_FFT = tl.constexpr(N_FFT_SAMPLES)
_HOP = tl.constexpr(HOP_LENGTH_SAMPLES)
_HALF = tl.constexpr(N_FFT_SAMPLES // 2)
_LOG_CLAMP = tl.constexpr(LOG_CLAMP_POWER)
_LOG10_2 = tl.constexpr(math.log10(2.0))
_RANGE = tl.constexpr(DYNAMIC_RANGE_LOG10)
_OFFSET = tl.constexpr(LOG_OFFSET)
_INV_SCALE = tl.constexpr(1.0 / LOG_SCALE)


@triton.jit
def _log_mel_tile_kernel(
    wave_ptr,  # float32 (total_samples,)
    sample_off_ptr,  # int64 (batch + 1,)
    frame_off_ptr,  # int64 (batch + 1,)
    basis_ptr,  # float32 (2, K_LOOP, F_PAD): Hann * cos, Hann * sin, zero padded
    mel_fb_ptr,  # float32 (F_PAD, MEL_PAD): Slaney bank transposed, zero padded
    out_ptr,  # float32, padded or packed layout (strides below)
    tile_max_ptr,  # float32 (batch, max_tiles)
    stride_clip,
    stride_frame,
    stride_mel,
    max_tiles,
    N_MELS: tl.constexpr,
    M_PAD: tl.constexpr,
    F_PAD: tl.constexpr,
    K_LOOP: tl.constexpr,
    PACKED: tl.constexpr,
    BLOCK_FRAMES: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_FREQ: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    tile = tl.program_id(0)
    clip = tl.program_id(1)
    s0 = tl.load(sample_off_ptr + clip)
    n = (tl.load(sample_off_ptr + clip + 1) - s0).to(tl.int32)
    f0 = tl.load(frame_off_ptr + clip)
    n_frames = (tl.load(frame_off_ptr + clip + 1) - f0).to(tl.int32)
    first = tile * BLOCK_FRAMES
    if first >= n_frames:
        return
    t = first + tl.arange(0, BLOCK_FRAMES)
    row_ok = t < n_frames
    # A clip with frames has >= 160 samples, so the reflection period is positive.  Positions
    # are shifted by whole periods to be non-negative before %, whose sign rule for negative
    # operands differs between compiled Triton (C) and the interpreter (Python).
    period = 2 * (n - 1)
    shift = period * ((period + _HALF) // period)
    # Tiles whose frames all lie inside the clip skip the reflection arithmetic.
    interior = (first * _HOP >= _HALF) & ((first + BLOCK_FRAMES - 1) * _HOP + _HALF <= n)
    freq_cols = tl.arange(0, BLOCK_FREQ)
    mel_acc = tl.zeros((BLOCK_FRAMES, M_PAD), dtype=tl.float32)
    for fq0 in range(0, F_PAD, BLOCK_FREQ):
        re = tl.zeros((BLOCK_FRAMES, BLOCK_FREQ), dtype=tl.float32)
        im = tl.zeros((BLOCK_FRAMES, BLOCK_FREQ), dtype=tl.float32)
        for k0 in range(0, K_LOOP, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            pos = t[:, None] * _HOP + k[None, :] - _HALF
            if interior:
                idx = pos
            else:
                folded = (pos + shift) % period
                idx = tl.where(folded < n, folded, period - folded)
            # Rows past the clip's frames and taps past the window are masked; every index is
            # inside the clip anyway, by construction of the reflection.
            x = tl.load(wave_ptr + s0 + idx, mask=row_ok[:, None] & (k[None, :] < _N_FFT), other=0.0)
            b_off = k[:, None] * F_PAD + (fq0 + freq_cols)[None, :]
            cos_b = tl.load(basis_ptr + b_off)
            sin_b = tl.load(basis_ptr + K_LOOP * F_PAD + b_off)
            re = tl.dot(x, cos_b, re, input_precision=DOT_PRECISION)
            im = tl.dot(x, sin_b, im, input_precision=DOT_PRECISION)
        power = re * re + im * im
        mel_cols = tl.arange(0, M_PAD)
        fb = tl.load(mel_fb_ptr + (fq0 + freq_cols)[:, None] * M_PAD + mel_cols[None, :])
        mel_acc = tl.dot(power, fb, mel_acc, input_precision=DOT_PRECISION)
    log_mel = tl.log2(tl.maximum(mel_acc, _LOG_CLAMP)) * _LOG10_2
    m = tl.arange(0, M_PAD)
    ok = row_ok[:, None] & (m[None, :] < N_MELS)
    tl.store(tile_max_ptr + clip * max_tiles + tile, tl.max(tl.where(ok, log_mel, float("-inf"))))
    if PACKED:
        rows = f0 + t
    else:
        rows = t.to(tl.int64)
    ptrs = out_ptr + clip.to(tl.int64) * stride_clip + rows[:, None] * stride_frame + m[None, :] * stride_mel
    tl.store(ptrs, log_mel, mask=ok)


@triton.jit
def _log_mel_finalize_kernel(
    out_ptr,  # float32, holds log10 mel power from the tile kernel
    frame_off_ptr,  # int64 (batch + 1,)
    tile_max_ptr,  # float32 (batch, max_tiles)
    stride_clip,
    stride_frame,
    stride_mel,
    max_frames,
    max_tiles,
    N_MELS: tl.constexpr,
    M_PAD: tl.constexpr,
    PACKED: tl.constexpr,
    TILE_FRAMES: tl.constexpr,
    BLOCK_FRAMES: tl.constexpr,
    BLOCK_TILES: tl.constexpr,
):
    tile = tl.program_id(0)
    clip = tl.program_id(1)
    f0 = tl.load(frame_off_ptr + clip)
    n_frames = (tl.load(frame_off_ptr + clip + 1) - f0).to(tl.int32)
    first = tile * BLOCK_FRAMES
    if PACKED:
        if first >= n_frames:
            return
    n_tiles = (n_frames + TILE_FRAMES - 1) // TILE_FRAMES
    running = tl.full((BLOCK_TILES,), float("-inf"), dtype=tl.float32)
    for j0 in range(0, n_tiles, BLOCK_TILES):
        j = j0 + tl.arange(0, BLOCK_TILES)
        maxima = tl.load(tile_max_ptr + clip * max_tiles + j, mask=j < n_tiles, other=float("-inf"))
        running = tl.maximum(running, maxima)
    clip_max = tl.max(running)
    t = first + tl.arange(0, BLOCK_FRAMES)
    m = tl.arange(0, M_PAD)
    row_ok = t < n_frames
    mel_ok = m[None, :] < N_MELS
    if PACKED:
        rows = f0 + t
        store_ok = row_ok[:, None] & mel_ok
    else:
        rows = t.to(tl.int64)
        store_ok = (t < max_frames)[:, None] & mel_ok  # padding frames get zeros
    ptrs = out_ptr + clip.to(tl.int64) * stride_clip + rows[:, None] * stride_frame + m[None, :] * stride_mel
    x = tl.load(ptrs, mask=row_ok[:, None] & mel_ok, other=0.0)
    y = (tl.maximum(x, clip_max - _RANGE) + _OFFSET) * _INV_SCALE
    tl.store(ptrs, tl.where(row_ok[:, None], y, 0.0), mask=store_ok)


def interpreter_active() -> bool:
    """True when the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_log_mel_tile_kernel, InterpretedFunction)


@lru_cache(maxsize=16)
def _dft_basis(k_loop: int, f_pad: int, device: str) -> torch.Tensor:
    """float32 ``(2, k_loop, f_pad)``: Hann-windowed cos and sin of the 201 rFFT bins."""
    n = torch.arange(N_FFT_SAMPLES, dtype=torch.int64)[:, None]
    k = torch.arange(N_FREQ_BINS, dtype=torch.int64)[None, :]
    # Reduce n*k modulo N in integers so the angle is exact before the float64 cos/sin.
    angle = (2 * math.pi / N_FFT_SAMPLES) * torch.remainder(n * k, N_FFT_SAMPLES).to(torch.float64)
    window = hann_window(torch.float64)[:, None]
    basis = torch.zeros(2, k_loop, f_pad, dtype=torch.float64)
    basis[0, :N_FFT_SAMPLES, :N_FREQ_BINS] = window * torch.cos(angle)
    basis[1, :N_FFT_SAMPLES, :N_FREQ_BINS] = window * torch.sin(angle)
    return basis.to(torch.float32).to(device).contiguous()


@lru_cache(maxsize=16)
def _mel_basis(n_mels: int, f_pad: int, device: str) -> torch.Tensor:
    """float32 ``(f_pad, MEL_PAD)``: the Slaney bank transposed, zero rows/columns as padding."""
    fb = torch.zeros(f_pad, MEL_PAD, dtype=torch.float32)
    fb[:N_FREQ_BINS, :n_mels] = mel_filters(n_mels, torch.float32).T
    return fb.to(device).contiguous()


def default_blocks(device: torch.device) -> tuple[int, int, int]:
    """``(block_frames, block_k, block_freq)`` for ``device``: ``GPU_BLOCKS`` when compiled,
    else ``INTERPRETER_BLOCKS``."""
    if device.type == "cuda" and not interpreter_active():
        return GPU_BLOCKS
    return INTERPRETER_BLOCKS


def log_mel_spectrogram_triton(
    waveform: torch.Tensor,
    sample_offsets: torch.Tensor,
    n_mels: int = 80,
    layout: str = "padded",
    precision: str = "ieee",
    out: torch.Tensor | None = None,
    blocks: tuple[int, int, int] | None = None,
    num_warps: int = GPU_NUM_WARPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch both passes on a packed waveform; validation is ``ops.log_mel_spectrogram``'s job.

    Args:
        waveform: float32 ``(total_samples,)``, contiguous, clips back to back, 16 kHz PCM.
        sample_offsets: int64 ``(batch + 1,)`` (any device); clip ``i`` is
            ``waveform[sample_offsets[i]:sample_offsets[i+1]]``.
        layout: ``"padded"`` -> ``(batch, n_mels, max_frames)``; ``"packed"`` ->
            ``(total_frames, n_mels)``.
        precision: ``tl.dot`` input precision, one of ``PRECISIONS``.
        out: optional preallocated float32 output of the layout's shape on the waveform's
            device; every element is written (padding included), so it may hold garbage.
        blocks: ``(block_frames, block_k, block_freq)``, powers of two >= 16; default
            ``default_blocks``.
        num_warps: warps per program of the DFT kernel (ignored by the interpreter).
    Returns:
        ``(features, num_frames)``: float32 features in Whisper units, int64 CPU ``(batch,)``.
    """
    assert n_mels in SUPPORTED_N_MELS and precision in PRECISIONS and layout in ("padded", "packed")
    device = waveform.device
    bounds = sample_offsets.to("cpu", torch.int64)
    batch = bounds.shape[0] - 1
    num_frames = torch.div(bounds[1:] - bounds[:-1], HOP_LENGTH_SAMPLES, rounding_mode="floor")
    frame_offsets = torch.cat([num_frames.new_zeros(1), torch.cumsum(num_frames, 0)])
    max_frames = int(num_frames.max()) if batch else 0
    total_frames = int(frame_offsets[-1])
    shape = (batch, n_mels, max_frames) if layout == "padded" else (total_frames, n_mels)
    if out is None:
        out = torch.empty(shape, dtype=torch.float32, device=device)
    elif out.shape != shape or out.dtype != torch.float32 or out.device != device:
        raise ValueError(f"out must be float32 {shape} on {device}, got {out.dtype} {tuple(out.shape)}")
    if max_frames == 0:
        return out, num_frames
    if batch > MAX_CLIPS_PER_LAUNCH:
        raise ValueError(f"at most {MAX_CLIPS_PER_LAUNCH} clips per call (grid axis 1), got {batch}")
    block_frames, block_k, block_freq = blocks or default_blocks(device)
    k_loop = triton.cdiv(N_FFT_SAMPLES, block_k) * block_k
    f_pad = triton.cdiv(N_FREQ_BINS, block_freq) * block_freq
    # One host-to-device copy for both offset tables.
    offsets = torch.stack([bounds, frame_offsets]).to(device)
    max_tiles = triton.cdiv(max_frames, block_frames)
    tile_max = torch.empty(batch, max_tiles, dtype=torch.float32, device=device)
    # (per clip, per frame, per mel) element strides, so a strided `out` works too.
    if layout == "padded":
        strides = (out.stride(0), out.stride(2), out.stride(1))
    else:
        strides = (0, out.stride(0), out.stride(1))
    finalize_frames = 64
    # Triton launches on the current CUDA device, not on the tensors' device.
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        _log_mel_tile_kernel[(max_tiles, batch)](
            waveform, offsets[0], offsets[1],
            _dft_basis(k_loop, f_pad, str(device)), _mel_basis(n_mels, f_pad, str(device)),
            out, tile_max, *strides, max_tiles,
            N_MELS=n_mels, M_PAD=MEL_PAD, F_PAD=f_pad, K_LOOP=k_loop, PACKED=layout == "packed",
            BLOCK_FRAMES=block_frames, BLOCK_K=block_k, BLOCK_FREQ=block_freq,
            DOT_PRECISION=precision, num_warps=num_warps,
        )  # fmt: skip
        _log_mel_finalize_kernel[(triton.cdiv(max_frames, finalize_frames), batch)](
            out, offsets[1], tile_max, *strides, max_frames, max_tiles,
            N_MELS=n_mels, M_PAD=MEL_PAD, PACKED=layout == "packed", TILE_FRAMES=block_frames,
            BLOCK_FRAMES=finalize_frames, BLOCK_TILES=128, num_warps=4,
        )  # fmt: skip
    return out, num_frames
