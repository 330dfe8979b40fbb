"""Build the PolyTone dataset: scenario texts rendered in every style of their dimension.

    .venv/bin/python -m judge_service.judge.polytone.dataset --out DIR [--workers 2] [--seed 0]
        [--max-seeds-per-dimension N] [--voices-per-style K] [--heldout-voices-per-style K2]
        [--dimensions emotion,age] [--reply-levels 5,4,3,2,1] [--dry-run]

Output: ``DIR/clips/<id>.flac`` (16 kHz mono, PCM_16), ``DIR/manifest.jsonl`` (one line per clip,
in plan order) and ``DIR/build.json`` (settings and provenance).

Queries (the PolyTone core): every train-split text x every style of its dimension x K train
voices; every test-split text x every style x K2 held-out voices, so held-out = unseen texts AND
unseen voices. For emotion and sarcasm the same K voices speak both styles of a text (only the
style differs); for age, style "adult"/"child"/"senior" means voices of that age with neutral
prosody; for gender, voices of that gender (adults and seniors; a child voice's gender is not
meant to be audible). K is capped per text at the number of voices every style can get.

Replies (for the rubric scorer): for every scenario and both styles, the five reference replies,
each in its tone, all by one adult voice per scenario (train voices for train-split scenarios,
held-out voices for test-split ones).

Every clip carries all four labels: age and gender from the voice, emotion and sarcasm from the
style (or, for replies, from the tone: ``styles.REPLY_TONE_LABELS``); "neutral"/"sincere" where
the dimension is another one.

Deterministic given ``--seed``: voice choice, per-clip seeds and audio (bit-identical FLAC).
Resumable: clips already on disk with the recorded length and seed are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from judge_service.judge.polytone.styles import labels_for_style
from judge_service.judge.polytone.voices import HELDOUT_VOICES, TRAIN_VOICES, VoiceProfile, voice_by_name
from judge_service.judge.scenario_bank import (
    DIMENSIONS,
    RUBRIC_LEVELS,
    SCENARIO_BANK_VERSION,
    Scenario,
    bank_sha256,
    load_scenarios,
)

SAMPLE_RATE_HZ = 16_000
POLYTONE_VERSION = "1.1"
"""Bumped whenever voices, styles or rendering change the audio."""
MANIFEST = "manifest.jsonl"
PARTIAL_MANIFEST = "manifest.partial.jsonl"

_VOICE_SETS_BY_SPLIT = {"train": ("train", TRAIN_VOICES), "test": ("heldout", HELDOUT_VOICES)}


@dataclass(frozen=True)
class ClipSpec:
    """One clip to render; ``to_record`` adds ``path`` and ``duration_s`` for the manifest."""

    id: str
    role: str
    scenario_id: str
    dimension: str
    split: str
    voice_split: str
    text: str
    style: str
    voice: str
    engine: str
    labels: dict[str, str]
    seed: int
    level: int | None = None
    tone: str | None = None
    render_style: str = field(default="neutral", compare=False)

    @property
    def path(self) -> str:
        return f"clips/{self.id}.flac"

    def to_record(self, num_samples: int) -> dict:
        record = {k: v for k, v in asdict(self).items() if k != "render_style"}
        if self.role == "query":
            del record["level"], record["tone"]
        record["path"] = self.path
        record["duration_s"] = num_samples / SAMPLE_RATE_HZ
        record["polytone_version"] = POLYTONE_VERSION
        return record


def clip_seed(seed: int, clip_id: str) -> int:
    """A 31-bit per-clip seed, a pure function of the build seed and the clip id."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{clip_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def eligible_voices(voices: Sequence[VoiceProfile], dimension: str, style: str, role: str) -> list[VoiceProfile]:
    """Voices that may speak a ``role`` ("query" or "reply") clip of ``dimension`` in ``style``:
    replies are adult voices; age and gender queries need a voice of that age or gender."""
    if role == "reply":
        return [v for v in voices if v.age == "adult"]
    if dimension == "age":
        return [v for v in voices if v.age == style]
    if dimension == "gender":
        return [v for v in voices if v.gender == style and v.age in ("adult", "senior")]
    return list(voices)


