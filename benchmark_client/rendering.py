"""Text-to-speech for the benchmark: queries of the synthetic split and reference systems' replies.

Both go through the judge's PolyTone ``Renderer`` (espeak-ng / Piper voices reshaped by WORLD) so
the benchmark uses the same style definitions the analysers were trained on, with voices the
analysers never heard (``BENCHMARK_VOICES``). Rendering is CPU-bound and the renderer is not
thread-safe, so jobs run in a process pool with one renderer per worker. A clip already on disk
is kept: every job's path is content-addressed or derived from a deterministic plan, so reruns
and interrupted runs only render what is missing.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True)
class RenderJob:
    """Speak ``text`` with voice ``voice`` (a ``BENCHMARK_VOICES`` name) in ``style`` (a query
    style or reply tone); write 16 kHz mono PCM_16 FLAC to ``path``."""

    text: str
    voice: str
    style: str
    seed: int
    path: Path


def content_seed(*parts: object) -> int:
    """A 31-bit seed that is a pure function of ``parts`` (not of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def reply_job(text: str, tone: str, voice: str, cache_dir: Path) -> RenderJob:
    """A reply spoken by ``voice`` in ``tone``, content-addressed under ``cache_dir`` (text, tone,
    voice and the renderer version name the file), so everyone who says it shares one clip."""
    from judge_service.judge.polytone.dataset import POLYTONE_VERSION

    seed = content_seed(text, tone, voice)
    key = hashlib.sha256(f"{POLYTONE_VERSION}|{voice}|{tone}|{seed}|{text}".encode()).hexdigest()[:24]
    return RenderJob(text=text, voice=voice, style=tone, seed=seed, path=Path(cache_dir) / f"{key}.flac")


_RENDERER = None


def _init_worker() -> None:
    global _RENDERER
    import torch

    torch.set_num_threads(1)
    from judge_service.judge.polytone.render import Renderer

    _RENDERER = Renderer()


def _render_one(job: RenderJob) -> tuple[str, int]:
    import soundfile as sf

    from judge_service.judge.polytone.voices import voice_by_name

    if _RENDERER is None:
        _init_worker()
    samples = _RENDERER.render(job.text, voice_by_name(job.voice), job.style, job.seed)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.path.with_name(f".{job.path.name}.{os.getpid()}.tmp")
    sf.write(tmp, samples, SAMPLE_RATE_HZ, subtype="PCM_16", format="FLAC")
    os.replace(tmp, job.path)  # atomic: a clip on disk is always complete
    return str(job.path), int(samples.shape[0])


def render_all(
    jobs: Sequence[RenderJob], *, workers: int | None = None, log: Callable[[str], None] = print
) -> int:
    """Render every job whose file is missing; returns how many were rendered.

    ``workers`` processes (default: the CPU count); 0 renders in this process.
    """
    unique = {job.path: job for job in jobs}
    todo = [job for job in unique.values() if not job.path.exists()]
    if not todo:
        return 0
    if workers is None:
        workers = os.cpu_count() or 1
    started = time.monotonic()
    log(f"[render] {len(todo)} clips ({len(unique) - len(todo)} already on disk), {workers or 1} worker(s)")
    if workers == 0:
        for done, job in enumerate(todo, start=1):
            _render_one(job)
            if done % 100 == 0:
                log(f"[render] {done}/{len(todo)}")
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
            for done, _ in enumerate(pool.map(_render_one, todo, chunksize=4), start=1):
                if done % 100 == 0:
                    log(f"[render] {done}/{len(todo)} ({time.monotonic() - started:.0f} s)")
    log(f"[render] {len(todo)} clips in {time.monotonic() - started:.1f} s")
    return len(todo)
