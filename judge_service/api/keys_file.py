"""The API keys file: its format, its validation, and the edits ``paras2s-judge keys`` makes.

Format (JSON, written with mode 0600)::

    {"version": 1,
     "keys": [{"name": "grpo-run-7", "sha256": "<64 hex digits>", "class": "trainer",
               "rate_per_s": 50, "burst": 100, "disabled": false}]}

Only the SHA-256 of each key is stored, never the key. A key is ``ps2s_`` plus
``secrets.token_urlsafe(32)`` (256 random bits), so a plain, unsalted SHA-256 is an adequate
hash: salting and slow hashes defend low-entropy passwords against guessing, and nobody can
enumerate a 256-bit space. The file is therefore not a secret, though it is kept 0600 anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judge_service.api.traffic_classes import TRAFFIC_CLASSES
from judge_service.config import SettingsError

FILE_VERSION = 1
KEY_PREFIX = "ps2s_"
KEY_RANDOM_BYTES = 32
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 40
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Key names appear in logs, metrics' neighbours and Redis keys: no spaces, slashes or colons."""
HASH_PREFIX_CHARS = 8
"""How much of a hash ``keys list`` and the logs show: enough to tell keys apart, no more."""

_FIELDS = {"name", "sha256", "class", "rate_per_s", "burst", "disabled"}


class KeysFileError(SettingsError):
    """The keys file cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class ApiKeyEntry:
    """One key as stored: ``rate_per_s`` requests per second on average, ``burst`` at once."""

    name: str
    sha256: str
    traffic_class: str
    rate_per_s: float
    burst: int
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "class": self.traffic_class,
                "rate_per_s": self.rate_per_s, "burst": self.burst, "disabled": self.disabled}


def hash_key(key: str) -> str:
    """Hex SHA-256 of a presented key (what the file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A new random key: ``ps2s_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def _entry_problems(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: must be an object with name, sha256, class, rate_per_s, burst, disabled"]
    problems = []
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(_FIELDS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append(f"{where}: name {name!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        shown = f"{len(digest)} characters" if isinstance(digest, str) else repr(digest)
        problems.append(f"{where}: sha256 must be 64 lowercase hex digits (the SHA-256 of the key, "
                        f"not the key itself), got {shown}; recreate it with `paras2s-judge keys create`")
    traffic_class = raw.get("class")
    if traffic_class not in TRAFFIC_CLASSES:
        problems.append(f"{where}: class {traffic_class!r} is not one of {', '.join(sorted(TRAFFIC_CLASSES))}")
    rate = raw.get("rate_per_s", DEFAULT_RATE_PER_S)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < float("inf"):
        problems.append(f"{where}: rate_per_s must be a number above 0 (requests per second), got {rate!r}")
    burst = raw.get("burst", DEFAULT_BURST)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        problems.append(f"{where}: burst must be a whole number of requests >= 1, got {burst!r}")
    if not isinstance(raw.get("disabled", False), bool):
        problems.append(f"{where}: disabled must be true or false, got {raw.get('disabled')!r}")
    return problems


def parse_keys(text: str, source: str) -> list[ApiKeyEntry]:
    """Validate a keys file's text; ``source`` names it in messages.

    Raises:
        KeysFileError: one line per problem, each naming the entry and how to fix it.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeysFileError(f"{source} is not valid JSON ({exc}); fix it or recreate it with "
                            "`paras2s-judge keys create`") from None
    if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION or not isinstance(doc.get("keys"), list):
        raise KeysFileError(f'{source} must be {{"version": {FILE_VERSION}, "keys": [...]}}')
    problems: list[str] = []
    entries: list[ApiKeyEntry] = []
    first_of_name: dict[str, str] = {}
    first_of_hash: dict[str, str] = {}
    for index, raw in enumerate(doc["keys"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"keys[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")
        found = _entry_problems(raw, where)
        problems += found
        if found:
            continue
        if raw["name"] in first_of_name:
            problems.append(f"{where}: name {raw['name']!r} is also used by {first_of_name[raw['name']]}; "
                            "names must be unique (rename one)")
        if raw["sha256"] in first_of_hash:
            problems.append(f"{where}: the same key hash as {first_of_hash[raw['sha256']]}; one key must "
                            "not have two entries (delete one)")
        first_of_name.setdefault(raw["name"], where)
        first_of_hash.setdefault(raw["sha256"], where)
        entries.append(ApiKeyEntry(raw["name"], raw["sha256"], raw["class"],
                                   float(raw.get("rate_per_s", DEFAULT_RATE_PER_S)),
                                   int(raw.get("burst", DEFAULT_BURST)), bool(raw.get("disabled", False))))
    if problems:
        raise KeysFileError(f"invalid API keys file {source}:\n" + "\n".join(f"  {p}" for p in problems))
    return entries


def load_keys(path: Path) -> list[ApiKeyEntry]:
    """Read and validate the keys file at ``path`` (see ``parse_keys``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"cannot read the API keys file {path}: {exc.strerror}; create it with "
                            "`paras2s-judge keys create --file PATH ...` or unset JUDGE_API_KEYS_FILE") from None
    return parse_keys(text, str(path))


def save_keys(path: Path, entries: list[ApiKeyEntry]) -> None:
    """Write the file atomically (a running server never reads half of it), mode 0600."""
    text = json.dumps({"version": FILE_VERSION, "keys": [e.to_json() for e in entries]}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp creates it 0600
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def create_key(path: Path, name: str, traffic_class: str, rate_per_s: float = DEFAULT_RATE_PER_S,
               burst: int = DEFAULT_BURST) -> str:
    """Append a new key's entry to ``path`` (created if absent) and return the key itself, which
    is stored nowhere: the caller shows it once."""
    if not path.parent.is_dir():
        raise KeysFileError(f"{path.parent} is not a directory; create it first or pick another --file")
    entries = load_keys(path) if path.exists() else []
    if any(e.name == name for e in entries):
        raise KeysFileError(f"{path} already has a key named {name!r}; pick another name "
                            "(a disabled key keeps its name, so logs stay unambiguous)")
    key = generate_key()
    entry = ApiKeyEntry(name, hash_key(key), traffic_class, float(rate_per_s), int(burst))
    problems = _entry_problems(entry.to_json(), f"new key {name!r}")
    if problems:
        raise KeysFileError("\n".join(problems))
    save_keys(path, [*entries, entry])
    return key


def disable_key(path: Path, name: str) -> ApiKeyEntry:
    """Mark the key ``name`` disabled (kept, so its name is not reused by mistake)."""
    entries = load_keys(path)
    if not any(e.name == name for e in entries):
        known = ", ".join(e.name for e in entries) or "none"
        raise KeysFileError(f"{path} has no key named {name!r} (keys: {known})")
    updated = [ApiKeyEntry(e.name, e.sha256, e.traffic_class, e.rate_per_s, e.burst, True) if e.name == name else e
               for e in entries]
    save_keys(path, updated)
    return next(e for e in updated if e.name == name)


def describe_keys(entries: list[ApiKeyEntry]) -> str:
    """A table of names, classes, limits and hash prefixes (never enough to be a key)."""
    rows = [("name", "class", "rate_per_s", "burst", "status", "sha256")]
    rows += [(e.name, e.traffic_class, f"{e.rate_per_s:g}", str(e.burst), "disabled" if e.disabled else "active",
              e.sha256[:HASH_PREFIX_CHARS] + "...") for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
