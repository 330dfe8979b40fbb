"""Fuzz the audio decoder: every input must decode to a valid clip or raise a ``JudgeError``.

Inputs (``scripts.hostile.audio_mutations``): random bytes, magic numbers, WAV/RF64 headers
built from absurd field values, NaN/Inf float WAVs, bit flips / truncations / splices of real
WAV, FLAC and OGG files, rewritten FLAC STREAMINFO fields, OGG pages mutated and re-signed,
malformed base64 (through ``decode_base64_audio``), the unmodified seed files, and a few
decompression bombs (run once each). Hypothesis draws them (``--seed`` makes a run repeatable);
atheris was tried, but its coverage guidance would see only decode.py's few Python branches
(libsndfile is not instrumented), so the structure-aware strategies do the work instead.

Failures (exit 1): an exception that is not a ``JudgeError``; a decoded clip that is not
finite mono float32 at 16 kHz within the duration limits; an input that takes longer than
``--timeout-s`` (SIGALRM; a hang inside C is killed by faulthandler at 3x); an input that
raises the process's peak RSS by more than ``--max-rss-growth-mb``. The fuzzing runs in a
child process, so a segfault or a hang in libsndfile is reported with the input in flight.

    .venv/bin/python -m scripts.hostile.fuzz_audio_decoder [--inputs 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import base64
import collections
import faulthandler
import hashlib
import json
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from scripts.hostile.provenance import RESULTS_DIR, provenance

RESULT_PATH = RESULTS_DIR / "hostile_fuzz_decoder.json"
MAX_REPRODUCER_BYTES = 16 * 1024
"""Failing inputs up to this size are stored whole (base64) in the result; larger ones by hash,
header summary and first bytes."""
MAX_LISTED_FAILURES = 40


class DecodeTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so no ``except Exception`` in the decoder eats it."""


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each input's own peak can be read."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Tally:
    """Runs one input at a time under the time and memory watch, and counts what happened."""

    def __init__(self, state_dir: Path, timeout_s: float, max_rss_growth_mb: float) -> None:
        from judge_service.audio.decode import AudioLimits

        self.limits = AudioLimits()
        self.timeout_s = timeout_s
        self.max_rss_growth_mb = max_rss_growth_mb
        self.current = state_dir / "current.bin"
        self.current_meta = state_dir / "current.json"
        self.by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.kind_ms: dict[str, list[float]] = collections.defaultdict(list)
        self.kind_rss: dict[str, float] = collections.defaultdict(float)
        self.unique: set[str] = set()
        self.failures: list[dict[str, Any]] = []
        self.slowest: list[dict[str, Any]] = []
        self.unraisable: collections.Counter[str] = collections.Counter()
        self.unraisable_example: dict[str, Any] | None = None
        self.unraisable_inputs = 0
        self.max_growth: dict[str, Any] = {"mb": 0.0}
        self.per_input_peak = _reset_peak_rss()
        self.baseline_rss_mb = _status_mb("VmRSS")
        self._armed = False
        self._unraisable_now = 0
        signal.signal(signal.SIGALRM, self._on_alarm)
        sys.unraisablehook = self._on_unraisable

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_kind.values())

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self._armed:
            raise DecodeTimeout()

    def _on_unraisable(self, unraisable: Any) -> None:
        # libsndfile's cffi callbacks cannot raise into C; Python reports (and drops) the error.
        self._unraisable_now += 1
        self.unraisable[f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value}"[:160]] += 1

    def run_one(self, kind: str, payload: bytes | str) -> str:
        from judge_service.audio.decode import decode_audio, decode_base64_audio
        from judge_service.errors import JudgeError

        raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        digest = hashlib.sha256(raw).hexdigest()
        self.unique.add(digest)
        self.current.write_bytes(raw)
        self.current_meta.write_text(json.dumps({"kind": kind, "index": self.total, "is_text": isinstance(payload, str)}))
        if self.per_input_peak:
            _reset_peak_rss()
        rss_before = _status_mb("VmHWM") if self.per_input_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self._unraisable_now = 0
        detail = ""
        faulthandler.dump_traceback_later(self.timeout_s * 3, exit=True)
        started = time.perf_counter()
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        try:
            if isinstance(payload, str):
                decoded = decode_base64_audio("fuzz", payload, self.limits)
            else:
                decoded = decode_audio("fuzz", payload, self.limits)
            self._armed = False
            problem = output_problem(decoded, self.limits)
            outcome, detail = ("ok", "") if problem is None else problem
        except DecodeTimeout:
            outcome, detail = "timeout", f"over {self.timeout_s:g} s"
        except JudgeError as exc:
            outcome = exc.error_type
        except Exception as exc:  # the point of the fuzzer: anything else is a decoder bug
            outcome = f"crash:{type(exc).__name__}"
            detail = "".join(traceback.format_exception_only(exc)).strip()[:300] + " | " + " < ".join(
                f"{f.name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[-4:])
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
        elapsed_ms = (time.perf_counter() - started) * 1000
        rss_after = _status_mb("VmHWM") if self.per_input_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        growth_mb = max(rss_after - rss_before, 0.0)
        if growth_mb > self.max_rss_growth_mb:
            outcome = f"memory:{outcome}"
            detail = (detail + "; " if detail else "") + f"peak RSS grew {growth_mb:.0f} MB for a {len(raw)}-byte input"
        self.by_kind[kind][outcome] += 1
        self.kind_ms[kind].append(elapsed_ms)
        self.kind_rss[kind] = max(self.kind_rss[kind], growth_mb)
        record = {"kind": kind, "outcome": outcome, "bytes": len(raw), "sha256": digest,
                  "ms": round(elapsed_ms, 1), "rss_growth_mb": round(growth_mb, 1)}
        if growth_mb > self.max_growth["mb"]:
            self.max_growth = {**record, "mb": round(growth_mb, 1)}
        self.slowest = sorted([*self.slowest, record], key=lambda r: -r["ms"])[:10]
        if self._unraisable_now:
            self.unraisable_inputs += 1
            if self.unraisable_example is None:
                self.unraisable_example = {**record, "reproducer": _reproducer(payload)}
        if is_failure(outcome):
            self.failures.append({**record, "detail": detail, "reproducer": _reproducer(payload)})
        return outcome

    def summary(self) -> dict[str, Any]:
        kinds = {}
        for kind, outcomes in sorted(self.by_kind.items()):
            times = self.kind_ms[kind]
            kinds[kind] = {"inputs": sum(outcomes.values()), "outcomes": dict(outcomes.most_common()),
                           "slowest_ms": round(max(times), 1), "mean_ms": round(sum(times) / len(times), 2),
                           "max_rss_growth_mb": round(self.kind_rss[kind], 1)}
        outcomes: collections.Counter[str] = collections.Counter()
        for counter in self.by_kind.values():
            outcomes.update(counter)
        return {
            "inputs": self.total, "unique_inputs": len(self.unique), "by_kind": kinds,
            "outcomes": dict(outcomes.most_common()), "failures": len(self.failures),
            "failure_records": self.failures[:MAX_LISTED_FAILURES], "slowest": self.slowest,
            "rss": {"baseline_mb": round(self.baseline_rss_mb, 1),
                    "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "per_input_peak_measured": self.per_input_peak, "max_growth": self.max_growth},
            "unraisable_in_callbacks": {"inputs": self.unraisable_inputs, "messages": dict(self.unraisable.most_common(10)),
                                        "example": self.unraisable_example},
        }


def is_failure(outcome: str) -> bool:
    """Outcomes that are decoder bugs: anything but a clean clip or a ``JudgeError``'s type."""
    return outcome == "timeout" or outcome.startswith(("crash:", "bad_output:", "memory:"))


def output_problem(decoded: Any, limits: Any) -> tuple[str, str] | None:
    """Why a decoded clip breaks the decoder's promise (finite mono float32 at 16 kHz, within
    the duration limits), as (outcome, detail); ``None`` when it keeps it."""
    import numpy as np

    from judge_service.config import TARGET_SAMPLE_RATE_HZ

    samples, clip = decoded.samples, decoded.clip
    if samples.dtype != np.float32 or samples.ndim != 1 or samples.shape[0] != clip.num_samples:
        return "bad_output:shape", f"{samples.dtype} {samples.shape} vs num_samples {clip.num_samples}"
    if clip.sample_rate_hz != TARGET_SAMPLE_RATE_HZ:
        return "bad_output:rate", f"{clip.sample_rate_hz} Hz"
    if not np.isfinite(samples).all():
        return "bad_output:non_finite", f"{int((~np.isfinite(samples)).sum())} non-finite samples after decoding"
    slack_s = 0.01  # resampling rounds the length by up to a few samples
    if not limits.min_duration_s - slack_s <= clip.duration_s <= limits.max_duration_s + slack_s:
        return "bad_output:duration", f"{clip.duration_s:.3f} s"
    return None


def _reproducer(payload: bytes | str) -> dict[str, Any]:
    """The input (whole when small), and what libsndfile reads in its header."""
    if isinstance(payload, str):
        return {"text": payload[:MAX_REPRODUCER_BYTES], "truncated": len(payload) > MAX_REPRODUCER_BYTES}
    import io

    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(payload))
        header = {"format": info.format, "subtype": info.subtype, "sample_rate_hz": info.samplerate,
                  "channels": info.channels, "frames": info.frames}
    except Exception as exc:  # only a description; the decoder itself already ran
        header = {"unreadable": type(exc).__name__}
    kept = payload[:MAX_REPRODUCER_BYTES] if len(payload) <= MAX_REPRODUCER_BYTES else payload[:256]
    return {"base64": base64.b64encode(kept).decode(), "truncated": len(payload) > MAX_REPRODUCER_BYTES, "header": header}


# --- worker: the fuzzing itself -------------------------------------------------------------


def fuzz(tally: Tally, inputs: int, seed: int, bombs: bool) -> None:
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from hypothesis import seed as hypothesis_seed

    from scripts.hostile.audio_mutations import STRATEGIES, decompression_bombs, seed_files

    for data in seed_files().values():
        tally.run_one("seed_files", data)
    if bombs:
        for data in decompression_bombs().values():
            tally.run_one("decompression_bomb", data)
    kinds = sorted(STRATEGIES)
    target = tally.total + inputs
    round_seed = seed
    while tally.total < target:
        @hypothesis_seed(round_seed)
        @settings(max_examples=target - tally.total, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def one(data: st.DataObject) -> None:
            kind = data.draw(st.sampled_from(kinds), label="kind")
            tally.run_one(kind, data.draw(STRATEGIES[kind], label="input"))

        one()
        round_seed += 1  # hypothesis may stop early when it thinks the space is covered


def worker(args: argparse.Namespace) -> int:
    faulthandler.enable()
    import judge_service.audio.decode  # noqa: F401  (import torch & co. before measuring)

    tally = Tally(args.state_dir, args.timeout_s, args.max_rss_growth_mb)
    # A runaway allocation should fail in this process (MemoryError, a crash we report), not
    # push a shared machine into swap: cap the address space well above what decoding needs.
    headroom = int((_status_mb("VmPeak") + args.address_space_headroom_mb) * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (headroom, resource.getrlimit(resource.RLIMIT_AS)[1]))
    started = time.monotonic()
    fuzz(tally, args.inputs, args.seed, not args.no_bombs)
    result = {"elapsed_s": round(time.monotonic() - started, 1), **tally.summary()}
    (args.state_dir / "result.json").write_text(json.dumps(result))
    return 0


# --- supervisor: runs the worker, reports what it found or how it died ----------------------


def print_report(result: dict[str, Any]) -> None:
    print(f"\n{'kind':<20} {'inputs':>7} {'ok':>6} {'JudgeError':>10} {'failed':>6} {'slowest ms':>10} {'mean ms':>8} {'RSS+ MB':>8}")
    for kind, row in result.get("by_kind", {}).items():
        ok = row["outcomes"].get("ok", 0)
        failed = sum(n for o, n in row["outcomes"].items() if is_failure(o))
        print(f"{kind:<20} {row['inputs']:>7} {ok:>6} {row['inputs'] - ok - failed:>10} {failed:>6} "
              f"{row['slowest_ms']:>10.1f} {row['mean_ms']:>8.2f} {row['max_rss_growth_mb']:>8.1f}")
    print(f"\n{'outcome':<36} {'count':>7}")
    for outcome, count in result.get("outcomes", {}).items():
        print(f"{outcome:<36} {count:>7}")
    rss = result.get("rss", {})
    slowest = (result.get("slowest") or [{}])[0]
    print(f"\n{result.get('inputs', 0)} inputs ({result.get('unique_inputs', 0)} unique) in {result.get('elapsed_s', '?')} s; "
          f"slowest {slowest.get('ms', '?')} ms ({slowest.get('kind', '?')}, {slowest.get('bytes', '?')} bytes); "
          f"peak RSS {rss.get('peak_mb', '?')} MB (baseline {rss.get('baseline_mb', '?')} MB), largest per-input growth "
          f"{rss.get('max_growth', {}).get('mb', '?')} MB ({rss.get('max_growth', {}).get('kind', '-')}, "
          f"{rss.get('max_growth', {}).get('bytes', '?')} bytes)")
    unraisable = result.get("unraisable_in_callbacks", {}).get("messages", {})
    if unraisable:
        print(f"exceptions swallowed in libsndfile callbacks (not failures): {unraisable}")
    for failure in result.get("failure_records", []):
        print(f"FAIL {failure['kind']}: {failure['outcome']} ({failure['bytes']} bytes, {failure['ms']} ms, "
              f"+{failure['rss_growth_mb']} MB) {failure.get('detail', '')[:200]}")
    if result.get("fatal"):
        print(f"FATAL: {result['fatal']['how']} on a {result['fatal']['kind']} input of {result['fatal']['bytes']} bytes")


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    import hypothesis
    import numpy
    import soundfile

    with tempfile.TemporaryDirectory(prefix="hostile-fuzz-") as tmp:
        state = Path(tmp)
        log = state / "worker.log"
        command = [sys.executable, "-m", "scripts.hostile.fuzz_audio_decoder", *argv, "--worker", "--state-dir", str(state)]
        print(f"fuzzing the decoder with {args.inputs} generated inputs (seed {args.seed}) ...", flush=True)
        with log.open("wb") as log_file:  # libsndfile and mpg123 write notes to stderr
            done = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT)
        if (state / "result.json").exists():
            result = json.loads((state / "result.json").read_text())
        else:
            meta = json.loads((state / "current.json").read_text()) if (state / "current.json").exists() else {}
            data = (state / "current.bin").read_bytes() if (state / "current.bin").exists() else b""
            how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode} (faulthandler: hang in C?)"
            result = {"inputs": meta.get("index"), "failures": 1, "fatal": {
                "how": how, "kind": meta.get("kind"), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "reproducer": _reproducer(data.decode("utf-8", "surrogatepass") if meta.get("is_text") else data),
                "log_tail": log.read_text(errors="replace")[-3000:]}}
        print_report(result)
    out = {
        "provenance": provenance(libsndfile=soundfile.__libsndfile_version__, soundfile=soundfile.__version__,
                                 numpy=numpy.__version__, hypothesis=hypothesis.__version__, engine="hypothesis"),
        "config": {"generated_inputs": args.inputs, "seed": args.seed, "timeout_s": args.timeout_s,
                   "max_rss_growth_mb": args.max_rss_growth_mb, "decompression_bombs": not args.no_bombs,
                   "limits": "AudioLimits() defaults: 0.1-60 s"},
        "passed": result.get("failures", 1) == 0,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'PASS' if out['passed'] else 'FAIL'}: {result.get('failures')} failing inputs. Wrote {args.out}")
    return 0 if out["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10_000, help="generated inputs (seed files and bombs come on top)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per input")
    parser.add_argument("--max-rss-growth-mb", type=float, default=512.0, help="per input, over the RSS before it")
    parser.add_argument("--address-space-headroom-mb", type=float, default=4096.0,
                        help="RLIMIT_AS above the worker's size after imports; beyond it allocations fail")
    parser.add_argument("--no-bombs", action="store_true", help="skip the decompression bombs (seconds each)")
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return worker(args) if args.worker else supervise(args, argv)


if __name__ == "__main__":
    sys.exit(main())
