"""Real uvicorn servers for the hostile-input tests (module-scoped: each costs a process start)."""

from __future__ import annotations

import pytest

from judge_service.testing import RunningServer

FAKE = {"JUDGE_BACKEND": "fake"}
SMALL_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def fake_server():
    """The fake backend with default limits."""
    with RunningServer(FAKE) as server:
        yield server


@pytest.fixture(scope="module")
def small_body_server():
    """The fake backend with a 64 KiB request body limit."""
    with RunningServer({**FAKE, "JUDGE_MAX_REQUEST_BYTES": str(SMALL_BODY_BYTES)}) as server:
        yield server
