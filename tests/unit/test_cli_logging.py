"""The service's logging set-up: its own lines at the configured level, httpx's per-request lines not."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = (
    "import logging, sys; from judge_service.cli import _configure_logging; _configure_logging(sys.argv[1]); "
    "print(logging.getLogger('judge_service').getEffectiveLevel(), logging.getLogger('httpx').getEffectiveLevel(), "
    "logging.getLogger('httpcore').getEffectiveLevel())"
)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("info", [20, 30, 30]), ("warning", [30, 30, 30]), ("debug", [10, 10, 10])],
)
def test_httpx_request_lines_are_quiet_unless_debugging(level, expected):
    # A fresh interpreter: basicConfig does nothing once pytest has configured the root logger.
    out = subprocess.run([sys.executable, "-c", PROBE, level], capture_output=True, text=True, check=True).stdout
    assert [int(v) for v in out.split()] == expected
