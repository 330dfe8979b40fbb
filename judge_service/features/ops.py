"""The public log-mel op: validation, layouts and dispatch between implementations.

``impl`` chooses how the features are computed:
  - ``"reference"``: ``reference.log_mel_spectrogram_reference`` per clip (float64, slow);
  - ``"torch"``: all clips' frames packed into one matrix, one rFFT, one mel product and a
    segmented max (fast on CPU);
  - ``"auto"``: the fastest implementation available for the input's device.
"""

from __future__ import annotations

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
    num_frames_for,
    reflect_indices,
)

Layout = Literal["padded", "packed"]
Impl = Literal["auto", "torch", "reference"]
NORMALIZE_EPS = 1e-5
"""Added to the standard deviation in per-utterance normalisation (Whisper units)."""


def log_mel_spectrogram(
    clips: Sequence[torch.Tensor] | torch.Tensor,
    n_mels: int = 80,
    layout: Layout = "padded",
    impl: Impl = "auto",
    offsets: torch.Tensor | None = None,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whisper log-mel features of a ragged batch of 16 kHz clips.

    Args:
        clips: a list of 1-D float32 tensors ``(num_samples_i,)``, or one packed 1-D tensor
            with ``offsets`` (int64, shape ``(batch + 1,)``, clip ``i`` is
            ``clips[offsets[i]:offsets[i+1]]``).
        n_mels: 80 or 128.
        layout: ``"padded"`` -> features ``(batch, n_mels, max_frames)``, zeros past each
            clip's end; ``"packed"`` -> features ``(total_frames, n_mels)``, clip ``i`` in rows
            ``frame_offsets(num_frames)[i]:frame_offsets(num_frames)[i+1]``.
        normalize: per clip and mel bin, subtract the mean and divide by the standard
            deviation over the clip's own frames (padding never counted).
    Returns:
        ``(features, num_frames)``: float32 features and int64 ``num_frames`` ``(batch,)``,
        ``num_frames[i] = num_samples_i // 160``.
    """
    clip_list = _as_clip_list(clips, offsets)
    if n_mels not in SUPPORTED_N_MELS:
        raise ValueError(f"n_mels must be one of {SUPPORTED_N_MELS}, got {n_mels}")
    if layout not in ("padded", "packed"):
        raise ValueError(f"layout must be 'padded' or 'packed', got {layout!r}")
    if impl not in ("auto", "torch", "reference"):
        raise ValueError(f"impl must be 'auto', 'torch' or 'reference', got {impl!r}")
    num_frames = torch.tensor([num_frames_for(c.shape[0]) for c in clip_list], dtype=torch.int64)
    if impl == "reference":
        per_clip = [
            log_mel_spectrogram_reference(c, n_mels, torch.float64).to(torch.float32).T
            for c in clip_list
        ]
        device = clip_list[0].device if clip_list else torch.device("cpu")
        packed = torch.cat(per_clip, 0).to(device) if per_clip else torch.zeros(0, n_mels)
    else:
        packed = _log_mel_packed_torch(clip_list, n_mels, num_frames)
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
    max_frames = int(num_frames.max()) if batch else 0
    padded = packed.new_zeros(batch, packed.shape[1], max_frames)
    starts = frame_offsets(num_frames).tolist()
    for i in range(batch):
        padded[i, :, : starts[i + 1] - starts[i]] = packed[starts[i] : starts[i + 1]].T
    return padded


def _as_clip_list(
    clips: Sequence[torch.Tensor] | torch.Tensor, offsets: torch.Tensor | None
) -> list[torch.Tensor]:
    if isinstance(clips, torch.Tensor):
        if offsets is None:
            raise ValueError("a packed waveform tensor needs offsets (batch + 1,)")
        if clips.ndim != 1:
            raise ValueError(f"packed waveform must be 1-D, got shape {tuple(clips.shape)}")
        bounds = offsets.tolist()
        if bounds[0] != 0 or bounds[-1] != clips.shape[0] or sorted(bounds) != bounds:
            raise ValueError("offsets must rise from 0 to len(waveform)")
        clip_list = [clips[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        if offsets is not None:
            raise ValueError("offsets are only for a packed 1-D waveform tensor")
        clip_list = list(clips)
    devices = {c.device for c in clip_list}
    if len(devices) > 1:
        raise ValueError(f"all clips must be on one device, got {sorted(map(str, devices))}")
    for i, clip in enumerate(clip_list):
        if not isinstance(clip, torch.Tensor) or clip.ndim != 1:
            raise ValueError(f"clip {i} must be a 1-D tensor (num_samples,)")
        if clip.dtype != torch.float32:
            raise TypeError(f"clip {i} must be float32, got {clip.dtype}")
    return clip_list


def _log_mel_packed_torch(
    clip_list: list[torch.Tensor], n_mels: int, num_frames: torch.Tensor
) -> torch.Tensor:
    """All clips' frames in one ``(total_frames, 400)`` matrix, then one rFFT and mel matmul."""
    device = clip_list[0].device if clip_list else torch.device("cpu")
    frame_blocks = []
    for clip, n_frames in zip(clip_list, num_frames.tolist()):
        if n_frames == 0:
            continue
        padded = clip[reflect_indices(clip.shape[0], N_FFT_SAMPLES // 2).to(device)]
        frame_blocks.append(padded.unfold(0, N_FFT_SAMPLES, HOP_LENGTH_SAMPLES)[:n_frames])
    if not frame_blocks:
        return torch.zeros(0, n_mels, device=device)
    frames = torch.cat(frame_blocks, 0) * hann_window().to(device)
    spectrum = torch.fft.rfft(frames, n=N_FFT_SAMPLES, dim=-1)
    power = spectrum.real.square() + spectrum.imag.square()
    log_mel = torch.log10(torch.clamp(power @ mel_filters(n_mels).to(device).T, min=LOG_CLAMP_POWER))
    clip_of_row = torch.repeat_interleave(torch.arange(len(clip_list), device=device), num_frames.to(device))
    row_max = log_mel.amax(dim=1)
    clip_max = torch.full((len(clip_list),), -torch.inf, device=device).scatter_reduce(
        0, clip_of_row, row_max, reduce="amax"
    )
    log_mel = torch.maximum(log_mel, (clip_max - DYNAMIC_RANGE_LOG10)[clip_of_row, None])
    return (log_mel + LOG_OFFSET) / LOG_SCALE


def _normalize_packed(packed: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(packed)
    starts = frame_offsets(num_frames).tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        if b == a:
            continue
        block = packed[a:b]
        mean = block.mean(dim=0, keepdim=True)
        std = block.std(dim=0, unbiased=False, keepdim=True)
        out[a:b] = (block - mean) / (std + NORMALIZE_EPS)
    return out
