"""Compare two ParaS2SBench runs item by item: B - A per cell, with paired bootstrap intervals.

``compare_results(a, b)`` takes two results documents (``results_document`` dicts, items as
records or ``ItemResult``) and returns::

    {"a": {"system", "judge", "manifest", "manifest_sha256"}, "b": {...},
     "splits": {"synthetic": {
         "dimensions": {"emotion": {"mean_a", "mean_b", "diff", "ci95", "n",
                                    "only_a", "only_b", "errored_a", "errored_b"}, ...},
         "average": {"mean_a", "mean_b", "diff", "ci95", "n"}}, ...},
     "overall": {"mean_a", "mean_b", "diff", "ci95", "n"},
     "counts": {"a", "b", "shared", "paired", "only_a", "only_b", "errored_a", "errored_b", "mismatched"},
     "warnings": [str, ...], "bootstrap": {"resamples", "seed", "method"}}

What the numbers mean:
  * ``n``: items *paired*: present in both runs (matched by id), in the same (split, dimension),
    and scored in both. ``mean_a`` / ``mean_b`` are the two runs' means over those items only,
    so ``diff = mean_b - mean_a`` is the mean per-item difference (positive: B scored higher).
  * ``only_a`` / ``only_b``: ids in one run only; ``errored_a`` / ``errored_b``: shared ids with
    an error in that run (an item errored in both counts in both). None of them enter a mean.
  * averages and overall: unweighted means of the cell (then split) values, as in ``report``.
  * ``ci95``: a paired, stratified percentile bootstrap of ``diff``: each resample redraws the
    paired ids with replacement inside every (split, dimension) cell and takes the same ids
    from both runs, so the variation the two runs share (item difficulty) cancels.
``mismatched`` counts shared ids whose split or dimension differ between the runs (left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark_client.manifest import SPLITS
from benchmark_client.report import DIMENSIONS, as_item, bootstrap_cell_means, ci95
from benchmark_client.results import ItemResult

PAIRED_METHOD = ("paired percentile bootstrap, stratified: paired item ids redrawn with replacement "
                 "inside every (split, dimension) cell, the same ids taken from both runs")  # fmt: skip
_JUDGE_FIELDS = ("name", "version", "rubric_version")


def _items(doc: Mapping[str, Any]) -> dict[str, ItemResult]:
    return {item.id: item for item in map(as_item, doc.get("items", []))}


def _run_info(doc: Mapping[str, Any]) -> dict[str, Any]:
    run = doc.get("run", {})
    return {"system": run.get("system"), "judge": run.get("judge"), "manifest": run.get("manifest"),
            "manifest_sha256": run.get("manifest_sha256")}  # fmt: skip


def _warnings(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    run_a, run_b = a.get("run", {}), b.get("run", {})
    judge_a, judge_b = run_a.get("judge") or {}, run_b.get("judge") or {}
    out = [f"judge {field} differs: A {judge_a.get(field)!r}, B {judge_b.get(field)!r}; scores may not be comparable"
           for field in _JUDGE_FIELDS if judge_a.get(field) != judge_b.get(field)]  # fmt: skip
    if run_a.get("manifest_sha256") != run_b.get("manifest_sha256"):
        out.append(f"manifests differ (sha256 A {str(run_a.get('manifest_sha256'))[:12]}, "
                   f"B {str(run_b.get('manifest_sha256'))[:12]}); only shared item ids are compared")
    return out


def _average(parts: list[dict[str, Any]], boots: list[np.ndarray], n: int) -> tuple[dict[str, Any], np.ndarray | None]:
    if not parts:
        return {"mean_a": None, "mean_b": None, "diff": None, "ci95": None, "n": n}, None
    boot = np.mean(np.stack(boots), axis=0)
    mean_a = float(np.mean([p["mean_a"] for p in parts]))
    mean_b = float(np.mean([p["mean_b"] for p in parts]))
    return {"mean_a": mean_a, "mean_b": mean_b, "diff": mean_b - mean_a, "ci95": ci95(boot), "n": n}, boot


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any], *, resamples: int = 2000, seed: int = 0) -> dict:
    """B against A (``diff = B - A``), as described in the module docstring.

    Raises ``ValueError`` when the runs share no item id (nothing can be paired).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1 (2000 is usual), got {resamples}")
    items_a, items_b = _items(a), _items(b)
    shared = [i for i in items_a if i in items_b]
    if not shared:
        raise ValueError(f"the two runs share no item ids (A has {len(items_a)}, B {len(items_b)}); "
                         "compare runs made on the same manifest")
    warnings = _warnings(a, b)
    mismatched = [i for i in shared
                  if (items_a[i].split, items_a[i].dimension) != (items_b[i].split, items_b[i].dimension)]
    if mismatched:
        warnings.append(f"{len(mismatched)} shared ids have a different split or dimension in A and B "
                        f"(e.g. {mismatched[0]!r}); they are left out")

    cell_a = {i: (it.split, it.dimension) for i, it in items_a.items()}
    cell_b = {i: (it.split, it.dimension) for i, it in items_b.items()}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for split in SPLITS:
        for dim in DIMENSIONS:
            ids_a = {i for i, key in cell_a.items() if key == (split, dim)}
            ids_b = {i for i, key in cell_b.items() if key == (split, dim)}
            if not ids_a and not ids_b:
                continue
            both = [i for i in items_a if i in ids_a and i in ids_b]
            paired = [i for i in both if items_a[i].score is not None and items_b[i].score is not None]
            cells[split, dim] = {
                "a": np.array([items_a[i].score for i in paired], dtype=np.float64),
                "b": np.array([items_b[i].score for i in paired], dtype=np.float64),
                "only_a": len(ids_a - set(items_b)), "only_b": len(ids_b - set(items_a)),
                "errored_a": sum(items_a[i].score is None for i in both),
                "errored_b": sum(items_b[i].score is None for i in both),
            }  # fmt: skip
    rng = np.random.Generator(np.random.PCG64(seed))
    boot = bootstrap_cell_means({k: c["b"] - c["a"] for k, c in cells.items()}, resamples=resamples, rng=rng)

    splits: dict[str, Any] = {}
    split_parts, split_boots = [], []
    for split in SPLITS:
        dims, parts, boots = {}, [], []
        for (s, dim), cell in cells.items():
            if s != split:
                continue
            n = len(cell["a"])
            stat = {"mean_a": float(cell["a"].mean()) if n else None, "mean_b": float(cell["b"].mean()) if n else None,
                    "diff": float((cell["b"] - cell["a"]).mean()) if n else None, "ci95": ci95(boot.get((s, dim))),
                    "n": n, **{k: cell[k] for k in ("only_a", "only_b", "errored_a", "errored_b")}}  # fmt: skip
            dims[dim] = stat
            if n:
                parts.append(stat)
                boots.append(boot[s, dim])
        if not dims:
            continue
        average, average_boot = _average(parts, boots, sum(d["n"] for d in dims.values()))
        splits[split] = {"dimensions": dims, "average": average}
        if average_boot is not None:
            split_parts.append(average)
            split_boots.append(average_boot)
    overall, _ = _average(split_parts, split_boots, sum(s["average"]["n"] for s in splits.values()))

    only_a, only_b = len(set(items_a) - set(items_b)), len(set(items_b) - set(items_a))
    if only_a or only_b:
        warnings.append(f"{only_a} items only in A and {only_b} only in B; they are not compared")
    counts = {"a": len(items_a), "b": len(items_b), "shared": len(shared), "paired": overall["n"],
              "only_a": only_a, "only_b": only_b,
              "errored_a": sum(items_a[i].score is None for i in shared),
              "errored_b": sum(items_b[i].score is None for i in shared), "mismatched": len(mismatched)}  # fmt: skip
    return {"a": _run_info(a), "b": _run_info(b), "splits": splits, "overall": overall, "counts": counts,
            "warnings": warnings, "bootstrap": {"resamples": resamples, "seed": seed, "method": PAIRED_METHOD}}


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def format_diff(stat: Mapping[str, Any]) -> str:
    """``"+0.12 [+0.05, +0.19]"``; ``"—"`` when nothing was paired."""
    if stat.get("diff") is None:
        return "—"
    text = _fmt(stat["diff"], signed=True)
    if stat.get("ci95"):
        text += f" [{_fmt(stat['ci95'][0], signed=True)}, {_fmt(stat['ci95'][1], signed=True)}]"
    return text


