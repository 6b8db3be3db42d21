"""YAML experiment configs: load, merge, override from the command line, validate."""

from __future__ import annotations

import collections.abc
import copy
import difflib
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from pdeml.checks import describe_type

SECTIONS = ("seed", "data", "model", "module", "trainer")


class ConfigError(ValueError):
    """A config file or override is malformed."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3`` is a number, not the string
    ``'1e-3'`` (YAML 1.1 wants a dot in the mantissa), as every scientist types it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (see :class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read one YAML mapping with one-line errors."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder; name a YAML file")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a YAML file (it holds binary data"
                          f"{'; an HDF5 file goes in data.train' if _is_hdf5(path) else ''})"
                          ) from None
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


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
        value = parse_yaml(raw)
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


# ---------------------------------------------------------------------------------------------
# Typed validation and per-key help, read from signatures and docstrings (LightningCLI-style).


def docstring_params(obj: Any) -> dict[str, str]:
    """First sentence of each parameter's description in a numpydoc or Google docstring."""
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "Parameters" not in doc and "Args:" not in doc:
        doc = inspect.getdoc(obj.__init__) or ""
    lines = doc.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.strip() == "Parameters" and i + 1 < len(lines) and lines[i + 1].startswith("---"):
            _numpydoc(lines[i + 2:], out)
        elif line.strip() == "Args:":
            _google(lines[i + 1:], out)
    return {k: _first_sentence(" ".join(v.split())) for k, v in out.items() if v.strip()}


def _numpydoc(lines: list[str], out: dict[str, str]) -> None:
    names: list[str] = []
    for j, line in enumerate(lines):
        if line and not line[0].isspace():
            if j + 1 < len(lines) and lines[j + 1].startswith("---"):
                return  # the next section
            names = [n.strip() for n in line.split(":")[0].split(",") if n.strip()]
        elif line.strip():
            for n in names:
                out[n] = out.get(n, "") + " " + line.strip()


def _google(lines: list[str], out: dict[str, str]) -> None:
    name = None
    for line in lines:
        if line.strip() and not line[0].isspace():
            return
        m = re.match(r"^ {2,4}(\w+)(?: \(.*?\))?: ?(.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2)
        elif name and line.strip():
            out[name] += " " + line.strip()


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.;])(\s|$)", text)
    return (m.group(1) if m else text)[:160]


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable annotations (TYPE_CHECKING imports): no type check
        return {}


def check_type(value: Any, tp: Any) -> bool:
    """Whether a YAML value fits an annotation (simple types; anything else passes)."""
    if tp is Any or tp is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(check_type(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str or tp is Path:
        return isinstance(value, str)
    base = origin or tp
    if base in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return len(inner) != 1 or all(check_type(v, inner[0]) for v in value)
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True


def _type_name(tp: Any) -> str:
    if tp is inspect.Parameter.empty:
        return "any"
    text = getattr(tp, "__name__", None) if not typing.get_args(tp) else None
    text = text or str(tp)
    for prefix in ("typing.", "pathlib.", "collections.abc.", "torch.nn.modules.module."):
        text = text.replace(prefix, "")
    return text


def settings_of(func: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Each keyword parameter of ``func`` (a class: its ``__init__``) with type, default, help."""
    target = func.__init__ if inspect.isclass(func) else func
    hints, helps = _hints(target), docstring_params(func)
    rows = []
    for name, p in inspect.signature(target).parameters.items():
        if name in ("self", *skip) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        rows.append({"key": name, "type": hints.get(name, p.annotation),
                     "default": None if p.default is p.empty else p.default,
                     "required": p.default is p.empty, "help": helps.get(name, "")})
    return rows


def validate_section(section: str, values: dict[str, Any], func: Any,
                     skip: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
    """Unknown keys and values of the wrong type in ``section`` -> one-line ConfigError."""
    rows = {r["key"]: r for r in settings_of(func, skip)}
    for key, value in values.items():
        if key in extra or key in skip:
            continue
        if key not in rows:
            close = difflib.get_close_matches(key, list(rows), n=1)
            hint = f"; did you mean {section}.{close[0]}?" if close else ""
            raise ConfigError(f"unknown setting {section}.{key}{hint} "
                              f"(`pdeml list settings` shows them all)")
        row = rows[key]
        if not check_type(value, row["type"]):
            helptext = f" ({row['help']})" if row["help"] else ""
            raise ConfigError(f"{section}.{key} must be {describe_type(row['type'])}, got "
                              f"{value!r}{helptext}")
