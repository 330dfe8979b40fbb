"""Names of every Redis key distributed mode uses, in one place (all under the key prefix).

    <prefix>work:interactive, <prefix>work:bulk   streams of work entries (consumer group
                                                  ``judge-workers``); a worker reads the
                                                  interactive stream first
    <prefix>result:<job id>                       a job's result (JSON, first write wins, TTL)
    <prefix>replies:<replica id>                  list of finished job ids for one API replica
    <prefix>workers:<worker id>                   a live worker's heartbeat (JSON, TTL)
"""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "judge-workers"
PRIORITY_STREAMS = ("interactive", "bulk")
"""Stream names in the order workers read them (most urgent first); index = priority."""


@dataclass(frozen=True)
class StreamKeys:
    prefix: str

    def work(self, priority: int) -> str:
        return f"{self.prefix}work:{PRIORITY_STREAMS[priority]}"

    def all_work(self) -> list[str]:
        return [self.work(p) for p in range(len(PRIORITY_STREAMS))]

    def result(self, job_id: str) -> str:
        return f"{self.prefix}result:{job_id}"

    def replies(self, replica_id: str) -> str:
        return f"{self.prefix}replies:{replica_id}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}workers:{worker_id}"

    def worker_pattern(self) -> str:
        return f"{self.prefix}workers:*"
