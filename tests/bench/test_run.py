"""``paras2s-bench run`` against real judge processes: the fake backend for the run's mechanics
(errors recorded per item, resumption, a killed run), the real judge for one end-to-end run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark_client.generate import generate
from benchmark_client.manifest import load_manifest
from benchmark_client.results import ResultsError, load_results, read_items_jsonl
from benchmark_client.run import RunPaths, run_benchmark
from benchmark_client.systems import make_system
from judge_service.testing import RunningServer
from tests.bench.conftest import make_manifest
from tests.bench.s2s_fixtures import CALLS_LOG_ENV, FAIL_IDS_ENV, SLEEP_ENV

REPO = Path(__file__).resolve().parents[2]
BENCH = [sys.executable, "-m", "benchmark_client.cli"]


@pytest.fixture(scope="module")
def fake_judge():
    """The fake backend: the judge's HTTP and scheduling layers, no listening (scores are hashes)."""
    with RunningServer({"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_MAX_CLIP_DURATION_S": "10"}) as server:
        yield server


def _run(manifest, spec: str, out: Path, url: str, **kw):
    system = make_system(spec, cache_dir=out.parent / "replies")
    return run_benchmark(manifest, system, out, judge_url=url, progress=False, log=lambda _: None, **kw)


def test_errors_are_recorded_per_item_and_a_resumed_run_retries_only_them(tmp_path, fake_judge, monkeypatch) -> None:
    manifest = load_manifest(make_manifest(tmp_path / "bench", groups=3))
    calls = tmp_path / "calls.log"
    monkeypatch.setenv(CALLS_LOG_ENV, str(calls))
    monkeypatch.setenv(FAIL_IDS_ENV, "g1.sad")
    out = tmp_path / "runs" / "results.json"
    doc = _run(manifest, "py:tests.bench.s2s_fixtures:answer_bytes", out, fake_judge.url, concurrency=4)
    assert doc["counts"] == {"items": 6, "scored": 5, "system_errors": 1, "judge_errors": 0}
    failed = next(i for i in doc["items"] if i["error"])
    assert failed["id"] == "g1.sad" and failed["error"]["stage"] == "system" and "model crashed" in failed["error"]["message"]
    assert [i["id"] for i in doc["items"]] == [i.id for i in manifest.items]  # manifest order
    scored = {i["id"]: i["score"] for i in doc["items"] if i["score"] is not None}
    ok = next(i for i in doc["items"] if i["score"] is not None)
    assert ok["judge"]["name"] == "fake-for-tests-only"
    assert Path(ok["response_audio"]).is_file() and Path(ok["response_audio"]).parent == RunPaths(out).responses_dir
    assert ok["timing"]["server_total_ms"] > 0 and ok["timing"]["client_s"] > 0
    for suffix in (".md", ".html"):
        assert out.with_suffix(suffix).is_file()
    assert load_results(out)["counts"]["system_errors"] == 1

    # The model is fixed; the rerun asks it only for the failed item and keeps every score.
    calls.unlink()
    monkeypatch.setenv(FAIL_IDS_ENV, "")
    doc = _run(manifest, "py:tests.bench.s2s_fixtures:answer_bytes", out, fake_judge.url, concurrency=4)
    assert calls.read_text().split() == ["g1.sad"]
    assert doc["counts"] == {"items": 6, "scored": 6, "system_errors": 0, "judge_errors": 0}
    assert all(scored[i["id"]] == i["score"] for i in doc["items"] if i["id"] in scored)


def test_judge_refusals_are_judge_errors_and_do_not_fail_neighbours(tmp_path, fake_judge) -> None:
    manifest = load_manifest(make_manifest(tmp_path / "bench", groups=1))
    out = tmp_path / "nan.json"
    doc = _run(manifest, "py:tests.bench.s2s_fixtures:answer_nan", out, fake_judge.url, concurrency=2)
    assert doc["counts"]["judge_errors"] == 2
    assert {i["error"]["type"] for i in doc["items"]} == {"audio_non_finite"}
    # A folder system with one response too long for this judge (10 s cap) and one good one.
    responses = tmp_path / "responses"
    responses.mkdir()
    from judge_service.testing import voiced_wav

    (responses / "g0.happy.wav").write_bytes(voiced_wav(12.0))
    (responses / "g0.sad.wav").write_bytes(voiced_wav(1.0))
    doc = _run(manifest, f"dir:{responses}", tmp_path / "dir.json", fake_judge.url)
    by_id = {i["id"]: i for i in doc["items"]}
    assert by_id["g0.happy"]["error"]["type"] == "audio_too_long" and by_id["g0.sad"]["score"] is not None


def test_a_sidecar_from_another_run_is_refused_unless_restarted(tmp_path, fake_judge) -> None:
    manifest = load_manifest(make_manifest(tmp_path / "bench", groups=1))
    out = tmp_path / "r.json"
    _run(manifest, "py:tests.bench.s2s_fixtures:answer_path", out, fake_judge.url)
    with pytest.raises(ResultsError, match="holds a run of system 'py:tests.bench.s2s_fixtures:answer_path'"):
        _run(manifest, "py:tests.bench.s2s_fixtures:answer_async", out, fake_judge.url)
    doc = _run(manifest, "py:tests.bench.s2s_fixtures:answer_async", out, fake_judge.url, restart=True)
    assert doc["run"]["system"] == "py:tests.bench.s2s_fixtures:answer_async" and doc["counts"]["scored"] == 2


