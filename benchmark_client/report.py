"""ParaS2SBench score tables (the paper's Table 4) with bootstrap intervals, and the md/html reports.

``score_table(items)`` returns a JSON-serialisable dict::

    {"splits": {
        "synthetic": {
            "dimensions": {
                "emotion": {"mean": 3.42, "ci95": [3.30, 3.55], "n": 200, "errors": 1,
                            "categories": {"happy": {"mean", "ci95", "n", "errors"}, ...}},
                ...},                                     # emotion, sarcasm, age, gender order
            "average": {"mean", "ci95", "n"}},
        "real": {...}},                                   # a split appears only if it has items
     "overall": {"mean", "ci95", "n"},
     "bootstrap": {"resamples": 2000, "seed": 0, "method": "..."}}

What the numbers mean:
  * ``mean``: the mean judge score (1..5) of the cell's *scored* items; ``n`` counts them and
    ``errors`` counts the cell's items that have no score (system or judge error). Errors are
    never averaged in. A cell with ``n == 0`` has ``mean`` and ``ci95`` ``None``.
  * a dimension (or category) appears when the split has at least one item of it.
  * ``average`` of a split: the unweighted mean of its dimension means (as in the paper; a
    dimension with no scored item is left out); its ``n`` is the split's scored items.
  * ``overall``: the unweighted mean of the split averages present; ``n`` all scored items.
  * ``ci95``: a 95% percentile-bootstrap interval ``[lo, hi]``. The bootstrap is stratified:
    every resample redraws items with replacement inside every (split, dimension) cell, and
    for a category row inside the category; averages are recomputed from the resampled cell
    means, so their intervals respect the design (fixed cell sizes). ``n == 1`` gives ``[x, x]``.

The draws are reproducible: ``Generator(PCG64(seed))``, one ``(resamples, n)`` index matrix
per cell, in the order split (synthetic, real) -> dimension -> the dimension cell, then its
categories in label order. ``_bootstrap_reference`` makes the same draws with plain loops.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark_client.manifest import SPLITS
from benchmark_client.results import ItemResult
from judge_service.judge.labels import LABEL_SETS

DIMENSIONS: tuple[str, ...] = tuple(LABEL_SETS)  # emotion, sarcasm, age, gender
CI_PERCENTILES = (2.5, 97.5)
BOOTSTRAP_METHOD = ("percentile bootstrap, stratified: items redrawn with replacement inside every "
                    "(split, dimension) cell (category rows: inside the category); averages recomputed "
                    "from the resampled cell means")  # fmt: skip

CellKey = tuple[str, ...]  # (split, dimension) or (split, dimension, category)


def as_item(item: ItemResult | Mapping[str, Any]) -> ItemResult:
    """Accept an ``ItemResult`` or its record (what ``results_document`` writes)."""
    return item if isinstance(item, ItemResult) else ItemResult.from_record(dict(item))


def draw_indices(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """``(resamples, n)`` int64 indices into a cell of ``n`` items, drawn with replacement."""
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_cell_means(cells: Mapping[CellKey, np.ndarray], *, resamples: int,
                         rng: np.random.Generator) -> dict[CellKey, np.ndarray]:
    """Resampled means, ``(resamples,)`` float64, for each non-empty cell in ``cells``' order."""
    return {key: values[draw_indices(rng, len(values), resamples)].mean(axis=1)
            for key, values in cells.items() if len(values)}  # fmt: skip


def ci95(samples: np.ndarray | None) -> list[float] | None:
    """The 2.5th and 97.5th percentiles (numpy's linear interpolation) of bootstrap statistics."""
    if samples is None:
        return None
    lo, hi = np.percentile(samples, CI_PERCENTILES)
    return [float(lo), float(hi)]


def _check(item: ItemResult) -> None:
    if item.split not in SPLITS:
        raise ValueError(f"item {item.id!r}: split {item.split!r} must be one of {SPLITS}")
    if item.dimension not in LABEL_SETS or item.style not in LABEL_SETS[item.dimension]:
        raise ValueError(f"item {item.id!r}: dimension/style {item.dimension}/{item.style} is not a known label; "
                         f"known: {dict(LABEL_SETS)}")


def _cell_stat(values: np.ndarray, errors: int, boot: np.ndarray | None) -> dict[str, Any]:
    return {"mean": float(values.mean()) if len(values) else None, "ci95": ci95(boot),
            "n": len(values), "errors": int(errors)}  # fmt: skip


