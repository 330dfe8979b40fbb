"""The public log-mel op: validation, layouts and dispatch between implementations.

``impl`` chooses how the features are computed:
  - ``"reference"``: ``reference.log_mel_spectrogram_reference`` per clip (float64, slow);
  - ``"torch"``: windowed frames of many clips at once as one ``(frames, 400)`` matrix, one
    rFFT, one mel product and a segmented max, in cache-sized groups of whole clips (the fast
    path on CPU, bit-identical to the plain formula; a working fallback on CUDA);
  - ``"triton"``: ``kernels.log_mel_spectrogram_triton``, frames read straight from the packed
    waveform on the GPU (CUDA tensors; CPU tensors only under ``TRITON_INTERPRET=1``);
  - ``"auto"``: Triton for CUDA tensors when Triton imports, else the torch path.  Falling back
    on CUDA warns once per process.

Every path is tested against the float64 reference in ``tests/kernels/test_log_mel.py``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from types import ModuleType
from typing import Literal, Sequence

import torch

from judge_service.features.reference import (
    DYNAMIC_RANGE_LOG10,
    HOP_LENGTH_SAMPLES,
    LOG_CLAMP_POWER,
    LOG_OFFSET,
    LOG_SCALE,
    N_FFT_SAMPLES,
    SUPPORTED_N_MELS,
    hann_window,
    log_mel_spectrogram_reference,
    mel_filters,
    reflect_indices,
)

Layout = Literal["padded", "packed"]
Impl = Literal["auto", "torch", "reference", "triton"]
Precision = Literal["ieee", "tf32x3", "tf32"]
IMPLS = ("auto", "torch", "reference", "triton")
PRECISIONS = ("ieee", "tf32x3", "tf32")
NORMALIZE_EPS = 1e-5
"""Added to the standard deviation in per-utterance normalisation (Whisper units)."""

TORCH_GROUP_FRAMES = 2048
"""Frames per group in the torch path: ~3 MB of frames, sized to stay in cache (measured)."""
_PAD = N_FFT_SAMPLES // 2
_warned: set[str] = set()


def log_mel_spectrogram(
    clips: Sequence[torch.Tensor] | torch.Tensor,
    n_mels: int = 80,
    layout: Layout = "padded",
    impl: Impl = "auto",
    offsets: torch.Tensor | None = None,
    normalize: bool = False,
    precision: Precision = "ieee",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whisper log-mel features of a ragged batch of 16 kHz clips.

    Args:
        clips: a list of 1-D float32 tensors ``(num_samples_i,)`` on one device, or one packed
            1-D float32 tensor with ``offsets`` (integer, shape ``(batch + 1,)``, clip ``i`` is
            ``clips[offsets[i]:offsets[i+1]]``).
        n_mels: 80 or 128.
        layout: ``"padded"`` -> features ``(batch, n_mels, max_frames)``, zeros past each
            clip's end; ``"packed"`` -> features ``(total_frames, n_mels)``, clip ``i`` in rows
            ``frame_offsets(num_frames)[i]:frame_offsets(num_frames)[i+1]``.
        impl: see the module docstring.
        normalize: per clip and mel bin, subtract the mean and divide by the standard
            deviation over the clip's own frames (padding never counted).
        precision: Triton dot precision: ``"ieee"`` (full fp32), ``"tf32x3"`` (same accuracy
            on tensor cores) or ``"tf32"`` (fast, ~1e-3 relative error; see ``kernels``).  The
            torch and reference paths always compute in full precision; asking them for
            anything but ``"ieee"`` by name is an error.
    Returns:
        ``(features, num_frames)``: float32 features on the clips' device and int64 CPU
        ``num_frames`` ``(batch,)``, ``num_frames[i] = num_samples_i // 160``.
    """
    _check_options(n_mels, layout, impl, precision)
    clip_list, bounds, device = _as_clip_list(clips, offsets)
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    num_frames = torch.tensor([n // HOP_LENGTH_SAMPLES for n in lengths], dtype=torch.int64)
    chosen = _resolve_impl(impl, device)
    if chosen == "triton":
        waveform = clips if isinstance(clips, torch.Tensor) else _cat(clip_list, device)
        kernel_layout = "packed" if normalize else layout
        features, _ = _kernels().log_mel_spectrogram_triton(
            waveform.contiguous(), torch.tensor(bounds), n_mels, kernel_layout, precision
        )
        if not normalize:
            return features, num_frames
        packed = features
    elif chosen == "reference":
        per_clip = [log_mel_spectrogram_reference(c, n_mels).to(torch.float32).T for c in clip_list]
        packed = torch.cat(per_clip, 0).to(device) if per_clip else torch.zeros(0, n_mels, device=device)
    else:
        waveform = clips if isinstance(clips, torch.Tensor) else _cat(clip_list, device)
        packed = _log_mel_packed_torch(waveform, bounds, n_mels, num_frames)
    if normalize:
        packed = _normalize_packed(packed, num_frames)
    if layout == "packed":
        return packed, num_frames
    return packed_to_padded(packed, num_frames), num_frames


def frame_offsets(num_frames: torch.Tensor) -> torch.Tensor:
    """Row offsets of each clip in the packed layout: int64 ``(batch + 1,)``, starting at 0."""
    return torch.cat([num_frames.new_zeros(1), torch.cumsum(num_frames, 0)])


def packed_to_padded(packed: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """``(total_frames, n_mels)`` -> ``(batch, n_mels, max_frames)`` with zeros as padding."""
    batch = num_frames.shape[0]
    if batch == 1:
        return packed.T.unsqueeze(0).contiguous()
    max_frames = int(num_frames.max()) if batch else 0
    padded = packed.new_zeros(batch, packed.shape[1], max_frames)
    starts = frame_offsets(num_frames).tolist()
    for i in range(batch):
        padded[i, :, : starts[i + 1] - starts[i]] = packed[starts[i] : starts[i + 1]].T
    return padded


def _check_options(n_mels: int, layout: str, impl: str, precision: str) -> None:
    if n_mels not in SUPPORTED_N_MELS:
        raise ValueError(f"n_mels must be one of {SUPPORTED_N_MELS}, got {n_mels}")
    if layout not in ("padded", "packed"):
        raise ValueError(f"layout must be 'padded' or 'packed', got {layout!r}")
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if impl in ("torch", "reference") and precision != "ieee":
        raise ValueError(
            f"precision={precision!r} only applies to impl='triton' (or 'auto' on CUDA); "
            f"impl={impl!r} always computes in full precision, so pass precision='ieee'"
        )


def _as_clip_list(
    clips: Sequence[torch.Tensor] | torch.Tensor, offsets: torch.Tensor | None
) -> tuple[list[torch.Tensor], list[int], torch.device]:
    """Validated clips as views, their sample offsets ``(batch + 1)`` and their device."""
    if isinstance(clips, torch.Tensor):
        if offsets is None:
            raise ValueError("a packed waveform tensor needs offsets (batch + 1,)")
        if clips.ndim != 1:
            raise ValueError(f"packed waveform must be 1-D, got shape {tuple(clips.shape)}")
        if clips.dtype != torch.float32:
            raise TypeError(f"packed waveform must be float32, got {clips.dtype}")
        if not isinstance(offsets, torch.Tensor) or offsets.ndim != 1 or offsets.numel() == 0:
            raise ValueError("offsets must be a non-empty 1-D integer tensor (batch + 1,)")
        if offsets.dtype.is_floating_point or offsets.dtype.is_complex or offsets.dtype == torch.bool:
            raise TypeError(f"offsets must be an integer tensor, got {offsets.dtype}")
        bounds = offsets.tolist()
        if bounds[0] != 0 or bounds[-1] != clips.shape[0] or sorted(bounds) != bounds:
            raise ValueError("offsets must rise from 0 to len(waveform)")
        return [clips[a:b] for a, b in zip(bounds[:-1], bounds[1:])], bounds, clips.device
    if offsets is not None:
        raise ValueError("offsets are only for a packed 1-D waveform tensor")
    clip_list = list(clips)
    for i, clip in enumerate(clip_list):
        if not isinstance(clip, torch.Tensor) or clip.ndim != 1:
            raise ValueError(f"clip {i} must be a 1-D tensor (num_samples,)")
        if clip.dtype != torch.float32:
            raise TypeError(f"clip {i} must be float32, got {clip.dtype}")
    devices = {c.device for c in clip_list}
    if len(devices) > 1:
        raise ValueError(f"all clips must be on one device, got {sorted(map(str, devices))}")
    bounds = [0]
    for clip in clip_list:
        bounds.append(bounds[-1] + clip.shape[0])
    device = clip_list[0].device if clip_list else torch.device("cpu")
    return clip_list, bounds, device


@lru_cache(maxsize=1)
def _kernels_or_error() -> tuple[ModuleType | None, ImportError | None]:
    try:
        from judge_service.features import kernels
    except ImportError as exc:
        return None, exc
    return kernels, None


def _kernels() -> ModuleType:
    kernels, error = _kernels_or_error()
    if kernels is None:
        raise ImportError(f"impl='triton' needs the triton package: {error}") from error
    return kernels


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _resolve_impl(impl: str, device: torch.device) -> str:
    if impl == "triton":
        if device.type != "cuda" and not _kernels().interpreter_active():
            raise RuntimeError(
                f"impl='triton' needs CUDA tensors (got {device}); on CPU use impl='torch', or "
                "set TRITON_INTERPRET=1 before triton is first imported to run the kernels in "
                "Triton's (slow) interpreter"
            )
        _kernels()  # a clear ImportError now rather than deep in the call
        return "triton"
    if impl != "auto":
        return impl
    if device.type != "cuda":
        return "torch"
    kernels, error = _kernels_or_error()
    if kernels is None:
        _warn_once(
            "no-triton",
            f"log_mel_spectrogram: triton is not importable ({error}); CUDA clips use the torch "
            "path instead: same features, more memory traffic and several kernel launches",
        )
        return "torch"
    if kernels.interpreter_active():
        _warn_once(
            "interpreter",
            "log_mel_spectrogram: TRITON_INTERPRET=1 is set; CUDA clips use the torch path "
            "instead of running the Triton kernels in the CPU interpreter",
        )
        return "torch"
    return "triton"


def _cat(clip_list: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    if len(clip_list) == 1:
        return clip_list[0].contiguous()
    return torch.cat(clip_list) if clip_list else torch.zeros(0, device=device)


@lru_cache(maxsize=16)
def _constants(n_mels: int, device: str) -> torch.Tensor:
    """float32 on ``device``: the Hann window ``(400,)`` for ``n_mels == 0``, else the mel bank
    transposed ``(201, n_mels)``; cached so a call does not rebuild or re-upload them."""
    if n_mels == 0:
        return hann_window().to(device)
    return mel_filters(n_mels).to(device).T


def _windowed_frames(waveform: torch.Tensor, bounds: list[int], frames: torch.Tensor) -> None:
    """Write the Hann-windowed frames of clips ``bounds`` into ``frames`` (float32, shape
    ``(their total frames, 400)``), clips in order.

    Per clip: torch's native reflect pad (numpy's rule when the pad is shorter than the clip),
    then the frames as a strided view, windowed straight into ``frames``: two ops, no index
    tensor.  Clips of 160-200 samples, whose pad is longer than the clip, take a gather.
    """
    window = _constants(0, str(waveform.device))
    row = 0
    for start, end in zip(bounds[:-1], bounds[1:]):
        n = end - start
        n_frames = n // HOP_LENGTH_SAMPLES
        if n_frames == 0:
            continue
        if n > _PAD:
            padded = torch.nn.functional.pad(waveform[None, start:end], (_PAD, _PAD), mode="reflect")[0]
        else:
            padded = waveform[start + reflect_indices(n, _PAD).to(waveform.device)]
        view = padded.as_strided((n_frames, N_FFT_SAMPLES), (HOP_LENGTH_SAMPLES, 1))
        torch.mul(view, window, out=frames[row : row + n_frames])
        row += n_frames


def _clip_groups(num_frames: list[int], max_rows: int) -> list[tuple[int, int]]:
    """Consecutive clip ranges ``[a, b)`` of at most ``max_rows`` frames (a longer clip alone)."""
    groups, first, rows = [], 0, 0
    for i, n in enumerate(num_frames):
        if rows and rows + n > max_rows:
            groups.append((first, i))
            first, rows = i, 0
        rows += n
    groups.append((first, len(num_frames)))
    return groups


def _log_mel_packed_torch(
    waveform: torch.Tensor, bounds: list[int], n_mels: int, num_frames: torch.Tensor
) -> torch.Tensor:
    """float32 ``(total_frames, n_mels)`` from a packed waveform.

    Whole clips are processed in groups of about ``TORCH_GROUP_FRAMES`` frames so the frame,
    spectrum and power buffers (~5 MB) stay in cache and are reused, instead of allocating and
    faulting in hundreds of MB per call; per group: frames, one rFFT, one mel matmul straight
    into the output rows, log10 and the clip maxima.
    """
    device = waveform.device
    frames_per_clip = num_frames.tolist()
    out = torch.empty(sum(frames_per_clip), n_mels, device=device)
    if out.shape[0] == 0:
        return out
    groups = _clip_groups(frames_per_clip, TORCH_GROUP_FRAMES)
    frames_buf = torch.empty(max(sum(frames_per_clip[a:b]) for a, b in groups), N_FFT_SAMPLES, device=device)
    mel_t = _constants(n_mels, str(device))
    row0 = 0
    for a, b in groups:
        rows = sum(frames_per_clip[a:b])
        frames, log_mel = frames_buf[:rows], out[row0 : row0 + rows]
        row0 += rows
        _windowed_frames(waveform, bounds[a : b + 1], frames)
        # re^2 + im^2: square the interleaved (re, im) pairs in place in one contiguous pass,
        # then one add; same roundings as the plain formula (no fused multiply-add).
        pairs = torch.view_as_real(torch.fft.rfft(frames, dim=-1)).square_()
        torch.matmul(pairs[..., 0] + pairs[..., 1], mel_t, out=log_mel)
        log_mel.clamp_(min=LOG_CLAMP_POWER).log10_()
        if b - a == 1:  # the common single-clip group: no segment bookkeeping
            floor = log_mel.max() - DYNAMIC_RANGE_LOG10
        else:
            clip_of_row = torch.repeat_interleave(torch.arange(b - a, device=device), num_frames[a:b].to(device))
            clip_max = torch.full((b - a,), -torch.inf, device=device).scatter_reduce_(
                0, clip_of_row, log_mel.amax(dim=1), reduce="amax"
            )
            floor = (clip_max - DYNAMIC_RANGE_LOG10)[clip_of_row, None]
        # (max(x, floor) + 4) / 4 computed as max(x / 4 + 1, floor / 4 + 1): one pass fewer and
        # the same bits, because x / 4 is exact (LOG_SCALE is a power of two) and rounding is
        # monotonic, so the affine map commutes with max.
        shift = log_mel.new_full((), LOG_OFFSET / LOG_SCALE)
        torch.add(shift, log_mel, alpha=1.0 / LOG_SCALE, out=log_mel)
        torch.maximum(log_mel, torch.add(shift, floor, alpha=1.0 / LOG_SCALE), out=log_mel)
    return out


def _normalize_packed(packed: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """Per clip and mel bin zero mean, unit variance over the clip's own rows (population std)."""
    batch = num_frames.shape[0]
    if packed.shape[0] == 0:
        return packed.clone()
    clip_of_row = torch.repeat_interleave(torch.arange(batch, device=packed.device), num_frames.to(packed.device))
    count = num_frames.to(packed.device).clamp(min=1).to(packed.dtype)[:, None]
    sums = packed.new_zeros(batch, packed.shape[1]).index_add_(0, clip_of_row, packed)
    centred = packed - (sums / count)[clip_of_row]
    variance = packed.new_zeros(batch, packed.shape[1]).index_add_(0, clip_of_row, centred.square()) / count
    return centred / (variance.sqrt() + NORMALIZE_EPS)[clip_of_row]