def compare_rows(cmp: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(kind, label, stat)`` rows: every (split, dimension), each split average, then overall."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    for split, body in cmp["splits"].items():
        rows += [("dimension", f"{split} / {dim}", stat) for dim, stat in body["dimensions"].items()]
        rows.append(("average", f"{split} average", body["average"]))
    rows.append(("overall", "overall", cmp["overall"]))
    return rows


def compare_markdown(cmp: Mapping[str, Any]) -> str:
    """The comparison as Markdown: who is A and B, a table of B - A with intervals, warnings."""
    def who(run: Mapping[str, Any]) -> str:
        judge = run.get("judge") or {}
        return (f"{run.get('system')} (judge {judge.get('name')} {judge.get('version')}, "
                f"rubric {judge.get('rubric_version')})")

    counts = cmp["counts"]
    lines = ["# ParaS2SBench comparison: B − A", "", f"- **A**: {who(cmp['a'])}", f"- **B**: {who(cmp['b'])}",
             (f"- **Items**: {counts['shared']} shared, {counts['paired']} scored in both; "
              f"{counts['only_a']} only in A, {counts['only_b']} only in B; "
              f"errored: {counts['errored_a']} in A, {counts['errored_b']} in B"),
             (f"- **Intervals**: 95% {cmp['bootstrap']['method']}; {cmp['bootstrap']['resamples']} resamples, "
              f"seed {cmp['bootstrap']['seed']}"), ""]  # fmt: skip
    if cmp["warnings"]:
        lines += [f"> ⚠️ {w}" for w in cmp["warnings"]] + [""]
    lines += ["| Split / dimension | A | B | B − A [95% CI] | n paired | only A | only B | errored A | errored B |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for kind, label, stat in compare_rows(cmp):
        label = f"**{label}**" if kind != "dimension" else label
        extra = " | ".join(str(stat.get(k, "")) for k in ("only_a", "only_b", "errored_a", "errored_b"))
        lines.append(f"| {label} | {_fmt(stat['mean_a'])} | {_fmt(stat['mean_b'])} | {format_diff(stat)} | "
                     f"{stat['n']} | {extra} |")
    return "\n".join(lines) + "\n"