def test_a_killed_run_resumes_without_redoing_recorded_items(tmp_path, fake_judge) -> None:
    manifest_path = make_manifest(tmp_path / "bench", groups=4)
    out = tmp_path / "killed.json"
    calls = tmp_path / "calls.log"
    env = {**os.environ, CALLS_LOG_ENV: str(calls), SLEEP_ENV: "0.4", "PYTHONPATH": str(REPO)}
    command = [*BENCH, "run", "--manifest", str(manifest_path), "--system", "py:tests.bench.s2s_fixtures:answer_bytes",
               "--out", str(out), "--judge-url", fake_judge.url, "--concurrency", "1", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sidecar = RunPaths(out).items_jsonl
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not sidecar.exists() or len(sidecar.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = set(read_items_jsonl(sidecar))
    assert 3 <= len(recorded) < 8 and not out.exists()
    calls.write_text("")
    finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stderr
    again = set(calls.read_text().split())
    assert not again & recorded and again | recorded == {f"g{g}.{s}" for g in range(4) for s in ("happy", "sad")}
    assert load_results(out)["counts"] == {"items": 8, "scored": 8, "system_errors": 0, "judge_errors": 0}


def test_cli_exit_codes_validate_ci_compare(tmp_path, fake_judge) -> None:
    manifest_path = make_manifest(tmp_path / "bench", groups=2)
    ok = subprocess.run([*BENCH, "validate", str(manifest_path)], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0 and "4 items" in ok.stdout
    broken = tmp_path / "broken.jsonl"
    broken.write_text(manifest_path.read_text().replace('"split": "synthetic"', '"split": "dev"', 1))
    bad = subprocess.run([*BENCH, "validate", str(broken)], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "split 'dev' must be one of" in bad.stderr
    runs = {}
    for name in ("answer_bytes", "answer_async"):
        runs[name] = tmp_path / f"{name}.json"
        done = subprocess.run([*BENCH, "run", "--manifest", str(manifest_path), "--system", f"py:tests.bench.s2s_fixtures:{name}",
                               "--out", str(runs[name]), "--judge-url", fake_judge.url, "--no-progress"],
                              capture_output=True, text=True, cwd=REPO)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "| Split / dimension |" in done.stdout
    mean = load_results(runs["answer_bytes"])["table"]["overall"]["mean"]
    summary = tmp_path / "summary.md"
    passed = subprocess.run([*BENCH, "ci", str(runs["answer_bytes"]), "--min-overall", str(mean - 0.01), "--summary", str(summary)],
                            capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert passed.returncode == 0 and "✅" in passed.stdout and summary.read_text() == passed.stdout
    failed = subprocess.run([*BENCH, "ci", str(runs["answer_bytes"]), "--min-overall", str(mean + 0.01)],
                            capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert failed.returncode == 1 and "❌" in failed.stdout
    no_baseline = subprocess.run([*BENCH, "ci", str(runs["answer_bytes"]), "--max-drop", "0.1"], capture_output=True, text=True, cwd=REPO)
    assert no_baseline.returncode == 2 and "--baseline" in no_baseline.stderr
    compared = subprocess.run([*BENCH, "compare", str(runs["answer_bytes"]), str(runs["answer_async"])],
                              capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert compared.returncode == 0 and "emotion" in compared.stdout
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    refused = subprocess.run([*BENCH, "ci", str(junk)], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2 and "not a paras2s-bench-results file" in refused.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_end_to_end_with_the_real_judge(tmp_path) -> None:
    """generate -> run with the real judge: ``topline`` started by the CLI with no --judge-url
    (the bundled judge starts locally); ``silence`` and ``topline`` again, this time behind the
    HTTP contract (``serve-system``), against one running judge. The judge must put silence far
    below the topline, and the HTTP path must give the same scores as the direct one (to 1e-5)."""
    from judge_service.testing import free_port

    manifest = generate(tmp_path / "bench", per_dimension=1, seed=0, workers=0, log=lambda _: None)
    env = {**os.environ, "JUDGE_REDIS_URL": "", "PYTHONPATH": str(REPO)}

    def run(system: str, out: Path, *extra: str) -> dict:
        done = subprocess.run([*BENCH, "run", "--manifest", str(manifest.path), "--system", system, "--out", str(out),
                               "--no-progress", "--workers", "0", *extra], capture_output=True, text=True, cwd=REPO,
                              env=env, timeout=400)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        doc = json.loads(out.read_text())
        assert doc["counts"] == {"items": 8, "scored": 8, "system_errors": 0, "judge_errors": 0}
        assert doc["run"]["judge"]["name"] == "paras2s-baseline"
        assert all(i["query_transcript"] and i["rationale"] for i in doc["items"])
        return doc

    topline = run("topline", tmp_path / "topline.json")
    assert topline["run"]["judge_started_locally"]
    port = free_port()
    system_server = subprocess.Popen([*BENCH, "serve-system", "--system", "topline", "--manifest", str(manifest.path),
                                      "--port", str(port), "--workers", "0"], env=env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        with RunningServer({"JUDGE_REDIS_URL": ""}) as judge:
            deadline = time.monotonic() + 120
            while True:
                try:
                    import httpx

                    if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and system_server.poll() is None, "serve-system did not start"
                time.sleep(0.2)
            silence = run("silence", tmp_path / "silence.json", "--judge-url", judge.url)
            over_http = run(f"http://127.0.0.1:{port}/respond", tmp_path / "http.json", "--judge-url", judge.url)
    finally:
        system_server.terminate()
        system_server.wait(timeout=30)
    assert silence["table"]["overall"]["mean"] < 1.5 < 3.0 < topline["table"]["overall"]["mean"]
    # Same audio either way; the two runs batch items differently, so scores agree to the judge's
    # batch-invariance tolerance (1e-5), not bit for bit.
    assert [i["score"] for i in over_http["items"]] == pytest.approx([i["score"] for i in topline["items"]], abs=1e-5)
