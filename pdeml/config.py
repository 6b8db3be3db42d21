"""YAML experiment configs: load, merge, override from the command line, validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("seed", "data", "model", "module", "trainer")


class ConfigError(ValueError):
    """A config file or override is malformed."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read one YAML mapping with one-line errors."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(cfg: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply ``section.key=value`` (value parsed as YAML) to a copy of ``cfg``."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like section.key=value")
    dotted, raw = assignment.split("=", 1)
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override '{assignment}' has an empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"override '{assignment}': cannot parse the value") from None
    update: dict[str, Any] = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        update = {k: update}
    return merge(cfg, update)


def compose(
    paths: list[str | Path], overrides: list[str], defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then each file in order, then each override; then validate the sections."""
    cfg = copy.deepcopy(defaults or {})
    for p in paths:
        cfg = merge(cfg, load_yaml(p))
    for o in overrides:
        cfg = apply_override(cfg, o)
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}"
        )
    for s in SECTIONS[1:]:
        if not isinstance(cfg.get(s, {}), dict):
            raise ConfigError(f"config section '{s}' must be a mapping")
    return cfg


def dump(cfg: dict[str, Any], path: str | Path) -> None:
    """Write a config as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