def _mean_of(points: list[float], boots: list[np.ndarray], n: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """An unweighted mean of means, and its bootstrap distribution from the parts' distributions."""
    if not points:
        return {"mean": None, "ci95": None, "n": n}, None
    boot = np.mean(np.stack(boots), axis=0)
    return {"mean": float(np.mean(points)), "ci95": ci95(boot), "n": n}, boot


def score_table(items: Iterable[ItemResult | Mapping[str, Any]], *, resamples: int = 2000, seed: int = 0) -> dict:
    """The Table-4 dict described in the module docstring (vectorised bootstrap)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1 (2000 is usual), got {resamples}")
    items = [as_item(i) for i in items]
    for item in items:
        _check(item)
    cells: dict[CellKey, np.ndarray] = {}
    errors: dict[CellKey, int] = {}
    for split in SPLITS:
        for dim in DIMENSIONS:
            in_cell = [i for i in items if i.split == split and i.dimension == dim]
            if not in_cell:
                continue
            for key, members in [((split, dim), in_cell)] + [
                ((split, dim, style), [i for i in in_cell if i.style == style]) for style in LABEL_SETS[dim]
            ]:
                if members:
                    cells[key] = np.array([i.score for i in members if i.score is not None], dtype=np.float64)
                    errors[key] = sum(i.score is None for i in members)
    boot = bootstrap_cell_means(cells, resamples=resamples, rng=np.random.Generator(np.random.PCG64(seed)))

    splits: dict[str, Any] = {}
    split_points: list[float] = []
    split_boots: list[np.ndarray] = []
    for split in SPLITS:
        dims = {}
        points, boots = [], []
        for dim in DIMENSIONS:
            if (split, dim) not in cells:
                continue
            stat = _cell_stat(cells[split, dim], errors[split, dim], boot.get((split, dim)))
            stat["categories"] = {k[2]: _cell_stat(cells[k], errors[k], boot.get(k))
                                  for k in cells if len(k) == 3 and k[:2] == (split, dim)}  # fmt: skip
            dims[dim] = stat
            if stat["mean"] is not None:
                points.append(stat["mean"])
                boots.append(boot[split, dim])
        if not dims:
            continue
        n_split = sum(d["n"] for d in dims.values())
        average, average_boot = _mean_of(points, boots, n_split)
        splits[split] = {"dimensions": dims, "average": average}
        if average_boot is not None:
            split_points.append(average["mean"])
            split_boots.append(average_boot)
    overall, _ = _mean_of(split_points, split_boots, sum(s["average"]["n"] for s in splits.values()))
    return {"splits": splits, "overall": overall,
            "bootstrap": {"resamples": resamples, "seed": seed, "method": BOOTSTRAP_METHOD}}  # fmt: skip


def _percentile_reference(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    position = q / 100 * (len(ordered) - 1)
    lo = math.floor(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _bootstrap_reference(items: Iterable[ItemResult | Mapping[str, Any]], *, resamples: int = 2000,
                         seed: int = 0) -> dict:
    """``score_table`` with plain loops (slow, obviously correct); same draws, same result."""
    rng = np.random.Generator(np.random.PCG64(seed))
    groups: dict[str, dict[str, list[ItemResult]]] = {}
    for item in map(as_item, items):
        groups.setdefault(item.split, {}).setdefault(item.dimension, []).append(item)

    def stat(members: list[ItemResult]) -> tuple[dict[str, Any], list[float] | None]:
        scores = [m.score for m in members if m.score is not None]
        errs = len(members) - len(scores)
        if not scores:
            return {"mean": None, "ci95": None, "n": 0, "errors": errs}, None
        idx = draw_indices(rng, len(scores), resamples)
        means = []
        for r in range(resamples):
            total = 0.0
            for j in range(len(scores)):
                total += scores[int(idx[r, j])]
            means.append(total / len(scores))
        ci = [_percentile_reference(means, q) for q in CI_PERCENTILES]
        return {"mean": sum(scores) / len(scores), "ci95": ci, "n": len(scores), "errors": errs}, means

    def average(parts: list[tuple[float, list[float]]], n: int) -> tuple[dict[str, Any], list[float] | None]:
        if not parts:
            return {"mean": None, "ci95": None, "n": n}, None
        means = [sum(p[1][r] for p in parts) / len(parts) for r in range(resamples)]
        ci = [_percentile_reference(means, q) for q in CI_PERCENTILES]
        return {"mean": sum(p[0] for p in parts) / len(parts), "ci95": ci, "n": n}, means

    splits, split_parts = {}, []
    for split in SPLITS:
        if split not in groups:
            continue
        dims, parts = {}, []
        for dim in DIMENSIONS:
            if dim not in groups[split]:
                continue
            members = groups[split][dim]
            dims[dim], means = stat(members)
            if means is not None:
                parts.append((dims[dim]["mean"], means))
            dims[dim]["categories"] = {}
            for style in LABEL_SETS[dim]:
                in_category = [m for m in members if m.style == style]
                if in_category:
                    dims[dim]["categories"][style] = stat(in_category)[0]
        avg, means = average(parts, sum(d["n"] for d in dims.values()))
        splits[split] = {"dimensions": dims, "average": avg}
        if means is not None:
            split_parts.append((avg["mean"], means))
    overall, _ = average(split_parts, sum(s["average"]["n"] for s in splits.values()))
    return {"splits": splits, "overall": overall,
            "bootstrap": {"resamples": resamples, "seed": seed, "method": BOOTSTRAP_METHOD}}  # fmt: skip


# --------------------------------------------------------------------------- text reports


def format_stat(stat: Mapping[str, Any] | None, *, signed: bool = False) -> str:
    """``"3.42 [3.30, 3.55]"``; ``"—"`` for a cell with no scored item."""
    if not stat or stat.get("mean") is None:
        return "—"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    text = fmt.format(stat["mean"])
    if stat.get("ci95"):
        lo, hi = stat["ci95"]
        text += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return text


def table_rows(table: Mapping[str, Any], *, categories: bool = False) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(kind, label, stat)`` rows of the Table-4 layout; kind is dimension|category|average|overall."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = []
    for split, body in table.get("splits", {}).items():
        for dim, stat in body["dimensions"].items():
            rows.append(("dimension", f"{split} / {dim}", stat))
            if categories:
                rows += [("category", f"{split} / {dim} / {c}", s) for c, s in stat.get("categories", {}).items()]
        if not categories:
            rows.append(("average", f"{split} average", body["average"]))
    if not categories:
        rows.append(("overall", "overall", table.get("overall", {})))
    return rows


def _md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (job summaries render raw HTML, so escape it)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Mapping[str, Any], *, categories: bool = True) -> str:
    """The score table (and, with ``categories``, a second table by category) as Markdown."""
    def render(rows: list[tuple[str, str, Mapping[str, Any]]], first: str) -> list[str]:
        lines = [f"| {first} | Mean [95% CI] | n | Errors |", "|---|---|---:|---:|"]
        for kind, label, stat in rows:
            label = f"**{label}**" if kind in ("average", "overall") else label
            n, errors = stat.get("n", ""), stat.get("errors", "")
            lines.append(f"| {_md_cell(label)} | {format_stat(stat)} | {n} | {errors} |")
        return lines

    lines = render(table_rows(table), "Split / dimension")
    if categories:
        lines += ["", "By category (style of the query):", ""]
        lines += render(table_rows(table, categories=True), "Split / dimension / category")
    return "\n".join(lines) + "\n"


def report_header(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` lines naming the run: system, judge, manifest, counts, wall time."""
    run, counts = doc.get("run", {}), doc.get("counts", {})
    judge = run.get("judge") or {}
    sha = run.get("manifest_sha256")
    wall_s = run.get("wall_s")
    boot = doc.get("table", {}).get("bootstrap", {})
    items = (f"{counts.get('items', '?')} items, {counts.get('scored', '?')} scored, "
             f"{counts.get('system_errors', '?')} system errors, {counts.get('judge_errors', '?')} judge errors")
    where = (f"{run.get('started', '?')} → {run.get('finished', '?')} on {run.get('host', '?')}, "
             f"commit {run.get('commit', '?')}, paras2s-bench {run.get('paras2s_bench_version', '?')}")
    intervals = (f"95% {boot.get('method', 'bootstrap')}; {boot.get('resamples', '?')} resamples, "
                 f"seed {boot.get('seed', '?')}")
    return [
        ("System", str(run.get("system", "?"))),
        ("Judge", f"{judge.get('name', '?')} {judge.get('version', '?')} (rubric {judge.get('rubric_version', '?')})"),
        ("Manifest", f"{run.get('manifest', '?')}" + (f" (sha256 {sha[:12]})" if sha else "")),
        ("Items", items),
        ("Wall time", f"{wall_s:.1f} s" if isinstance(wall_s, (int, float)) else "?"),
        ("Run", where),
        ("Intervals", intervals),
    ]


def doc_table(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document's stored table, or one computed from its items when it has none."""
    return doc.get("table") or score_table(doc.get("items", []))


def markdown_report(doc: Mapping[str, Any], *, max_errors_listed: int = 20) -> str:
    """A results document (``results_document``'s dict) as a Markdown report."""
    run = doc.get("run", {})
    lines = [f"# ParaS2SBench: {_md_cell(run.get('system', '?'))}", ""]
    lines += [f"- **{name}**: {_md_cell(value)}" for name, value in report_header(doc)]
    lines += ["", "## Scores (1-5)", "", markdown_table(doc_table(doc))]
    failed = [i for i in map(as_item, doc.get("items", [])) if i.error is not None]
    if failed:
        lines += [f"## Errors ({len(failed)})", "", "| Item | Stage | Type | Message |", "|---|---|---|---|"]
        for i in failed[:max_errors_listed]:
            cells = (i.id, i.error.stage, i.error.type, i.error.message[:200])
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        if len(failed) > max_errors_listed:
            lines.append(f"\n…and {len(failed) - max_errors_listed} more (see the HTML report or RESULTS.json).")
    return "\n".join(lines) + "\n"


def write_reports(doc: Mapping[str, Any], out_json: Path) -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` beside ``out_json``; returns ``{"md": ..., "html": ...}``."""
    from benchmark_client.report_html import html_report

    out_json = Path(out_json)
    paths = {"md": out_json.parent / f"{out_json.stem}.md", "html": out_json.parent / f"{out_json.stem}.html"}
    paths["md"].write_text(markdown_report(doc), encoding="utf-8")
    html_report(doc, paths["html"])
    return paths


def html_report(doc: Mapping[str, Any], out_path: Path) -> None:
    """One self-contained HTML file: table, SVG chart, per-item audio (see ``report_html``)."""
    from benchmark_client.report_html import html_report as render

    render(doc, out_path)
