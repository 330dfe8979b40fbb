"""The pure batching policy."""

from judge_service.batching.policy import (
    PRIORITY_BULK,
    PRIORITY_INTERACTIVE,
    BatchLimits,
    QueuedJob,
    padded_audio_s,
    select_batch,
)

LIMITS = BatchLimits(max_items=8, max_audio_s=40.0, max_wait_s=0.010)


def job(job_id, clips=2, length_s=3.0, priority=PRIORITY_INTERACTIVE, enqueued_s=0.0):
    return QueuedJob(job_id, priority, enqueued_s, clips, length_s)


def test_empty_queue_waits_forever():
    decision = select_batch([], now_s=5.0, limits=LIMITS)
    assert decision.job_ids == () and decision.wait_s == float("inf")


def test_waits_for_a_fuller_batch_until_max_wait():
    queued = [job(1, enqueued_s=0.0)]
    early = select_batch(queued, now_s=0.004, limits=LIMITS)
    assert early.job_ids == () and abs(early.wait_s - 0.006) < 1e-9
    late = select_batch(queued, now_s=0.010, limits=LIMITS)
    assert late.job_ids == (1,)


def test_full_batch_runs_at_once_within_item_budget():
    queued = [job(i, clips=2, enqueued_s=0.0) for i in range(1, 7)]  # 12 clips queued
    decision = select_batch(queued, now_s=0.0, limits=LIMITS)
    assert decision.wait_s == 0.0
    assert len(decision.job_ids) == 4  # 8 clips
    assert decision.job_ids[0] == 1


def test_padding_counts_in_audio_budget():
    # 2 clips of 3 s + one job with a 15 s clip: 15 s x 4 clips = 60 s > 40 s budget.
    queued = [job(1, clips=2, length_s=3.0), job(2, clips=2, length_s=15.0)]
    assert padded_audio_s(queued) == 60.0
    decision = select_batch(queued, now_s=1.0, limits=LIMITS)
    assert decision.job_ids == (1,)


def test_similar_lengths_are_batched_together():
    queued = [
        job(1, clips=2, length_s=4.0, enqueued_s=0.0),
        job(2, clips=2, length_s=20.0, enqueued_s=0.001),
        job(3, clips=2, length_s=4.5, enqueued_s=0.002),
        job(4, clips=2, length_s=3.5, enqueued_s=0.003),
    ]
    decision = select_batch(queued, now_s=1.0, limits=BatchLimits(6, 1000.0, 0.01))
    assert set(decision.job_ids) == {1, 3, 4}


def test_interactive_runs_before_older_bulk():
    queued = [
        job(1, priority=PRIORITY_BULK, enqueued_s=0.0),
        job(2, priority=PRIORITY_INTERACTIVE, enqueued_s=5.0),
    ]
    decision = select_batch(queued, now_s=10.0, limits=BatchLimits(2, 100.0, 0.01))
    assert decision.job_ids == (2,)


def test_bulk_fills_room_left_by_interactive():
    queued = [job(1, priority=PRIORITY_BULK), job(2, priority=PRIORITY_INTERACTIVE)]
    decision = select_batch(queued, now_s=10.0, limits=LIMITS)
    assert decision.job_ids == (2, 1)


def test_oversized_job_runs_alone():
    queued = [job(1, clips=20, length_s=30.0), job(2)]
    decision = select_batch(queued, now_s=1.0, limits=LIMITS)
    assert decision.job_ids == (1,)


def test_oldest_of_equal_priority_is_the_anchor():
    queued = [job(5, enqueued_s=2.0), job(3, enqueued_s=1.0), job(4, enqueued_s=1.5)]
    decision = select_batch(queued, now_s=3.0, limits=BatchLimits(2, 100.0, 0.01))
    assert decision.job_ids[0] == 3
