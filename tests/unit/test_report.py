"""Score table (Table 4) with stratified bootstrap intervals, and the Markdown / HTML reports."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from benchmark_client.report import (
    _bootstrap_reference,
    markdown_report,
    score_table,
    write_reports,
)
from benchmark_client.results import (
    ItemError,
    ItemResult,
    load_results,
    results_document,
)
from judge_service.judge.labels import LABEL_SETS

RUN = {"system": "topline", "manifest": "/bench/manifest.jsonl", "manifest_sha256": "ab" * 32,
       "judge": {"name": "paras2s-baseline", "version": "0.1.0", "rubric_version": "r1"},
       "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z", "wall_s": 60.0}  # fmt: skip


def item(n: int, split: str, dimension: str, score: float | None, *, style: str | None = None,
         stage: str = "judge") -> ItemResult:
    """One result; ``score=None`` makes it an error of ``stage``."""
    style = style or LABEL_SETS[dimension][0]
    error = None if score is not None else ItemError(stage, "Boom", f"item {n} failed")
    return ItemResult(id=f"{split}-{dimension}-{n}", split=split, dimension=dimension, style=style,
                      contrast_group=f"g{n}", scenario_id=None, query_audio=f"q{n}.wav",
                      response_audio=None if stage == "system" and error else f"r{n}.wav", score=score, error=error)


def cell(split: str, dimension: str, scores, start: int = 0, **kw) -> list[ItemResult]:
    return [item(start + k, split, dimension, None if s is None else float(s), **kw) for k, s in enumerate(scores)]


def mixed_items(n_per_cell: int, seed: int = 0, error_every: int = 13) -> list[ItemResult]:
    """Both splits, every dimension and category, integer scores 1..5, some errors."""
    rng = np.random.default_rng(seed)
    items, k = [], 0
    for split in ("synthetic", "real"):
        for dim, labels in LABEL_SETS.items():
            for j in range(n_per_cell):
                k += 1
                score = None if k % error_every == 0 else float(rng.integers(1, 6))
                items.append(item(k, split, dim, score, style=labels[j % len(labels)]))
    return items


def assert_tables_close(fast, slow):
    if isinstance(fast, dict):
        assert fast.keys() == slow.keys()
        for key in fast:
            assert_tables_close(fast[key], slow[key])
    elif isinstance(fast, list):
        assert len(fast) == len(slow)
        for f, s in zip(fast, slow, strict=True):
            assert_tables_close(f, s)
    elif isinstance(fast, float):
        assert math.isclose(fast, slow, rel_tol=1e-12, abs_tol=1e-12), (fast, slow)
    else:
        assert fast == slow


def test_known_means_counts_and_order():
    items = cell("synthetic", "gender", [1, 2, 3]) + cell("synthetic", "emotion", [5, 4], style="happy") \
        + cell("synthetic", "emotion", [2], start=10, style="sad")
    table = score_table(items, resamples=100)
    dims = table["splits"]["synthetic"]["dimensions"]
    assert list(dims) == ["emotion", "gender"]  # paper order, only dimensions with items
    assert dims["emotion"]["mean"] == pytest.approx(11 / 3) and dims["emotion"]["n"] == 3
    assert dims["emotion"]["categories"]["happy"]["mean"] == 4.5
    assert dims["emotion"]["categories"]["sad"]["mean"] == 2.0
    assert list(dims["emotion"]["categories"]) == ["happy", "sad"]
    assert dims["gender"]["mean"] == 2.0
    assert "real" not in table["splits"]
    assert table["bootstrap"]["resamples"] == 100 and table["bootstrap"]["seed"] == 0
    json.dumps(table)  # JSON-serialisable as is


def test_errors_are_counted_not_averaged():
    items = cell("synthetic", "emotion", [1, 2, 3, None, None]) + cell("synthetic", "age", [None, None])
    table = score_table(items, resamples=50)
    dims = table["splits"]["synthetic"]["dimensions"]
    assert (dims["emotion"]["mean"], dims["emotion"]["n"], dims["emotion"]["errors"]) == (2.0, 3, 2)
    assert dims["age"]["mean"] is None and dims["age"]["ci95"] is None and dims["age"]["errors"] == 2
    average = table["splits"]["synthetic"]["average"]
    assert average["mean"] == 2.0 and average["n"] == 3  # the all-error dimension is left out


def test_averages_are_unweighted():
    items = cell("synthetic", "emotion", [5] * 100) + cell("synthetic", "sarcasm", [1, 1])
    items += cell("real", "age", [2] * 7)
    table = score_table(items, resamples=50)
    assert table["splits"]["synthetic"]["average"]["mean"] == 3.0  # not (500 + 2) / 102
    assert table["splits"]["real"]["average"]["mean"] == 2.0
    assert table["overall"]["mean"] == 2.5 and table["overall"]["n"] == 109


def test_interval_covers_the_true_mean_and_shrinks_with_n():
    rng = np.random.default_rng(7)
    widths = {}
    for n in (100, 1600):
        scores = rng.integers(1, 6, size=n)  # true mean 3
        table = score_table(cell("real", "sarcasm", scores), resamples=1000, seed=1)
        stat = table["splits"]["real"]["dimensions"]["sarcasm"]
        lo, hi = stat["ci95"]
        assert lo < stat["mean"] < hi
        assert lo < 3.0 < hi
        widths[n] = hi - lo
    assert widths[1600] < widths[100] / 3  # ~1/sqrt(n): a factor of 4 expected


def test_bootstrap_is_stratified_by_cell_and_category():
    # Two cells of constant scores: every resample keeps 50 items in each, so the average never
    # moves; a bootstrap pooling the split would give a wide interval around 3.
    items = cell("synthetic", "emotion", [5] * 50) + cell("synthetic", "gender", [1] * 50)
    average = score_table(items, resamples=500)["splits"]["synthetic"]["average"]
    assert average["mean"] == 3.0 and average["ci95"] == [3.0, 3.0]
    # Inside one dimension, categories are resampled on their own: constant categories are exact,
    # the dimension (which mixes them) is not.
    items = cell("real", "emotion", [5] * 30, style="happy") + cell("real", "emotion", [1] * 30, start=100, style="sad")
    emotion = score_table(items, resamples=500)["splits"]["real"]["dimensions"]["emotion"]
    assert emotion["categories"]["happy"]["ci95"] == [5.0, 5.0]
    assert emotion["categories"]["sad"]["ci95"] == [1.0, 1.0]
    lo, hi = emotion["ci95"]
    assert lo < 3.0 < hi and hi - lo > 0.5


def test_single_item_gives_a_degenerate_interval():
    stat = score_table(cell("real", "age", [4.5]), resamples=30)["splits"]["real"]["dimensions"]["age"]
    assert stat["mean"] == 4.5 and stat["ci95"] == [4.5, 4.5] and stat["n"] == 1


def test_fast_bootstrap_equals_the_loop_reference():
    items = mixed_items(9, seed=3) + cell("real", "age", [None, None], start=500)
    fast = score_table(items, resamples=300, seed=11)
    slow = _bootstrap_reference(items, resamples=300, seed=11)
    assert_tables_close(fast, slow)


def test_deterministic_by_seed():
    items = mixed_items(20)
    assert score_table(items, resamples=200, seed=5) == score_table(items, resamples=200, seed=5)
    other_seed = score_table(items, resamples=200, seed=6)
    assert score_table(items, resamples=200, seed=5)["overall"]["ci95"] != other_seed["overall"]["ci95"]


def test_accepts_records_and_rejects_bad_input():
    items = mixed_items(3)
    assert score_table([i.to_record() for i in items], resamples=20) == score_table(items, resamples=20)
    with pytest.raises(ValueError, match="resamples"):
        score_table(items, resamples=0)
    with pytest.raises(ValueError, match="split"):
        score_table([item(1, "train", "emotion", 3.0)], resamples=10)


def test_5000_items_2000_resamples_is_fast():
    items = mixed_items(625)  # 8 cells x 625 = 5000 items
    start = time.perf_counter()
    score_table(items, resamples=2000)
    elapsed_s = time.perf_counter() - start
    assert elapsed_s < 2.0, f"{elapsed_s:.2f} s (measured ~0.15 s on 2 cores)"


def test_markdown_report_names_the_run_and_lists_rows(tmp_path):
    items = mixed_items(4) + [item(900, "real", "gender", None, stage="system")]
    doc = results_document(RUN, items, score_table(items, resamples=50))
    text = markdown_report(doc)
    for needle in ("topline", "paras2s-baseline 0.1.0 (rubric r1)", "/bench/manifest.jsonl", "abababababab",
                   "33 items, 30 scored, 1 system errors, 2 judge errors", "60.0 s",
                   "| synthetic / emotion |", "| real / gender |", "**synthetic average**", "**real average**",
                   "**overall**", "| real / emotion / happy |", "## Errors (3)"):  # fmt: skip
        assert needle in text, needle
    overall = doc["table"]["overall"]
    assert f"{overall['mean']:.2f} [{overall['ci95'][0]:.2f}, {overall['ci95'][1]:.2f}]" in text
    # The same report from the file as read back (items become ItemResult objects).
    path = tmp_path / "RESULTS.json"
    path.write_text(json.dumps(doc))
    assert markdown_report(load_results(path)) == text


def test_write_reports_writes_md_and_html_beside_the_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = item(1, "synthetic", "sarcasm", 2.0)
    bad.rationale = "<script>alert('x')</script> & more"
    bad.query_audio = "audio/my query.wav"  # relative to the cwd
    doc = results_document(RUN, [bad], score_table([bad], resamples=20))
    (tmp_path / "out").mkdir()
    paths = write_reports(doc, tmp_path / "out" / "RESULTS.json")
    assert paths == {"md": tmp_path / "out" / "RESULTS.md", "html": tmp_path / "out" / "RESULTS.html"}
    page = paths["html"].read_text()
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page
    assert 'src="../audio/my%20query.wav"' in page and 'preload="none"' in page
    assert page.count('class="bar"') == 1
