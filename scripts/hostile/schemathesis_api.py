"""Schemathesis against the service's OpenAPI spec: no hostile request may get a 5xx.

Starts the real service (``python -m judge_service serve``, fake backend, default body limit)
on a free port, waits for /readyz, and runs ``st run`` (examples, coverage, fuzzing and
stateful phases) twice over every operation:

* ``served``: the spec exactly as ``GET /openapi.json`` serves it (what a client sees);
* ``completed``: the same spec with what it leaves out filled in from the wire models (the
  request schemas its ``$ref``s name, the /v1/score/group body, the label enums of multipart
  fields, the error body, text/plain /metrics, one valid example per body, links from a
  created job to reading and cancelling it), so bodies are generated from their real schemas.

Every 5xx, a response that breaks its documented schema, or a server that dies or logs an
internal error fails the run (exit 1). Undocumented status codes and content types, and
dangling references, are spec disagreements: reported, not failures. Prints a table
(operation, cases, statuses seen, failure codes) and writes
``benchmarks/results/hostile_schemathesis.json`` with provenance and the first 5xx requests.

    .venv/bin/python -m scripts.hostile.schemathesis_api [--max-examples 150] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import copy
import glob
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from judge_service.config import Settings
from judge_service.testing import RunningServer, b64, voiced_wav
from scripts.hostile.provenance import RESULTS_DIR, provenance

RESULT_PATH = RESULTS_DIR / "hostile_schemathesis.json"
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
BLOCKING_FAILURES = {"ServerError", "ContentTypeServerError", "JsonSchemaError", "MalformedJson"}
"""Failure types that are bugs of the service; the rest are disagreements with the spec."""
BODY_ROUTES = ("/v1/score", "/v1/score/group", "/v1/analyze", "/v1/jobs")
"""POST routes that read a request body (JSON or multipart)."""
REQUEST_TIMEOUT_S = 30
MAX_LISTED_SERVER_ERRORS = 20


# --- the spec: what it leaves out, and a completed copy -------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def audit_spec(spec: dict[str, Any]) -> list[str]:
    """Problems a client of ``spec`` meets before sending anything (one line each)."""
    schemas = spec.get("components", {}).get("schemas", {})
    issues = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            label = f"{method.upper()} {path}"
            for ref in sorted(set(_refs(op))):
                if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in schemas:
                    issues.append(f"{label}: $ref {ref} does not exist in components.schemas")
            if method == "post" and path in BODY_ROUTES and "requestBody" not in op:
                issues.append(f"{label}: no requestBody documented")
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {})
            free = sorted(n for n in ("emotion", "sarcasm", "age", "gender") if n in form.get("properties", {})
                          and "enum" not in form["properties"][n])
            if free:
                issues.append(f"{label}: multipart {', '.join(free)} documented as any string; the server takes only the label enums")
            if not any(code[0] in "45" or code == "default" for code in op.get("responses", {})):
                issues.append(f"{label}: documents no error response (only {sorted(op.get('responses', {}))})")
    return issues


def _valid_examples() -> dict[str, dict[str, Any]]:
    audio = b64(voiced_wav(0.5, seed=1))
    other = b64(voiced_wav(0.5, seed=2))
    pair = {"id": "a", "query": {"audio": audio, "labels": {"emotion": "sad"}}, "response": {"audio": other, "text": "I am sorry."}}
    return {
        "/v1/score": {"items": [pair]},
        "/v1/score/group": {"id": "g", "query": {"audio": audio},
                            "responses": [{"id": "r1", "audio": other}, {"id": "r2", "audio": audio}]},
        "/v1/analyze": {"items": [{"id": "c", "audio": audio}], "priority": "bulk"},
        "/v1/jobs": {"items": [pair, {**pair, "id": "b"}], "metadata": {"run": "hostile"}},
    }


def complete_spec(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``spec`` with its gaps filled from ``judge_service.schemas``, and what was patched."""
    from pydantic.json_schema import models_json_schema

    from judge_service import schemas as wire

    spec = copy.deepcopy(spec)
    patches = []
    group = spec["paths"].get("/v1/score/group", {}).get("post")
    if group is not None and "requestBody" not in group:
        group["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GroupRequest"}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["query", "response"], "properties": {
                "query": {"type": "string", "format": "binary"},
                "response": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "id": {"type": "string"}, "query_text": {"type": "string"},
                "emotion": {"type": "string"}, "sarcasm": {"type": "string"},
                "age": {"type": "string"}, "gender": {"type": "string"},
                "priority": {"type": "string", "enum": ["interactive", "bulk"]},
            }}},
        }}
        patches.append("POST /v1/score/group: requestBody (JSON GroupRequest, multipart query + response files)")
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    dangling = sorted({ref.rsplit("/", 1)[1] for ref in _refs(spec["paths"]) if ref.rsplit("/", 1)[1] not in components})
    models = [(getattr(wire, name), "validation") for name in dangling if hasattr(wire, name)]
    _, defs = models_json_schema([*models, (wire.ErrorResponse, "serialization")], ref_template="#/components/schemas/{model}")
    added = sorted(set(defs["$defs"]) - set(components))
    components.update({k: defs["$defs"][k] for k in added})
    patches.append(f"components.schemas: added {', '.join(added)} (request and error models)")
    patched_labels: set[str] = set()
    labels = {name: next(part for part in field["anyOf"] if "enum" in part)
              for name, field in wire.KnownLabels.model_json_schema()["properties"].items()}
    for path, methods in spec["paths"].items():
        for op in methods.values():
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data", {}).get("schema", {})
            for name in sorted(set(form.get("properties", {})) & set(labels)):
                if "enum" not in form["properties"][name]:
                    form["properties"][name] = labels[name]
                    patched_labels.add(path)
    if patched_labels:
        patches.append(f"multipart label fields (emotion, sarcasm, age, gender) take their enums: {', '.join(sorted(patched_labels))}")
    error = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    for path, methods in spec["paths"].items():
        for op in methods.values():
            if path.startswith("/v1/"):
                op["responses"].setdefault("default", error)
    for path, example in _valid_examples().items():
        body = spec["paths"].get(path, {}).get("post", {}).get("requestBody")
        if body is not None:
            body["content"]["application/json"]["example"] = example
    patches.append("/v1/*: 'default' response ErrorResponse; POST bodies: one valid example each")
    jobs = spec["paths"].get("/v1/jobs", {}).get("post")
    if jobs is not None:  # lets the stateful phase create a job, then read and cancel it
        status = next(code for code in jobs["responses"] if code.startswith("2"))
        jobs["responses"][status]["links"] = {
            "GetJob": {"operationRef": "#/paths/~1v1~1jobs~1{job_id}/get", "parameters": {"job_id": "$response.body#/id"}},
            "CancelJob": {"operationRef": "#/paths/~1v1~1jobs~1{job_id}~1cancel/post", "parameters": {"job_id": "$response.body#/id"}},
        }
        patches.append("POST /v1/jobs: OpenAPI links to GET /v1/jobs/{job_id} and its cancel (stateful phase)")
    metrics = spec["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
        patches.append("GET /metrics: 200 is text/plain (Prometheus exposition), not application/json")
    return spec, patches


# --- running st and reading its reports -----------------------------------------------------


def run_pass(name: str, spec: dict[str, Any], base_url: str, work: Path, max_examples: int, seed: int,
             phases: str, exclude: list[str]) -> dict[str, Any]:
    """One ``st run`` over ``spec``; returns its cases, statuses and failures per operation."""
    spec_path = work / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    report_dir = work / name
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(spec_path), "--url", base_url,
        "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1", "--checks", CHECKS,
        "--phases", phases, "--continue-on-failure", "--generation-database", "none",
        "--request-timeout", str(REQUEST_TIMEOUT_S), "--report", "har,json", "--report-dir", str(report_dir),
        "--no-color", "--output-truncate", "true",
        *[arg for name in exclude for arg in ("--exclude-name", name)],
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=work)
    elapsed_s = time.monotonic() - started
    (work / f"{name}.log").write_text(done.stdout + done.stderr)
    reports = {kind: sorted(glob.glob(str(report_dir / f"{kind}-*.json"))) for kind in ("har", "json")}
    if not reports["har"] or not reports["json"]:
        raise RuntimeError(f"st run ({name}) wrote no reports; exit {done.returncode}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    har = json.loads(Path(reports["har"][-1]).read_text())["log"]["entries"]
    summary = json.loads(Path(reports["json"][-1]).read_text())
    return {"name": name, "elapsed_s": round(elapsed_s, 1), "st_exit_code": done.returncode,
            **_read_results(spec, har, summary)}


def _operation_of(spec: dict[str, Any], method: str, url: str) -> str:
    """The operation's label; methods the spec does not list (st probes them for 405) share one."""
    path = urlsplit(url).path
    for template, methods in spec["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            return f"{method.upper()} {template}" if method.lower() in methods else f"other methods {template}"
    return f"{method.upper()} {path} (not in spec)"


def _read_results(spec: dict[str, Any], har: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, dict[str, Any]] = {
        f"{m.upper()} {p}": {"cases": 0, "statuses": collections.Counter(), "failures": set()}
        for p, methods in spec["paths"].items() for m in methods
    }
    server_errors = []
    for entry in har:
        request, response = entry["request"], entry["response"]
        label = _operation_of(spec, request["method"], request["url"])
        op = operations.setdefault(label, {"cases": 0, "statuses": collections.Counter(), "failures": set()})
        op["cases"] += 1
        op["statuses"][response["status"]] += 1
        if response["status"] >= 500 and len(server_errors) < MAX_LISTED_SERVER_ERRORS:
            server_errors.append({
                "operation": label, "status": response["status"], "url": request["url"],
                "request_headers": {h["name"]: h["value"] for h in request["headers"]},
                "request_body": request.get("postData", {}).get("text", "")[:4000],
                "response_body": response.get("content", {}).get("text", "")[:2000],
            })
    failures = []
    for failure in summary.get("failures", []):
        blocking = failure["type"] in BLOCKING_FAILURES
        failures.append({"code": failure["code"], "type": failure["type"], "title": failure["title"],
                         "count": failure["count"], "operations": failure["operations"], "blocking": blocking})
        for label in failure["operations"]:
            operations.setdefault(label, {"cases": 0, "statuses": collections.Counter(), "failures": set()})
            operations[label]["failures"].add(failure["code"])
    return {
        "cases": len(har),
        "server_error_count": sum(1 for entry in har if entry["response"]["status"] >= 500),
        "generated_by_st": summary.get("test_cases", {}).get("generated"),
        "operations": {label: {"cases": op["cases"], "statuses": dict(sorted(op["statuses"].items())),
                               "failure_codes": sorted(op["failures"])} for label, op in operations.items()},
        "failures": failures,
        "server_errors": server_errors,
        "warnings": {k: v for k, v in summary.get("warnings", {}).items() if v},
        "errors": summary.get("errors", []),
    }


# --- report --------------------------------------------------------------------------------


def print_table(passes: list[dict[str, Any]]) -> None:
    print(f"\n{'pass':<10} {'operation':<30} {'cases':>6}  {'statuses seen':<40} failures")
    for result in passes:
        for label, op in result["operations"].items():
            statuses = " ".join(f"{code}x{n}" for code, n in op["statuses"].items())
            print(f"{result['name']:<10} {label:<30} {op['cases']:>6}  {statuses:<40} {','.join(op['failure_codes']) or '-'}")
        print(f"{result['name']:<10} {'total':<30} {result['cases']:>6}  ({result['elapsed_s']} s)")
    for result in passes:
        for failure in result["failures"]:
            kind = "BUG" if failure["blocking"] else "spec disagreement"
            print(f"  [{result['name']}] {kind}: {failure['code']} {failure['title']} x{failure['count']} "
                  f"on {', '.join(failure['operations'])}")
        for error in result["server_errors"][:5]:
            print(f"  [{result['name']}] {error['status']} on {error['operation']}: body {error['request_body'][:300]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=150, help="st run --max-examples, per operation and pass")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--passes", default="served,completed", help="comma-separated: served, completed")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful", help="st run --phases")
    parser.add_argument("--exclude", action="append", default=[], metavar="OPERATION",
                        help="leave out an operation, e.g. 'POST /v1/jobs' (repeatable; recorded in the result)")
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the specs, st logs and HAR/JSON reports here (default: a temporary folder)")
    args = parser.parse_args(argv)
    import schemathesis

    max_request_bytes = Settings.model_fields["max_request_bytes"].default
    env = {"JUDGE_BACKEND": "fake", "JUDGE_MAX_REQUEST_BYTES": str(max_request_bytes), "JUDGE_LOG_LEVEL": "info"}
    passes = []
    with RunningServer(env) as server, tempfile.TemporaryDirectory(prefix="hostile-st-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        served = httpx.get(server.url + "/openapi.json", timeout=10).json()
        spec_issues = audit_spec(served)
        completed, patches = complete_spec(served)
        specs = {"served": served, "completed": completed}
        for name in args.passes.split(","):
            print(f"st run ({name} spec, --max-examples {args.max_examples}) against {server.url} ...", flush=True)
            passes.append(run_pass(name, specs[name], server.url, work, args.max_examples, args.seed, args.phases, args.exclude))
        alive = server.process is not None and server.process.poll() is None
        healthy = alive and httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        log_lines = server.log_text().splitlines()
        internal_errors = [line for line in log_lines if "internal error" in line]
        # The last line of each logged traceback: what the 5xx were, grouped.
        exceptions = collections.Counter(line.strip()[:200] for line in log_lines
                                         if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*:", line))
    print_table(passes)
    server_errors = sum(p["server_error_count"] for p in passes)
    blocking = [f for p in passes for f in p["failures"] if f["blocking"]]
    ok = server_errors == 0 and not blocking and healthy and not internal_errors
    result = {
        "provenance": provenance(schemathesis=schemathesis.__version__, checks=CHECKS),
        "server": {"backend": "fake", "max_request_bytes": max_request_bytes, "healthy_after": healthy,
                   "internal_error_log_lines": internal_errors[:20],
                   "logged_exceptions": dict(exceptions.most_common(20))},
        "max_examples_per_operation": args.max_examples, "seed": args.seed, "phases": args.phases,
        "excluded_operations": args.exclude,
        "cases": sum(p["cases"] for p in passes),
        "server_errors": server_errors,
        "blocking_failures": len(blocking),
        "passed": ok,
        "spec_issues": spec_issues,
        "spec_patches_in_completed_pass": patches,
        "passes": passes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['cases']} cases, {server_errors} server errors, {len(blocking)} blocking failures, "
          f"server healthy after: {healthy}; spec issues: {len(spec_issues)}. Wrote {args.out}")
    for exception, count in result["server"]["logged_exceptions"].items():
        print(f"  server logged {count}x: {exception}")
    for issue in spec_issues:
        print(f"  spec: {issue}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
