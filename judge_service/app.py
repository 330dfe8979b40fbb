"""create_app(settings): the FastAPI application and its lifespan.

Start-up returns at once so /healthz answers while models load; a background task builds the
backend, warms it up, then starts the scheduler and marks the service ready (/readyz 200).
Shutdown stops taking work, drains the queue, and closes the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable

from fastapi import FastAPI

from judge_service import __version__
from judge_service.api import routes_analyze, routes_jobs, routes_meta, routes_score
from judge_service.api.routes_jobs import Jobs
from judge_service.api.auth import AuthMiddleware, build_access
from judge_service.api.error_table import install_error_handlers
from judge_service.api.openapi_docs import install_openapi
from judge_service.api.idempotency import IdempotencyMiddleware
from judge_service.api.middleware import BodySizeLimitMiddleware, ObservabilityMiddleware
from judge_service.backends.base import JudgeBackend
from judge_service.backends.registry import create_backend
from judge_service.batching.policy import BatchLimits
from judge_service.batching.scheduler import Scheduler
from judge_service.cache import InProcessCache, NoCache, RedisCache, ResultCache
from judge_service.config import Settings, load_settings
from judge_service.jobs.runner import JobSupervisor
from judge_service.jobs.store import InMemoryJobStore, JobStore, RedisJobStore
from judge_service.metrics import ServiceMetrics
from judge_service.service import JudgeService

if TYPE_CHECKING:
    from judge_service.distributed.dispatcher import StreamDispatcher

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the lifespan builds; routes read it from ``app.state.runtime``."""

    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    status: str = "loading"
    load_error: str | None = None
    service: JudgeService | None = None
    scheduler: Scheduler | StreamDispatcher | None = None
    readiness_problem: Callable[[], str | None] = lambda: None
    """After start-up: why this replica cannot serve right now (distributed mode), or None."""
    cache: ResultCache | None = None
    loader: asyncio.Task[None] | None = None
    jobs: Jobs | None = None


def make_cache(settings: Settings, metrics: ServiceMetrics) -> ResultCache:
    if settings.redis_url:
        return RedisCache(
            settings.redis_url, settings.redis_key_prefix, settings.cache_ttl_s,
            settings.redis_retry_interval_s, metrics,
        )
    if settings.cache_max_entries == 0:
        return NoCache()
    return InProcessCache(settings.cache_max_entries, metrics)


def _start_jobs(runtime: Runtime) -> None:
    """The jobs API over the ready service: in Redis when distributed (any replica answers for
    any job, and a dead replica's jobs move on), else in this process."""
    settings = runtime.settings
    if settings.mode == "distributed" and settings.redis_url:
        store: JobStore = RedisJobStore(settings.redis_url, settings.redis_key_prefix)
    else:
        store = InMemoryJobStore()
    supervisor = JobSupervisor(store, runtime.service)
    supervisor.start()
    runtime.jobs = Jobs(store, supervisor)


async def _load_distributed(runtime: Runtime) -> None:
    """API replica of distributed mode: no models here; ready once a worker announces the judge."""
    from judge_service.distributed.dispatcher import RemoteBackend, StreamDispatcher

    settings = runtime.settings
    dispatcher = StreamDispatcher(settings, runtime.metrics)
    dispatcher.start()
    runtime.scheduler = dispatcher
    runtime.status = "waiting_for_workers"
    runtime.readiness_problem = dispatcher.readiness_problem
    while dispatcher.judge_info() is None:
        runtime.load_error = dispatcher.readiness_problem()
        await asyncio.sleep(0.2)
    runtime.load_error = None
    runtime.cache = make_cache(settings, runtime.metrics)
    backend = RemoteBackend(dispatcher)
    runtime.service = JudgeService(settings, backend, dispatcher, runtime.cache, runtime.metrics)
    _start_jobs(runtime)
    runtime.status = "ready"
    log.info("API replica %s ready: workers serve judge %s version %s", dispatcher.replica_id,
             backend.info.name, backend.info.version)


async def _load(runtime: Runtime, backend: JudgeBackend | None) -> None:
    settings = runtime.settings
    if settings.mode == "distributed" and backend is None:
        await _load_distributed(runtime)
        return
    try:
        if backend is None:
            backend = await asyncio.to_thread(create_backend, settings)
        await asyncio.to_thread(backend.warm_up)
    except Exception as exc:  # a judge that cannot load: report on /healthz so it restarts
        log.exception("the judge backend %r failed to load", settings.backend)
        runtime.status = "failed"
        runtime.load_error = f"{type(exc).__name__}: {exc}"
        return
    limits = BatchLimits(settings.max_batch_items, settings.max_batch_audio_s, settings.max_wait_ms / 1000.0)
    runtime.scheduler = Scheduler(backend, limits, settings.max_queue_items, runtime.metrics)
    runtime.scheduler.start()
    runtime.cache = make_cache(settings, runtime.metrics)
    runtime.service = JudgeService(settings, backend, runtime.scheduler, runtime.cache, runtime.metrics)
    _start_jobs(runtime)
    runtime.status = "ready"
    log.info("judge %s version %s is ready", backend.info.name, backend.info.version)


def create_app(settings: Settings | None = None, backend: JudgeBackend | None = None) -> FastAPI:
    """Build the app. ``backend`` overrides the registry (tests); settings default to the env."""
    settings = settings or load_settings()
    runtime = Runtime(settings=settings)
    access = build_access(settings)  # None: no keys file, no authentication

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.loader = asyncio.create_task(_load(runtime, backend), name="judge-loader")
        yield
        runtime.status = "stopping"
        if runtime.loader and not runtime.loader.done():
            runtime.loader.cancel()
        if runtime.jobs is not None:  # first: its runners still need the scheduler to finish a chunk
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.jobs.supervisor.stop(), settings.drain_timeout_s)
            await runtime.jobs.store.close()
        if runtime.scheduler is not None:
            await runtime.scheduler.stop(settings.drain_timeout_s)
        if runtime.cache is not None:
            await runtime.cache.close()
        if access is not None:
            await access.limiter.close()

    app = FastAPI(
        title="ParaS2S Judge",
        version=__version__,
        description="Scores a spoken reply 1-5 for fitting a spoken query in content and speaking style.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_openapi(app)
    routers = (routes_score.router, routes_analyze.router, routes_jobs.router, routes_meta.router)
    for router in routers:
        app.include_router(router)
    known_routes = {route.path for router in routers for route in router.routes} | {"/openapi.json", "/docs"}
    if settings.idempotency_max_entries:
        app.add_middleware(IdempotencyMiddleware, max_entries=settings.idempotency_max_entries,
                           ttl_s=settings.idempotency_ttl_s)  # fmt: skip
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes,
                       path_max_bytes={"/v1/jobs": settings.max_job_request_bytes})
    if access is not None:  # outside the body limit: a request without a key is refused unread
        app.add_middleware(AuthMiddleware, keys=access.keys, limiter=access.limiter, metrics_of=lambda: runtime.metrics)
    app.add_middleware(ObservabilityMiddleware, metrics_of=lambda: runtime.metrics, routes=known_routes)
    return app
