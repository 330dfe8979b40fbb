"""Test factories for distributed mode, shipped with the package (tests, benchmarks and fault
drills share them): a worker process, and a private Redis server that can be killed and
restarted on the same port with its append-only file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import redis

from judge_service.testing import JudgeProcess, free_port


class RunningWorker(JudgeProcess):
    """``python -m judge_service worker`` in its own process; ``env`` adds JUDGE_* settings."""

    def __init__(self, env: dict[str, str], worker_id: str) -> None:
        super().__init__(env, f"judge-worker-{worker_id}-")
        self.worker_id = worker_id

    def start(self) -> RunningWorker:
        self.spawn("worker", "--worker-id", self.worker_id)
        return self

    def __enter__(self) -> RunningWorker:
        return self.start()


class TempRedis:
    """A private ``redis-server`` on a free port, persisting to an append-only file (fsync
    always) in a temporary directory, so ``restart()`` brings back everything it acknowledged.
    ``persistent=False`` keeps nothing, like the machine's shared Redis."""

    def __init__(self, persistent: bool = True) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persistent = persistent
        self.dir = tempfile.mkdtemp(prefix="judge-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TempRedis:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--protected-mode", "no", "--logfile", os.path.join(self.dir, "redis.log")]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_s: float = 0.0) -> None:
        """Kill -9 (no clean shutdown), stay down ``down_s``, start again on the same port."""
        self.kill()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> TempRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
