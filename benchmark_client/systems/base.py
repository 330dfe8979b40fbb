"""The system-under-test contract: a query item in, response audio out.

A system answers one ``BenchItem`` at a time (``respond`` is awaited concurrently, up to the run's
concurrency). ``prepare`` runs once before the first ``respond`` with every item of the run, for
systems that work better in bulk (reference systems render all their replies in a process pool).
A system that cannot answer an item raises ``SystemFailure``: the run records it as that item's
``system`` error and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from benchmark_client.manifest import BenchItem


class SystemFailure(Exception):
    """The system under test gave no usable response for one item (recorded, never fatal)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


class SystemSpecError(ValueError):
    """A ``--system`` value names no known system or adapter; the message lists the forms."""


@dataclass(frozen=True)
class SystemResponse:
    """Response audio: encoded bytes (WAV/FLAC/OGG) or a path to such a file; exactly one."""

    audio: bytes | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if (self.audio is None) == (self.path is None):
            raise ValueError("a SystemResponse holds audio bytes or a path, exactly one")

    def read(self) -> bytes:
        return self.audio if self.audio is not None else self.path.read_bytes()


class System(Protocol):
    name: str

    def prepare(self, items: Sequence[BenchItem], log: Callable[[str], None]) -> None: ...

    async def respond(self, item: BenchItem) -> SystemResponse: ...

    async def aclose(self) -> None: ...
