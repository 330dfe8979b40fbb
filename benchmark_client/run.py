"""``paras2s-bench run``: every manifest item through the system under test, then the judge.

Flow per item (at most ``concurrency`` items in flight): the system answers the query audio ->
the response audio is kept under ``<RESULTS stem>.responses/`` (when the system returned bytes)
-> the judge scores (query, response) -> one ``ItemResult`` line is appended to
``<RESULTS stem>.items.jsonl`` and flushed. So a run killed at any point resumes where it
stopped: items with a score are kept, items with an error are retried. When every item has a
record, ``RESULTS.json`` (``results.py``) and its Markdown and HTML reports are written.

With no ``judge_url`` the judge service is started locally (``paras2s-judge serve`` on a free
port, in-process cache) and stopped at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from benchmark_client.judge_client import JudgeClient
from benchmark_client.manifest import BenchItem, Manifest
from benchmark_client.results import ItemError, ItemResult, ResultsError, read_items_jsonl, results_document
from benchmark_client.systems.base import System, SystemFailure

DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes, all derived from ``RESULTS.json``."""

    results: Path

    @property
    def items_jsonl(self) -> Path:
        return self.results.with_suffix(".items.jsonl")

    @property
    def run_json(self) -> Path:
        return self.results.with_suffix(".run.json")

    @property
    def responses_dir(self) -> Path:
        return self.results.with_suffix(".responses")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _check_resumable(paths: RunPaths, identity: dict[str, str], restart: bool) -> None:
    """A sidecar from another system or manifest must not be mixed into this run."""
    if restart:
        paths.items_jsonl.unlink(missing_ok=True)
    elif paths.run_json.exists() and paths.items_jsonl.exists():
        previous = json.loads(paths.run_json.read_text())
        if {k: previous.get(k) for k in identity} != identity:
            raise ResultsError(
                f"{paths.items_jsonl} holds a run of system {previous.get('system')!r} over manifest "
                f"{previous.get('manifest')} (sha256 {str(previous.get('manifest_sha256'))[:12]}); this run is "
                f"{identity['system']!r} over {identity['manifest']}. Use another --out, or --restart to discard it."
            )
    paths.results.parent.mkdir(parents=True, exist_ok=True)
    paths.run_json.write_text(json.dumps(identity, indent=2) + "\n")


class _ItemWriter:
    """Appends one JSON line per finished item and flushes it, so a crash loses at most one line."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, result: ItemResult) -> None:
        self._file.write(json.dumps(result.to_record()) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _base_result(item: BenchItem) -> ItemResult:
    return ItemResult(
        id=item.id, split=item.split, dimension=item.dimension, style=item.style,
        contrast_group=item.contrast_group, scenario_id=item.scenario_id, query_audio=str(item.audio_path.resolve()),
    )  # fmt: skip


async def score_item(item: BenchItem, system: System, judge: JudgeClient, responses_dir: Path) -> ItemResult:
    """One item end to end; every failure becomes the item's error, never an exception."""
    result = _base_result(item)
    started = time.perf_counter()
    try:
        response = await system.respond(item)
        response_audio = response.read()
    except SystemFailure as exc:
        result.error = ItemError("system", exc.type, exc.message)
        result.timing = {"system_s": round(time.perf_counter() - started, 4)}
        return result
    except OSError as exc:
        result.error = ItemError("system", "unreadable_response", f"{type(exc).__name__}: {exc}")
        return result
    result.timing["system_s"] = round(time.perf_counter() - started, 4)
    if response.path is not None:
        result.response_audio = str(response.path.resolve())
    else:
        path = responses_dir / f"{item.id}{_extension(response_audio)}"
        path.write_bytes(response_audio)
        result.response_audio = str(path.resolve())
    verdict = await judge.score(item.id, item.audio_path.read_bytes(), response_audio)
    result.timing.update(verdict.timing)
    result.judge = verdict.judge
    if verdict.error is not None:
        result.error = ItemError("judge", verdict.error["type"], verdict.error["message"])
        return result
    scored = verdict.result
    result.score = float(scored["score"])
    result.rationale = scored.get("rationale")
    result.query_labels = scored.get("query_labels")
    query, reply = scored.get("query") or {}, scored.get("response") or {}
    result.query_transcript = query.get("transcript")
    result.response_transcript = reply.get("transcript")
    result.response_tone = reply.get("tone")
    return result


