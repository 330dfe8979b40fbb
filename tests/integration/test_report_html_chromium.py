"""The HTML report rendered by headless Chromium: table, SVG bars, and every clip loads.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``make test`` installs it); skipped
without it. The page, opened with ``?check-audio=1``, loads each ``<audio>``'s metadata and
writes the count that reached ``readyState >= 1`` into ``#audio-check``; ``--virtual-time-budget``
lets that finish before ``--dump-dom`` serialises the page.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from benchmark_client.report import score_table, write_reports
from benchmark_client.results import ItemError, ItemResult, results_document

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
SAMPLE_RATE_HZ = 16_000


class Elements(HTMLParser):
    """Every start tag as ``(tag, attrs)``, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def write_clip(path: Path, freq_hz: float, duration_s: float = 0.3) -> None:
    t = np.arange(int(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32), SAMPLE_RATE_HZ)


@pytest.fixture
def report(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # query paths below are relative to the cwd, as a run writes them
    audio = tmp_path / "audio"
    audio.mkdir()
    for name, freq in (("q1.wav", 220), ("r1.wav", 330), ("q2.wav", 440), ("reply two.wav", 550), ("q3.wav", 660)):
        write_clip(audio / name, freq)
    items = [
        ItemResult("e1", "synthetic", "emotion", "happy", "g1", "emotion-0001", "audio/q1.wav",
                   str(audio / "r1.wav"), score=4.0, rationale="Cheerful <b>and</b> on topic",
                   query_labels={"emotion": "happy"}, response_tone={"emotion": "happy"},
                   query_transcript="We won the match!", response_transcript="That is great news!"),
        ItemResult("s1", "synthetic", "sarcasm", "sarcastic", "g2", None, "audio/q2.wav", "audio/reply two.wav",
                   score=2.0, rationale="Missed the sarcasm"),
        ItemResult("e2", "synthetic", "emotion", "sad", "g3", None, "audio/q3.wav", None,
                   error=ItemError("system", "TimeoutError", "no reply in 30 s")),
    ]  # fmt: skip
    run = {"system": "topline", "manifest": str(tmp_path / "manifest.jsonl"), "wall_s": 1.5,
           "judge": {"name": "paras2s-baseline", "version": "0.1.0", "rubric_version": "r1"}}  # fmt: skip
    out = tmp_path / "results"
    out.mkdir()
    return write_reports(results_document(run, items, score_table(items, resamples=100)), out / "results.json")["html"]


def dump_dom(page: Path, tmp_path: Path, query: str = "") -> str:
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + query]  # fmt: skip
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_table_chart_and_playable_audio(report, tmp_path):
    dom = Elements()
    dom.feed(dump_dom(report, tmp_path, "?check-audio=1"))
    assert dom.find("table") and dom.find("tr", **{"class": "overall"})
    bars = dom.find("rect", **{"class": "bar"})
    assert sorted(b["data-dimension"] for b in bars) == ["emotion", "sarcasm"]  # one bar per scored dimension
    audios = dom.find("audio")
    assert len(audios) == 5  # 2 per item, the failed item has no response
    for audio in audios:
        assert audio["src"] and (report.parent / unquote(audio["src"])).is_file(), audio["src"]
    [check] = dom.find("div", id="audio-check")
    assert (check["data-total"], check["data-ready"], check["data-failed"]) == ("5", "5", "0")
    assert len(dom.find("article", **{"data-error": "1"})) == 1


def test_a_missing_clip_is_reported_by_the_audio_check(report, tmp_path):
    (tmp_path / "audio" / "r1.wav").unlink()
    dom = Elements()
    dom.feed(dump_dom(report, tmp_path, "?check-audio=1"))
    [check] = dom.find("div", id="audio-check")
    assert (check["data-ready"], check["data-failed"]) == ("4", "1")
