"""What travels through Redis in distributed mode: work entries, results and worker notices.

No pickle anywhere: a work entry is a JSON header plus the clips' samples as raw little-endian
float32 (the decoded 16 kHz PCM, so a worker scores exactly what the API replica validated and
hashed); results and worker notices are JSON. Every payload carries ``WIRE_VERSION`` and is
rejected with ``WireFormatError`` when it does not parse, so a poisoned entry fails alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from judge_service.audio.clip import AudioClip, DecodedAudio
from judge_service.backends.base import BackendJob, JobResult, JudgeInfo, PairSpec
from judge_service.batching.queue import JobTiming

WIRE_VERSION = 1


class WireFormatError(ValueError):
    """A payload read from Redis is not one we wrote (wrong version, truncated, corrupt)."""


@dataclass(frozen=True)
class WorkEnvelope:
    """One scheduling job on its way to a worker.

    ``job_id`` is the idempotency key of the result: every delivery of this entry (a retry, a
    claim after a worker died, a re-send after Redis lost it) writes the same result key, and
    only the first write counts. ``deadline_unix_s`` is wall-clock (replicas do not share a
    monotonic clock); a worker skips work whose caller has given up.
    """

    job_id: str
    reply_to: str
    work: BackendJob
    deadline_unix_s: float
    enqueued_unix_s: float


def encode_work(envelope: WorkEnvelope) -> dict[bytes, bytes]:
    """Stream entry fields: ``header`` (JSON) and ``pcm`` (float32 LE, clips back to back)."""
    work = envelope.work
    header = {
        "v": WIRE_VERSION,
        "job_id": envelope.job_id,
        "reply_to": envelope.reply_to,
        "deadline_unix_s": envelope.deadline_unix_s,
        "enqueued_unix_s": envelope.enqueued_unix_s,
        "clips": [asdict(d.clip) for d in work.clips],
        "texts": list(work.clip_texts),
        "pairs": [[p.query_index, p.response_index, p.known_labels] for p in work.pairs],
    }
    pcm = b"".join(np.ascontiguousarray(d.samples, dtype="<f4").tobytes() for d in work.clips)
    return {b"header": json.dumps(header).encode(), b"pcm": pcm}


def decode_header(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The JSON header alone (enough to answer a poisoned entry's caller)."""
    try:
        header = json.loads(fields[b"header"])
    except (KeyError, ValueError, TypeError) as exc:
        raise WireFormatError(f"work entry has no readable header ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("v") != WIRE_VERSION:
        raise WireFormatError(f"work entry has wire version {header.get('v') if isinstance(header, dict) else None!r}, expected {WIRE_VERSION}")
    return header


def decode_work(fields: dict[bytes, bytes]) -> WorkEnvelope:
    header = decode_header(fields)
    try:
        pcm = fields[b"pcm"]
        clips = [AudioClip(**c) for c in header["clips"]]
        total = sum(c.num_samples for c in clips)
        if len(pcm) != 4 * total:
            raise WireFormatError(f"work entry has {len(pcm)} PCM bytes, its clips need {4 * total}")
        samples = np.frombuffer(pcm, dtype="<f4").astype(np.float32)
        decoded, offset = [], 0
        for clip in clips:
            decoded.append(DecodedAudio(clip, samples[offset:offset + clip.num_samples]))
            offset += clip.num_samples
        pairs = [PairSpec(int(q), int(r), dict(labels)) for q, r, labels in header["pairs"]]
        work = BackendJob(clips=decoded, clip_texts=list(header["texts"]), pairs=pairs)
        return WorkEnvelope(
            job_id=str(header["job_id"]),
            reply_to=str(header["reply_to"]),
            work=work,
            deadline_unix_s=float(header["deadline_unix_s"]),
            enqueued_unix_s=float(header["enqueued_unix_s"]),
        )
    except WireFormatError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WireFormatError(f"work entry is malformed ({type(exc).__name__}: {exc})") from None


def encode_result(result: JobResult, timing: JobTiming) -> bytes:
    return json.dumps({
        "v": WIRE_VERSION, "ok": True,
        "result": {"analyses": result.analyses, "scores": result.scores},
        "timing": asdict(timing),
    }).encode()


def encode_error(error_type: str, message: str, worker_id: str) -> bytes:
    return json.dumps({
        "v": WIRE_VERSION, "ok": False,
        "error": {"type": error_type, "message": message}, "worker_id": worker_id,
    }).encode()


def decode_result(payload: bytes) -> tuple[JobResult, JobTiming] | tuple[str, str]:
    """``(JobResult, JobTiming)`` for a result, ``(error_type, message)`` for an error."""
    try:
        doc = json.loads(payload)
        if doc.get("v") != WIRE_VERSION:
            raise WireFormatError(f"result has wire version {doc.get('v')!r}, expected {WIRE_VERSION}")
        if not doc["ok"]:
            return str(doc["error"]["type"]), str(doc["error"]["message"])
        result = JobResult(analyses=doc["result"]["analyses"], scores=doc["result"]["scores"])
        return result, JobTiming(**doc["timing"])
    except WireFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireFormatError(f"result is malformed ({type(exc).__name__})") from None


def encode_worker_notice(worker_id: str, info: JudgeInfo, backend: str, batches: int, busy: bool) -> bytes:
    """A worker's heartbeat: who it is and which judge it serves (API replicas read the
    judge's identity from here, so they never load models themselves)."""
    return json.dumps({
        "v": WIRE_VERSION, "worker_id": worker_id, "backend": backend, "batches": batches, "busy": busy,
        "judge": {"name": info.name, "version": info.version, "rubric_version": info.rubric_version,
                  "labels": {k: list(v) for k, v in info.labels.items()}, "description": info.description},
    }).encode()


def decode_worker_notice(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
        judge = doc["judge"]
        info = JudgeInfo(
            name=judge["name"], version=judge["version"], rubric_version=judge["rubric_version"],
            labels={k: tuple(v) for k, v in judge["labels"].items()}, description=judge.get("description", ""),
        )
        return {"worker_id": doc["worker_id"], "backend": doc["backend"], "info": info,
                "batches": int(doc["batches"]), "busy": bool(doc["busy"])}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireFormatError(f"worker notice is malformed ({type(exc).__name__})") from None
