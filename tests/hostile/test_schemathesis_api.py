"""Schemathesis over the service's OpenAPI spec, CI size (~100 cases, well under a minute):
no generated request may get a 5xx. The full run is ``scripts/hostile/schemathesis_api.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from judge_service.testing import voiced_wav

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWN_BUG_OPERATIONS: list[str] = []
"""Operations left out of the generated run while a reported 5xx in them is open (none now)."""


def test_generated_requests_never_get_a_server_error(tmp_path):
    pytest.importorskip("schemathesis", reason="schemathesis is not installed; pip install -e '.[test]'")
    out = tmp_path / "schemathesis.json"
    command = [sys.executable, "-m", "scripts.hostile.schemathesis_api", "--passes", "completed",
               "--phases", "examples,fuzzing", "--max-examples", "25", "--seed", "3", "--out", str(out),
               *[arg for name in KNOWN_BUG_OPERATIONS for arg in ("--exclude", name)]]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["cases"] >= 100, result["cases"]
    assert result["server_errors"] == 0, json.dumps(result["passes"][0]["server_errors"][:3], indent=1)
    assert result["blocking_failures"] == 0, json.dumps(result["passes"][0]["failures"], indent=1)
    assert result["server"]["healthy_after"] and not result["server"]["internal_error_log_lines"]
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("items", ["not json", "[" * 100_000])
def test_a_multipart_job_with_malformed_items_json_is_refused_with_a_4xx(fake_server, items):
    clip = voiced_wav(0.5)
    reply = httpx.post(fake_server.url + "/v1/jobs", files={"query": ("q.wav", clip), "response": ("r.wav", clip)},
                       data={"items": items}, timeout=30)
    assert reply.status_code == 422 and reply.json()["error"]["type"] == "invalid_request", reply.text
