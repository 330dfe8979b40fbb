"""Benchmark results: one record per item, streamed to JSONL as they arrive, then RESULTS.json.

Format ``paras2s-bench-results``, version 1. ``RESULTS.json``::

    {"format": "paras2s-bench-results", "version": 1,
     "run": {"system": "topline", "manifest": "/abs/manifest.jsonl", "manifest_sha256": "...",
             "judge": {"name": ..., "version": ..., "rubric_version": ...}, "judge_url": "...",
             "started": ISO-8601, "finished": ISO-8601, "wall_s": 12.3, "host": ..., "commit": ...,
             "paras2s_bench_version": "0.1.0", "concurrency": 8},
     "counts": {"items": 800, "scored": 798, "system_errors": 1, "judge_errors": 1},
     "items": [ItemResult records, in manifest order],
     "table": report.score_table(items)}

An ``ItemResult`` record (also one line of the ``RESULTS.items.jsonl`` sidecar, which is what makes
a run resumable)::

    {"id", "split", "dimension", "style", "contrast_group", "scenario_id",
     "score": float 1..5 or null, "error": null or {"stage": "system"|"judge", "type", "message"},
     "rationale", "query_labels", "response_tone", "query_transcript", "response_transcript",
     "query_audio": path, "response_audio": path or null,
     "timing": {"system_s", "client_s", "server_total_ms", "decode_ms", "queue_ms", "compute_ms",
                "stages_ms": {...}},
     "judge": {"name", "version", "rubric_version"} or null}

An item has a score xor an error: errors are recorded and counted, never dropped, and a resumed
run retries them (a score, once recorded, is kept).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FORMAT = "paras2s-bench-results"
RESULTS_VERSION = 1
ERROR_STAGES = ("system", "judge")


class ResultsError(ValueError):
    """A results file breaks the format; the message names the file and the problem."""


@dataclass
class ItemError:
    stage: str  # "system": the system under test failed; "judge": the judge refused or failed
    type: str
    message: str


@dataclass
class ItemResult:
    id: str
    split: str
    dimension: str
    style: str
    contrast_group: str
    scenario_id: str | None
    query_audio: str
    response_audio: str | None = None
    score: float | None = None
    error: ItemError | None = None
    rationale: str | None = None
    query_labels: dict[str, Any] | None = None
    response_tone: dict[str, Any] | None = None
    query_transcript: str | None = None
    response_transcript: str | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    judge: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ItemResult":
        record = dict(record)
        error = record.pop("error", None)
        result = cls(**record)
        if error is not None:
            result.error = ItemError(**error)
            if result.error.stage not in ERROR_STAGES:
                raise ResultsError(f"item {result.id!r}: error stage {result.error.stage!r} is not one of {ERROR_STAGES}")
        if (result.score is None) == (result.error is None):
            raise ResultsError(f"item {result.id!r} must have a score or an error, not both or neither")
        return result


def read_items_jsonl(path: Path) -> dict[str, ItemResult]:
    """The sidecar of an interrupted run: id -> latest record (later lines win). A torn last
    line (the process died mid-write) is ignored; any other bad line raises ``ResultsError``."""
    results: dict[str, ItemResult] = {}
    if not path.exists():
        return results
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ResultsError(f"{path}:{number}: not valid JSON") from None
        result = ItemResult.from_record(record)
        results[result.id] = result
    return results


def load_results(path: str | Path) -> dict[str, Any]:
    """Read RESULTS.json and check its format; ``items`` become ``ItemResult`` objects."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ResultsError(f"{path}: not a {RESULTS_FORMAT} file")
    if data.get("version") != RESULTS_VERSION:
        raise ResultsError(f"{path}: results version {data.get('version')!r}; this reader knows {RESULTS_VERSION}")
    data["items"] = [ItemResult.from_record(r) for r in data.get("items", [])]
    return data


def results_document(run: dict[str, Any], items: list[ItemResult], table: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "run": run,
        "counts": {
            "items": len(items),
            "scored": sum(r.ok for r in items),
            "system_errors": sum(r.error is not None and r.error.stage == "system" for r in items),
            "judge_errors": sum(r.error is not None and r.error.stage == "judge" for r in items),
        },
        "items": [r.to_record() for r in items],
        "table": table,
    }
