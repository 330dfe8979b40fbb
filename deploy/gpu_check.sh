#!/usr/bin/env bash
# One prepared GPU check for the log-mel kernels (judge_service/features/kernels.py):
#   1. pytest tests/kernels -m gpu       (compiled Triton kernels vs the float64 reference)
#   2. benchmarks/bench_log_mel.py       (batches 1,8,64,256 on cuda, all methods)
#   3. the same benchmark's --tile-sweep (candidate Triton tilings, batch 64)
#
# Usage, on a machine with an NVIDIA GPU (H100/H200), from any directory:
#     bash deploy/gpu_check.sh
# Results go to $OUT (default ./gpu_check_out), at most 7 files, no sub-folders:
#     gpu_check.log (everything below, in order), env.txt, pytest_gpu.log, pytest_gpu.xml,
#     bench.log, tile_sweep.log, log_mel.csv (rows to append to benchmarks/results/log_mel.csv).
# Exit status: pytest's (0 when every gpu test passed); 2 when no usable Python was found.
#
# Time: each step runs under `timeout`, capped by what is left of GPU_CHECK_BUDGET_S (default
# 240 s), so the whole script ends well inside 5 minutes (typically 2-3: Triton compiles ~25
# kernel variants, the benchmark then runs a few seconds per batch size).
#
# Python: the first of $GPU_CHECK_PYTHON, ./.venv/bin/python, python3, python that imports
# torch and triton and sees a CUDA device.  The lent machines have such a python3 (with pytest,
# numpy, torchaudio and transformers) and can download nothing.  If none works and a wheel
# folder ./.whl was carried along, its wheels are installed with pip --no-index into
# /tmp/gpu_check_site (no venv, no network) and the search is repeated; otherwise the script
# stops with status 2 and says what is missing.  The repository itself is used in place via
# PYTHONPATH (no pip install -e, which would need build tools).

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
REPO="$PWD"
OUT="${OUT:-$REPO/gpu_check_out}"
mkdir -p "$OUT" || exit 2
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
TEE_PID=$!
# Let tee flush the log before the script's status is reported.
finish() { exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null; exit "$1"; }

BUDGET_S="${GPU_CHECK_BUDGET_S:-240}"
BATCHES="${GPU_CHECK_BATCHES:-1,8,64,256}"
# GPU_CHECK_ALLOW_CPU=1 rehearses the script on a machine without a GPU (the gpu tests skip,
# the benchmark runs on cpu): for checking this script, not the kernels.
DEVICE=cuda
[[ "${GPU_CHECK_ALLOW_CPU:-0}" == 1 ]] && DEVICE=cpu
START_S=$(date +%s)
export PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET  # the compiled kernels, not the CPU interpreter

log() { echo "[gpu_check $(date -u +%H:%M:%S) +$(( $(date +%s) - START_S ))s] $*"; }

# Seconds a step may take: its own cap, or what is left of the budget if that is less.
step_limit() {
    local cap=$1 left
    left=$(( BUDGET_S - ($(date +%s) - START_S) ))
    (( left < cap )) && cap=$left
    echo "$cap"
}

usable_python() {
    DEVICE="$DEVICE" "$1" - <<'PY' >/dev/null 2>&1
import os, sys
import torch, triton  # noqa: F401
sys.exit(0 if torch.cuda.is_available() or os.environ["DEVICE"] == "cpu" else 3)
PY
}

find_python() {
    local candidate
    for candidate in "${GPU_CHECK_PYTHON:-}" ./.venv/bin/python python3 python; do
        [[ -n "$candidate" ]] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if usable_python "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

PY=$(find_python)
if [[ -z "$PY" ]] && compgen -G ".whl/*.whl" >/dev/null; then
    log "no python with torch+triton+CUDA; installing the carried wheels from .whl (offline)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site .whl/*.whl
    export PYTHONPATH="/tmp/gpu_check_site:$PYTHONPATH"
    PY=$(find_python)
fi
if [[ -z "$PY" ]]; then
    log "FATAL: no python that imports torch and triton and sees a GPU (nvidia-smi below)."
    log "       Nothing can be downloaded here: carry wheels in ./.whl (see the header)."
    nvidia-smi 2>&1 | head -20
    finish 2
fi
log "python: $PY"

# Missing test/bench modules: pytest and numpy are needed, the rest only add comparisons.
missing=$("$PY" - <<'PY'
import importlib.util
print(" ".join(m for m in ("pytest", "numpy", "torchaudio", "transformers") if importlib.util.find_spec(m) is None))
PY
)
if [[ -n "$missing" ]]; then
    log "missing python modules: $missing (torchaudio/transformers rows and tests are skipped)"
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/gpu_check_site .whl/*.whl && export PYTHONPATH="/tmp/gpu_check_site:$PYTHONPATH"
    fi
fi

{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "python: $PY"
    "$PY" - <<'PY'
import platform, torch, triton
print("python_version:", platform.python_version())
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "triton:", triton.__version__)
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print("device:", props.name, f"{props.total_memory / 2**30:.1f} GiB", "SMs:", props.multi_processor_count,
          "capability:", f"{props.major}.{props.minor}")
else:
    print("device: none (GPU_CHECK_ALLOW_CPU rehearsal)")
PY
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

limit=$(step_limit 130)
(( limit < 10 )) && limit=10
log "1/3 pytest tests/kernels -m gpu (limit ${limit}s)"
timeout -k 10 "$limit" "$PY" -m pytest tests/kernels -m gpu -q -p no:cacheprovider \
    --junitxml="$OUT/pytest_gpu.xml" >"$OUT/pytest_gpu.log" 2>&1
pytest_rc=$?
tail -n 25 "$OUT/pytest_gpu.log"
(( pytest_rc == 124 || pytest_rc == 137 )) && log "pytest hit its time limit"
log "pytest exit status: $pytest_rc"

limit=$(step_limit 80)
if (( limit >= 20 )); then
    log "2/3 benchmark, batches $BATCHES on $DEVICE (limit ${limit}s)"
    timeout -k 10 "$limit" "$PY" benchmarks/bench_log_mel.py --device "$DEVICE" --batches "$BATCHES" \
        --reps 5 --out-dir "$OUT" >"$OUT/bench.log" 2>&1
    log "benchmark exit status: $?"
    cat "$OUT/bench.log"
else
    log "2/3 benchmark skipped: only ${limit}s of the budget left"
fi

limit=$(step_limit 45)
if [[ "$DEVICE" != cuda ]]; then
    log "3/3 tile sweep skipped: no GPU"
elif (( limit >= 15 )); then
    log "3/3 tile sweep, batch 64 (limit ${limit}s)"
    timeout -k 10 "$limit" "$PY" benchmarks/bench_log_mel.py --device cuda --batches 64 --quick \
        --tile-sweep --skip kaldi_fbank_loop,hf_whisper,ours_torch --out-dir "$OUT" >"$OUT/tile_sweep.log" 2>&1
    log "tile sweep exit status: $?"
    cat "$OUT/tile_sweep.log"
else
    log "3/3 tile sweep skipped: only ${limit}s of the budget left"
fi

log "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
finish "$pytest_rc"
