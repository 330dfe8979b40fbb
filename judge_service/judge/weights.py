"""Model files: safetensors weights beside a JSON config, loaded by path, never by pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_weights(model: torch.nn.Module, config: dict[str, Any], directory: Path, weights_file: str, config_file: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / weights_file))
    (directory / config_file).write_text(json.dumps(config, indent=2) + "\n")


def read_config(directory: Path, config_file: str) -> dict[str, Any]:
    return json.loads((directory / config_file).read_text())


def load_weights(model: torch.nn.Module, directory: Path, weights_file: str) -> torch.nn.Module:
    model.load_state_dict(load_file(str(directory / weights_file)))
    model.eval()
    return model
