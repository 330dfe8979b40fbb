"""System adapters (folder, HTTP contract, Python entry point) and the reference systems' plans."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark_client.systems import (
    DirectorySystem,
    HttpSystem,
    PythonSystem,
    ReferenceSystem,
    SystemFailure,
    SystemSpecError,
    make_system,
)
from judge_service.testing import voiced_wav
from tests.bench.s2s_fixtures import ContractServer


def _respond(system, item):
    return asyncio.run(system.respond(item))


def test_make_system_forms_and_errors(tmp_path: Path) -> None:
    assert isinstance(make_system("topline", cache_dir=tmp_path), ReferenceSystem)
    assert isinstance(make_system(f"dir:{tmp_path}", cache_dir=tmp_path), DirectorySystem)
    assert isinstance(make_system("http://127.0.0.1:9/x", cache_dir=tmp_path), HttpSystem)
    assert isinstance(make_system("py:tests.bench.s2s_fixtures:answer_bytes", cache_dir=tmp_path), PythonSystem)
    with pytest.raises(SystemSpecError, match="unknown system 'gpt'.*dir:PATH"):
        make_system("gpt", cache_dir=tmp_path)
    with pytest.raises(SystemSpecError, match="no such folder"):
        make_system(f"dir:{tmp_path}/nope", cache_dir=tmp_path)
    with pytest.raises(SystemSpecError, match="expected py:package.module:function"):
        make_system("py:just_a_module", cache_dir=tmp_path)
    with pytest.raises(SystemSpecError, match="cannot import"):
        make_system("py:no_such_module_xyz:fn", cache_dir=tmp_path)
    with pytest.raises(SystemSpecError, match="no callable 'nope'"):
        make_system("py:tests.bench.s2s_fixtures:nope", cache_dir=tmp_path)


def test_directory_system_finds_wav_flac_ogg_and_reports_missing(tmp_path: Path, tiny_manifest) -> None:
    a, b, c, d = tiny_manifest.items
    (tmp_path / f"{a.id}.wav").write_bytes(voiced_wav(0.5))
    sf.write(tmp_path / f"{b.id}.flac", np.zeros(800, np.float32), 16_000)
    system = DirectorySystem(tmp_path)
    logged: list[str] = []
    system.prepare(tiny_manifest.items, logged.append)
    assert "2/4 items have no response file" in logged[0]
    assert _respond(system, a).path == tmp_path / f"{a.id}.wav"
    assert _respond(system, b).path.suffix == ".flac"
    with pytest.raises(SystemFailure) as info:
        _respond(system, c)
    assert info.value.type == "missing_response"


@pytest.mark.parametrize(
    ("function", "expect"),
    [
        ("answer_bytes", "bytes"), ("answer_array", "bytes"), ("answer_path", "path"), ("answer_async", "bytes"),
        ("answer_missing_path", "missing_response"), ("answer_wrong_type", "bad_response"),
    ],
)  # fmt: skip
def test_python_entry_point_results(function: str, expect: str, tiny_manifest) -> None:
    system = PythonSystem(f"tests.bench.s2s_fixtures:{function}")
    item = tiny_manifest.items[0]
    if expect in ("bytes", "path"):
        response = _respond(system, item)
        samples, rate = sf.read(io.BytesIO(response.read()))
        assert samples.size > 0 and rate in (16_000, 22_050)
        assert (response.path is not None) == (expect == "path")
    else:
        with pytest.raises(SystemFailure) as info:
            _respond(system, item)
        assert info.value.type == expect


def test_python_entry_point_exception_is_the_items_failure(tiny_manifest, monkeypatch) -> None:
    monkeypatch.setenv("PARAS2S_TEST_FAIL_IDS", tiny_manifest.items[1].id)
    system = PythonSystem("tests.bench.s2s_fixtures:answer_bytes")
    assert _respond(system, tiny_manifest.items[0]).audio
    with pytest.raises(SystemFailure, match="RuntimeError: model crashed on g0.sad") as info:
        _respond(system, tiny_manifest.items[1])
    assert info.value.type == "exception"


def test_http_contract_retries_429_and_records_failures(tiny_manifest) -> None:
    a, b, c, d = tiny_manifest.items
    with ContractServer(busy_ids={a.id}, fail_ids={b.id}, empty_ids={c.id}) as server:
        system = HttpSystem(server.url, max_retries=2)

        async def all_four():
            out = await asyncio.gather(*(system.respond(i) for i in (a, b, c, d)), return_exceptions=True)
            await system.aclose()
            return out

        ra, rb, rc, rd = asyncio.run(all_four())
    assert sf.read(io.BytesIO(ra.read()))[0].size > 0
    assert server.requests.count(a.id) == 2  # 429 once, then answered
    assert isinstance(rb, SystemFailure) and rb.type == "http_500"
    assert isinstance(rc, SystemFailure) and rc.type == "empty_response"
    assert sf.read(io.BytesIO(rd.read()))[0].size > 0


def test_http_system_unreachable_is_an_item_failure(tiny_manifest) -> None:
    from judge_service.testing import free_port

    system = HttpSystem(f"http://127.0.0.1:{free_port()}/respond")
    with pytest.raises(SystemFailure) as info:
        _respond(system, tiny_manifest.items[0])
    assert info.value.type == "unreachable"


def test_reference_systems_choose_the_documented_replies(tmp_path: Path, tiny_manifest) -> None:
    happy, sad = tiny_manifest.items[:2]
    plans = {kind: ReferenceSystem(kind, tmp_path).plan(tiny_manifest.items, lambda _: None)
             for kind in ("topline", "neutral_tone", "mismatched", "reversed", "silence")}  # fmt: skip
    assert plans["topline"][happy.id] == happy.reply(5)
    assert (plans["neutral_tone"][sad.id].text, plans["neutral_tone"][sad.id].tone) == (sad.reply(5).text, "neutral")
    assert plans["mismatched"][happy.id] == sad.reply(5) and plans["mismatched"][sad.id] == happy.reply(5)
    assert plans["reversed"][sad.id] == sad.reply(1)
    assert plans["silence"] == {}


def test_reference_system_without_a_contrast_item_fails_that_item_only(tmp_path: Path, tiny_manifest) -> None:
    system = ReferenceSystem("mismatched", tmp_path)
    alone = tiny_manifest.items[0]
    plan = system.plan([alone, *tiny_manifest.items[2:]], lambda _: None)
    assert alone.id not in plan and len(plan) == 2
    system._replies = {}
    with pytest.raises(SystemFailure, match="no other style"):
        _respond(system, alone)


def test_silence_is_two_seconds_of_zeros(tmp_path: Path, tiny_manifest) -> None:
    samples, rate = sf.read(io.BytesIO(_respond(ReferenceSystem("silence", tmp_path), tiny_manifest.items[0]).read()))
    assert rate == 16_000 and samples.shape == (32_000,) and not samples.any()
