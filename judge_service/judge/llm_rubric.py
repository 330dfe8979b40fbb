"""Stage 4 by an LLM: the rubric as a versioned prompt, sent to any OpenAI-compatible
``POST {base_url}/chat/completions``, answered as strict JSON ``{"score", "rationale"}``.

The scorer never hears audio (the paper's design): the user message carries only what the
earlier stages extracted: the query's transcript and paralinguistic labels with their
confidences (labels the client gave are marked "given"), the reply's transcript, its tone
description and the labels heard in its voice. Transcripts are JSON-quoted, and the system
prompt tells the model they are data, not instructions.

Failures are never a default score: every way a pair can fail ends in ``ScorerError``, which
the service answers as that item's error (``scorer_error``); its neighbours are unaffected.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from judge_service.errors import ScorerError
from judge_service.judge.stages import PairEvidence

log = logging.getLogger(__name__)

LLM_RUBRIC_PROMPT_VERSION = "paras2s-llm-rubric/1"
"""The rubric prompt (``prompts/llm_rubric_v1.md``), the user-message layout of
``render_user_message`` and the answer contract of ``parse_answer``. Bump it (and add a new
prompt file) when any of them changes; it is the judge's ``rubric_version``, and the prompt
file's bytes enter the judge version either way."""
PROMPT_FILE = "llm_rubric_v1.md"
CUE_DIMENSIONS = ("emotion", "sarcasm", "age", "gender")
TONE_DETAILS = ("arousal_level", "pitch_level", "rate_level", "loudness_level", "expressiveness")

TEMPERATURE = 0.0
MALFORMED_ANSWER_RETRIES = 1
"""Asks again after an answer that breaks the contract (not JSON, score outside 1..5, no
rationale), then gives up: at temperature 0 with a seed a second identical request mostly
gets the same answer, so more tries cost time for little."""
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_AFTER_CAP_S = 30.0
"""An endpoint's ``Retry-After`` is honoured up to this; longer asks are cut to it (the pair's
deadline bounds the total anyway)."""
MAX_RATIONALE_CHARS = 1000
UPSTREAM_DETAIL_CHARS = 200

_FENCED = re.compile(r"\A```(?:json)?[ \t]*\n(?P<body>.*?)\n?```\Z", re.DOTALL | re.IGNORECASE)


def prompt_path() -> Path:
    """The system prompt of ``LLM_RUBRIC_PROMPT_VERSION`` (package data)."""
    return Path(str(resources.files("judge_service") / "judge" / "prompts" / PROMPT_FILE))


def load_system_prompt() -> str:
    return prompt_path().read_text(encoding="utf-8").strip()


# --- the user message ----------------------------------------------------------------------


def _label_lines(labels: dict[str, Any], known: dict[str, str]) -> list[str]:
    lines = []
    for dim in CUE_DIMENSIONS:
        if dim in known:
            lines.append(f"  {dim}: {known[dim]} (given)")
        elif isinstance(labels.get(dim), dict) and "label" in labels[dim]:
            confidence = labels[dim].get("confidence")
            how = f"confidence {float(confidence):.2f}" if confidence is not None else "confidence unknown"
            lines.append(f"  {dim}: {labels[dim]['label']} ({how})")
        else:
            lines.append(f"  {dim}: unknown")
    return lines


def render_user_message(pair: PairEvidence) -> str:
    """The text the LLM scores: transcripts (JSON-quoted), query labels, reply tone and labels."""
    tone = pair.reply_style.tone
    details = "; ".join(f"{k.removesuffix('_level')}: {tone[k]}" for k in TONE_DETAILS if tone.get(k) is not None)
    reply_text = pair.reply.text.strip()
    lines = [
        "QUERY (the user's spoken message)",
        f"transcript: {json.dumps(pair.query.text.strip(), ensure_ascii=False)}",
        "how the speaker sounds:",
        *_label_lines(pair.query_style.labels, pair.known_labels),
        "",
        "REPLY (the spoken response to score)",
        f"transcript: {json.dumps(reply_text, ensure_ascii=False)}" if reply_text else "transcript: (no recognisable speech)",
        f"tone of voice: {json.dumps(str(tone.get('description', 'not described')), ensure_ascii=False)}",
        *([f"tone details: {details}"] if details else []),
        "how the reply's voice sounds:",
        *_label_lines(pair.reply_style.labels, {}),
    ]
    return "\n".join(lines)


