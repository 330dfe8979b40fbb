"""Real uvicorn servers for HTTP tests (module-scoped: each costs a process start)."""

from __future__ import annotations

import pytest

from judge_service.testing import RunningServer

FAKE = {"JUDGE_BACKEND": "fake"}


@pytest.fixture(scope="module")
def fake_server():
    """The fake backend (HTTP/scheduling only), default limits except a 3 MiB body cap."""
    with RunningServer({**FAKE, "JUDGE_MAX_REQUEST_BYTES": str(3 * 1024 * 1024), "JUDGE_MAX_CLIP_DURATION_S": "10"}) as server:
        yield server
