"""Readers for the files under deploy/, shared by the deploy tests (no network, no Docker)."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
K8S_DIR = DEPLOY_DIR / "k8s"
ENV_PREFIX = "JUDGE_"

_ACTIVE = re.compile(r"^(?P<name>JUDGE_[A-Z0-9_]+)=(?P<value>.*)$")
_COMMENTED = re.compile(r"^#\s?(?P<name>JUDGE_[A-Z0-9_]+)=(?P<value>.*)$")
_DURATION_PART = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>h|ms|us|m|s)")
_DURATION_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


@dataclass
class EnvExample:
    """The variables of an env.example text: set ones (name -> raw value) and commented-out ones."""

    active: dict[str, str] = field(default_factory=dict)
    commented: set[str] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)

    def names(self) -> set[str]:
        return set(self.active) | self.commented


def parse_env_example(text: str) -> EnvExample:
    parsed = EnvExample()
    for line in text.splitlines():
        match = _ACTIVE.match(line) or _COMMENTED.match(line)
        if match is None:
            continue
        name = match["name"]
        if name in parsed.names():
            parsed.duplicates.append(name)
        if line.startswith("#"):
            parsed.commented.add(name)
        else:
            value = match["value"]
            parsed.active[name] = json.loads(value) if value.startswith('"') else value
    return parsed


def env_mismatch(env: EnvExample, field_names: list[str]) -> tuple[set[str], set[str]]:
    """(settings missing from the file, variables in the file that are no setting)."""
    expected = {ENV_PREFIX + name.upper() for name in field_names}
    return expected - env.names(), env.names() - expected


def load_make_env_example() -> ModuleType:
    """deploy/make_env_example.py as a module (deploy/ is not a package)."""
    path = DEPLOY_DIR / "make_env_example.py"
    spec = importlib.util.spec_from_file_location("make_env_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def duration_s(text: str | int | float) -> float:
    """A compose duration (``75s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = list(_DURATION_PART.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(p["amount"]) * _DURATION_UNIT_S[p["unit"]] for p in parts)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY_DIR / "compose.yaml").read_text())


def k8s_files() -> list[Path]:
    return sorted(K8S_DIR.glob("*.yaml"))


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document under deploy/k8s/, with its file."""
    out = []
    for path in k8s_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                out.append((path, document))
    return out


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in k8s_documents() if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r} in deploy/k8s, found {len(matches)}"
    return matches[0]


@dataclass
class DockerStage:
    """One ``FROM`` stage of a Dockerfile: its base, name and instructions (continuations joined)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[DockerStage]:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[DockerStage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(DockerStage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages
