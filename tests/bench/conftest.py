"""A small hand-made manifest with real WAV files, for adapter and run tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark_client.manifest import BenchItem, ReferenceReply, load_manifest, make_header, write_manifest
from judge_service.testing import voiced_wav

_REPLIES = {
    "happy": [(5, "That's wonderful, congratulations!", "excited"), (4, "Noted.", "neutral"),
              (3, "Things change.", "neutral"), (2, "Be careful.", "serious"), (1, "I'm so sorry.", "sad-comforting")],
    "sad": [(5, "I'm sorry, that sounds hard.", "sad-comforting"), (4, "Noted.", "neutral"),
            (3, "Things change.", "neutral"), (2, "Cheer up.", "happy"), (1, "Great news!", "excited")],
}  # fmt: skip


def make_manifest(root: Path, groups: int = 2) -> Path:
    """``groups`` contrast groups of two emotion items (happy, sad), 0.6-1.0 s voiced WAVs."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    items = []
    for g in range(groups):
        for k, style in enumerate(("happy", "sad")):
            item_id = f"g{g}.{style}"
            (root / "audio" / f"{item_id}.wav").write_bytes(voiced_wav(0.6 + 0.1 * g, f0_hz=150 + 40 * k, seed=g))
            items.append(BenchItem(
                id=item_id, split="synthetic", dimension="emotion", style=style, contrast_group=f"g{g}",
                audio=f"audio/{item_id}.wav", labels={"emotion": style}, text="The meeting moved to Friday.",
                scenario_id=f"emotion-{g:04d}", reference_replies=tuple(ReferenceReply(*r) for r in _REPLIES[style]),
            ))  # fmt: skip
    path = root / "manifest.jsonl"
    write_manifest(path, make_header({"name": "tests"}, "2026-01-01T00:00:00+00:00"), items)
    return path


@pytest.fixture
def tiny_manifest(tmp_path: Path):
    return load_manifest(make_manifest(tmp_path / "bench"))
