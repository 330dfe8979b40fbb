"""Audio features: Whisper-compatible log-mel for ragged batches of clips."""

from judge_service.features.ops import frame_offsets, log_mel_spectrogram, packed_to_padded
from judge_service.features.reference import log_mel_spectrogram_reference, num_frames_for

__all__ = [
    "frame_offsets",
    "log_mel_spectrogram",
    "log_mel_spectrogram_reference",
    "num_frames_for",
    "packed_to_padded",
]