# --- the answer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMVerdict:
    score: int
    """1..5, the rubric level."""
    rationale: str


class MalformedAnswerError(ValueError):
    """The endpoint answered 200, but not with a verdict that keeps the contract."""


def _no_constants(name: str) -> None:
    raise MalformedAnswerError(f"the answer contains {name}, which is not JSON")


def parse_answer(content: str) -> LLMVerdict:
    """Parse the model's message content, strictly.

    Accepted: a JSON object with ``score`` an integer 1..5 (a float that is an integer, e.g.
    ``4.0``, counts as one; a bool, a string such as ``"4"`` or ``"four"``, ``4.5`` or ``7``
    do not) and ``rationale`` a non-empty string (cut to ``MAX_RATIONALE_CHARS``). Other keys
    are ignored. The whole content may be one Markdown fence (```` ```json ... ``` ````), as
    models served without JSON mode often answer and as LangChain's and instructor's JSON
    parsers accept; JSON with prose around it is refused.

    Raises:
        MalformedAnswerError: saying what is wrong (never quoting more than a few characters).
    """
    text = content.strip()
    fenced = _FENCED.match(text)
    if fenced:
        text = fenced["body"].strip()
    try:
        answer = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedAnswerError(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(answer, dict):
        raise MalformedAnswerError(f"the answer is a JSON {type(answer).__name__}, not an object")
    missing = [key for key in ("score", "rationale") if key not in answer]
    if missing:
        raise MalformedAnswerError(f"the answer lacks {' and '.join(missing)}")
    score = answer["score"]
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int):
        raise MalformedAnswerError(f"score is {json.dumps(score)[:20]}, not an integer 1-5")
    if not 1 <= score <= 5:
        raise MalformedAnswerError(f"score {score} is outside 1-5")
    rationale = answer["rationale"]
    if not isinstance(rationale, str) or not rationale.strip():
        raise MalformedAnswerError("rationale is not a non-empty string")
    rationale = " ".join(rationale.split())
    if len(rationale) > MAX_RATIONALE_CHARS:
        rationale = rationale[: MAX_RATIONALE_CHARS - 3] + "..."
    return LLMVerdict(score, rationale)


