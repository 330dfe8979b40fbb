"""API keys, traffic classes and per-key rate limits over real HTTP (fake backend: this tests the
access layer, not the judge), plus the keys file, the CLI and the token bucket's two versions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import stat
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from starlette.requests import Request

from judge_service import cli
from judge_service.api.auth import effective_priority
from judge_service.api.keys_file import KeysFileError, create_key, disable_key, hash_key, parse_keys
from judge_service.api.rate_limit import BucketState, RedisRateLimiter, take_token
from judge_service.config import SettingsError, load_settings
from judge_service.testing import RunningServer, b64, free_port, metric_value, voiced_wav

REDIS_URL = "redis://127.0.0.1:6379/0"
FAST = {"rate_per_s": 1000.0, "burst": 1000}
KEYS = {  # name: (class, limits, disabled)
    "trainer": ("trainer", FAST, False),
    "benchmark": ("benchmark", FAST, False),
    "ci": ("ci", FAST, False),
    "revoked": ("trainer", FAST, True),
    "tiny": ("trainer", {"rate_per_s": 1.0, "burst": 2}, False),
}
WRONG_KEY = "ps2s_" + "x" * 43


def _make_keys(path: Path, spec: dict[str, tuple[str, dict, bool]]) -> dict[str, str]:
    keys = {name: create_key(path, name, cls, **limits) for name, (cls, limits, _) in spec.items()}
    for name, (_, _, disabled) in spec.items():
        if disabled:
            disable_key(path, name)
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _pair(seed: int, priority: str = "interactive") -> dict:
    return {"items": [{"id": "p", "query": {"audio": b64(voiced_wav(0.5, seed=seed))},
                       "response": {"audio": b64(voiced_wav(0.5, seed=seed + 1))}}], "priority": priority}


@pytest.fixture(scope="module")
def keys_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("auth") / "keys.json"


@pytest.fixture(scope="module")
def keys(keys_path) -> dict[str, str]:
    return _make_keys(keys_path, KEYS)


@pytest.fixture(scope="module")
def auth_server(keys_path, keys):
    # A slow fake backend with one pair per batch, so the order batches run in is observable.
    env = {"JUDGE_BACKEND": "fake", "JUDGE_API_KEYS_FILE": str(keys_path), "JUDGE_LOG_LEVEL": "debug",
           "JUDGE_REDIS_URL": "", "JUDGE_CACHE_MAX_ENTRIES": "0", "JUDGE_FAKE_BACKEND_DELAY_MS": "300",
           "JUDGE_MAX_BATCH_ITEMS": "2"}
    with RunningServer(env) as server:
        yield server


@pytest.fixture
def redis_prefix():
    """A fresh key prefix in the real Redis; every key under it is deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    prefix = f"test-auth-{uuid.uuid4().hex[:12]}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


# --- auth off, open routes, 401 / 403 / 200 -----------------------------------------------------


def test_without_a_keys_file_no_key_is_needed(fake_server) -> None:
    assert httpx.get(fake_server.url + "/v1/judge", timeout=10).status_code == 200
    assert httpx.post(fake_server.url + "/v1/score", json=_pair(1), timeout=30).status_code == 200


def test_probes_metrics_and_docs_need_no_key(auth_server) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        assert httpx.get(auth_server.url + path, timeout=10).status_code == 200, path


@pytest.mark.parametrize("headers", [{}, bearer(WRONG_KEY), {"X-API-Key": WRONG_KEY},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}])
def test_no_key_or_an_unknown_key_is_401(auth_server, headers) -> None:
    reply = httpx.get(auth_server.url + "/v1/judge", headers=headers, timeout=10)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    error = reply.json()["error"]
    assert error["type"] == "unauthorized" and ("Bearer" in error["message"] or "not known" in error["message"])


