"""Adapters for the S2S system under test: a folder of responses, an HTTP endpoint, a Python callable.

``--system`` forms (see ``systems.make_system``):

* ``dir:PATH``: ``PATH/<item id>.wav`` (or ``.flac``/``.ogg``) is the response to item ``<item id>``;
  a missing file is that item's system error ``missing_response``.
* ``http://...`` / ``https://...``: the HTTP contract below.
* ``py:package.module:function``: ``function(query_audio: bytes, item: dict) -> response`` where
  ``item`` is ``{"id", "audio_path"}`` and ``response`` is encoded audio ``bytes``, a path
  (``str``/``Path``) to an audio file, or ``(samples: np.ndarray (n,) float, sample_rate_hz: int)``.
  ``async def`` functions are awaited concurrently; plain functions run in a worker thread one at
  a time (most model code is not thread-safe).

HTTP contract (version 1). For every item the client sends::

    POST <URL>
    Content-Type: multipart/form-data
      query: the query audio file, as in the manifest (filename <id>.<ext>)
      id:    the item id

and expects ``200`` with the response audio as the body (WAV, FLAC or OGG; any ``Content-Type``).
``429``/``503`` are retried after ``Retry-After`` seconds (default 1 s), at most ``max_retries``
times; any other status, an empty body or a timeout is the item's system error. Only the audio and
the id are sent: the labels and the text stay in the manifest, since a system must hear the style.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
from pathlib import Path
from typing import Any, Callable, Sequence

import httpx
import numpy as np
import soundfile as sf

from benchmark_client.manifest import BenchItem
from benchmark_client.systems.base import SystemFailure, SystemResponse, SystemSpecError
from trainer_client.client import retry_after_s

RESPONSE_EXTENSIONS = (".wav", ".flac", ".ogg")


class DirectorySystem:
    """Responses made beforehand, one file per item id."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SystemSpecError(f"dir:{folder}: no such folder of responses")
        self.name = f"dir:{self.folder}"

    def prepare(self, items: Sequence[BenchItem], log: Callable[[str], None]) -> None:
        missing = sum(not any((self.folder / f"{i.id}{ext}").is_file() for ext in RESPONSE_EXTENSIONS) for i in items)
        if missing:
            log(f"[system] {self.name}: {missing}/{len(items)} items have no response file (recorded as errors)")

    async def respond(self, item: BenchItem) -> SystemResponse:
        for ext in RESPONSE_EXTENSIONS:
            path = self.folder / f"{item.id}{ext}"
            if path.is_file():
                return SystemResponse(path=path)
        raise SystemFailure("missing_response", f"no {item.id}{{{','.join(RESPONSE_EXTENSIONS)}}} in {self.folder}")

    async def aclose(self) -> None:
        return None


class HttpSystem:
    """A system behind an HTTP endpoint (contract in the module docstring)."""

    def __init__(self, url: str, *, timeout_s: float = 120.0, max_retries: int = 3) -> None:
        self.name = url
        self.url = url
        self.max_retries = max_retries
        self._client = httpx.AsyncClient(timeout=timeout_s)

    def prepare(self, items: Sequence[BenchItem], log: Callable[[str], None]) -> None:
        return None

    async def respond(self, item: BenchItem) -> SystemResponse:
        audio = item.audio_path.read_bytes()
        for attempt in range(self.max_retries + 1):
            try:
                reply = await self._client.post(
                    self.url, files={"query": (f"{item.id}{item.audio_path.suffix}", audio)}, data={"id": item.id}
                )
            except httpx.TimeoutException:
                raise SystemFailure("timeout", f"{self.url} did not answer in {self._client.timeout.read} s") from None
            except httpx.TransportError as exc:
                raise SystemFailure("unreachable", f"{self.url}: {type(exc).__name__}: {exc}") from None
            if reply.status_code in (429, 503) and attempt < self.max_retries:
                await asyncio.sleep(retry_after_s(reply))
                continue
            if reply.status_code != 200:
                raise SystemFailure(f"http_{reply.status_code}", f"{self.url} answered {reply.status_code}: {reply.text[:200]}")
            if not reply.content:
                raise SystemFailure("empty_response", f"{self.url} answered 200 with an empty body")
            return SystemResponse(audio=reply.content)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def aclose(self) -> None:
        await self._client.aclose()



class PythonSystem:
    """A callable ``package.module:function`` (contract in the module docstring)."""

    def __init__(self, target: str) -> None:
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise SystemSpecError(f"py:{target}: expected py:package.module:function")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SystemSpecError(f"py:{target}: cannot import {module_name!r}: {exc}") from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise SystemSpecError(f"py:{target}: {module_name} has no callable {attr!r}")
        self.name = f"py:{target}"
        self._function = function
        self._is_async = inspect.iscoroutinefunction(function)
        self._lock = asyncio.Lock()

    def prepare(self, items: Sequence[BenchItem], log: Callable[[str], None]) -> None:
        return None

    async def respond(self, item: BenchItem) -> SystemResponse:
        audio = item.audio_path.read_bytes()
        request = {"id": item.id, "audio_path": str(item.audio_path)}
        try:
            if self._is_async:
                result = await self._function(audio, request)
            else:
                async with self._lock:
                    result = await asyncio.to_thread(self._function, audio, request)
        except SystemFailure:
            raise
        except Exception as exc:  # the system's own failure: record it for this item, go on
            raise SystemFailure("exception", f"{self.name} raised {type(exc).__name__}: {exc}") from exc
        return _as_response(result, self.name)

    async def aclose(self) -> None:
        return None


def _as_response(result: Any, name: str) -> SystemResponse:
    if isinstance(result, (bytes, bytearray)):
        if not result:
            raise SystemFailure("empty_response", f"{name} returned empty bytes")
        return SystemResponse(audio=bytes(result))
    if isinstance(result, (str, Path)):
        path = Path(result)
        if not path.is_file():
            raise SystemFailure("missing_response", f"{name} returned {path}, which does not exist")
        return SystemResponse(path=path)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], np.ndarray):
        samples, rate_hz = result
        buffer = io.BytesIO()
        sf.write(buffer, np.asarray(samples, dtype=np.float32), int(rate_hz), format="WAV", subtype="FLOAT")
        return SystemResponse(audio=buffer.getvalue())
    raise SystemFailure("bad_response", f"{name} returned {type(result).__name__}; expected bytes, a path or (samples, rate)")