def _message_content(body: Any) -> str:
    """``choices[0].message.content`` of a chat completion, or MalformedAnswerError."""
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedAnswerError("the reply is not a chat completion (no choices[0].message)") from None
    if not isinstance(message, dict):
        raise MalformedAnswerError("choices[0].message is not an object")
    if message.get("refusal"):
        raise MalformedAnswerError("the model refused to answer")
    content = message.get("content")
    if not isinstance(content, str):
        raise MalformedAnswerError("choices[0].message.content is not a string")
    return content


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMRubricConfig:
    """Where and how to ask. Times in seconds; ``timeout_s`` bounds one request (wall clock),
    ``deadline_s`` one pair's every attempt and backoff."""

    base_url: str
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = 30.0
    deadline_s: float = 90.0
    max_retries: int = 3
    concurrency: int = 8
    seed: int = 0
    backoff_initial_s: float = BACKOFF_INITIAL_S
    retry_after_cap_s: float = RETRY_AFTER_CAP_S

    @property
    def url(self) -> str:
        """``{base_url}/chat/completions``, keeping a query string (e.g. an ``api-version``)."""
        base = httpx.URL(self.base_url)
        return str(base.copy_with(path=base.path.rstrip("/") + "/chat/completions"))

    @property
    def endpoint_for_logs(self) -> str:
        """The URL without user info or query (either could hold a credential)."""
        parsed = httpx.URL(self.url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LLMRubricClient:
    """Async client of one endpoint, with pooled connections (at most ``concurrency``).

    ``score`` retries connection errors, timeouts, 429 and 5xx ``max_retries`` times with
    exponential backoff (a 429's or 5xx's ``Retry-After`` is honoured, up to
    ``retry_after_cap_s``), retries a malformed answer ``MALFORMED_ANSWER_RETRIES`` times, never
    retries other 4xx, and gives up at ``deadline_s``. Use it from one event loop; ``aclose``
    when done.
    """

    def __init__(self, config: LLMRubricConfig, system_prompt: str, rng: random.Random | None = None) -> None:
        self.config = config
        self.system_prompt = system_prompt
        self._rng = rng or random.Random()
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency),
            follow_redirects=False,
        )

    def request_body(self, user_message: str) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": user_message},
            ],
            "temperature": TEMPERATURE,
            "seed": self.config.seed,
            "response_format": {"type": "json_object"},
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    def _backoff_s(self, retry: int) -> float:
        ceiling = min(BACKOFF_MAX_S, self.config.backoff_initial_s * 2 ** (retry - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _refusal(self, response: httpx.Response) -> ScorerError:
        """A 4xx other than 429: the request itself is wrong, asking again will not help."""
        if response.status_code in (401, 403):
            return ScorerError(
                f"LLM rubric scorer: the endpoint refused the credentials (HTTP {response.status_code}); "
                "check JUDGE_LLM_RUBRIC_API_KEY"
            )
        detail = ""
        try:
            error = response.json().get("error")
            detail = str(error.get("message") if isinstance(error, dict) else error or "")
        except (ValueError, AttributeError):
            pass
        if self.config.api_key is not None:  # some endpoints echo what they were sent
            detail = detail.replace(self.config.api_key.get_secret_value(), "[api key]")
        detail = " ".join(detail.split())[:UPSTREAM_DETAIL_CHARS]
        return ScorerError(
            f"LLM rubric scorer: the endpoint refused the request (HTTP {response.status_code}"
            + (f": {detail})" if detail else ")")
            + f"; check JUDGE_LLM_RUBRIC_MODEL={self.config.model!r} and the endpoint"
        )

    async def score(self, user_message: str) -> LLMVerdict:
        """One pair's verdict. Raises ``ScorerError`` (never returns a default)."""
        config = self.config
        body = self.request_body(user_message)
        deadline = time.monotonic() + config.deadline_s
        attempts = retries = malformed = 0
        while True:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise ScorerError(f"LLM rubric scorer: no verdict within the pair's deadline of "
                                  f"{config.deadline_s:g} s ({attempts} attempts)")
            attempts += 1
            limit_s = min(config.timeout_s, remaining_s)
            retry_after_s = None
            try:
                async with asyncio.timeout(limit_s):
                    response = await self._http.post(config.url, json=body)
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer within {limit_s:.3g} s"
            except httpx.TransportError as exc:
                problem = f"connection to the endpoint failed ({type(exc).__name__})"
            else:
                if response.is_success:
                    try:
                        return parse_answer(_message_content(response.json()))
                    except ValueError as exc:  # MalformedAnswerError, or a body that is not JSON
                        malformed += 1
                        reason = str(exc) if isinstance(exc, MalformedAnswerError) else "the reply body is not JSON"
                        if malformed > MALFORMED_ANSWER_RETRIES:
                            raise ScorerError(
                                f"LLM rubric scorer: the model's answer broke the contract {malformed} "
                                f"times (last: {reason})"
                            ) from None
                        log.info("LLM rubric scorer: malformed answer (%s); asking again", reason)
                        continue
                if response.status_code != 429 and response.status_code < 500:
                    raise self._refusal(response)
                problem = f"HTTP {response.status_code}"
                retry_after_s = _retry_after_s(response)
            retries += 1
            if retries > config.max_retries:
                raise ScorerError(f"LLM rubric scorer: gave up after {attempts} attempts (last: {problem})")
            delay_s = self._backoff_s(retries) if retry_after_s is None else min(retry_after_s, config.retry_after_cap_s)
            if time.monotonic() + delay_s >= deadline:
                raise ScorerError(
                    f"LLM rubric scorer: no verdict within the pair's deadline of {config.deadline_s:g} s "
                    f"({attempts} attempts, last: {problem})"
                )
            log.info("LLM rubric scorer: %s from %s; retry %d in %.2f s", problem, config.endpoint_for_logs, retries, delay_s)
            await asyncio.sleep(delay_s)
