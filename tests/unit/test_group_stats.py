import math

import pytest

from judge_service.service import GROUP_STD_EPS, group_stats


def test_group_stats_match_trl_grpo_normalisation():
    torch = pytest.importorskip("torch")
    scores = [1.0, 2.5, 4.0, 5.0, 3.0, 2.0, 4.5, 1.5]
    stats = group_stats(scores)
    rewards = torch.tensor(scores, dtype=torch.float64)
    expected = (rewards - rewards.mean()) / (rewards.std() + GROUP_STD_EPS)  # TRL: unbiased std
    assert stats["count"] == 8
    assert math.isclose(stats["mean"], float(rewards.mean()))
    assert math.isclose(stats["std"], float(rewards.std()))
    assert all(math.isclose(a, float(e), rel_tol=1e-12) for a, e in zip(stats["advantages"], expected))


def test_failed_items_are_left_out_of_stats():
    stats = group_stats([2.0, None, 4.0])
    assert stats["count"] == 2 and stats["mean"] == 3.0
    assert stats["advantages"][1] is None
    assert stats["advantages"][0] < 0 < stats["advantages"][2]


def test_equal_scores_give_zero_advantages():
    stats = group_stats([3.0, 3.0, 3.0])
    assert stats["std"] == 0.0 and stats["advantages"] == [0.0, 0.0, 0.0]


def test_no_valid_scores():
    assert group_stats([None, None]) == {"count": 0, "mean": None, "std": None, "advantages": [None, None]}
