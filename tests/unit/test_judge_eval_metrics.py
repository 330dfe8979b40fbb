"""``paras2s-judge eval``'s known-system metrics: the aggregation, and that each case is also
scored with the query's true style sent as a known label."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from judge_service.backends.base import BatchReport, JobResult
from judge_service.judge.training.evaluate import SYSTEMS, JudgeCase, judge_metrics, metrics_markdown, system_metrics
from judge_service.testing import voiced_clip

ORDERED = dict(zip(SYSTEMS, (4.5, 4.0, 3.0, 2.0, 1.5)))


def _case(path, scenario_id: str, style: str) -> JudgeCase:
    return JudgeCase(scenario_id, style, path, {s: path for s in SYSTEMS}, path, path)


def test_system_metrics_means_order_spread_and_preference_per_dimension(tmp_path):
    cases = [_case(tmp_path, "emotion-0001", "sad"), _case(tmp_path, "gender-0002", "male")]
    swapped = ORDERED | {"topline": 1.0}  # prefers the mismatched reply, and breaks the order
    m = system_metrics(cases, [ORDERED, swapped])
    assert m["system_means"]["topline"] == pytest.approx(2.75)
    assert m["topline_minus_reversed"] == pytest.approx(1.25)
    assert m["style_hallucination_preference"] == 0.5
    assert m["kendall_tau"] < 1.0
    assert m["by_dimension"]["emotion"]["kendall_tau"] == 1.0
    assert m["by_dimension"]["emotion"]["style_hallucination_preference"] == 1.0
    assert m["by_dimension"]["gender"]["style_hallucination_preference"] == 0.0


class KnownLabelEchoBackendForTests:
    """Scores a pair in order (``ORDERED``) when the query's true style is given as a known
    label and in reverse when not, recording the labels it was sent; for this test only."""

    def __init__(self) -> None:
        self.known: list[dict[str, str]] = []

    def run_batch(self, jobs):
        results = []
        for job in jobs:
            scores = []
            for pair in job.pairs:
                self.known.append(dict(pair.known_labels))
                system = SYSTEMS[pair.response_index - 1]
                score = ORDERED[system] if pair.known_labels else 6.0 - ORDERED[system]
                scores.append({"score": score})
            results.append(JobResult(analyses=[], scores=scores))
        return BatchReport(results=results)


def test_judge_metrics_scores_each_case_as_heard_and_with_the_true_query_label(tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, voiced_clip(0.5), 16_000)
    cases = [_case(clip, "sarcasm-0003", "sarcastic"), _case(clip, "age-0004", "child"), _case(clip, "emotion-0005", "sad")]
    backend = KnownLabelEchoBackendForTests()
    m = judge_metrics(cases, backend, log=lambda _: None, batch_cases=2)
    assert m["cases"] == 3
    assert m["kendall_tau"] == -1.0 and m["style_hallucination_preference"] == 0.0
    told = m["with_true_query_labels"]
    assert told["kendall_tau"] == 1.0 and told["style_hallucination_preference"] == 1.0
    assert told["topline_minus_reversed"] == pytest.approx(3.0)
    sent = [k for k in backend.known if k]
    assert len(sent) == len(backend.known) / 2 == 3 * len(SYSTEMS)
    assert {"sarcasm": "sarcastic"} in sent and {"age": "child"} in sent and {"emotion": "sad"} in sent
    markdown = metrics_markdown({"analysers": {"heldout_synthetic": {}, "text_only_control": {}},
                                 "judge": {"name": "j", **m}})
    assert "true style given as a known label" in markdown and "| age | -1.00 | 0.000 | 1.000 |" in markdown
    assert np.isfinite(m["seconds"])
