"""Runs jobs in the background of an API process, through the same ``JudgeService`` as the
scoring routes (so a job item gets exactly what ``POST /v1/score`` would answer for it).

``JobSupervisor`` looks for unfinished jobs every ``POLL_S`` and runs those whose lease it can
take: in embedded mode every job of this process; in distributed mode also the jobs of a
replica that died (its lease lapsed). A job is scored in chunks of ``max_items_per_request``
pairs, ``CHUNKS_IN_FLIGHT`` at a time; each chunk's results are stored before the next starts,
so a job resumes from the first unscored item. Backpressure from the queue (429) makes the
runner wait and retry, never fail items: a job is patient bulk traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from judge_service.errors import JudgeError, QueueFullError, ShuttingDownError
from judge_service.jobs.store import TERMINAL_STATES, JobStore
from judge_service.service import ClipInput, JudgeService, PairInput

log = logging.getLogger(__name__)

POLL_S = 1.0
CHUNKS_IN_FLIGHT = 2


def pair_of(item: dict[str, Any]) -> PairInput:
    """A stored ``ScoreItemIn`` dict as the service's input."""
    query, response = item["query"], item["response"]
    return PairInput(
        id=item["id"],
        query=ClipInput(f"{item['id']}/query", base64=query["audio"], text=query.get("text")),
        response=ClipInput(f"{item['id']}/response", base64=response["audio"], text=response.get("text")),
        known_labels={k: v for k, v in (query.get("labels") or {}).items() if v is not None},
    )


class JobSupervisor:
    """Finds runnable jobs and runs them; one per API process."""

    def __init__(self, store: JobStore, service: JudgeService) -> None:
        self.store = store
        self.service = service
        self.owner = uuid.uuid4().hex
        self.lease_s = service.settings.job_lease_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-supervisor")

    async def stop(self) -> None:
        """Stop the runners between chunks and hand their jobs back (lease released)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                for job_id in await self.store.active():
                    if job_id not in self._running and await self.store.claim(job_id, self.owner, self.lease_s):
                        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
                        self._running[job_id] = task
                        task.add_done_callback(lambda _t, j=job_id: self._running.pop(j, None))
            except Exception:  # a store outage must not end the supervisor; it tries again
                log.exception("job supervisor: could not list or claim jobs")
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_S)
            except TimeoutError:
                pass

    async def _run(self, job_id: str) -> None:
        renewer = asyncio.create_task(self._keep_lease(job_id))
        try:
            await self._run_job(job_id)
        except Exception:
            log.exception("job %s: runner failed; another turn of the supervisor resumes it", job_id)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            try:
                await self.store.release(job_id, self.owner)
            except Exception:
                log.warning("job %s: could not release its lease; it lapses in %.0f s", job_id, self.lease_s)

    async def _keep_lease(self, job_id: str) -> None:
        """Renew the lease while chunks compute (a window can outlast one lease)."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.store.claim(job_id, self.owner, self.lease_s)
            except Exception:
                log.warning("job %s: could not renew its lease (store unavailable)", job_id)

    async def _run_job(self, job_id: str) -> None:
        meta = await self.store.meta(job_id)
        if meta is None or meta["status"] in TERMINAL_STATES:
            return
        if meta["status"] == "queued":
            await self.store.update(job_id, status="running", started_at=time.time())
        done = await self.store.done_indices(job_id)
        todo = [i for i in range(meta["total"]) if i not in done]
        chunk = self.service.settings.max_items_per_request
        chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
        for start in range(0, len(chunks), CHUNKS_IN_FLIGHT):
            current = await self.store.meta(job_id)
            if self._stopping or current is None or current["status"] == "cancelled":
                break
            if not await self.store.claim(job_id, self.owner, self.lease_s):
                log.warning("job %s: lost its lease to another replica; stopping here", job_id)
                return
            window = chunks[start:start + CHUNKS_IN_FLIGHT]
            outcomes = await asyncio.gather(*(self._score_chunk(job_id, meta, c) for c in window))
            if any(o is None for o in outcomes):
                return  # shutting down: the next holder of the lease resumes
            results = {i: r for indices, chunk_results in zip(window, outcomes) for i, r in zip(indices, chunk_results)}
            await self.store.put_results(job_id, results)
        final = await self.store.meta(job_id)
        if final is None or self._stopping:
            return
        status = "cancelled" if final["status"] == "cancelled" else "succeeded"
        if status == "succeeded" and final["done"] < final["total"]:
            return  # not everything scored yet (stopped early); stays active
        ttl_s = self.service.settings.job_ttl_s
        await self.store.finish(job_id, ttl_s, status=status, finished_at=time.time(),
                                expires_at=time.time() + ttl_s, judge=self.service.judge)
        log.info("job %s %s: %d of %d items, %d errors", job_id, status, final["done"], final["total"], final["errors"])

    async def _score_chunk(self, job_id: str, meta: dict[str, Any], indices: list[int]) -> list[dict[str, Any]] | None:
        items = await self.store.items(job_id, indices)
        pairs = [pair_of(item) for item in items]
        while True:
            try:
                return await self.service.score_pairs(pairs, meta["priority"], timeout_s=meta["item_timeout_s"])
            except QueueFullError as exc:
                await asyncio.sleep(min(exc.retry_after_s, 5.0))
            except ShuttingDownError:
                return None
            except JudgeError as exc:  # a failure of the whole chunk: record it on each item
                return [{"id": p.id, "error": exc.to_dict()} for p in pairs]