def _labels(voice: VoiceProfile, style_or_tone: str) -> dict[str, str]:
    return {**labels_for_style(style_or_tone), "age": voice.age, "gender": voice.gender}


def plan_clips(
    scenarios: Sequence[Scenario],
    *,
    seed: int = 0,
    voices_per_style: int = 4,
    heldout_voices_per_style: int = 2,
    reply_levels: Sequence[int] = RUBRIC_LEVELS,
) -> list[ClipSpec]:
    """Every clip of a build, in a stable order (scenario, then queries, then replies)."""
    clips: list[ClipSpec] = []
    for sc in scenarios:
        voice_split, voice_set = _VOICE_SETS_BY_SPLIT[sc.split]
        k = voices_per_style if sc.split == "train" else heldout_voices_per_style
        eligible = {st: sorted(eligible_voices(voice_set, sc.dimension, st, "query"), key=lambda v: v.name) for st in sc.styles}
        k = min(k, *(len(v) for v in eligible.values()))
        if sc.dimension in ("emotion", "sarcasm"):
            shared = random.Random(f"{seed}|{sc.id}|query-voices").sample(eligible[sc.styles[0]], k)
            chosen = {st: shared for st in sc.styles}
        else:
            chosen = {st: random.Random(f"{seed}|{sc.id}|{st}|query-voices").sample(eligible[st], k) for st in sc.styles}
        for st in sc.styles:
            render_style = "neutral" if sc.dimension in ("age", "gender") else st
            for voice in chosen[st]:
                cid = f"{sc.id}.q.{st}.{voice.name}"
                clips.append(ClipSpec(
                    id=cid, role="query", scenario_id=sc.id, dimension=sc.dimension, split=sc.split,
                    voice_split=voice_split, text=sc.text, style=st, voice=voice.name, engine=voice.engine,
                    labels=_labels(voice, st), seed=clip_seed(seed, cid), render_style=render_style,
                ))  # fmt: skip
        if not reply_levels:
            continue
        reply_voices = sorted(eligible_voices(voice_set, sc.dimension, "", "reply"), key=lambda v: v.name)
        voice = random.Random(f"{seed}|{sc.id}|reply-voice").choice(reply_voices)
        for st in sc.styles:
            for reply in sc.replies_for(st):
                if reply.level not in reply_levels:
                    continue
                cid = f"{sc.id}.r.{st}.{reply.level}.{voice.name}"
                clips.append(ClipSpec(
                    id=cid, role="reply", scenario_id=sc.id, dimension=sc.dimension, split=sc.split,
                    voice_split=voice_split, text=reply.text, style=st, voice=voice.name, engine=voice.engine,
                    labels=_labels(voice, reply.tone), seed=clip_seed(seed, cid), level=reply.level,
                    tone=reply.tone, render_style=reply.tone,
                ))  # fmt: skip
    return clips


# -- rendering (worker side) -----------------------------------------------------------------

_RENDERER = None


def _init_worker(single_thread: bool = True) -> None:
    global _RENDERER
    if single_thread:
        import torch

        torch.set_num_threads(1)
    from judge_service.judge.polytone.render import Renderer

    _RENDERER = Renderer()


def _render_unit(args: tuple[str, list[ClipSpec]]) -> list[tuple[str, int, float]]:
    """Render and write the clips of one scenario; returns (id, num_samples, seconds) each."""
    out_dir, specs = args
    import soundfile as sf

    if _RENDERER is None:  # in-process build: leave the caller's torch threads alone
        _init_worker(single_thread=False)
    results = []
    for spec in specs:
        t0 = time.perf_counter()
        samples = _RENDERER.render(spec.text, voice_by_name(spec.voice), spec.render_style, spec.seed)
        path = Path(out_dir) / spec.path
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, samples, SAMPLE_RATE_HZ, subtype="PCM_16", format="FLAC")
        os.replace(tmp, path)  # atomic: a clip on disk is always complete
        results.append((spec.id, int(samples.shape[0]), time.perf_counter() - t0))
    return results


