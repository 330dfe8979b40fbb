"""Clients of the judge service for RL post-training: an async/sync judge client and reward
adapters for TRL, OpenRLHF and verl."""

from trainer_client.client import (
    GroupScore,
    JudgeClient,
    JudgeClientError,
    JudgeDeadlineError,
    JudgeInfo,
    JudgeRequestError,
    JudgeUnavailableError,
    Pair,
    PairScore,
    SyncJudgeClient,
)

__all__ = [
    "GroupScore", "JudgeClient", "JudgeClientError", "JudgeDeadlineError", "JudgeInfo", "JudgeRequestError",
    "JudgeUnavailableError", "Pair", "PairScore", "SyncJudgeClient",
]  # fmt: skip
