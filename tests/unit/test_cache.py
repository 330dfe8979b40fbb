"""Cache keys and the in-process LRU."""

from __future__ import annotations

import asyncio

from judge_service.backends.base import JudgeInfo
from judge_service.cache import InProcessCache, cache_key
from judge_service.metrics import ServiceMetrics
from judge_service.testing import metric_value

JUDGE = JudgeInfo("j", "v1", "r1", {})
PARTS = {"q": "aa", "r": "bb", "labels": {"emotion": "sad"}, "q_text": None, "r_text": None}


def test_key_is_stable_and_order_independent():
    reordered = {"r_text": None, "labels": {"emotion": "sad"}, "r": "bb", "q_text": None, "q": "aa"}
    assert cache_key("score", JUDGE, PARTS) == cache_key("score", JUDGE, reordered)


def test_key_changes_with_every_input():
    base = cache_key("score", JUDGE, PARTS)
    variants = [
        cache_key("analyze", JUDGE, PARTS),
        cache_key("score", JudgeInfo("j", "v2", "r1", {}), PARTS),
        cache_key("score", JudgeInfo("j", "v1", "r2", {}), PARTS),
        cache_key("score", JudgeInfo("k", "v1", "r1", {}), PARTS),
        cache_key("score", JUDGE, {**PARTS, "q": "ab"}),
        cache_key("score", JUDGE, {**PARTS, "r": "bc"}),
        cache_key("score", JUDGE, {**PARTS, "labels": {"emotion": "happy"}}),
        cache_key("score", JUDGE, {**PARTS, "labels": {}}),
        cache_key("score", JUDGE, {**PARTS, "q_text": "hello"}),
        cache_key("score", JUDGE, {**PARTS, "q": "bb", "r": "aa"}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_lru_evicts_least_recently_used_and_counts_hits():
    metrics = ServiceMetrics()
    cache = InProcessCache(max_entries=2, metrics=metrics)

    async def scenario():
        await cache.set_many({"a": {"v": 1}, "b": {"v": 2}})
        assert await cache.get_many(["a"]) == [{"v": 1}]  # a is now most recent
        await cache.set_many({"c": {"v": 3}})  # evicts b
        return await cache.get_many(["a", "b", "c"])

    assert asyncio.run(scenario()) == [{"v": 1}, None, {"v": 3}]
    text = metrics.render().decode()
    assert metric_value(text, "judge_cache_lookups_total", result="hit") == 3
    assert metric_value(text, "judge_cache_lookups_total", result="miss") == 1


def test_cached_values_cannot_be_mutated_by_callers():
    cache = InProcessCache(max_entries=4, metrics=ServiceMetrics())

    async def scenario():
        value = {"score": 3.0}
        await cache.set_many({"k": value})
        value["score"] = 1.0
        first = (await cache.get_many(["k"]))[0]
        first["score"] = 5.0
        return (await cache.get_many(["k"]))[0]

    assert asyncio.run(scenario()) == {"score": 3.0}