# -- build (parent side) ---------------------------------------------------------------------


def _done_records(out: Path) -> dict[str, dict]:
    """Records of clips already rendered (final or partial manifest) whose file is intact and
    was rendered by this ``POLYTONE_VERSION``: after a change of styles, voices or renderer, a
    rebuild in the same directory renders every clip again instead of reusing stale audio."""
    import soundfile as sf

    records: dict[str, dict] = {}
    for name in (MANIFEST, PARTIAL_MANIFEST):
        path = out / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by an interrupted write
                    records[record["id"]] = record
    intact = {}
    for cid, record in records.items():
        clip = out / record["path"]
        try:
            frames = sf.info(str(clip)).frames
        except (RuntimeError, OSError):
            continue
        if frames == round(record["duration_s"] * SAMPLE_RATE_HZ) and record.get("polytone_version") == POLYTONE_VERSION:
            intact[cid] = record
    return intact


def select_scenarios(dimensions: Sequence[str] = DIMENSIONS, max_per_dimension: int | None = None) -> list[Scenario]:
    """The bank's scenarios of ``dimensions``, the first ``max_per_dimension`` of each in file order."""
    chosen: list[Scenario] = []
    for dim in dimensions:
        chosen.extend(load_scenarios(dimension=dim)[:max_per_dimension])
    return chosen


