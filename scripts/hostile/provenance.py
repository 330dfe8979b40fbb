"""Where a hostile-input result came from: commit, date, machine and tool versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def _git(*args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh (write) the index of a shared checkout.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    return done.stdout.rstrip() if done.returncode == 0 else ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(**tools: str) -> dict[str, object]:
    """Commit (and which tracked files differed from it), UTC date, CPU, Python, ``tools``."""
    modified = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "tree_dirty": bool(modified),
        "modified_files": [line[3:] for line in modified[:50]],
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": f"{_cpu_name()} x{os.cpu_count()} cores",
        "python": platform.python_version(),
        **tools,
    }
