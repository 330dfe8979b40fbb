"""Backend registry: name -> factory(settings). The service builds its backend from here."""

from __future__ import annotations

from typing import Callable

from judge_service.backends.base import JudgeBackend
from judge_service.config import Settings

BackendFactory = Callable[[Settings], JudgeBackend]


def _baseline(settings: Settings) -> JudgeBackend:
    from judge_service.backends.multistage import MultiStageBackend
    from judge_service.judge.baseline import BaselineJudge

    return MultiStageBackend(settings, BaselineJudge())


def _fake(settings: Settings) -> JudgeBackend:
    from judge_service.backends.fake import FakeBackendForTests

    return FakeBackendForTests(delay_ms=settings.fake_backend_delay_ms)


def _polytone(settings: Settings) -> JudgeBackend:
    from judge_service.backends.multistage import MultiStageBackend
    from judge_service.judge.polytone_judge import PolyToneJudge

    return MultiStageBackend(settings, PolyToneJudge(settings.judge_model_path))


def _polytone_llm(settings: Settings) -> JudgeBackend:
    from judge_service.backends.multistage import MultiStageBackend
    from judge_service.judge.llm_judge import LLMRubricJudge, llm_config_from_settings
    from judge_service.judge.polytone_judge import PolyToneJudge

    config = llm_config_from_settings(settings)  # first: a missing setting fails before models load
    return MultiStageBackend(settings, LLMRubricJudge(PolyToneJudge(settings.judge_model_path), config))


def _distilled(settings: Settings) -> JudgeBackend:
    from judge_service.backends.distilled import DistilledBackend
    from judge_service.judge.distilled import default_distilled_model_path

    return DistilledBackend(settings.distilled_model_path or default_distilled_model_path())


_REGISTRY: dict[str, BackendFactory] = {
    "paras2s-distilled": _distilled,
    "paras2s-polytone": _polytone,
    "paras2s-polytone-llm": _polytone_llm,
    "paras2s-baseline": _baseline,
    "fake": _fake,
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add a backend (e.g. a trained judge) under ``name``; JUDGE_BACKEND selects it."""
    if name in _REGISTRY:
        raise ValueError(f"backend {name!r} is already registered")
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def create_backend(settings: Settings) -> JudgeBackend:
    """Build the backend named by ``settings.backend`` (loads models; seconds)."""
    try:
        factory = _REGISTRY[settings.backend]
    except KeyError:
        raise ValueError(
            f"unknown backend {settings.backend!r}; set JUDGE_BACKEND to one of {backend_names()}"
        ) from None
    return factory(settings)
