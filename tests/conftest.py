"""Shared fixtures. HTTP tests start real uvicorn processes (judge_service.testing)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

SHARED_SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "speech"
REDIS_URL = os.environ.get("PARAS2S_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The project's Redis (127.0.0.1:6379 on every machine, CI included)."""
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to this test; the test cleans its keys up."""
    return f"paras2s-test:{uuid.uuid4().hex[:12]}:"


def shared_speech_dir() -> Path:
    return SHARED_SPEECH


speech = pytest.mark.skipif(not SHARED_SPEECH.is_dir(), reason="../shared/speech is absent")
