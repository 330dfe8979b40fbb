"""The paras2s-judge command line, run as a user would (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from judge_service.demo import examples_dir, load_example_pairs

pytestmark = pytest.mark.slow


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "judge_service", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_demo_scores_every_bundled_pair_over_http_and_stops():
    done = run_cli("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    for pair in load_example_pairs():
        assert pair["id"] in done.stdout
    assert "pairs scored over HTTP" in done.stdout and "from the cache" in done.stdout
    assert "service stopped" in done.stdout


def test_score_in_process_prints_json():
    pair = load_example_pairs()[0]
    audio = examples_dir() / "audio"
    done = run_cli("score", str(audio / pair["query"]), str(audio / pair["response"]), "--emotion", "sad")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 1 <= result["score"] <= 5 and result["query_labels"]["emotion"]["label"] == "sad"
    assert "job" in result["query"]["transcript"].lower()


def test_bad_setting_stops_with_a_clear_message():
    done = run_cli("serve", env={"JUDGE_MAX_BATCH_ITEMZ": "4"})
    assert done.returncode == 2
    assert "JUDGE_MAX_BATCH_ITEMZ" in done.stderr and "JUDGE_MAX_BATCH_ITEMS" in done.stderr
