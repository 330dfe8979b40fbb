"""Systems under test: adapters for a user's S2S model and the built-in reference systems."""

from __future__ import annotations

from pathlib import Path

from benchmark_client.systems.adapters import DirectorySystem, HttpSystem, PythonSystem
from benchmark_client.systems.base import System, SystemFailure, SystemResponse, SystemSpecError
from benchmark_client.systems.reference import REFERENCE_SYSTEMS, ReferenceSystem

SYSTEM_FORMS = (
    f"a reference system ({', '.join(REFERENCE_SYSTEMS)}), dir:PATH (a folder of <item id>.wav responses), "
    "http://HOST/PATH (the HTTP contract in benchmark_client/systems/adapters.py), or "
    "py:package.module:function"
)


def make_system(spec: str, *, cache_dir: Path, workers: int | None = None) -> System:
    """The system named by a ``--system`` value (forms in ``SYSTEM_FORMS``)."""
    if spec in REFERENCE_SYSTEMS:
        return ReferenceSystem(spec, cache_dir, workers=workers)
    if spec.startswith("dir:"):
        return DirectorySystem(spec[4:])
    if spec.startswith(("http://", "https://")):
        return HttpSystem(spec)
    if spec.startswith("py:"):
        return PythonSystem(spec[3:])
    raise SystemSpecError(f"unknown system {spec!r}; use {SYSTEM_FORMS}")


__all__ = [
    "REFERENCE_SYSTEMS", "SYSTEM_FORMS", "DirectorySystem", "HttpSystem", "PythonSystem", "ReferenceSystem",
    "System", "SystemFailure", "SystemResponse", "SystemSpecError", "make_system",
]  # fmt: skip