def _extension(audio: bytes) -> str:
    if audio[:4] == b"fLaC":
        return ".flac"
    if audio[:4] == b"OggS":
        return ".ogg"
    return ".wav"


async def run_items(
    items: list[BenchItem], system: System, judge_url: str, paths: RunPaths, *, concurrency: int,
    progress: bool, log: Callable[[str], None],
) -> tuple[dict[str, ItemResult], dict[str, Any]]:
    """Score every item not already scored in the sidecar; returns (id -> result, judge info)."""
    done = read_items_jsonl(paths.items_jsonl)
    todo = [item for item in items if not (item.id in done and done[item.id].ok)]
    if done:
        log(f"[run] resuming: {len(items) - len(todo)} items already scored, {len(todo)} to go")
    paths.responses_dir.mkdir(parents=True, exist_ok=True)
    judge = JudgeClient(judge_url)
    writer = _ItemWriter(paths.items_jsonl)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="pair", desc=f"{system.name}", file=sys.stderr, dynamic_ncols=True)
    gate = asyncio.Semaphore(concurrency)
    errors = 0

    async def one(item: BenchItem) -> None:
        nonlocal errors
        async with gate:
            result = await score_item(item, system, judge, paths.responses_dir)
        writer.write(result)
        done[item.id] = result
        errors += not result.ok
        if bar is not None:
            bar.update(1)
            bar.set_postfix(errors=errors, refresh=False)

    try:
        info = await judge.info()
        await asyncio.gather(*(one(item) for item in todo))
    finally:
        writer.close()
        await judge.aclose()
        await system.aclose()
        if bar is not None:
            bar.close()
    return done, info


def run_benchmark(
    manifest: Manifest, system: System, out: str | Path, *, judge_url: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY, limit: int | None = None, restart: bool = False,
    progress: bool = True, judge_env: dict[str, str] | None = None, log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``system`` over ``manifest`` and write ``out`` (RESULTS.json) with its reports.

    ``limit`` keeps the first N items (a smoke run). Returns the results document.
    """
    from benchmark_client.report import score_table, write_reports

    paths = RunPaths(Path(out))
    items = list(manifest.items[:limit] if limit else manifest.items)
    identity = {"system": system.name, "manifest": str(manifest.path.resolve()), "manifest_sha256": file_sha256(manifest.path)}
    _check_resumable(paths, identity, restart)
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    cpu_started = time.process_time()
    system.prepare(items, log)
    prepare_s = time.monotonic() - started
    server = None
    if judge_url is None:
        from judge_service.testing import RunningServer

        log("[run] starting the judge service locally (pass --judge-url to use a running one)")
        server = RunningServer(env={"JUDGE_REDIS_URL": "", "JUDGE_LOG_LEVEL": "warning", **(judge_env or {})}).start()
        judge_url = server.url
    try:
        scoring_started = time.monotonic()
        scoring_cpu = time.process_time()
        done, judge_info = asyncio.run(run_items(items, system, judge_url, paths, concurrency=concurrency,
                                                 progress=progress, log=log))  # fmt: skip
        scoring_s = time.monotonic() - scoring_started
        scoring_cpu_s = time.process_time() - scoring_cpu
    finally:
        if server is not None:
            server.stop()
    results = [done[item.id] for item in items]
    run = {
        **identity,
        "judge": {k: judge_info.get(k) for k in ("name", "version", "rubric_version")},
        "judge_url": None if server is not None else judge_url,
        "judge_started_locally": server is not None,
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.monotonic() - started, 2),
        "prepare_s": round(prepare_s, 2),
        "scoring_s": round(scoring_s, 2),
        "client_cpu_s": round(time.process_time() - cpu_started, 2),
        "scoring_client_cpu_s": round(scoring_cpu_s, 2),
        "concurrency": concurrency,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "commit": git_commit(),
        "paras2s_bench_version": _version(),
        "limit": limit,
    }
    doc = results_document(run, results, score_table(results))
    tmp = paths.results.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(paths.results)
    write_reports(doc, paths.results)
    counts = doc["counts"]
    log(f"[run] {counts['scored']}/{counts['items']} scored, {counts['system_errors']} system errors, "
        f"{counts['judge_errors']} judge errors; {run['wall_s']} s; wrote {paths.results}")  # fmt: skip
    return doc


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paras2s-judge")
    except PackageNotFoundError:
        return "unknown"
