"""Test factories shipped with the package: audio encoders, synthetic voiced clips, and a
real service process for HTTP tests and benchmarks (lhotse-style: tests and clients share
them)."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import soundfile as sf


def encode_audio(samples: np.ndarray, sample_rate_hz: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    """Encode float samples ``(n,)`` or ``(n, channels)`` as a WAV/FLAC/OGG file in memory."""
    buffer = io.BytesIO()
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    sf.write(buffer, samples, sample_rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def voiced_clip(
    duration_s: float, f0_hz: float = 150.0, sample_rate_hz: int = 16_000, seed: int = 0, amplitude: float = 0.2
) -> np.ndarray:
    """A voice-like harmonic tone with slow pitch movement and a little noise, float32 ``(n,)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    f0 = f0_hz * (1.0 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2
    noise = 0.01 * rng.standard_normal(t.size)
    return (amplitude * envelope * wave / 2.0 + noise).astype(np.float32)


def voiced_wav(duration_s: float, f0_hz: float = 150.0, seed: int = 0, sample_rate_hz: int = 16_000) -> bytes:
    return encode_audio(voiced_clip(duration_s, f0_hz, sample_rate_hz, seed), sample_rate_hz)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JudgeProcess:
    """``python -m judge_service <command>`` as a child process whose output goes to a log
    file; ``env`` adds JUDGE_* settings. The shared part of ``RunningServer`` and the
    distributed mode's ``RunningWorker``."""

    def __init__(self, env: dict[str, str] | None, log_prefix: str) -> None:
        self.env = {**os.environ, "JUDGE_LOG_LEVEL": "info", **(env or {})}
        self._log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "judge_service", *args], env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait (SIGKILL after ``timeout_s``); the exit status, None if never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)


class RunningServer(JudgeProcess):
    """``python -m judge_service serve`` in its own process, on ``port`` (default: a free one).

    ``env`` adds JUDGE_* settings. Use as a context manager; ``url`` is the base URL and
    ``log_text()`` returns what the server printed (for assertions and failure messages).
    ``start`` returns once ``/readyz`` says 200, or, with ``wait_ready=False``, once it answers.
    """

    def __init__(self, env: dict[str, str] | None = None, ready_timeout_s: float = 180.0, port: int = 0,
                 wait_ready: bool = True) -> None:
        super().__init__(env, "judge-server-")
        self.wait_ready = wait_ready
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout_s = ready_timeout_s

    def start(self) -> RunningServer:
        self.spawn("serve", "--host", "127.0.0.1", "--port", str(self.port))
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                status = httpx.get(self.url + "/readyz", timeout=2).status_code
                if status == 200 or not self.wait_ready:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {self.ready_timeout_s} s:\n{self.log_text()}")

    def __enter__(self) -> RunningServer:
        return self.start()


class ThreadedUvicorn:
    """An ASGI ``app`` served by uvicorn in a daemon thread of this process, on a free port
    (for small stand-in servers in tests: a system under test, a reward proxy). ``url`` is the
    base URL; use as a context manager."""

    def __init__(self, app: object, start_timeout_s: float = 10.0) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout_s = start_timeout_s
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ThreadedUvicorn:
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def iter_metric(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """Samples of a Prometheus metric in exposition ``text``: (labels, value)."""
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            labels: dict[str, str] = {}
            if "{" in head:
                metric, _, rest = head.partition("{")
                if metric != name:
                    continue
                for part in rest.rstrip("}").split(","):
                    if part:
                        k, _, v = part.partition("=")
                        labels[k] = v.strip('"')
            elif head != name:
                continue
            yield labels, float(value)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels`` (0 if none)."""
    return sum(v for l, v in iter_metric(text, name) if all(l.get(k) == x for k, x in labels.items()))
