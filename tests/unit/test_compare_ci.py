"""Paired comparison of two runs (compare.py) and the CI gate (ci.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmark_client.ci import gate
from benchmark_client.compare import compare_markdown, compare_results
from benchmark_client.report import score_table
from benchmark_client.results import ItemError, ItemResult, results_document

JUDGE = {"name": "paras2s-baseline", "version": "0.1.0", "rubric_version": "r1"}


def run_doc(scores: dict[str, float | None], *, system: str = "sys", cells: dict[str, tuple[str, str]] | None = None,
            judge: dict | None = None, sha: str = "ab" * 32) -> dict:
    """A results document; item ``id`` -> score (``None``: judge error), cell from ``cells`` or the id."""
    items = []
    for item_id, score in scores.items():
        split, dim = (cells or {}).get(item_id) or item_id.split("-")[:2]
        error = None if score is not None else ItemError("judge", "Boom", "failed")
        style = {"emotion": "happy", "sarcasm": "sincere", "age": "adult", "gender": "male"}[dim]
        items.append(ItemResult(id=item_id, split=split, dimension=dim, style=style, contrast_group=item_id,
                                scenario_id=None, query_audio=f"{item_id}.wav", score=score, error=error))
    run = {"system": system, "manifest": "m.jsonl", "manifest_sha256": sha, "judge": judge or dict(JUDGE)}
    return results_document(run, items, score_table(items, resamples=200))


def correlated_runs(n: int, shift: float, *, seed: int = 0, noise: float = 0.15) -> tuple[dict, dict]:
    """Two runs over the same items: shared item difficulty (sd 0.8) plus small per-run noise."""
    rng = np.random.default_rng(seed)
    a, b = {}, {}
    for split in ("synthetic", "real"):
        for dim in ("emotion", "sarcasm", "age", "gender"):
            difficulty = rng.normal(3.0, 0.8, size=n)
            for k in range(n):
                a[f"{split}-{dim}-{k}"] = float(difficulty[k] + rng.normal(0, noise))
                b[f"{split}-{dim}-{k}"] = float(difficulty[k] + shift + rng.normal(0, noise))
    return run_doc(a, system="A"), run_doc(b, system="B")


# ----------------------------------------------------------------------------- compare


def test_diff_is_b_minus_a_over_paired_items_and_averages_are_unweighted():
    a = run_doc({"synthetic-emotion-1": 2.0, "synthetic-emotion-2": 4.0, "synthetic-age-1": 3.0, "real-gender-1": 1.0})
    b = run_doc({"synthetic-emotion-1": 3.0, "synthetic-emotion-2": 4.0, "synthetic-age-1": 1.0, "real-gender-1": 2.0})
    cmp = compare_results(a, b, resamples=100)
    emotion = cmp["splits"]["synthetic"]["dimensions"]["emotion"]
    assert (emotion["mean_a"], emotion["mean_b"], emotion["diff"], emotion["n"]) == (3.0, 3.5, 0.5, 2)
    average = cmp["splits"]["synthetic"]["average"]
    assert average["diff"] == pytest.approx((0.5 - 2.0) / 2)
    assert cmp["overall"]["diff"] == pytest.approx((-0.75 + 1.0) / 2)
    assert cmp["warnings"] == [] and cmp["counts"]["paired"] == 4


def test_paired_interval_is_narrower_than_unpaired_for_correlated_runs():
    a, b = correlated_runs(100, shift=0.1)
    cmp = compare_results(a, b, resamples=1000, seed=0)
    stat = cmp["splits"]["synthetic"]["dimensions"]["emotion"]
    lo, hi = stat["ci95"]
    # Unpaired: resample the two runs' items independently.
    ids = [i for i in (r["id"] for r in a["items"]) if i.startswith("synthetic-emotion-")]
    sa = np.array([r["score"] for r in a["items"] if r["id"] in ids])
    sb = np.array([r["score"] for r in b["items"] if r["id"] in ids])
    rng = np.random.default_rng(0)
    diffs = sb[rng.integers(0, 100, (1000, 100))].mean(1) - sa[rng.integers(0, 100, (1000, 100))].mean(1)
    u_lo, u_hi = np.percentile(diffs, [2.5, 97.5])
    assert hi - lo < (u_hi - u_lo) / 3
    assert lo < stat["diff"] < hi


def test_clear_improvement_has_an_interval_above_zero():
    a, b = correlated_runs(60, shift=0.4, seed=1)
    cmp = compare_results(a, b, resamples=500)
    assert cmp["overall"]["ci95"][0] > 0
    assert all(d["ci95"][0] > 0 for s in cmp["splits"].values() for d in s["dimensions"].values())
    same = compare_results(a, copy.deepcopy(a), resamples=200)
    assert same["overall"]["diff"] == 0.0 and same["overall"]["ci95"] == [0.0, 0.0]


def test_unmatched_and_errored_items_are_counted_not_compared():
    a = run_doc({f"real-age-{k}": 3.0 for k in range(10)} | {"real-age-20": None})
    b = run_doc({f"real-age-{k}": 4.0 for k in range(5, 15)} | {"real-age-20": 4.0} | {"real-age-6": None})
    cmp = compare_results(a, b, resamples=100)
    age = cmp["splits"]["real"]["dimensions"]["age"]
    assert age["n"] == 4 and age["diff"] == 1.0  # 5, 7, 8, 9
    assert (age["only_a"], age["only_b"], age["errored_a"], age["errored_b"]) == (5, 5, 1, 1)
    assert cmp["counts"] == {"a": 11, "b": 11, "shared": 6, "paired": 4, "only_a": 5, "only_b": 5,
                                  "errored_a": 1, "errored_b": 1, "mismatched": 0}
    assert any("only in A" in w for w in cmp["warnings"])


def test_no_shared_ids_is_refused_and_moved_items_are_left_out():
    with pytest.raises(ValueError, match="share no item ids"):
        compare_results(run_doc({"real-age-1": 3.0}), run_doc({"real-age-2": 3.0}))
    a = run_doc({"x1": 3.0, "x2": 2.0}, cells={"x1": ("real", "age"), "x2": ("real", "age")})
    b = run_doc({"x1": 4.0, "x2": 2.0}, cells={"x1": ("real", "age"), "x2": ("synthetic", "age")})
    cmp = compare_results(a, b, resamples=50)
    assert cmp["counts"]["mismatched"] == 1 and cmp["overall"]["n"] == 1
    assert any("different split or dimension" in w for w in cmp["warnings"])


def test_judge_and_manifest_differences_are_warned():
    a = run_doc({"real-age-1": 3.0})
    b = run_doc({"real-age-1": 3.0}, judge=JUDGE | {"version": "0.2.0"}, sha="cd" * 32)
    cmp = compare_results(a, b, resamples=20)
    assert any("judge version differs" in w and "0.2.0" in w for w in cmp["warnings"])
    assert any("manifests differ" in w for w in cmp["warnings"])
    text = compare_markdown(cmp)
    assert "⚠️ judge version differs" in text and "| real / age |" in text and "**overall**" in text


def test_compare_markdown_shows_signed_differences():
    a, b = correlated_runs(20, shift=0.5, seed=2)
    cmp = compare_results(a, b, resamples=200)
    text = compare_markdown(cmp)
    o = cmp["overall"]
    assert f"{o['diff']:+.2f} [{o['ci95'][0]:+.2f}, {o['ci95'][1]:+.2f}]" in text
    assert "**synthetic average**" in text and "**real average**" in text


# ----------------------------------------------------------------------------- gate


def uniform_doc(score: float, *, errors: int = 0, n: int = 10, **kw) -> dict:
    scores = {f"synthetic-{d}-{k}": score for d in ("emotion", "sarcasm") for k in range(n)}
    for key in list(scores)[:errors]:
        scores[key] = None
    return run_doc(scores, **kw)


def test_min_overall_passes_and_fails():
    doc = uniform_doc(3.2)
    passed = gate(doc, min_overall=3.0, baseline=None, max_drop=None)
    assert passed.passed and passed.checks[0][:2] == ("overall ≥ 3", True)
    assert passed.markdown.startswith("## ✅")
    failed = gate(doc, min_overall=3.5, baseline=None, max_drop=None)
    assert not failed.passed and failed.checks[0][1] is False
    assert failed.markdown.startswith("## ❌") and "1 of 2 checks failed" in failed.markdown
    assert "| synthetic / emotion |" in failed.markdown and "**overall**" in failed.markdown


def test_error_rate_check():
    doc = uniform_doc(4.0, errors=2)  # 2 of 20
    assert not gate(doc, min_overall=None, baseline=None, max_drop=None).passed  # default: no errors allowed
    result = gate(doc, min_overall=None, baseline=None, max_drop=None, max_error_rate=0.1)
    assert result.passed and "2 of 20 items failed (10.0%)" in result.checks[0][2]
    assert not gate(doc, min_overall=None, baseline=None, max_drop=None, max_error_rate=0.05).passed
    nothing = uniform_doc(4.0, errors=20)
    result = gate(nothing, min_overall=1.0, baseline=None, max_drop=None, max_error_rate=1.0)
    assert not result.passed and result.checks[0] == ("overall ≥ 1", False, "no item was scored")


def test_baseline_drop_passes_within_tolerance_and_fails_beyond():
    baseline = uniform_doc(3.0)
    at_limit = gate(uniform_doc(2.9), min_overall=None, baseline=baseline, max_drop=0.1)
    assert at_limit.passed  # a drop of exactly max_drop passes (float tolerance)
    names = [c[0] for c in at_limit.checks]
    assert names == ["error rate ≤ 0", "drop ≤ 0.1: overall", "drop ≤ 0.1: synthetic / emotion",
                     "drop ≤ 0.1: synthetic / sarcasm"]  # fmt: skip
    assert "-0.10 [-0.10, -0.10] (paired 95% CI, n=20)" in at_limit.checks[1][2]
    # One dimension drops by 0.5: the overall drop is 0.25 and that dimension fails.
    scores = {r["id"]: (2.5 if "sarcasm" in r["id"] else 3.0) for r in baseline["items"]}
    result = gate(run_doc(scores), min_overall=2.0, baseline=baseline, max_drop=0.1)
    failing = [name for name, ok, _ in result.checks if not ok]
    assert not result.passed and failing == ["drop ≤ 0.1: overall", "drop ≤ 0.1: synthetic / sarcasm"]
    assert "❌ | drop ≤ 0.1: synthetic / sarcasm" in result.markdown


def test_gate_carries_comparison_warnings_and_rejects_bad_configuration():
    baseline = uniform_doc(3.0, judge=JUDGE | {"rubric_version": "r0"})
    result = gate(uniform_doc(3.0), min_overall=None, baseline=baseline, max_drop=0.1)
    assert result.passed and "⚠️ judge rubric_version differs" in result.markdown
    with pytest.raises(ValueError, match="go together"):
        gate(uniform_doc(3.0), min_overall=None, baseline=baseline, max_drop=None)
    with pytest.raises(ValueError, match="max_error_rate"):
        gate(uniform_doc(3.0), min_overall=None, baseline=None, max_drop=None, max_error_rate=5)
    with pytest.raises(ValueError, match="share no item ids"):
        gate(uniform_doc(3.0), min_overall=None, baseline=run_doc({"real-age-99": 3.0}), max_drop=0.1)