def test_both_header_forms_are_accepted(auth_server, keys) -> None:
    for headers in (bearer(keys["trainer"]), {"X-API-Key": keys["trainer"]}, {"authorization": f"bearer {keys['ci']}"}):
        assert httpx.get(auth_server.url + "/v1/judge", headers=headers, timeout=10).status_code == 200
    reply = httpx.post(auth_server.url + "/v1/score", json=_pair(3), headers={"X-API-Key": keys["ci"]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["results"][0].get("error") is None


def test_a_disabled_key_and_a_class_off_its_routes_are_403(auth_server, keys) -> None:
    revoked = httpx.get(auth_server.url + "/v1/judge", headers=bearer(keys["revoked"]), timeout=10)
    assert revoked.status_code == 403 and "disabled" in revoked.json()["error"]["message"]
    jobs = httpx.get(auth_server.url + "/v1/jobs/123", headers=bearer(keys["trainer"]), timeout=10)
    assert jobs.status_code == 403 and jobs.json()["error"]["type"] == "forbidden"
    assert "benchmark or ci" in jobs.json()["error"]["message"]
    for name in ("benchmark", "ci"):  # past the access check (the route itself may not exist yet)
        assert httpx.get(auth_server.url + "/v1/jobs/123", headers=bearer(keys[name]), timeout=10).status_code not in (401, 403)
    unlisted = httpx.get(auth_server.url + "/v1/not-a-route", headers=bearer(keys["ci"]), timeout=10)
    assert unlisted.status_code == 403 and "no traffic class" in unlisted.json()["error"]["message"]


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(auth_server, keys) -> None:
    def first_reply(extra_header: str) -> bytes:
        with socket.create_connection(("127.0.0.1", auth_server.port), timeout=5) as sock:
            # Announce 1 GiB and send none of it: only a refusal from the headers can answer.
            sock.sendall(f"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {1 << 30}\r\n{extra_header}\r\n".encode())
            return sock.recv(65536)

    assert first_reply("").startswith(b"HTTP/1.1 401")
    # With a key the body-size limit (inside the auth check) refuses it, also unread.
    assert first_reply(f"X-API-Key: {keys['trainer']}\r\n").startswith(b"HTTP/1.1 413")


# --- rate limits ---------------------------------------------------------------------------------


def test_a_spent_burst_is_429_with_retry_after_then_recovers(auth_server, keys) -> None:
    url, headers = auth_server.url + "/v1/judge", bearer(keys["tiny"])
    assert [httpx.get(url, headers=headers, timeout=10).status_code for _ in range(2)] == [200, 200]
    limited = httpx.get(url, headers=headers, timeout=10)
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limited"
    retry_after_s = int(limited.headers["retry-after"])
    assert retry_after_s == 1  # rate 1/s: the next token is at most a second away
    assert "retry after" in limited.json()["error"]["message"]
    time.sleep(retry_after_s + 0.05)
    assert httpx.get(url, headers=headers, timeout=10).status_code == 200


def test_the_lua_bucket_agrees_with_the_python_reference(redis_prefix) -> None:
    rate_per_s, burst = 2.5, 3
    # Bursts, a refill, a long idle (full again), a clock stepping back, near-simultaneous calls.
    times_s = [1000.0, 1000.0, 1000.1, 1000.1, 1000.15, 1000.5, 1000.9, 1002.0, 1002.01, 1002.02,
               1002.03, 1002.03, 1010.0, 1009.5, 1009.6, 1010.4, 1010.41, 1011.0]

    async def run() -> list[tuple[float, float]]:
        limiter = RedisRateLimiter(REDIS_URL, redis_prefix, retry_interval_s=5.0)
        try:
            return [await limiter.take("agree", rate_per_s, burst, now_s=t) for t in times_s]
        finally:
            await limiter.close()

    state: BucketState | None = None
    expected = []
    for t in times_s:
        state, wait_s = take_token(state, t, rate_per_s, burst)
        expected.append((wait_s, state.tokens))
    got = asyncio.run(run())
    flat = lambda pairs: [x for pair in pairs for x in pair]  # noqa: E731
    assert flat(got) == pytest.approx(flat(expected), abs=1e-9)
    assert sum(w == 0 for w, _ in expected) not in (0, len(times_s))  # both outcomes exercised


def test_the_redis_bucket_is_shared_by_two_replicas(tmp_path, redis_prefix) -> None:
    path = tmp_path / "keys.json"
    key = _make_keys(path, {"shared": ("ci", {"rate_per_s": 0.01, "burst": 3}, False)})["shared"]
    env = {"JUDGE_BACKEND": "fake", "JUDGE_API_KEYS_FILE": str(path), "JUDGE_REDIS_URL": REDIS_URL,
           "JUDGE_REDIS_KEY_PREFIX": redis_prefix}
    with RunningServer(env) as a, RunningServer(env) as b:
        def status(server: RunningServer) -> int:
            return httpx.get(server.url + "/v1/judge", headers=bearer(key), timeout=10).status_code

        assert [status(a), status(b), status(a)] == [200, 200, 200]  # one burst of 3, not 3 each
        assert [status(b), status(a)] == [429, 429]
    bucket_ttl_ms = redis.Redis.from_url(REDIS_URL).pttl(f"{redis_prefix}ratelimit:shared")
    assert bucket_ttl_ms > 0  # expires on its own once it would be full again


def test_without_redis_limits_fall_back_to_the_process(tmp_path) -> None:
    path = tmp_path / "keys.json"
    key = _make_keys(path, {"solo": ("trainer", {"rate_per_s": 0.01, "burst": 2}, False)})["solo"]
    env = {"JUDGE_BACKEND": "fake", "JUDGE_API_KEYS_FILE": str(path),
           "JUDGE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    with RunningServer(env) as server:
        statuses = [httpx.get(server.url + "/v1/judge", headers=bearer(key), timeout=10).status_code for _ in range(4)]
        log_text = server.log_text()
    assert statuses == [200, 200, 429, 429]  # still limited, never a 5xx
    assert log_text.count("Redis rate limiter unreachable") == 1


# --- priorities and idempotency ----------------------------------------------------------------


def _request(state: dict) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/score", "headers": [], "state": state})


@pytest.mark.parametrize("traffic_class,requested,expected", [
    ("benchmark", "interactive", "bulk"), ("benchmark", "bulk", "bulk"),
    ("trainer", "interactive", "interactive"), ("trainer", "bulk", "bulk"),
    ("ci", "interactive", "interactive"), (None, "interactive", "interactive"), (None, "bulk", "bulk"),
])
def test_effective_priority_is_never_more_urgent_than_the_class(traffic_class, requested, expected) -> None:
    state = {} if traffic_class is None else {"api_key_name": "k", "api_key_class": traffic_class}
    assert effective_priority(_request(state), requested) == expected


@pytest.mark.parametrize("contender,contender_first", [("benchmark", False), ("ci", True)])
def test_the_priority_cap_decides_the_order_batches_run_in(auth_server, keys, contender, contender_first) -> None:
    # The backend runs one pair per batch (300 ms). While a blocker runs, the contender asks for
    # 'interactive' and then a trainer does too. A benchmark key is capped to bulk, so the later
    # trainer goes first; a ci key keeps interactive and, being older, goes first.
    def post(key: str, seed: int, delay_s: float) -> float:
        time.sleep(delay_s)
        reply = httpx.post(auth_server.url + "/v1/score", json=_pair(seed), headers=bearer(key), timeout=30)
        assert reply.status_code == 200 and reply.json()["results"][0].get("error") is None
        return time.monotonic()

    base = 1000 if contender_first else 2000
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        pool.submit(post, keys["trainer"], base, 0.0)
        contender_done = pool.submit(post, keys[contender], base + 2, 0.1)
        trainer_done = pool.submit(post, keys["trainer"], base + 4, 0.2)
        assert (contender_done.result() < trainer_done.result()) is contender_first


def test_idempotency_keys_are_scoped_per_api_key(auth_server, keys) -> None:
    url, same = auth_server.url + "/v1/score", {"Idempotency-Key": "shared-by-two-tenants"}
    first = httpx.post(url, json=_pair(40), headers={**same, **bearer(keys["trainer"])}, timeout=30)
    # Another tenant, same Idempotency-Key, another body: its own request, neither refused as a
    # reused key nor answered with the first tenant's result.
    other = httpx.post(url, json=_pair(50), headers={**same, **bearer(keys["ci"])}, timeout=30)
    assert first.status_code == other.status_code == 200
    assert "idempotent-replayed" not in other.headers and other.content != first.content
    again = httpx.post(url, json=_pair(40), headers={**same, **bearer(keys["trainer"])}, timeout=30)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content


# --- keys file and CLI -------------------------------------------------------------------------


def _entry(name: str = "a", **overrides: object) -> dict:
    return {"name": name, "sha256": hash_key(name), "class": "trainer", "rate_per_s": 5, "burst": 10, **overrides}


@pytest.mark.parametrize("entries,needles", [
    ([_entry(**{"class": "trainr"})], ["keys[0] ('a')", "'trainr' is not one of benchmark, ci, trainer"]),
    ([_entry(sha256="abc123")], ["keys[0] ('a')", "64 lowercase hex", "got 6 characters"]),
    ([_entry("a"), _entry("a", sha256=hash_key("b"))], ["keys[1] ('a')", "names must be unique"]),
    ([_entry("a"), _entry("b", sha256=hash_key("a"))], ["keys[1] ('b')", "same key hash as keys[0] ('a')"]),
    ([_entry(rate_per_sec=3)], ["unknown field(s) rate_per_sec"]),
    ([_entry(burst=0), _entry("b", rate_per_s=-1)], ["burst must be a whole number", "keys[1] ('b'): rate_per_s"]),
])
def test_keys_file_problems_name_the_entry_and_the_fix(entries, needles) -> None:
    with pytest.raises(KeysFileError) as raised:
        parse_keys(json.dumps({"version": 1, "keys": entries}), "keys.json")
    for needle in needles:
        assert needle in str(raised.value)


def test_a_bad_keys_file_stops_the_server_at_start_up(tmp_path, monkeypatch, capsys) -> None:
    for name in [n for n in os.environ if n.startswith("JUDGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JUDGE_API_KEYS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(SettingsError, match="paras2s-judge keys create"):
        load_settings()
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"version": 1, "keys": [_entry(**{"class": "root"})]}))
    monkeypatch.setenv("JUDGE_API_KEYS_FILE", str(bad))
    monkeypatch.setenv("JUDGE_BACKEND", "fake")
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "'root' is not one of" in capsys.readouterr().err


def test_cli_create_list_disable_round_trip(tmp_path, capsys) -> None:
    path = tmp_path / "keys.json"
    assert cli.main(["keys", "create", "--file", str(path), "--name", "grpo-run-7", "--class", "trainer",
                     "--rate-per-s", "50", "--burst", "100"]) == 0
    out = capsys.readouterr().out
    key = out.strip()
    assert out == key + "\n" and key.startswith("ps2s_") and len(key) >= 45  # the key, and only it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in path.read_text() and hash_key(key) in path.read_text()
    assert cli.main(["keys", "create", "--file", str(path), "--name", "bench", "--class", "benchmark"]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "create", "--file", str(path), "--name", "bench", "--class", "ci"]) == 2
    assert "already has a key named 'bench'" in capsys.readouterr().err
    assert cli.main(["keys", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "grpo-run-7" in listing and "trainer" in listing and "50" in listing and "100" in listing
    assert hash_key(key)[:8] in listing and key not in listing and "active" in listing
    assert cli.main(["keys", "disable", "--file", str(path), "--name", "grpo-run-7"]) == 0
    capsys.readouterr()
    cli.main(["keys", "list", "--file", str(path)])
    assert "disabled" in next(line for line in capsys.readouterr().out.splitlines() if "grpo-run-7" in line)


def test_a_running_server_follows_edits_of_the_keys_file(auth_server, keys_path, capsys) -> None:
    assert cli.main(["keys", "create", "--file", str(keys_path), "--name", "late", "--class", "ci"]) == 0
    key = capsys.readouterr().out.strip()
    url = auth_server.url + "/v1/judge"

    def status_within(expected: int, timeout_s: float = 3.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            status = httpx.get(url, headers=bearer(key), timeout=10).status_code
            if status == expected or time.monotonic() > deadline:
                return status
            time.sleep(0.2)

    assert status_within(200) == 200
    assert cli.main(["keys", "disable", "--file", str(keys_path), "--name", "late"]) == 0
    assert status_within(403) == 403


# --- secrets and metrics -----------------------------------------------------------------------


def test_no_key_ever_reaches_the_log_and_outcomes_are_counted(auth_server, keys) -> None:
    url = auth_server.url + "/v1/judge"
    statuses = {
        httpx.get(url, headers=bearer(keys["trainer"]), timeout=10).status_code,
        httpx.post(auth_server.url + "/v1/score", json=_pair(60), headers={"X-API-Key": keys["benchmark"]}, timeout=30).status_code,
        httpx.get(url, headers=bearer(WRONG_KEY), timeout=10).status_code,
        httpx.get(url, headers={"X-API-Key": keys["revoked"]}, timeout=10).status_code,
        httpx.get(auth_server.url + "/v1/jobs", headers=bearer(keys["trainer"]), timeout=10).status_code,
        *(httpx.get(url, headers=bearer(keys["tiny"]), timeout=10).status_code for _ in range(4)),
    }
    assert {200, 401, 403, 429} <= statuses
    log_text = auth_server.log_text()
    assert "'tiny'" in log_text and "'revoked'" in log_text  # the log names keys (debug level here)
    for key in [*keys.values(), WRONG_KEY]:
        assert key not in log_text and key[len("ps2s_"):] not in log_text
    metrics = httpx.get(auth_server.url + "/metrics", timeout=10).text
    for traffic_class, result in [("trainer", "allowed"), ("none", "unauthorized"), ("trainer", "forbidden"),
                                  ("trainer", "rate_limited"), ("benchmark", "allowed")]:
        assert metric_value(metrics, "judge_auth_requests_total", **{"class": traffic_class, "result": result}) > 0
