"""Prometheus metrics of one service instance, in a registry of its own (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    """Queue depth, batch shape, queue/compute time, rejections, cache and request outcomes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth_clips = Gauge("judge_queue_depth_clips", "Clips waiting in the queue", registry=r)
        self.queue_depth_jobs = Gauge("judge_queue_depth_jobs", "Jobs waiting in the queue", registry=r)
        self.batch_clips = Histogram(
            "judge_batch_size_clips", "Clips per backend batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )
        self.batch_audio_s = Histogram(
            "judge_batch_audio_seconds", "Padded audio per batch (longest clip x clips)",
            buckets=(1, 5, 10, 30, 60, 120, 240, 480, 960), registry=r,
        )
        self.queue_time_s = Histogram(
            "judge_queue_time_seconds", "Time a job waited before its batch ran",
            buckets=_SECONDS_BUCKETS, registry=r,
        )
        self.compute_time_s = Histogram(
            "judge_compute_time_seconds", "Backend time per batch", buckets=_SECONDS_BUCKETS, registry=r,
        )
        self.stage_time_s = Histogram(
            "judge_stage_time_seconds", "Backend time per batch and stage", ["stage"],
            buckets=_SECONDS_BUCKETS, registry=r,
        )
        self.rejections = Counter(
            "judge_rejections_total", "Requests refused before queueing", ["reason"], registry=r
        )
        self.dropped_jobs = Counter(
            "judge_dropped_jobs_total", "Queued jobs dropped before compute", ["reason"], registry=r
        )
        self.backend_failures = Counter(
            "judge_backend_failures_total", "Batches the backend failed", registry=r
        )
        self.cache_lookups = Counter(
            "judge_cache_lookups_total", "Cache lookups by result (hit, miss, error)", ["result"], registry=r
        )
        self.cache_available = Gauge(
            "judge_cache_available", "1 when the score cache answers, 0 while it is down", registry=r
        )
        self.requests = Counter(
            "judge_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.auth_requests = Counter(
            "judge_auth_requests_total",
            "Requests that needed an API key, by traffic class and result (allowed, unauthorized, "
            "forbidden, rate_limited)", ["class", "result"], registry=r,
        )
        self.item_errors = Counter(
            "judge_item_errors_total", "Per-item errors by type", ["type"], registry=r
        )

        # Distributed mode (API replicas): what the replica sees of the shared work queue.
        self.workers_live = Gauge(
            "judge_workers_live", "Workers whose heartbeat is live (distributed mode)", registry=r
        )
        self.stream_entries = Gauge(
            "judge_stream_entries", "Entries in a work stream, read or not (distributed mode)", ["stream"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
