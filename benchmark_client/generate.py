"""``paras2s-bench generate``: the synthetic split of ParaS2SBench from the scenario bank's test split.

For each dimension (emotion, sarcasm, age, gender): ``per_dimension`` texts, each spoken in both
contrasting styles of its scenario (one contrast group per text), so ``4 x per_dimension x 2``
queries. Texts are the test-split scenarios' surface variants (``scenario_bank.expand``: openers,
"by the way", contractions; none adds a style cue), taken round-robin (variant 0 of every
scenario, then variant 1, ...) so every scenario is used about equally. The templates give at
most 390 / 257 / 290 / 340 distinct texts for emotion / sarcasm / age / gender from the bank's
test split (27-34 seeds a dimension), so ``per_dimension`` can go up to 257 (the paper used 300;
more needs more hand-written test seeds, not more templates). Only test-split scenarios
are used; the judge never trained on them.

Voices come from ``BENCHMARK_VOICES`` (disjoint from the judge's train and held-out voices). For
emotion and sarcasm both renderings of a text share one voice, so only the style differs; for age
and gender the style *is* the voice (a child or adult voice; a male or female voice), with
neutral prosody. Only age queries use child voices; every other query is spoken by an adult. Everything is a pure function of ``seed``: texts, voices, per-clip seeds, audio.
"""

from __future__ import annotations

import math
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import soundfile as sf

from benchmark_client.manifest import (
    MANIFEST_NAME,
    BenchItem,
    Manifest,
    ReferenceReply,
    load_manifest,
    make_header,
    write_manifest,
)
from benchmark_client.rendering import RenderJob, content_seed, render_all
from judge_service.judge.polytone.dataset import POLYTONE_VERSION, eligible_voices
from judge_service.judge.polytone.styles import labels_for_style
from judge_service.judge.polytone.voices import BENCHMARK_VOICES, TRAIN_VOICES, VoiceProfile
from judge_service.judge.scenario_bank import (
    DIMENSIONS,
    SCENARIO_BANK_VERSION,
    Scenario,
    bank_sha256,
    expand,
    load_scenarios,
)

DEFAULT_PER_DIMENSION = 100


def choose_texts(scenarios: Sequence[Scenario], per_dimension: int, seed: int) -> list[tuple[Scenario, int, str]]:
    """``per_dimension`` (scenario, variant index, text) of one dimension, round-robin over
    scenarios; raises ``ValueError`` when the templates cannot make that many distinct texts."""
    if not scenarios:
        raise ValueError("no test-split scenarios for this dimension")
    # Ask for more variants than an even share, since some texts have fewer surface forms.
    n_variants = 4 * math.ceil(per_dimension / len(scenarios))
    variants = {sc.id: expand(sc, n_variants, seed) for sc in scenarios}
    chosen: list[tuple[Scenario, int, str]] = []
    for index in range(n_variants):
        for sc in scenarios:
            if index < len(variants[sc.id]) and len(chosen) < per_dimension:
                chosen.append((sc, index, variants[sc.id][index].text))
    if len(chosen) < per_dimension:
        raise ValueError(f"{scenarios[0].dimension}: only {len(chosen)} distinct texts, asked for {per_dimension}")
    return chosen


SPLIT_VOICES: dict[str, Sequence[VoiceProfile]] = {"test": BENCHMARK_VOICES, "train": TRAIN_VOICES}
"""Who speaks each scenario split: the benchmark (``test``) only voices no analyser trained on;
training prompts for students and policies (``train``) the judge's training voices."""


