"""Prompts for the policy from a ParaS2SBench manifest: each item with its candidate replies.

An item's candidates are the reference replies (levels 5..1) of every item in its contrast
group, i.e. the replies written for each style its text can be spoken in; so the right
content depends on the style the policy hears, never on the words.
"""

from __future__ import annotations

from benchmark_client.manifest import Manifest
from trainer_client.grpo.policy import TONES, Candidate, Prompt


def prompts_from_manifest(manifest: Manifest) -> list[Prompt]:
    """Every item that has replies for at least two styles (synthetic items always do)."""
    groups: dict[str, list] = {}
    for item in manifest.items:
        groups.setdefault(item.contrast_group, []).append(item)
    prompts = []
    for item in manifest.items:
        members = sorted(groups[item.contrast_group], key=lambda i: i.style)
        candidates = tuple(
            Candidate(r.text, f"{m.dimension}:{m.style}", r.level, r.tone)
            for m in members for r in m.reference_replies if r.tone in TONES
        )  # fmt: skip
        if len({c.style for c in candidates}) < 2:
            continue
        prompts.append(Prompt(item.id, item.audio_path, item.dimension, item.style, candidates))
    return prompts
