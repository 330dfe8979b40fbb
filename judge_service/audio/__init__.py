"""Audio in: decode and validate uploaded bytes into mono 16 kHz clips."""

from judge_service.audio.clip import AudioClip, DecodedAudio
from judge_service.audio.decode import AudioLimits, decode_audio, decode_base64_audio

__all__ = ["AudioClip", "AudioLimits", "DecodedAudio", "decode_audio", "decode_base64_audio"]