def plan_items(
    per_dimension: int, seed: int, dimensions: Sequence[str] = DIMENSIONS, *, scenario_split: str = "test",
    voices: Sequence[VoiceProfile] = BENCHMARK_VOICES,
) -> list[tuple[BenchItem, RenderJob]]:
    """Every query of the split with its render job, in a stable order (dimension, text, style).

    The benchmark is ``scenario_split="test"`` with ``BENCHMARK_VOICES``; the RL trainer plans its
    training prompts from ``"train"`` scenarios with ``TRAIN_VOICES`` the same way.
    """
    planned: list[tuple[BenchItem, RenderJob]] = []
    for dimension in dimensions:
        scenarios = sorted(load_scenarios(dimension=dimension, split=scenario_split), key=lambda s: s.id)
        for sc, index, text in choose_texts(scenarios, per_dimension, seed):
            group = f"{sc.id}.v{index}"
            rng = random.Random(f"{seed}|{group}|voices")
            # Emotion, sarcasm and gender queries are spoken by adults, so no second cue (a child's
            # or a senior's voice) changes which reply fits; age queries need their age's voices.
            eligible = {st: sorted((v for v in eligible_voices(voices, dimension, st, "query")
                                    if dimension == "age" or v.age == "adult"), key=lambda v: v.name)
                        for st in sc.styles}  # fmt: skip
            if dimension in ("emotion", "sarcasm"):
                shared = rng.choice(eligible[sc.styles[0]])
                chosen = {st: shared for st in sc.styles}
            else:
                chosen = {st: rng.choice(eligible[st]) for st in sc.styles}
            for style in sc.styles:
                voice = chosen[style]
                item_id = f"{group}.{style}"
                labels = {**labels_for_style(style if dimension in ("emotion", "sarcasm") else "neutral"),
                          "age": voice.age, "gender": voice.gender}  # fmt: skip
                render_style = style if dimension in ("emotion", "sarcasm") else "neutral"
                audio = f"audio/{item_id}.flac"
                item = BenchItem(
                    id=item_id, split="synthetic", dimension=dimension, style=style, contrast_group=group,
                    audio=audio, labels=labels, text=text, scenario_id=sc.id, speaker=voice.name,
                    reference_replies=tuple(ReferenceReply(r.level, r.text, r.tone) for r in sc.replies_for(style)),
                )  # fmt: skip
                job = RenderJob(text=text, voice=voice.name, style=render_style,
                                seed=content_seed(seed, item_id), path=Path(audio))  # fmt: skip
                planned.append((item, job))
    return planned


def generate(
    out_dir: str | Path, *, per_dimension: int = DEFAULT_PER_DIMENSION, seed: int = 0,
    dimensions: Sequence[str] = DIMENSIONS, workers: int | None = None, log: Callable[[str], None] = print,
    scenario_split: str = "test", voices: Sequence[VoiceProfile] = BENCHMARK_VOICES,
) -> Manifest:
    """Render the split into ``out_dir`` (``audio/*.flac`` + ``manifest.jsonl``); resumable.
    ``scenario_split``/``voices``: see ``plan_items`` (the defaults make the benchmark)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    planned = plan_items(per_dimension, seed, dimensions, scenario_split=scenario_split, voices=voices)
    jobs = [RenderJob(j.text, j.voice, j.style, j.seed, out_dir / j.path) for _, j in planned]
    log(f"[generate] {len(planned)} queries: {len(dimensions)} dimensions x {per_dimension} texts x 2 styles")
    render_all(jobs, workers=workers, log=log)
    items = [
        BenchItem(**{**item.to_record(), "reference_replies": item.reference_replies,
                     "duration_s": round(sf.info(str(job.path)).frames / sf.info(str(job.path)).samplerate, 4)},
                  root=out_dir)  # fmt: skip
        for (item, _), job in zip(planned, jobs)
    ]
    header = make_header(
        {"name": "paras2s-bench generate", "split": "synthetic", "per_dimension": per_dimension, "seed": seed,
         "dimensions": list(dimensions), "voices": [v.name for v in voices], "scenario_split": scenario_split,
         "scenario_bank_version": SCENARIO_BANK_VERSION, "scenario_bank_sha256": bank_sha256(),
         "polytone_version": POLYTONE_VERSION},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip
    write_manifest(out_dir / MANIFEST_NAME, header, items)
    log(f"[generate] wrote {out_dir / MANIFEST_NAME} ({len(items)} items) in {time.monotonic() - started:.1f} s")
    return load_manifest(out_dir)
