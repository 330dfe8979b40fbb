"""The CI gate: pass/fail checks on a ParaS2SBench run, with a Markdown job summary.

``gate(doc, min_overall=..., baseline=..., max_drop=..., max_error_rate=...)`` runs:

  * ``overall >= min_overall`` (when ``min_overall`` is given): the run's overall score, the
    unweighted mean of the split averages (``report.score_table``). A run with no scored item fails.
  * ``error rate <= max_error_rate``: (system errors + judge errors) / items, 0 by default,
    so any error fails the gate unless a rate is allowed.
  * with a ``baseline`` run: ``candidate - baseline >= -max_drop`` for the overall score and for
    every (split, dimension) that has items scored in both runs. The difference is the paired
    one from ``compare.compare_results(baseline, candidate)`` (same item ids, scored in both);
    the gate uses the *point* difference, and the detail shows its paired 95% interval for
    judgement (an interval that straddles the threshold is noise-sized; a gate on the interval
    would never fail small suites). Comparisons are made with a 1e-9 tolerance for float noise.

``GateResult.passed`` is the exit status the CLI reports (0 when passed, 1 otherwise) and
``GateResult.markdown`` a summary fit for ``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark_client.compare import compare_results, format_diff
from benchmark_client.report import as_item, doc_table, format_stat, markdown_table

FLOAT_TOLERANCE = 1e-9  # judge points; keeps a drop of exactly max_drop from failing on rounding


@dataclass
class GateResult:
    passed: bool
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (name, passed, detail)
    markdown: str = ""


def _error_counts(doc: Mapping[str, Any]) -> tuple[int, int]:
    counts = doc.get("counts")
    if counts:
        return int(counts["system_errors"]) + int(counts["judge_errors"]), int(counts["items"])
    items = [as_item(i) for i in doc.get("items", [])]
    return sum(i.score is None for i in items), len(items)


def _drop_checks(baseline: Mapping[str, Any], doc: Mapping[str, Any], max_drop: float) -> tuple[list, list[str]]:
    cmp = compare_results(baseline, doc)
    rows = [("overall", cmp["overall"])]
    rows += [(f"{split} / {dim}", stat) for split, body in cmp["splits"].items()
             for dim, stat in body["dimensions"].items() if stat["n"]]  # fmt: skip
    checks = []
    for label, stat in rows:
        name = f"drop ≤ {max_drop:g}: {label}"
        if stat["diff"] is None:
            checks.append((name, False, "no item scored in both the baseline and this run"))
            continue
        ok = stat["diff"] >= -max_drop - FLOAT_TOLERANCE
        detail = (f"candidate − baseline {format_diff(stat)} (paired 95% CI, n={stat['n']}); "
                  f"baseline {stat['mean_a']:.2f} → {stat['mean_b']:.2f}")
        checks.append((name, ok, detail))
    return checks, cmp["warnings"]


def gate(doc: Mapping[str, Any], *, min_overall: float | None, baseline: Mapping[str, Any] | None,
         max_drop: float | None, max_error_rate: float = 0.0) -> GateResult:
    """Run the checks in the module docstring on a results document; never raises on a bad score.

    Raises ``ValueError`` for a mis-configured gate: ``baseline`` without ``max_drop`` (or the
    reverse), a negative ``max_drop``, ``max_error_rate`` outside 0..1, or a baseline that shares
    no item id with the run.
    """
    if (baseline is None) != (max_drop is None):
        raise ValueError("baseline and max_drop go together: pass both (e.g. --baseline baseline.json "
                         "--max-drop 0.1) or neither")
    if max_drop is not None and max_drop < 0:
        raise ValueError(f"max_drop is a tolerated drop in judge points, >= 0; got {max_drop}")
    if not 0.0 <= max_error_rate <= 1.0:
        raise ValueError(f"max_error_rate is a fraction of items in 0..1; got {max_error_rate}")
    table = doc_table(doc)
    checks: list[tuple[str, bool, str]] = []
    warnings: list[str] = []
    if min_overall is not None:
        overall = table["overall"]
        if overall.get("mean") is None:
            checks.append((f"overall ≥ {min_overall:g}", False, "no item was scored"))
        else:
            ok = overall["mean"] >= min_overall - FLOAT_TOLERANCE
            checks.append((f"overall ≥ {min_overall:g}", ok, f"overall {format_stat(overall)}, n={overall['n']}"))
    errors, items = _error_counts(doc)
    if items == 0:
        checks.append((f"error rate ≤ {max_error_rate:g}", False, "the run has no items"))
    else:
        rate = errors / items
        checks.append((f"error rate ≤ {max_error_rate:g}", rate <= max_error_rate + FLOAT_TOLERANCE,
                       f"{errors} of {items} items failed ({rate:.1%})"))
    if baseline is not None:
        drop_checks, warnings = _drop_checks(baseline, doc, float(max_drop))
        checks += drop_checks
    passed = all(ok for _, ok, _ in checks)
    return GateResult(passed=passed, checks=checks, markdown=_markdown(doc, table, checks, warnings, passed))


def _markdown(doc: Mapping[str, Any], table: Mapping[str, Any], checks: list[tuple[str, bool, str]],
              warnings: list[str], passed: bool) -> str:
    run = doc.get("run", {})
    failed = sum(not ok for _, ok, _ in checks)
    headline = (f"## ✅ ParaS2SBench gate passed: {run.get('system', '?')}" if passed else
                f"## ❌ ParaS2SBench gate failed: {run.get('system', '?')} ({failed} of {len(checks)} checks failed)")
    judge = run.get("judge") or {}
    lines = [headline, "",
             (f"Judge {judge.get('name', '?')} {judge.get('version', '?')} "
              f"(rubric {judge.get('rubric_version', '?')}), manifest {run.get('manifest', '?')}"), ""]  # fmt: skip
    lines += [f"> ⚠️ {w}" for w in warnings] + ([""] if warnings else [])
    lines += ["| | Check | Detail |", "|---|---|---|"]
    lines += [f"| {'✅' if ok else '❌'} | {name} | {detail.replace('|', '/')} |" for name, ok, detail in checks]
    lines += ["", "### Scores (1-5)", "", markdown_table(table)]
    return "\n".join(lines)