def build_dataset(
    out: str | Path,
    *,
    workers: int = 2,
    seed: int = 0,
    max_seeds_per_dimension: int | None = None,
    voices_per_style: int = 4,
    heldout_voices_per_style: int = 2,
    dimensions: Sequence[str] = DIMENSIONS,
    reply_levels: Sequence[int] = RUBRIC_LEVELS,
    log=print,
) -> list[dict]:
    """Render the dataset into ``out``; returns the manifest records (also in ``manifest.jsonl``)."""
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    scenarios = select_scenarios(dimensions, max_seeds_per_dimension)
    specs = plan_clips(
        scenarios, seed=seed, voices_per_style=voices_per_style,
        heldout_voices_per_style=heldout_voices_per_style, reply_levels=reply_levels,
    )  # fmt: skip
    done = _done_records(out)
    num_samples = {s.id: round(done[s.id]["duration_s"] * SAMPLE_RATE_HZ) for s in specs
                   if s.id in done and done[s.id]["seed"] == s.seed}
    todo = [s for s in specs if s.id not in num_samples]
    units: dict[str, list[ClipSpec]] = {}
    for spec in todo:
        units.setdefault(spec.scenario_id, []).append(spec)
    log(f"[polytone] {len(scenarios)} scenarios, {len(specs)} clips planned "
        f"({sum(s.role == 'query' for s in specs)} queries, {sum(s.role == 'reply' for s in specs)} replies); "
        f"{len(specs) - len(todo)} already on disk, {len(todo)} to render with {workers} worker(s)")  # fmt: skip
    start = time.perf_counter()
    rendered = 0
    render_s = 0.0
    audio_s = 0.0
    jobs = [(str(out), unit) for unit in units.values()]
    with open(out / PARTIAL_MANIFEST, "a", encoding="utf-8") as partial:
        by_id = {s.id: s for s in todo}

        def collect(results: list[tuple[str, int, float]]) -> None:
            nonlocal rendered, render_s, audio_s
            for cid, n, seconds in results:
                num_samples[cid] = n
                partial.write(json.dumps(by_id[cid].to_record(n)) + "\n")
                rendered += 1
                render_s += seconds
                audio_s += n / SAMPLE_RATE_HZ
            partial.flush()
            elapsed = time.perf_counter() - start
            eta = elapsed / rendered * (len(todo) - rendered)
            log(f"[polytone] {rendered}/{len(todo)} clips, {rendered / elapsed:.1f} clips/s, "
                f"{render_s / rendered:.3f} s/clip/worker, {audio_s / render_s:.1f}x real time per worker, "
                f"elapsed {elapsed:.0f} s, eta {eta:.0f} s")  # fmt: skip

        if workers <= 1:
            for job in jobs:
                collect(_render_unit(job))
        else:
            import multiprocessing

            # spawn: workers start clean (no inherited torch/ONNX thread pools) on every OS.
            with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for results in pool.imap_unordered(_render_unit, jobs, chunksize=1):
                    collect(results)
    records = [s.to_record(num_samples[s.id]) for s in specs]
    with open(out / MANIFEST, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    (out / PARTIAL_MANIFEST).unlink(missing_ok=True)
    (out / "build.json").write_text(json.dumps({
        "polytone_version": POLYTONE_VERSION,
        "scenario_bank_version": SCENARIO_BANK_VERSION,
        "scenario_bank_sha256": bank_sha256(),
        "seed": seed,
        "max_seeds_per_dimension": max_seeds_per_dimension,
        "voices_per_style": voices_per_style,
        "heldout_voices_per_style": heldout_voices_per_style,
        "dimensions": list(dimensions),
        "reply_levels": list(reply_levels),
        "num_clips": len(records),
        "audio_hours": round(sum(r["duration_s"] for r in records) / 3600, 3),
        "train_voices": [v.name for v in TRAIN_VOICES],
        "heldout_voices": [v.name for v in HELDOUT_VOICES],
    }, indent=2) + "\n")  # fmt: skip
    log(f"[polytone] done: {len(records)} clips in {out} ({rendered} rendered in "
        f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
    return records


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m judge_service.judge.polytone.dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory (created; resumed if present)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="build seed (default 0)")
    parser.add_argument("--max-seeds-per-dimension", type=int, default=None, metavar="N",
                        help="only the first N scenarios of each dimension (for quick builds)")
    parser.add_argument("--voices-per-style", type=int, default=4, metavar="K",
                        help="train voices per text and style (default 4)")
    parser.add_argument("--heldout-voices-per-style", type=int, default=2, metavar="K2",
                        help="held-out voices per test-split text and style (default 2)")
    parser.add_argument("--dimensions", default=",".join(DIMENSIONS), help=f"comma list from {DIMENSIONS}")
    parser.add_argument("--reply-levels", default="5,4,3,2,1", help="rubric levels of replies to render ('' = none)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan's clip counts and exit")
    args = parser.parse_args(argv)
    dimensions = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    unknown = sorted(set(dimensions) - set(DIMENSIONS))
    if unknown:
        parser.error(f"unknown dimension(s) {unknown}; use some of {DIMENSIONS}")
    levels = _int_list(args.reply_levels)
    if set(levels) - set(RUBRIC_LEVELS):
        parser.error(f"--reply-levels must be among {RUBRIC_LEVELS}, got {levels}")
    if args.voices_per_style < 1 or args.heldout_voices_per_style < 1 or args.workers < 1:
        parser.error("--voices-per-style, --heldout-voices-per-style and --workers must be >= 1")
    if args.dry_run:
        specs = plan_clips(
            select_scenarios(dimensions, args.max_seeds_per_dimension), seed=args.seed,
            voices_per_style=args.voices_per_style, heldout_voices_per_style=args.heldout_voices_per_style,
            reply_levels=levels,
        )  # fmt: skip
        counts: dict[tuple[str, str, str], int] = {}
        for s in specs:
            key = (s.role, s.split, s.engine)
            counts[key] = counts.get(key, 0) + 1
        for key in sorted(counts):
            print(f"{' '.join(key):24s} {counts[key]:6d}")
        print(f"{'total':24s} {len(specs):6d}")
        return 0
    build_dataset(
        args.out, workers=args.workers, seed=args.seed, max_seeds_per_dimension=args.max_seeds_per_dimension,
        voices_per_style=args.voices_per_style, heldout_voices_per_style=args.heldout_voices_per_style,
        dimensions=dimensions, reply_levels=levels,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
