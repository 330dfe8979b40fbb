"""Domain errors a caller can cause or meet. Each carries a stable ``error_type`` string.

The HTTP status of each type lives in one table, ``judge_service.api.error_table``; this
module knows nothing of HTTP. Per-item errors in batch responses use the same types.
"""

from __future__ import annotations


class JudgeError(Exception):
    """Base class: ``error_type`` is the wire name, the message says what to do."""

    error_type = "judge_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"type": self.error_type, "message": self.message}


# --- Audio input (raised by judge_service.audio.decode, per clip, before batching) ------------


class InvalidBase64Error(JudgeError):
    error_type = "invalid_base64"


class AudioUnreadableError(JudgeError):
    error_type = "audio_unreadable"


class AudioFormatError(JudgeError):
    error_type = "audio_unsupported_format"


class AudioSampleRateError(JudgeError):
    error_type = "audio_unsupported_sample_rate"


class AudioEmptyError(JudgeError):
    error_type = "audio_empty"


class AudioTooShortError(JudgeError):
    error_type = "audio_too_short"


class AudioTooLongError(JudgeError):
    error_type = "audio_too_long"


class AudioNonFiniteError(JudgeError):
    error_type = "audio_non_finite"


# --- Requests --------------------------------------------------------------------------------


class InvalidRequestError(JudgeError):
    error_type = "invalid_request"


class PayloadTooLargeError(JudgeError):
    error_type = "payload_too_large"


class NotFoundError(JudgeError):
    """No such resource (an unknown, expired or another key's job id)."""

    error_type = "not_found"


class TooManyItemsError(JudgeError):
    error_type = "too_many_items"


# --- Access (API keys; answered by judge_service.api.auth) -----------------------------------


class UnauthorizedError(JudgeError):
    """No API key, or one the keys file does not know (answered by ``api.auth``)."""

    error_type = "unauthorized"


class ForbiddenError(JudgeError):
    """A disabled key, or one whose traffic class may not call the route."""

    error_type = "forbidden"


class RateLimitedError(JudgeError):
    """The key's token bucket is empty; retry after ``retry_after_s``."""

    error_type = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# --- Scheduling and serving ------------------------------------------------------------------


class QueueFullError(JudgeError):
    """The bounded queue cannot take the request; retry after ``retry_after_s``."""

    error_type = "queue_full"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReadyError(JudgeError):
    error_type = "not_ready"


class DeadlineExceededError(JudgeError):
    error_type = "deadline_exceeded"


class ClientDisconnectedError(JudgeError):
    error_type = "client_disconnected"


class ShuttingDownError(JudgeError):
    error_type = "shutting_down"


class BackendError(JudgeError):
    """The backend failed on a whole batch; every job in that batch receives this."""

    error_type = "backend_error"


class InternalError(JudgeError):
    error_type = "internal_error"


# --- Per-pair failures of a remote scorer (judge_service.judge.llm_rubric) -----------------------


class ScorerError(JudgeError):
    """The LLM rubric scorer gave no usable verdict for one pair (its endpoint failed, timed
    out or kept answering outside the contract). Only that pair fails; never a default score."""

    error_type = "scorer_error"


def error_class_for(error_type: str) -> type[JudgeError] | None:
    """The ``JudgeError`` subclass whose ``error_type`` this is, for errors that travel as data
    (a worker's result over Redis, a backend's per-pair error); None when unknown (e.g. a newer
    worker's type). ``QueueFullError`` is never rebuilt: it is the API replica's own 429."""
    pending = list(JudgeError.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.error_type == error_type and cls is not QueueFullError:
            return cls
        pending += cls.__subclasses__()
    return None


def pair_error_from_dict(error: dict[str, str]) -> JudgeError:
    """The ``JudgeError`` for a per-pair error a backend reported in ``JobResult.scores`` as
    ``{"error": {type, message}}`` (data that may have crossed Redis in distributed mode)."""
    error_class = error_class_for(str(error.get("type")))
    message = str(error.get("message", ""))
    if error_class is None:  # e.g. a newer worker's type: still that pair's error, not a crash
        return BackendError(f"the backend reported a per-pair error of unknown type {error.get('type')!r}: {message}")
    return error_class(message)
