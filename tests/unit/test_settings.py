import pytest

from judge_service.config import SettingsError, load_settings


def test_defaults_are_valid(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("JUDGE_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.backend == "paras2s-baseline"
    assert settings.max_clip_duration_s == 60.0
    assert settings.redis_url is None


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("JUDGE_MAX_BATCH_ITEMS", "4")
    monkeypatch.setenv("JUDGE_REDIS_URL", "redis://127.0.0.1:6379/3")
    settings = load_settings()
    assert settings.max_batch_items == 4 and settings.redis_url.endswith("/3")


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"JUDGE_MAX_BATCH_ITEMS": "0"}, "JUDGE_MAX_BATCH_ITEMS"),
        ({"JUDGE_DEVICE": "tpu"}, "JUDGE_DEVICE"),
        ({"JUDGE_REDIS_URL": "localhost:6379"}, "redis://HOST:PORT/DB"),
        ({"JUDGE_WHISPER_MODEL_PATH": "/nonexistent/model"}, "not a directory"),
        ({"JUDGE_MAX_QUEUE_ITEMS": "2", "JUDGE_MAX_BATCH_ITEMS": "4"}, "raise JUDGE_MAX_QUEUE_ITEMS"),
        ({"JUDGE_NOT_A_SETTING": "1"}, "JUDGE_NOT_A_SETTING"),
    ],
)
def test_bad_values_say_how_to_fix_them(monkeypatch, env, needle):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert needle in str(raised.value)
